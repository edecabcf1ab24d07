"""Comparison pictures at equal file size: leechcodec next to JPEG2000, AVIF, WebP, … at the same bytes.

Data flow for one image::

    image ──► leechcodec.encode → N bytes → leechcodec.decode
          └─► each classical codec: match_bytes(image, codec, N) → setting, bytes ≈ N → decode
    ──► panels (original first) ──► pick_crop: the window where they differ most
    ──► crops_figure: each panel's crop pasted at 100 % under a label strip ──► PNG

Every number in the figure comes from real bytes; the crops are the decoded pixels, unscaled.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

import leechcodec
from leechcodec.image_io import prepare, read_image
from leechcodec.output import write_file

from .codecs import CLASSICAL
from .metrics import psnr_rgb

DEFAULT_CODECS = ("jpeg2000", "avif", "webp")
CROP_SIZE = 192
STRIDE = 8  # pick_crop tries windows on this grid (and flush with the right and bottom edges)
J2K_TRIES = 8  # encodes of the compression-ratio search (OpenJPEG lands within a few % of the asked rate)
J2K_CLOSE = 0.002  # ... which stops once a size is within this fraction of the target

# figure layout, in pixels
MARGIN = 12  # around the canvas
GAP = 8  # between the crops of a row
ROW_GAP = 16  # between rows
FONT_SIZE = 14
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
TITLE_INK = (40, 40, 120)


class Panel(NamedTuple):
    """One picture of a comparison: the original, or a codec's decode of its bytes."""

    label: str  # "original", "leechcodec", or the codec's short name ("JPEG2000", "WebP", …)
    nbytes: int | None  # size of the coded file; None for the original
    bpp: float | None  # 8·nbytes / pixels; None for the original
    psnr: float | None  # dB against the original (metrics.psnr_rgb); None for the original
    image: Image.Image  # decoded RGB picture, the size of the original
    setting: str = ""  # what gave those bytes: "(ar coder)", "q=23", "1:245.3" (compression ratio)


class Row(NamedTuple):
    """One image of a crops figure: its panels and the crop box shown of each."""

    name: str  # shown in the row's title, e.g. the file name
    panels: list[Panel]
    box: tuple[int, int, int, int]  # (x, y, w, h)


def short_name(codec: str) -> str:
    """The name a figure shows for a codec key: "jpeg2000" → "JPEG2000" (its label without the library)."""
    return CLASSICAL[codec].label.split(" (")[0]


def _closest(sizes: dict, target: int):
    """The key of ``sizes`` (value → byte count) nearest ``target``; a tie goes to the size not above it."""
    return min(sizes, key=lambda v: (abs(sizes[v] - target), sizes[v] > target, v))


def match_bytes(image: Image.Image, codec_name: str, target_bytes: int) -> tuple[int | float, bytes]:
    """The setting of a classical codec whose file is closest in size to ``target_bytes``.

    Quality codecs (webp, avif, jpeg) bisect the integer quality 0..100 for the largest one
    that fits, then look at its neighbours (sizes are only nearly monotone in quality).
    JPEG2000 starts at the compression ratio raw_bytes / target and corrects it from the sizes
    it gets (OpenJPEG's rate control is approximate), up to ``J2K_TRIES`` encodes. A target
    below the smallest file the codec makes gets that smallest file.

    Args:
        image: RGB image.
        codec_name: key of ``CLASSICAL``.
        target_bytes: the file size to match (e.g. leechcodec's).

    Returns:
        (value, data): the quality (int) or compression ratio (float), and the file bytes.
    """
    if target_bytes < 1:
        raise ValueError(f"target_bytes must be positive, got {target_bytes}")
    codec = CLASSICAL[codec_name]
    files: dict = {}

    def size(value) -> int:
        if value not in files:
            files[value] = codec.encode(image, value)
        return len(files[value])

    if codec_name == "jpeg2000":
        raw = image.width * image.height * len(image.getbands())
        ratio, below, above = max(raw / target_bytes, 1.0), None, None  # the best ratio each side of the target
        for _ in range(J2K_TRIES):
            n = size(ratio)
            if abs(n - target_bytes) <= J2K_CLOSE * target_bytes:
                break
            if n > target_bytes:  # file too big: compress more
                above = ratio if above is None else max(above, ratio)
            else:
                below = ratio if below is None else min(below, ratio)
            if above is not None and below is not None:  # bracketed: interpolate log size against log ratio
                na, nb = size(above), size(below)
                t = math.log(na / target_bytes) / math.log(na / nb) if na != nb else 0.5
                new = math.exp(math.log(above) + t * (math.log(below) - math.log(above)))
            else:  # size ≈ raw / ratio: scale the ratio by how far off the size was
                new = max(ratio * n / target_bytes, 1.0)
            new = round(new, 3)
            if new in files:
                break
            ratio = new
    else:
        lo, hi = 0, 100  # largest quality whose file fits, assuming sizes grow with quality
        if size(lo) > target_bytes:
            hi = lo
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if size(mid) <= target_bytes:
                lo = mid
            else:
                hi = mid - 1
        for q in range(max(lo - 2, 0), min(lo + 3, 100) + 1):  # the neighbours, either side of the step
            size(q)
    best = _closest({v: len(d) for v, d in files.items()}, target_bytes)
    return best, files[best]


def _rgb(image: Image.Image) -> Image.Image:
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def panels(
    image: Image.Image,
    model,
    coder: str = "auto",
    codecs: Sequence[str] = DEFAULT_CODECS,
    device: str = "cpu",
    progress: bool | None = False,
    lam: float = 0.0,
    scales: Sequence[float] = (),
) -> list[Panel]:
    """The original, leechcodec's decode, and each classical codec's decode at leechcodec's file size.

    Args:
        image: the picture; its ICC profile and EXIF orientation are applied (as ``leechcodec.encode``
            does) and it is converted to RGB.
        model: a loaded tokenizer (``models.io.load_weights``).
        coder: leechcodec's entropy coder ("auto", "ar", "fixed").
        codecs: keys of ``CLASSICAL``, in the order shown; those this Pillow lacks are left out.
        device: torch device for leechcodec.
        progress: a tqdm bar on stderr over leechcodec and the codecs' searches (None: only on a terminal).
        lam: leechcodec's rate knob (``encode --lambda``, ar coder).
        scales: more leechcodec panels, each coded at this scale (``encode --scale``) with its own
            size, after the first (the codecs are matched to the first's size).

    Returns:
        ``[original, leechcodec, leechcodec at each of scales…, codec…]`` as ``Panel``s.
    """
    unknown = [c for c in codecs if c not in CLASSICAL]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; choose from {list(CLASSICAL)}")
    # the pixels leechcodec codes (ICC profile and EXIF orientation applied), without metadata that
    # would make its encode turn or convert them again
    ref = np.asarray(_rgb(prepare(image)))
    image = Image.fromarray(ref)
    pixels = image.width * image.height

    def panel(label: str, data: bytes, decoded: Image.Image, setting: str) -> Panel:
        decoded = _rgb(decoded)
        return Panel(label, len(data), 8.0 * len(data) / pixels, psnr_rgb(ref, np.asarray(decoded)), decoded, setting)

    available = [c for c in codecs if CLASSICAL[c].available()]
    out = [Panel("original", None, None, None, image)]
    with tqdm(total=1 + len(available), desc="compare", unit="codec", file=sys.stderr, leave=False,
              disable=None if progress is None else not progress) as bar:  # fmt: skip
        bar.set_postfix_str("leechcodec")
        stats: dict = {}
        data = leechcodec.encode(image, model, coder=coder, device=device, stats=stats, lam=lam)
        decoded = leechcodec.decode(data, model, device=device)
        knob = f", lambda {lam:g}" if lam else ""
        out.append(panel("leechcodec", data, decoded, f"({stats['coder']} coder{knob})"))
        bar.update()
        target = len(data)
        for s in scales:
            small = leechcodec.encode(image, model, coder=coder, device=device, stats=stats, lam=lam, scale=s)
            out.append(panel("leechcodec", small, leechcodec.decode(small, model, device=device),
                             f"({stats['coder']} coder{knob}, scale {s:g})"))
        for name in available:
            bar.set_postfix_str(name)
            value, coded = match_bytes(image, name, target)
            setting = f"1:{value:.1f}" if name == "jpeg2000" else f"q={value}"
            out.append(panel(short_name(name), coded, CLASSICAL[name].decode(coded), setting))
            bar.update()
    return out


def _box_sums(score: np.ndarray, w: int, h: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sum of ``score`` over every w×h window with its corner at (xs[j], ys[i]): (len(ys), len(xs))."""
    s = np.zeros((score.shape[0] + 1, score.shape[1] + 1))
    s[1:, 1:] = score.cumsum(0).cumsum(1)  # integral image
    y0, x0 = ys[:, None], xs[None, :]
    return s[y0 + h, x0 + w] - s[y0, x0 + w] - s[y0 + h, x0] + s[y0, x0]


def _corners(length: int, window: int) -> np.ndarray:
    """Window starts on the STRIDE grid, plus the one flush with the far edge."""
    starts = list(range(0, length - window + 1, STRIDE))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts)


def pick_crop(panels: Sequence[Panel], size: int = CROP_SIZE) -> tuple[int, int, int, int]:
    """The size×size window where the decoded panels differ most, from the original and from one another.

    The per-pixel score is the mean over the decoded panels of their error (|decoded − original|,
    mean over RGB) plus the spread of those errors (max − min): where the codecs fail, and where
    they fail differently. Windows start on an 8-pixel grid and stay inside the image; an image
    smaller than the window gives the whole image along that side.

    Args:
        panels: the original first (as ``panels`` returns), then the decoded pictures.
        size: the crop's side in pixels.

    Returns:
        (x, y, w, h) of the window.
    """
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    ref = np.asarray(panels[0].image, dtype=np.float32)  # (H, W, 3)
    height, width = ref.shape[:2]
    w, h = min(size, width), min(size, height)
    errors = [np.abs(np.asarray(p.image, dtype=np.float32) - ref).mean(-1) for p in panels[1:]]  # each (H, W)
    if not errors:
        return (width - w) // 2, (height - h) // 2, w, h
    e = np.stack(errors)  # (P, H, W)
    score = e.mean(0) + (e.max(0) - e.min(0))
    xs, ys = _corners(width, w), _corners(height, h)
    sums = _box_sums(score.astype(np.float64), w, h, xs, ys)
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(xs[j]), int(ys[i]), w, h


def load_font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` px (Pillow ≥ 10.1 with FreeType), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # an older Pillow, or no FreeType
        return ImageFont.load_default()


def panel_lines(p: Panel, ours: int | None = None) -> list[str]:
    """The label strip above a panel's crop: name (and setting), bytes (and how far from ``ours``), bpp, PSNR."""
    if p.nbytes is None:
        w, h = p.image.size
        return [p.label, f"{w}x{h} px", "reference", ""]
    size = f"{p.nbytes:,} bytes"
    if ours and p.label != "leechcodec":
        size += f" ({100.0 * (p.nbytes - ours) / ours:+.1f} %)"
    return [f"{p.label} {p.setting}".strip(), size, f"{p.bpp:.3f} bpp", f"{p.psnr:.2f} dB"]


def _ours(row: Row) -> int | None:
    """leechcodec's byte count in a row, the size the others were matched to."""
    return next((p.nbytes for p in row.panels if p.label == "leechcodec"), None)


def row_title(row: Row) -> str:
    x, y, w, h = row.box
    width, height = row.panels[0].image.size
    return f"{row.name}: crop {w}x{h} at x={x}, y={y} of {width}x{height}, shown at 100 %"


def render(rows: Sequence[Row]) -> tuple[Image.Image, list[list[tuple[int, int, int, int]]]]:
    """The crops figure as a picture, and where each panel's crop lies in it.

    Each row is a title line (name and crop box), then for each panel a label strip and the
    crop pasted unscaled. A column is as wide as the crop, or its longest label if wider.

    Returns:
        (canvas, boxes): the RGB figure, and ``boxes[r][k]`` = (left, top, right, bottom) of
        row r's panel k in it.
    """
    if not rows:
        raise ValueError("a crops figure needs at least one row")
    font = load_font()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = draw_probe.textbbox((0, 0), "Ag(0,9)", font=font)[3] + 3  # line height with a little leading

    def text_width(text: str) -> int:
        return math.ceil(draw_probe.textlength(text, font=font))

    plans = []  # per row: column width, label lines, title, top of the row
    width, top = 0, MARGIN
    for row in rows:
        _, _, w, h = row.box
        labels = [panel_lines(p, _ours(row)) for p in row.panels]
        col = max([w] + [text_width(t) for lines in labels for t in lines])
        title = row_title(row)
        n = len(row.panels)
        width = max(width, 2 * MARGIN + n * col + (n - 1) * GAP, 2 * MARGIN + text_width(title))
        strip = max(len(lines) for lines in labels) * line
        plans.append((col, labels, title, top, strip))
        top += line + 4 + strip + h + ROW_GAP
    canvas = Image.new("RGB", (width, top - ROW_GAP + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for row, (col, labels, title, top, strip) in zip(rows, plans):
        x, y, w, h = row.box
        draw.text((MARGIN, top), title, fill=TITLE_INK, font=font)
        crop_top = top + line + 4 + strip
        placed = []
        for k, (p, lines) in enumerate(zip(row.panels, labels)):
            left = MARGIN + k * (col + GAP)
            for n, text in enumerate(lines):
                draw.text((left, top + line + 4 + n * line), text, fill=INK, font=font)
            canvas.paste(p.image.crop((x, y, x + w, y + h)), (left, crop_top))
            placed.append((left, crop_top, left + w, crop_top + h))
        boxes.append(placed)
    return canvas, boxes


def crops_figure(rows: Sequence[Row], out_path: str | os.PathLike) -> list[list[tuple[int, int, int, int]]]:
    """Write the crops figure of ``rows`` (``render``) as a PNG, atomically (``leechcodec.output.write_file``).

    Returns:
        Where each crop lies in the figure, as ``render``.
    """
    canvas, boxes = render(rows)
    write_file(out_path, lambda f: canvas.save(f, "PNG"))
    return boxes


def crops_for_images(
    paths: Sequence[str | os.PathLike],
    model,
    out_path: str | os.PathLike,
    coder: str = "auto",
    size: int = CROP_SIZE,
    progress: bool | None = None,
    codecs: Sequence[str] = DEFAULT_CODECS,
    device: str = "cpu",
    echo: Callable[[str], None] | None = None,
    scales: Sequence[float] = (),
) -> list[Row]:
    """A crops figure of several images (one row each), e.g. ``kodak-crops.png`` of a benchmark.

    Args:
        paths: the images.
        model: a loaded tokenizer.
        out_path: the PNG to write.
        coder: leechcodec's entropy coder.
        size: side of each crop (``pick_crop``).
        progress: a tqdm bar over the images (None: only on a terminal).
        codecs: the classical codecs, as ``panels``.
        device: torch device for leechcodec.
        echo: called with one line per image naming the bytes of each codec.
        scales: more leechcodec panels at these coded sizes (``panels``).

    Returns:
        The rows drawn.

    Raises:
        InputImageError: an image cannot be read.
    """
    rows = []
    for path in tqdm(list(paths), desc="crops", unit="img", disable=None if progress is None else not progress):
        shown = panels(read_image(Path(path), None), model, coder=coder, codecs=codecs, device=device, scales=scales)
        rows.append(Row(Path(path).name, shown, pick_crop(shown, size)))
        if echo is not None:
            echo(summary(rows[-1]))
    crops_figure(rows, out_path)
    return rows


def summary(row: Row) -> str:
    """One line: the bytes of each panel, and how far each classical file is from leechcodec's."""
    ours = _ours(row)
    parts = []
    for p in row.panels[1:]:
        text = f"{p.label} {p.nbytes:,} B ({p.psnr:.2f} dB)"
        if p.label != "leechcodec" and ours:
            text += f" {100.0 * (p.nbytes - ours) / ours:+.1f} %"
        parts.append(text)
    return f"{row.name}: " + "; ".join(parts)
