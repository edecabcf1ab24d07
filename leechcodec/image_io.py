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

Before the mode policy (``prepare``): an embedded ICC profile that is not sRGB is converted to
sRGB (Pillow's ImageCms, with a warning; sRGB and untagged inputs are unchanged), and the EXIF
Orientation is applied, so the decoded picture looks like the input does in a viewer (with a
warning naming it; ``keep_orientation`` codes the stored pixel order). A file of several frames
(animation, multi-page TIFF) is refused, naming the count, unless ``first_frame`` asks for the
first one (with a warning).
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings

import numpy as np
from PIL import Image

from .container import DEFAULT_MAX_PIXELS
from .errors import InputImageError, LeechWarning, LimitError


_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _our_limit(max_pixels: int | None):
    """While reading: ``max_pixels`` is the limit that applies, not Pillow's decompression-bomb
    guard (``Image.MAX_IMAGE_PIXELS``, 89,478,485 pixels by default: a warning above it, an error
    above twice it). Where our limit is the higher one, Pillow's is raised to it for the read
    and put back after it, under a lock (a module global of Pillow's: our reads take turns;
    nothing changes when our limit is the lower one, as by default). None: Pillow's guard stays."""
    if max_pixels is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our check, in our words, follows
        pillows = Image.MAX_IMAGE_PIXELS
        if pillows is None or pillows >= max_pixels:
            yield
            return
        with _PILLOW_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def read_image(src, max_pixels: int | None = DEFAULT_MAX_PIXELS, first_frame: bool = False) -> Image.Image:
    """Open and fully decode an image from a path, a binary file, bytes or a (lazy) PIL image.

    Args:
        max_pixels: the largest image accepted, in place of Pillow's decompression-bomb guard
            (so it can be raised above Pillow's 89,478,485 pixels, up to what the format
            holds: ``container.check_size``); None: no limit of ours, and Pillow's guard applies.
        first_frame: take the first frame of an animation or multi-page file (with a
            warning) instead of refusing it. A PIL image is taken as its current frame.

    Raises:
        InputImageError: not an image, truncated or otherwise unreadable; several frames
            without ``first_frame``.
        LimitError: more than ``max_pixels`` pixels (checked before decoding the pixels).
    """
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    try:
        with _our_limit(max_pixels):
            im = src if isinstance(src, Image.Image) else Image.open(src)
            if im is not src and im.format == "LQ":  # Pillow reads .lq once leechcodec.pillow is imported
                raise InputImageError("the input is a .lq stream, not an image (decode it: leechcodec decode)")
            _check_size(im.width, im.height, max_pixels)
            frames = 1 if im is src else getattr(im, "n_frames", 1)  # a PIL image given is its current frame
            if frames > 1:
                if not first_frame:
                    raise InputImageError(
                        f"the image has {frames} frames (an animation or a multi-page file); leechcodec codes one "
                        "still picture: pass --first-frame to code the first frame"
                    )
                im.seek(0)
                _warn(f"coding the first of {frames} frames")
            im.load()
    except (LimitError, InputImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if max_pixels is not None:  # over twice our limit: Pillow says so first
            raise LimitError(f"image is over the limit of {max_pixels} pixels") from None
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


ORIENTATIONS = {2: "mirrored", 3: "rotated 180°", 4: "flipped", 5: "mirrored and rotated 90°",
                6: "rotated 90°", 7: "mirrored and rotated 270°", 8: "rotated 270°"}  # fmt: skip


def prepare(im: Image.Image, keep_orientation: bool = False) -> Image.Image:
    """ICC profile to sRGB, then the EXIF orientation (see the module docstring)."""
    im = to_srgb(im)
    orientation = im.getexif().get(0x0112, 1)
    if orientation in ORIENTATIONS and not keep_orientation:
        from PIL import ImageOps  # ~10 ms: only for a turned picture

        im = ImageOps.exif_transpose(im)
        _warn(f"EXIF orientation {orientation} applied (stored {ORIENTATIONS[orientation]}): coded as viewers show it, "
              f"{im.width}x{im.height} (--keep-orientation codes the stored pixels)")  # fmt: skip
    return im


def to_srgb(im: Image.Image) -> Image.Image:
    """Convert an image with an embedded non-sRGB ICC profile to sRGB; others are returned as is."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    from PIL import ImageCms  # needs Pillow's littlecms: only for a picture with a profile

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(src).strip()
    except (OSError, ValueError, ImageCms.PyCMSError):
        _warn("unreadable ICC profile ignored: colours coded as if sRGB")
        return im
    if "srgb" in name.lower().replace(" ", ""):
        return im
    out_mode = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}.get(im.mode)
    if out_mode is None:
        _warn(f"ICC profile '{name}' ignored for a {im.mode} image: colours coded as they are")
        return im
    try:
        out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode=out_mode)
    except (OSError, ValueError, ImageCms.PyCMSError) as e:
        _warn(f"ICC profile '{name}' could not be applied ({e}): colours coded as if sRGB")
        return im
    out.info.pop("icc_profile", None)
    _warn(f"colours converted from the embedded ICC profile '{name}' to sRGB")
    return out


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
