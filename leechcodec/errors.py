"""Typed exceptions. The CLI maps each to one line on stderr and its ``exit_code``.

The docstring of each class is its row in the README's table of exit codes, which
``python -m leechcodec.cli.errors_table --update README.md`` writes (tests/test_cli.py checks it), and its
``brief`` the words each command's ``--help`` gives the code (``cli.errors_table.help_block``).
"""

import importlib.util


class LeechError(Exception):
    """The base class of every error leechcodec raises on purpose, and itself one without a more
    specific class: `--device cuda` with no CUDA device.
    """

    exit_code = 1
    brief = "other error (--device cuda without a CUDA device)"


class InputImageError(LeechError):
    """The input cannot be read as an image: no such file, a directory, not an image, a truncated
    PNG/JPEG, a 0×0 image, a mode Pillow cannot convert, a `.lq` file given to `encode`, several
    frames (an animation, a multi-page file) without `--first-frame`.
    """

    exit_code = 3
    brief = "the input image cannot be read"


class FormatError(LeechError):
    """The input is not a valid `.lq` stream: bad magic (e.g. a PNG given to `decode`), truncated,
    unsupported format version, payload length field that disagrees with the file, checksum
    mismatch, unknown coder or colour mode, reserved flags set, invalid size, a tile size other
    than 256 or a tile grid that does not match the size, payload values out of range, a coder
    or tile size this build/model cannot decode; for `ar` streams: a malformed payload, a
    range-coder stream that cannot be decoded, decoded tokens whose checksum differs from the
    encoder's, or words other than the ones the encoder writes for those tokens (trailing bytes,
    even with the length and CRC fixed up: streams are canonical, docs/FORMAT.md).
    """

    exit_code = 4
    brief = "not a valid .lq stream"


class ModelMismatchError(LeechError):
    """The stream was encoded with a different model (its model id differs from the `--model`
    weights) or, for `ar` streams, a different prior (`--prior`).
    """

    exit_code = 5
    brief = "the stream needs another model or prior"


class ModelError(LeechError):
    """The `--model` weights are unusable: file missing, not safetensors (pickle, zip, random
    bytes, header length over 100 MB), not a leechcodec tokenizer (no `leechcodec-tokenizer`
    metadata), invalid config JSON (unknown fields, wrong types, non-positive or non-finite
    values, a tile other than 256 px, more than 4,096 tokens per tile), tensors whose names or
    shapes do not match the config, non-finite or non-float tensors; for the AR prior
    (`--prior`, `NAME.prior.safetensors`): the same checks, integer tensors within their bounds,
    trained for this tokenizer; `--coder ar` (or an `ar` stream) with a model that has no prior.
    """

    exit_code = 6
    brief = "the model (or prior) file is unusable"


class LimitError(LeechError):
    """A resource limit: the image (or the size a `.lq` header claims) is over `--max-pixels`
    (default 2^26 = 67,108,864 pixels; it replaces Pillow's own decompression-bomb guard), the
    image padded to whole 256-px tiles is over 4 × `--max-pixels` (very thin strips), more than
    65,535 tiles across or down (the format's limit). The pixel limit is checked from the image or `.lq` header,
    before any pixels are decoded; the padding and tile limits before anything is padded.
    """

    exit_code = 7
    brief = "over a size limit (pixels, tiles)"


class RateError(LeechError):
    """`encode --bpp` asks for fewer bits per pixel than the rate knob reaches on that image (the
    message gives the smallest rate it reaches).
    """

    exit_code = 12
    brief = "--bpp below what the rate knob reaches"


class LeechWarning(UserWarning):
    """A lossy but allowed conversion of the input (alpha dropped, 16-bit reduced, …)."""


# The two environment errors every command words the same way (exit 1, one line).
def have_torch() -> bool:
    """Whether torch is installed (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def torch_needed(what: str, hint: str = "") -> str:
    """The one wording of "``what`` needs torch" (the ``train`` extra)."""
    return f"{what} needs torch, which is not installed: pip install 'leechcodec[train]'{hint}"


def require_torch(what: str, hint: str = "") -> None:
    """``what`` needs torch (the ``train`` extra): a ``LeechError`` where it is not installed."""
    if not have_torch():
        raise LeechError(torch_needed(what, hint))


def require_cuda(what: str = "--device cuda") -> None:
    """A ``LeechError`` where torch sees no CUDA device (imports torch; ``require_torch`` first)."""
    import torch  # the caller has asked for CUDA: torch is needed anyway

    if not torch.cuda.is_available():
        raise LeechError(f"{what}: no CUDA device is available")
