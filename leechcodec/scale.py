"""The picture's size as a rate knob: the tokens may code it at another size (format version 4).

An encoder resamples the picture to a *coded size* (``container.coded_size`` for ``--scale``;
the rate control of ``codec.encode`` chooses one per picture), codes that, and the stream
records both sizes. The decoder decodes the coded size and resamples the 8-bit RGB result to
the picture's size with ``RESAMPLE``, which docs/FORMAT.md (*Resampling*) specifies to the bit:
Pillow's Lanczos filter (``Image.resize(size, Image.LANCZOS)``), the reference implementation
of that text (``tests/test_format_spec.py`` re-implements it from the text and compares).

Why Lanczos in both directions: it measured best of Pillow's filters down (Lanczos, bicubic,
box, bilinear) and up (Lanczos, bicubic, bilinear), and an unsharp mask after the up-scale
added at most 0.006 dB (``benchmarks/scale_filters.py``; README, "Scale").
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.LANCZOS  # the decoder's filter (normative: FORMAT.md, *Resampling*) and the encoder's


def to_size(picture: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image:
    """``picture`` (an RGB PIL image or an (H, W, 3) uint8 array) resampled to ``size`` = (width,
    height) with ``RESAMPLE``, each channel of the 8-bit samples on its own; an RGB PIL image."""
    im = picture if isinstance(picture, Image.Image) else Image.fromarray(np.ascontiguousarray(picture), "RGB")
    return im if im.size == tuple(size) else im.resize(tuple(size), RESAMPLE)
