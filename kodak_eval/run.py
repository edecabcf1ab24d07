"""Benchmark orchestration: every codec over every image, averaged per sweep point, then reported.

Data flow::

    image paths ──► classical: Pillow encode → bytes → decode   (per image × codec; ProcessPool when jobs > 1)
                └─► leechcodec.encode → .lq bytes → leechcodec.decode   (per image × coder, in this process)
        each: bpp = 8·len(bytes)/(W·H), PSNR/MS-SSIM vs the original, encode/decode seconds
    ──► mean over images per sweep point ──► entries ──► kodak.json, kodak.png, Markdown table
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import leechcodec
from leechcodec.errors import InputImageError, have_torch

from .codecs import ALL_CODECS, CLASSICAL
from .figures import crops_for_images
from .metrics import grid_ratios, ms_ssim_rgb, psnr_rgb
from .report import (
    OURS_PREFIX,
    PAPER_POINT,
    RESULT_KEYS,
    markdown_table,
    plot_rd,
    runtime_of,
    update_readme,
    write_codec_files,
    write_json,
)


class Point(NamedTuple):
    """Measurements for one image at one sweep point."""

    bpp: float
    psnr: float
    ms_ssim: float
    encoding_time: float  # seconds
    decoding_time: float  # seconds
    grid_8px: float  # metrics.grid_ratios: error on 8-px lines / off the grid (1.0: no block grid)
    grid_tile: float  # the same on 256-px tile lines (NaN without one)


def available_coders() -> tuple[str, ...]:
    """The entropy coders leechcodec offers (``leechcodec.CODERS`` when defined, else ``("fixed",)``)."""
    return tuple(getattr(leechcodec, "CODERS", ("fixed",)))


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Read an image file as fully loaded 8-bit RGB.

    Raises:
        InputImageError: the file cannot be read as an image.
    """
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise InputImageError(f"cannot read {path}: {e}") from None


def _point(ref: np.ndarray, nbytes: int, decoded: Image.Image, t_enc: float, t_dec: float) -> Point:
    test = np.asarray(decoded.convert("RGB"))
    h, w = ref.shape[:2]
    return Point(8.0 * nbytes / (w * h), psnr_rgb(ref, test), ms_ssim_rgb(ref, test), t_enc, t_dec, *grid_ratios(ref, test))


def measure_classical(path: str | os.PathLike, codec: str, values: Sequence[int]) -> list[Point]:
    """Encode and decode one image with a Pillow codec at each sweep value.

    Args:
        path: image file.
        codec: key of ``CLASSICAL``.
        values: sweep values (quality or compression ratio).
    """
    c = CLASSICAL[codec]
    image = load_rgb(path)
    ref = np.asarray(image)
    points = []
    for v in values:
        t0 = time.perf_counter()
        data = c.encode(image, v)
        t1 = time.perf_counter()
        decoded = c.decode(data)
        t2 = time.perf_counter()
        points.append(_point(ref, len(data), decoded, t1 - t0, t2 - t1))
    return points


# the ar coder's curve: (scale, stages, lambda) settings of encode (--scale, --stages, --lambda). The first is the
# default encode (the report reads the other codecs at it); then the coded size from 0.3 to 2 times the picture's
# at one stage, and two stages from the picture's size to twice it (README, "Scale": where each knob pays)
CURVE = ((1.0, 1, 0.0), (0.3, 1, 0.0), (0.4, 1, 0.0), (0.5, 1, 0.0), (0.625, 1, 0.0), (0.75, 1, 0.0), (0.875, 1, 0.0),
         (1.5, 1, 0.0), (1.0, 2, 0.0), (2.0, 1, 0.0), (1.25, 2, 0.0), (1.5, 2, 0.0), (2.0, 2, 0.0))
LAMBDAS = (0.01, 0.03, 0.1)  # the ar coder's lambda at the picture's size and one stage: the knob the sizes replace
FIXED_STAGES = (1, 2, 3)  # the fixed coder: one point per number of stages


def measure_leechcodec(image: Image.Image, model, coder: str = "fixed", device: str = "cpu", lam: float = 0.0,
                       stages: int = 1, scale: float = 1.0) -> Point:
    """One image through ``leechcodec.encode``/``leechcodec.decode`` — the same path as the CLI.

    Args:
        image: RGB image.
        model: a loaded tokenizer (``models.io.load_weights``).
        coder: entropy coder name.
        device: torch device.
        lam: the ar coder's rate knob (``encode --lambda``).
        stages: residual stages, at most (``encode --stages``).
        scale: the coded size's factor (``encode --scale``).
    """
    t0 = time.perf_counter()
    data = leechcodec.encode(image, model, coder=coder, device=device, progress=False, lam=lam, stages=stages,
                             scale=None if scale == 1 else scale)
    t1 = time.perf_counter()
    decoded = leechcodec.decode(data, model, device=device, progress=False)
    t2 = time.perf_counter()
    return _point(np.asarray(image), len(data), decoded, t1 - t0, t2 - t1)


def _entry(name: str, description: str, per_image: list[list[Point]]) -> dict:
    """Average ``per_image[i][k]`` (image i, sweep point k) over images into a CompressAI-style entry."""
    arr = np.asarray(per_image, dtype=np.float64)  # (images, points, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN grid columns (no tile lines) stay NaN
        means = np.nanmean(arr, axis=0)  # (points, 7)
    return {"name": name, "description": description, "results": {k: [float(v) for v in means[:, j]] for j, k in enumerate(RESULT_KEYS)}}


def _worker_init() -> None:
    """One thread per worker process: ``jobs`` of them share the CPU."""
    threadpool_limits(1)
    if have_torch():  # MS-SSIM (metrics.ms_ssim_rgb)
        import torch  # lazy: an optional dependency (the bench extra)

        torch.set_num_threads(1)


def evaluate(
    paths: Sequence[str | os.PathLike],
    *,
    codecs: Sequence[str] = ALL_CODECS,
    sweeps: dict[str, Sequence[int]] | None = None,
    model=None,
    coders: Sequence[str] = ("fixed",),
    device: str = "cpu",
    jobs: int = 1,
    progress: bool | None = None,
    set_name: str = "images",
    lambdas: Sequence[float] = LAMBDAS,
    max_stages: int = 4,
    curve: Sequence[tuple[float, int, float]] = CURVE,
) -> tuple[list[dict], list[str]]:
    """Run every requested codec over every image and average per sweep point.

    Args:
        paths: the images.
        codecs: any of ``ALL_CODECS``; classical codecs Pillow lacks are skipped with a note.
        sweeps: per-codec sweep values overriding the defaults in ``CLASSICAL``.
        model: loaded tokenizer, required when "leechcodec" is in ``codecs``.
        coders: leechcodec entropy coders to run, one entry each.
        device: torch device for leechcodec.
        jobs: worker processes for the classical encodes (1: in this process).
        progress: a tqdm bar on stderr per stage (each classical codec's sweep, leechcodec per
            coder), each with its time left (None: only on a terminal).
        set_name: image set name for the descriptions.
        lambdas: the ar coder's rate knob (``encode --lambda``) at the picture's size and one
            stage, one point each after the ``curve`` points (those of up to ``max_stages``
            stages): leechcodec's curve; the fixed coder has a point per number of stages
            (``FIXED_STAGES``).
        curve: the ar coder's (scale, stages, lambda) settings (``CURVE``).

    Returns:
        (entries, notes): one CompressAI-style entry per codec (and per coder), and skip notes.
    """
    unknown = [c for c in codecs if c not in ALL_CODECS]
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; choose from {list(ALL_CODECS)}")
    bad = [c for c in coders if c not in available_coders()]
    if bad:
        raise ValueError(f"unknown coder(s) {bad}; leechcodec offers {list(available_coders())}")
    if "leechcodec" in codecs and model is None:
        raise ValueError("codec 'leechcodec' needs a model")
    sweeps = dict(sweeps or {})
    notes = []
    classical = []
    for name in codecs:
        if name in CLASSICAL:
            if CLASSICAL[name].available():
                classical.append(name)
            else:
                notes.append(f"skipped {CLASSICAL[name].label}: this Pillow build has no '{CLASSICAL[name].feature}' support")
    run_coders = list(coders) if "leechcodec" in codecs else []
    paths = [Path(p) for p in paths]
    n = len(paths)
    common = (
        f"; {n} images ({set_name}); PSNR on 8-bit RGB per image, then averaged; MS-SSIM (pytorch-msssim, "
        f"data_range=255) per image, then averaged; bpp from real byte counts, per image then averaged; "
        f"times in seconds per image"
    )
    if jobs > 1:
        common += f" (classical codecs timed while {jobs} worker processes shared the CPU)"
    entries = []
    disable = None if progress is None else not progress

    def bar(total: int, desc: str) -> tqdm:  # one bar per stage, with its own time-left estimate
        return tqdm(total=total, desc=desc, unit="image", disable=disable, dynamic_ncols=True)

    pool = None
    if jobs > 1 and classical:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)
    try:
        for c in classical:
            values = tuple(sweeps.get(c, CLASSICAL[c].sweep))
            per_image: list = [None] * n
            with bar(n, f"{CLASSICAL[c].label}, {len(values)} settings") as b:
                if pool is not None:
                    futures = {pool.submit(measure_classical, paths[i], c, values): i for i in range(n)}
                    for fut in as_completed(futures):
                        per_image[futures[fut]] = fut.result()
                        b.update()
                else:
                    for i in range(n):
                        per_image[i] = measure_classical(paths[i], c, values)
                        b.update()
            entries.append(_entry(CLASSICAL[c].label, CLASSICAL[c].describe(values) + common, per_image))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if run_coders:
        images = [load_rgb(p) for p in paths]
        cfg_name = getattr(getattr(model, "cfg", None), "name", "model")
        model_id = getattr(model, "model_id", b"")
        for coder in run_coders:
            if coder == "ar":
                points = [(s, k, lam) for s, k, lam in curve if k <= max_stages]
                points += [(1.0, 1, float(x)) for x in lambdas if (1.0, 1, float(x)) not in points]
            else:
                points = [(1.0, k, 0.0) for k in FIXED_STAGES if k <= max_stages]
            per_image = []
            with bar(n, f"leechcodec, {coder} coder" + (f", {len(points)} settings" if len(points) > 1 else "")) as b:
                for image in images:
                    per_image.append([measure_leechcodec(image, model, coder, device, lam, k, s) for s, k, lam in points])
                    b.update()
            knob = f"; encode (--scale, --stages, --lambda) ∈ {points}" if len(points) > 1 else ""
            desc = (
                f"leechcodec, model {cfg_name} (id {model_id.hex()}), coder={coder}, device={device}, networks on "
                f"{runtime_of(model)}{knob}; real .lq "
                f"bytes through leechcodec.encode/decode (the CLI's code path)"
            )
            entries.append(_entry(f"{OURS_PREFIX} ({cfg_name}, {coder})", desc + common, per_image))
            if len(points) > 1:
                entries[-1]["results"]["lambda"] = [lam for _, _, lam in points]
                entries[-1]["results"]["stages"] = [k for _, k, _ in points]
                entries[-1]["results"]["scale"] = [s for s, _, _ in points]
    return entries, notes


def write_report(
    entries: list[dict], output_dir: str | os.PathLike, stem: str, title: str,
    reference: tuple[float, float] | None = PAPER_POINT, published: list[dict] = (),
) -> tuple[Path, Path, str]:
    """Write ``<stem>.json``, one file per codec in ``<stem>/`` and ``<stem>.png``, and build the table.

    Args:
        entries: results of ``evaluate``.
        output_dir: created if missing.
        stem: file name stem ("kodak", "holdout").
        title: plot and table heading.
        reference: the paper's (bpp, PSNR) point, for Kodak only (None elsewhere).
        published: curves not measured here (``report.load_published``), drawn dashed and
            compared in the table.

    Returns:
        (json path, png path, Markdown table).
    """
    out = Path(output_dir)
    json_path = write_json(entries, out / f"{stem}.json")
    write_codec_files(entries, out / stem)
    png_path = plot_rd(entries, out / f"{stem}.png", title, reference, published)
    return json_path, png_path, markdown_table(entries, title, reference, published)


CROP_IMAGES = ("kodim23.png", "kodim04.png", "kodim15.png")  # a face, a texture, hair: where coding shows
CROP_SCALES = (0.5,)  # leechcodec also at half the size: what the scale knob costs in detail, shown


def crop_images(paths: Sequence[str | os.PathLike], count: int = 3) -> list[Path]:
    """The images of a crops figure: those of ``CROP_IMAGES`` present, then the first others."""
    paths = [Path(p) for p in paths]
    chosen = [p for name in CROP_IMAGES for p in paths if p.name == name]
    return (chosen + [p for p in paths if p not in chosen])[:count]


def outputs(output_dir: str | os.PathLike, stem: str, crops: bool = False) -> list[Path]:
    """The files ``benchmark`` writes for ``stem`` (the per-codec folder counts as one)."""
    out = Path(output_dir)
    names = [f"{stem}.json", f"{stem}.png", stem] + ([f"{stem}-crops.png"] if crops else [])
    return [out / name for name in names]


def benchmark(
    paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    stem: str,
    title: str,
    echo: Callable[[str], None] = print,
    note: Callable[[str], None] | None = None,
    readme: str | os.PathLike | None = None,
    reference: tuple[float, float] | None = PAPER_POINT,
    published: list[dict] = (),
    crops: bool = False,
    **kwargs,
) -> list[dict]:
    """``evaluate`` then ``write_report``; prints notes and the table with ``echo``.

    Args:
        paths: the images.
        output_dir: where ``<stem>.json``, ``<stem>/<codec>.json`` and ``<stem>.png`` go.
        stem: output file stem.
        title: heading for the plot and table.
        echo: where the table and the list of files go.
        note: where notes (codecs skipped) go [default: ``echo``, prefixed "note: "].
        readme: if given, the table replaces the bench section of this README.
        reference: the paper's point (Kodak only; None for other sets).
        published: published curves to draw and compare (Kodak only).
        crops: also write ``<stem>-crops.png``: the same crop of ``crop_images(paths)`` decoded
            by leechcodec (its first coder) and by JPEG2000, AVIF and WebP at the same file size
            (``figures.crops_for_images``); needs "leechcodec" among the codecs.
        **kwargs: passed to ``evaluate``.
    """
    entries, notes = evaluate(paths, set_name=stem, **kwargs)
    for text in notes:
        (note or (lambda m: echo(f"note: {m}")))(text)
    json_path, png_path, table = write_report(entries, output_dir, stem, title, reference, published)
    echo(table)
    echo(f"\nwrote {json_path}, {png_path} and one file per codec in {Path(output_dir) / stem}")
    if crops and "leechcodec" in kwargs.get("codecs", ALL_CODECS) and kwargs.get("model") is not None:
        crops_path = Path(output_dir) / f"{stem}-crops.png"
        crops_for_images(crop_images(paths), kwargs["model"], crops_path, coder=tuple(kwargs.get("coders", ("auto",)))[0],
                         progress=kwargs.get("progress"), device=kwargs.get("device", "cpu"),
                         echo=note or (lambda m: echo(f"note: {m}")),
                         scales=CROP_SCALES if "ar" in tuple(kwargs.get("coders", ("auto",)))[:1] else ())
        echo(f"wrote {crops_path} (the same crops at the same file size)")
    if readme is not None:
        update_readme(readme, table)
        echo(f"updated the results in {readme}")
    return entries
