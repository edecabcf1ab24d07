"""Classical baselines through Pillow's real encoders: every figure comes from real bytes, in memory."""

from __future__ import annotations

import io
from dataclasses import dataclass

import PIL
from PIL import Image, features


@dataclass(frozen=True)
class ClassicalCodec:
    """One Pillow codec and the parameter swept to trace its rate-distortion curve.

    Attributes:
        name: short key used on the command line (``jpeg2000``, ``webp``, ``avif``, ``jpeg``).
        label: name shown in reports.
        pil_format: Pillow format name given to ``Image.save``.
        feature: Pillow feature/codec name checked with ``PIL.features.check``.
        param: what the sweep values mean.
        sweep: default sweep values, ordered from low to high rate (≈0.06–0.6 bpp on Kodak; WebP bottoms out near 0.1).
        settings: fixed encoder settings, for the description.
    """

    name: str
    label: str
    pil_format: str
    feature: str
    param: str
    sweep: tuple[int, ...]
    settings: str

    def save_options(self, value: int | float) -> dict:
        """Keyword arguments for ``Image.save`` at sweep value ``value`` (jpeg2000 also takes a float ratio)."""
        if self.name == "jpeg2000":
            # irreversible 9/7 wavelet, RGB→YCbCr (mct=1), one layer at the given compression ratio,
            # raw J2K codestream (no JP2 boxes)
            return dict(irreversible=True, mct=1, quality_mode="rates", quality_layers=[value], no_jp2=True)
        if self.name == "webp":
            return dict(quality=value, method=6)
        if self.name == "avif":
            return dict(quality=value, speed=6)
        if self.name == "jpeg":
            return dict(quality=value, optimize=True)
        raise ValueError(f"unknown codec {self.name!r}")

    def available(self) -> bool:
        """Whether this Pillow build can encode and decode the format."""
        return bool(features.check(self.feature))

    def describe(self, sweep: tuple[int, ...] | None = None) -> str:
        """Encoder, version, settings and sweep (default: ``self.sweep``), for the JSON description."""
        version = features.version(self.feature) or "unknown version"
        values = list(self.sweep if sweep is None else sweep)
        return f"{self.label} {version} via Pillow {PIL.__version__}; {self.settings}; {self.param} ∈ {values}"

    def encode(self, image: Image.Image, value: int | float) -> bytes:
        """Compress an RGB image at sweep value ``value``; returns the file bytes."""
        buf = io.BytesIO()
        image.save(buf, self.pil_format, **self.save_options(value))
        return buf.getvalue()

    @staticmethod
    def decode(data: bytes) -> Image.Image:
        """Decode file bytes to a fully loaded RGB image."""
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")


CLASSICAL = {
    c.name: c
    for c in (
        ClassicalCodec("jpeg2000", "JPEG2000 (OpenJPEG)", "JPEG2000", "jpg_2000", "compression ratio",
                       (400, 300, 240, 160, 120, 96, 80, 64, 48, 40),
                       "irreversible 9/7 wavelet, mct=1, quality_mode='rates' (one layer), raw J2K codestream"),
        ClassicalCodec("webp", "WebP (libwebp)", "WEBP", "webp", "quality", (0, 1, 3, 6, 10, 15, 20, 27, 35, 45),
                       "lossy, method=6"),
        ClassicalCodec("avif", "AVIF (libavif)", "AVIF", "avif", "quality", (5, 10, 15, 20, 25, 30, 35, 40, 45, 50),
                       "speed=6, default 4:2:0 subsampling"),
        ClassicalCodec("jpeg", "JPEG (libjpeg)", "JPEG", "jpg", "quality", (1, 3, 5, 7, 10, 13, 16, 20, 25, 30),
                       "optimize=True (Huffman tables), default 4:2:0 subsampling"),
    )
}  # fmt: skip

ALL_CODECS = (*CLASSICAL, "leechcodec")
