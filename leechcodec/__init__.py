"""leechcodec: a learned image codec built on Spherical Leech Quantization (Λ24-SQ).

Public API::

    import leechcodec
    from models.io import load_weights          # the bundled ViT tokenizer
    model = load_weights()
    data = leechcodec.encode(Image.open("a.png"), model)   # .lq bytes
    image = leechcodec.decode(data, model)                 # PIL.Image

The library does not import ``models`` or ``click``: any object with ``analysis``,
``synthesis``, ``model_id``, ``tile`` and ``patch`` can be the model.
"""

from .codec import decode, encode, read_header
from .coders import CODERS
from .container import DEFAULT_MAX_PIXELS, Header
from .errors import (
    FormatError,
    InputImageError,
    LeechError,
    LeechWarning,
    LimitError,
    ModelError,
    ModelMismatchError,
)

__version__ = "0.1.0"

__all__ = [
    "CODERS",
    "DEFAULT_MAX_PIXELS",
    "FormatError",
    "Header",
    "InputImageError",
    "LeechError",
    "LeechWarning",
    "LimitError",
    "ModelError",
    "ModelMismatchError",
    "decode",
    "encode",
    "read_header",
]
