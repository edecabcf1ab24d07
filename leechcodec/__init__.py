"""leechcodec: a learned image codec built on Spherical Leech Quantization (Λ24-SQ).

Public API::

    import leechcodec
    model = leechcodec.load_model()                        # the bundled tokenizer and prior
    data = leechcodec.encode(Image.open("a.png"), model)   # .lq bytes
    image = leechcodec.decode(data, model)                 # PIL.Image
    tokens = leechcodec.tokenize(images, model)            # int32 (N, H/8, W/8): the codec's tokens
    pictures = leechcodec.detokenize(tokens, model)        # uint8 (N, H, W, 3)
    from leechcodec import LeechQuantizer                  # Λ24-SQ for your own model (torch)

``load_model`` (``models.load.load``) runs the networks on ONNX Runtime, and encode and decode
do the rest in numpy: no torch (``load_model(backend="torch")``, ``device="cuda"`` and
``encode(effort=…)`` use it, from the ``train`` extra). ``load_model`` (and the Pillow
plugin's default model, through it) is the library's one door to ``models``; encode and
decode take any ``Tokenizer`` (``leechcodec.tokenizer``: ``analysis``, ``synthesis``,
``model_id``, ``tile``, ``patch``; numpy in and out with ``numpy_io = True``, torch tensors
otherwise). docs/ARCHITECTURE.md maps the modules.
"""

import os

from .container import CODERS, DEFAULT_MAX_PIXELS, MAX_STAGES, Header, read_header
from .errors import have_torch as _have_torch
from .errors import (
    FormatError,
    InputImageError,
    LeechError,
    LeechWarning,
    LimitError,
    ModelError,
    ModelMismatchError,
    RateError,
)
from .tokenizer import Tokenizer

__version__ = "0.1.0"


def _source_tree_subpackages() -> None:
    """Run from a source tree (tests, ``PYTHONPATH=.`` on a GPU, an editable install), the folders
    models/, cli/ and kodak_eval/ beside this package are its subpackages ``leechcodec.models``,
    ``leechcodec.cli`` and ``leechcodec.kodak_eval``; a wheel installs them inside the package."""
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.dirname(here)
    if not os.path.isdir(os.path.join(here, "models")) and os.path.isfile(os.path.join(src, "models", "vit.py")):
        __path__.append(src)


_source_tree_subpackages()


def __getattr__(name: str):
    # loaded on first use, so that `leechcodec --help`, `info` and the header functions start
    # without numpy's and ONNX Runtime's imports
    if name in ("encode", "decode"):
        from . import codec

        return getattr(codec, name)
    if name == "load_model":
        from .models.load import load

        return load
    if name in ("tokenize", "detokenize"):
        from . import tokens

        return getattr(tokens, name)
    if name == "LeechQuantizer":  # a torch module: the train extra (the codec runs without torch)
        from .errors import torch_needed

        if not _have_torch():
            raise ImportError(torch_needed("LeechQuantizer"))
        from .quantizer import LeechQuantizer

        return LeechQuantizer
    raise AttributeError(f"module 'leechcodec' has no attribute {name!r}")


__all__ = [
    "CODERS",
    "DEFAULT_MAX_PIXELS",
    "FormatError",
    "Header",
    "InputImageError",
    "LeechError",
    "LeechWarning",
    "LimitError",
    "MAX_STAGES",
    "ModelError",
    "ModelMismatchError",
    "RateError",
    "Tokenizer",
    "decode",
    "detokenize",
    "encode",
    "load_model",
    "read_header",
    "tokenize",
]
if _have_torch():  # ``from leechcodec import *`` stays torch-free where torch is not installed
    __all__.append("LeechQuantizer")
