"""Benchmark outputs: CompressAI-style JSON, a two-panel rate-distortion plot, and a Markdown table."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from leechcodec.output import write_file

from .metrics import bd_rate, bpp_at_quality, interp_log_bpp

PAPER_POINT = (0.2747, 29.63)  # (bpp, PSNR dB) reported for the reference leechcodec model on Kodak
OURS_PREFIX = "leechcodec"
RESULT_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "grid-8px", "grid-tile")


def is_ours(entry: dict) -> bool:
    """Whether a results entry is a leechcodec run (by its name)."""
    return entry["name"].startswith(OURS_PREFIX)


def _clean(x):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def write_json(entries: list[dict], path: str | os.PathLike) -> Path:
    """Write the entries (``{"name", "description", "results": {...}}`` each) as a JSON list.

    Args:
        entries: one entry per codec, lists in ``results`` holding one value per sweep point.
        path: output file; NaN and infinities are written as null.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(entries), indent=2, allow_nan=False) + "\n"
    write_file(path, lambda f: f.write(text.encode()))
    return path


def plot_rd(entries: list[dict], path: str | os.PathLike, title: str, reference: tuple[float, float] = PAPER_POINT) -> Path:
    """Two panels, PSNR vs bpp and MS-SSIM vs bpp; leechcodec points marked, the paper's point as reference.

    Args:
        entries: results entries as written by ``write_json``.
        path: output PNG.
        title: figure title (image set and count).
        reference: (bpp, PSNR) marker drawn on the PSNR panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    for e in entries:
        r = e["results"]
        ours = is_ours(e)
        style = dict(marker="*", markersize=14, linestyle="-" if len(r["bpp"]) > 1 else "none", zorder=5) if ours else dict(marker="o", markersize=4)
        ax_p.plot(r["bpp"], r["psnr-rgb"], label=e["name"], **style)
        msssim = [float("nan") if v is None else v for v in r["ms-ssim-rgb"]]
        ax_m.plot(r["bpp"], msssim, label=e["name"], **style)
    ax_p.plot(*reference, marker="X", color="black", markersize=10, linestyle="none", zorder=6,
              label=f"paper: {reference[0]} bpp, {reference[1]} dB")
    ax_p.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB, mean over images)", title="PSNR")
    ax_m.set(xlabel="bits per pixel", ylabel="MS-SSIM-RGB (mean over images)", title="MS-SSIM")
    for ax in (ax_p, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def _fmt(x: float | None, spec: str, unit: str = "", missing: str = "n/a (out of range)") -> str:
    return missing if x is None or not math.isfinite(x) else f"{x:{spec}}{unit}"


def provenance() -> str:
    """Date and the versions that produced a report (leechcodec, torch, Pillow and its codecs)."""
    import datetime

    import PIL
    import torch
    from PIL import features

    import leechcodec

    libs = ", ".join(
        f"{name} {features.version(key) or 'n/a'}" for name, key in (("OpenJPEG", "jpg_2000"), ("libwebp", "webp"), ("libavif", "avif"))
    )
    return (f"generated {datetime.date.today().isoformat()} by `leechcodec bench`: leechcodec {leechcodec.__version__}, "
            f"torch {torch.__version__}, Pillow {PIL.__version__} ({libs})")


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(path: str | os.PathLike, table: str) -> None:
    """Replace the text between the bench markers in ``path`` (a README) with ``table``."""
    p = Path(path)
    text = p.read_text()
    if README_START not in text or README_END not in text:
        from leechcodec.errors import LeechError

        raise LeechError(f"{path} has no {README_START} ... {README_END} markers to put the results between")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{table}\n{README_END}{tail}"
    write_file(p, lambda f: f.write(new.encode()))


def markdown_table(entries: list[dict], title: str, reference: tuple[float, float] = PAPER_POINT) -> str:
    """Each codec read off at leechcodec's rate, with PSNR gap and BD-rate, as Markdown.

    For every leechcodec entry, each classical curve gives its PSNR and MS-SSIM at our bpp (linear
    in log bpp), the rate it needs for our PSNR, and the Bjøntegaard delta rate (PCHIP) of ours
    against it, which needs ≥ 2 of our points. Without a leechcodec entry the codecs are read at
    the paper's reference rate instead.

    Args:
        entries: results entries.
        title: heading (image set and count).
        reference: (bpp, PSNR) used when no leechcodec entry is present.
    """
    ours = [e for e in entries if is_ours(e)]
    others = [e for e in entries if not is_ours(e)]
    lines = [f"## {title}", "", f"_{provenance()}_", "",
             "PSNR on 8-bit RGB, computed per image then averaged; MS-SSIM likewise; "
             "bpp from real byte counts. Codecs are read off their curves at our bpp, linearly in log(bpp)."]
    targets = []
    for e in ours:
        r = e["results"]
        for i, bpp in enumerate(r["bpp"]):
            tag = e["name"] if len(r["bpp"]) == 1 else f"{e['name']} point {i + 1}"
            targets.append((tag, bpp, r["psnr-rgb"][i], r["ms-ssim-rgb"][i], e))
    if not targets:
        targets.append(("paper reference", reference[0], reference[1], None, None))
    for tag, bpp, psnr, msssim, e in targets:
        ms = "" if msssim is None or not math.isfinite(msssim) else f", MS-SSIM {msssim:.4f}"
        grid = ""
        if e is not None and "grid-tile" in e["results"]:
            i = e["results"]["bpp"].index(bpp)
            g8, gt = e["results"]["grid-8px"][i], e["results"]["grid-tile"][i]
            grid = f", grid error ratio {_fmt(g8, '.2f', missing='n/a')} (8-px lines) / {_fmt(gt, '.2f', missing='n/a')} (tile lines)"
        lines += ["", f"### {tag}: {bpp:.4f} bpp, PSNR {psnr:.2f} dB{ms}{grid}", ""]
        who = "paper" if e is None else "ours"
        lines += [
            f"| codec | PSNR @ {bpp:.4f} bpp | ΔPSNR ({who} − codec) | MS-SSIM @ {bpp:.4f} bpp "
            f"| codec bpp at {psnr:.2f} dB ({who} vs codec) | BD-rate (ours vs codec) |",
            "|---|---|---|---|---|---|",
        ]
        for o in others:
            r = o["results"]
            p = interp_log_bpp(r["bpp"], r["psnr-rgb"], bpp)
            ms_points = [(b, m) for b, m in zip(r["bpp"], r["ms-ssim-rgb"]) if m is not None and math.isfinite(m)]
            m = interp_log_bpp(*zip(*ms_points), bpp) if ms_points else None
            b = bpp_at_quality(r["bpp"], r["psnr-rgb"], psnr)
            if e is None:
                bd = "—"
            elif len(e["results"]["bpp"]) < 2:
                bd = "n/a (1 point)"
            else:
                bd = _fmt(bd_rate(r["bpp"], r["psnr-rgb"], e["results"]["bpp"], e["results"]["psnr-rgb"]), "+.1f", " %", "n/a (no overlap)")
            rate = "n/a (out of range)" if b is None else f"{b:.4f} ({100 * (bpp / b - 1):+.1f} %)"
            lines.append(
                f"| {o['name']} | {_fmt(p, '.2f', ' dB')} | {_fmt(None if p is None else psnr - p, '+.2f', ' dB')} "
                f"| {_fmt(m, '.4f')} | {rate} | {bd} |"
            )
    return "\n".join(lines)
