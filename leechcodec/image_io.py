"""Input images: reading, the colour-mode policy, and the size limit.

Policy (also in the README):

=====================  ==================================================================
input mode             what encode does
=====================  ==================================================================
RGB                    coded as is
L, 1                   coded as grey (decodes to mode L)
I;16*, I (16-bit grey) reduced to 8 bits (top byte), coded as grey, with a warning
F (float grey)         clipped to 0–255, coded as grey, with a warning
P without transparency expanded to RGB (lossless)
RGBA, LA, PA, P+tRNS   alpha dropped, colour kept, with a warning
CMYK, YCbCr, LAB, HSV  converted to RGB by Pillow, with a warning
=====================  ==================================================================
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from .container import DEFAULT_MAX_PIXELS
from .errors import InputImageError, LeechWarning, LimitError


def read_image(src, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image from a path, a binary file, bytes or a (lazy) PIL image.

    Raises:
        InputImageError: not an image, truncated or otherwise unreadable.
        LimitError: more than ``max_pixels`` pixels (checked before decoding the pixels).
    """
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = src if isinstance(src, Image.Image) else Image.open(src)
            _check_size(im.width, im.height, max_pixels)
            im.load()
    except (LimitError, InputImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise LimitError(f"image too large: {e}") from None
    except FileNotFoundError:
        raise InputImageError(f"no such file: {src}") from None
    except Image.UnidentifiedImageError:
        raise InputImageError("cannot read image: not a known image format, or a damaged header") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputImageError(f"cannot read image: {e}") from None
    return im


def _check_size(width: int, height: int, max_pixels: int | None) -> None:
    if width < 1 or height < 1:
        raise InputImageError(f"image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise LimitError(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")


def _warn(msg: str) -> None:
    warnings.warn(msg, LeechWarning, stacklevel=3)


def to_rgb_array(im: Image.Image) -> tuple[np.ndarray, str]:
    """Apply the mode policy to an image from ``read_image`` (which checked its size):
    returns (H, W, 3) uint8 and the mode to decode to ("RGB"/"L")."""
    mode = im.mode
    if mode in ("RGB",):
        return np.asarray(im, dtype=np.uint8), "RGB"
    if mode in ("L", "1"):
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), "L"
    if mode.startswith("I"):
        _warn(f"{mode} input reduced to 8 bits per sample")
        a = np.asarray(im).astype(np.int64)
        grey = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), "L"
    if mode == "F":
        _warn("floating-point input clipped to 0-255 and rounded to 8 bits")
        grey = np.clip(np.rint(np.nan_to_num(np.asarray(im))), 0, 255).astype(np.uint8)  # NaN → 0
        return np.repeat(grey[..., None], 3, axis=2), "L"
    if mode == "P" and "transparency" not in im.info:
        return np.asarray(im.convert("RGB"), dtype=np.uint8), "RGB"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA", "P", "RGBX"):
        if mode != "RGBX":
            _warn(f"alpha channel dropped ({mode} input): leechcodec stores colour only")
        if mode in ("LA", "La"):
            grey = np.asarray(im.convert("LA").convert("L"), dtype=np.uint8)  # Pillow has no La → L
            return np.repeat(grey[..., None], 3, axis=2), "L"
        return np.asarray(im.convert("RGBA").convert("RGB"), dtype=np.uint8), "RGB"
    try:
        rgb = im.convert("RGB")
    except (ValueError, OSError) as e:
        raise InputImageError(f"unsupported image mode {mode}: {e}") from None
    _warn(f"{mode} input converted to RGB")
    return np.asarray(rgb, dtype=np.uint8), "RGB"
