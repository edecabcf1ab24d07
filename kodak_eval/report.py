"""Benchmark outputs: CompressAI-style JSON, a two-panel rate-distortion plot, and a Markdown table."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import sys
from pathlib import Path

import PIL
from PIL import features

import leechcodec
from leechcodec.errors import LeechError
from leechcodec.output import write_file

from .metrics import bd_range, bd_rate, bpp_at_quality, interp_log_bpp

PAPER_POINT = (0.2747, 29.63)  # (bpp, PSNR dB) reported for the reference leechcodec model on Kodak
OURS_PREFIX = "leechcodec"
RESULT_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "grid-8px", "grid-tile")
CODEC_FILE_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")  # CompressAI's per-codec schema
PUBLISHED_DIR = Path(__file__).with_name("published")  # CompressAI's published Kodak curves (BSD 3-Clause Clear)


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


def slug(name: str) -> str:
    """A file-name stem for a codec name: "JPEG2000 (OpenJPEG)" → "jpeg2000-openjpeg"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "codec"


def write_codec_files(entries: list[dict], folder: str | os.PathLike) -> list[Path]:
    """One JSON file per codec in ``folder``, in the schema CompressAI's plotting tool reads.

    Each file is ``{"name", "description", "results": {bpp, psnr-rgb, ms-ssim-rgb, encoding_time,
    decoding_time}}`` (one value per sweep point), so that ``python -m compressai.utils.plot -f
    folder/*.json`` and most papers' scripts overlay them with their own curves.

    Args:
        entries: results of ``run.evaluate``.
        folder: created if missing; files are named after ``slug(name)``.

    Returns:
        The paths written, in the order of ``entries``; other ``.json`` files in ``folder`` (an
        earlier run's codecs) are removed, so that the folder holds one run.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for e in entries:
        one = {"name": e["name"], "description": e["description"],
               "results": {k: e["results"][k] for k in CODEC_FILE_KEYS if k in e["results"]}}
        text = json.dumps(_clean(one), indent=2, allow_nan=False) + "\n"
        path = folder / f"{slug(e['name'])}.json"
        write_file(path, lambda f, text=text: f.write(text.encode()))
        paths.append(path)
    for stale in set(folder.glob("*.json")) - set(paths):
        stale.unlink()
    return paths


def load_published(folder: str | os.PathLike = PUBLISHED_DIR) -> list[dict]:
    """Published curves from a folder of per-codec JSON files (CompressAI's schema), sorted by file name.

    Each entry is ``{"name": "<name> (published)", "description", "results"}`` with at least
    ``bpp`` and ``psnr-rgb`` of equal length, points sorted by rate.

    Raises:
        LeechError: the folder holds no JSON file, or a file is not such a result.
    """
    entries = []
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise LeechError(f"--published {folder}: no .json result files there")
    for f in files:
        try:
            data = json.loads(f.read_text())
            results = data.get("results", data)
            bpp, psnr = [float(v) for v in results["bpp"]], [float(v) for v in results["psnr-rgb"]]
            if len(bpp) != len(psnr) or len(bpp) < 2 or not all(map(math.isfinite, bpp + psnr)):
                raise ValueError("bpp and psnr-rgb need ≥ 2 finite values each, as many of one as of the other")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise LeechError(f"--published: {f} is not a CompressAI result file ({e})") from None
        order = sorted(range(len(bpp)), key=bpp.__getitem__)
        ms = results.get("ms-ssim-rgb")
        res = {"bpp": [bpp[i] for i in order], "psnr-rgb": [psnr[i] for i in order]}
        if isinstance(ms, list) and len(ms) == len(bpp):
            res["ms-ssim-rgb"] = [ms[i] for i in order]
        entries.append({"name": f"{data.get('name', f.stem)} (published)",
                        "description": str(data.get("description", "")), "results": res})
    return entries


def rd_figure(entries: list[dict], title: str, reference: tuple[float, float] | None = PAPER_POINT,
              published: list[dict] = ()):
    """The matplotlib figure ``plot_rd`` saves (arguments as there); the caller closes it."""
    import matplotlib  # lazy: an optional dependency (the bench extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as matplotlib, after choosing its backend

    fig, (ax_p, ax_m) = plt.subplots(1, 2, figsize=(15, 5.5))
    for e in entries:
        r = e["results"]
        ours = is_ours(e)
        curve = len(r["bpp"]) > 1
        style = (dict(marker="*", markersize=9 if curve else 14, linestyle="-" if curve else "none", zorder=5) if ours
                 else dict(marker="o", markersize=4))
        order = sorted(range(len(r["bpp"])), key=lambda i: r["bpp"][i])  # our settings are not in rate order
        bpp = [r["bpp"][i] for i in order]
        ax_p.plot(bpp, [r["psnr-rgb"][i] for i in order], label=e["name"], **style)
        msssim = [float("nan") if r["ms-ssim-rgb"][i] is None else r["ms-ssim-rgb"][i] for i in order]
        ax_m.plot(bpp, msssim, label=e["name"], **style)
    if reference is not None:
        ax_p.plot(*reference, marker="X", color="black", markersize=10, linestyle="none", zorder=6,
                  label=f"paper: {reference[0]} bpp, {reference[1]} dB")
    if published:
        measured = [b for e in entries for b in e["results"]["bpp"]] + ([reference[0]] if reference else [])
        xmax = 1.1 * max(measured, default=1.0)
        ylims = ax_p.get_ylim(), ax_m.get_ylim()
        for e in published:
            r = e["results"]
            style = dict(linestyle="--", linewidth=1, marker=".", markersize=3, alpha=0.8, zorder=1)
            ax_p.plot(r["bpp"], r["psnr-rgb"], label=e["name"], **style)
            if "ms-ssim-rgb" in r:
                ax_m.plot(r["bpp"], r["ms-ssim-rgb"], label=e["name"], **style)
        for ax, ylim in zip((ax_p, ax_m), ylims):  # the measured range decides the axes
            ax.set_xlim(0, xmax)
            ax.set_ylim(*ylim)
    ax_p.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB, mean over images)", title="PSNR")
    ax_m.set(xlabel="bits per pixel", ylabel="MS-SSIM-RGB (mean over images)", title="MS-SSIM")
    for ax in (ax_p, ax_m):
        ax.grid(alpha=0.3)
    # one legend beside the panels (the PSNR panel has every curve): none of them hidden under it
    fig.legend(*ax_p.get_legend_handles_labels(), loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    return fig


def plot_rd(entries: list[dict], path: str | os.PathLike, title: str,
            reference: tuple[float, float] | None = PAPER_POINT, published: list[dict] = ()) -> Path:
    """Two panels, PSNR vs bpp and MS-SSIM vs bpp; leechcodec points marked, published curves dashed.

    Args:
        entries: results entries as written by ``write_json`` (measured here).
        path: output PNG.
        title: figure title (image set and count).
        reference: (bpp, PSNR) marker drawn on the PSNR panel (the paper's Kodak point; None for
            other image sets).
        published: curves from ``load_published``, drawn dashed and thin, labelled "(published)",
            within the rate range of the measured curves.
    """
    import matplotlib.pyplot as plt  # lazy: an optional dependency (the bench extra)

    fig = rd_figure(entries, title, reference, published)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def _fmt(x: float | None, spec: str, unit: str = "", missing: str = "n/a (out of range)") -> str:
    return missing if x is None or not math.isfinite(x) else f"{x:{spec}}{unit}"


def runtime_of(model) -> str:
    """What runs ``model``'s networks, with its version: "onnxruntime 1.32.0" or "torch 2.13.0+cpu"."""
    if model is not None and getattr(model, "runtime", "torch") == "torch" and "torch" in sys.modules:
        return f"torch {sys.modules['torch'].__version__}"
    import onnxruntime  # lazy: ~0.1 s of import, done already where a model runs on it

    return f"onnxruntime {onnxruntime.__version__}"


def provenance(runtime: str | None = None) -> str:
    """Date and the versions that produced a report (leechcodec, what ran its networks, Pillow and its codecs)."""
    libs = ", ".join(
        f"{name} {features.version(key) or 'n/a'}" for name, key in (("OpenJPEG", "jpg_2000"), ("libwebp", "webp"), ("libavif", "avif"))
    )
    return (f"generated {datetime.date.today().isoformat()} by `leechcodec bench`: leechcodec {leechcodec.__version__}, "
            f"{runtime or runtime_of(None)}, Pillow {PIL.__version__} ({libs})")


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(path: str | os.PathLike, table: str) -> None:
    """Replace the text between the bench markers in ``path`` (a README) with ``table``."""
    p = Path(path)
    text = p.read_text()
    if README_START not in text or README_END not in text:
        raise LeechError(f"{path} has no {README_START} ... {README_END} markers to put the results between")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{table}\n{README_END}{tail}"
    write_file(p, lambda f: f.write(new.encode()))


def _curve_lines(e: dict) -> list[str]:
    """The points of one of our curves (``encode --scale``/``--stages``/``--lambda`` settings) as a Markdown table."""
    r = e["results"]
    lams = r.get("lambda", [math.nan] * len(r["bpp"]))
    ks = r.get("stages", [1] * len(r["bpp"]))
    scales = r.get("scale", [1.0] * len(r["bpp"]))
    b0, p0 = r["bpp"][0], r["psnr-rgb"][0]
    lines = ["| --scale | --stages | --lambda | bpp | of the first | PSNR | ΔPSNR | MS-SSIM | encode s | decode s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    times = r.get("encoding_time", [math.nan] * len(r["bpp"]))
    dtimes = r.get("decoding_time", [math.nan] * len(r["bpp"]))
    for s, k, lam, b, p, m, t, d in zip(scales, ks, lams, r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"], times, dtimes):
        lines.append(f"| {s:g} | {k} | {lam:g} | {b:.4f} | {100 * b / b0:.0f} % | {p:.2f} dB | {p - p0:+.2f} dB "
                     f"| {_fmt(m, '.4f', missing='n/a')} | {_fmt(t, '.2f', missing='n/a')} | {_fmt(d, '.2f', missing='n/a')} |")
    return lines


def markdown_table(entries: list[dict], title: str, reference: tuple[float, float] | None = PAPER_POINT,
                   published: list[dict] = ()) -> str:
    """Each codec read off at leechcodec's rate, with PSNR gap (and BD-rate for a curve), as Markdown.

    For every leechcodec entry, each other curve gives its PSNR and MS-SSIM at our bpp (linear in
    log bpp) and the rate it needs for our PSNR; when our entry is a curve (≥ 2 points) a column
    gives the Bjøntegaard delta rate (PCHIP) of ours against each codec. Published curves
    (``load_published``) follow the measured codecs, named "(published)". Without a leechcodec
    entry the codecs are read at the paper's reference rate instead (none: no comparison).

    Args:
        entries: results entries measured by the bench.
        title: heading (image set and count).
        reference: (bpp, PSNR) used when no leechcodec entry is present; None for image sets
            the paper did not report on.
        published: curves not measured here (CompressAI's published Kodak results).
    """
    ours = [e for e in entries if is_ours(e)]
    others = [e for e in entries if not is_ours(e)] + list(published)
    found = [m.group(1) for e in ours for m in [re.search(r"networks on ([\w.+-]+ [\w.+-]+)", e["description"])] if m]
    lines = [f"## {title}", "", f"_{provenance(found[0] if found else None)}_", "",
             "PSNR on 8-bit RGB, computed per image then averaged; MS-SSIM likewise; "
             "bpp from real byte counts. Codecs are read off their curves at our bpp, linearly in log(bpp)."]
    if published:
        lines[-1] += (" Rows marked (published) are CompressAI's published Kodak results, not measured here"
                      " (kodak_eval/published/README.md).")
    targets = []
    for e in ours:  # a curve is read at its first point (the rate knob at 0), and listed whole
        r = e["results"]
        tag = e["name"] if len(r["bpp"]) == 1 else (f"{e['name']} at scale {r.get('scale', [1])[0]:g}, "
                                                    f"lambda {r.get('lambda', [0])[0]:g}")
        if len(r["bpp"]) > 1 and ", fixed)" in e["name"]:  # the fixed coder's curve is its stages
            tag = f"{e['name']} at {r.get('stages', [1])[0]} stage"
        targets.append((tag, r["bpp"][0], r["psnr-rgb"][0], r["ms-ssim-rgb"][0], e))
    if not targets and reference is not None:
        targets.append(("paper reference", reference[0], reference[1], None, None))
    if not targets:  # no rate to read the codecs at: say what each curve spans
        lines += ["", "No leechcodec run in these results; each codec's measured range:", "",
                  "| codec | bpp | PSNR |", "|---|---|---|"]
        for o in others:
            r = o["results"]
            lines.append(f"| {o['name']} | {min(r['bpp']):.4f} – {max(r['bpp']):.4f} "
                         f"| {min(r['psnr-rgb']):.2f} – {max(r['psnr-rgb']):.2f} dB |")
    for tag, bpp, psnr, msssim, e in targets:
        ms = "" if msssim is None or not math.isfinite(msssim) else f", MS-SSIM {msssim:.4f}"
        grid = ""
        if e is not None and "grid-tile" in e["results"]:
            i = e["results"]["bpp"].index(bpp)
            g8, gt = e["results"]["grid-8px"][i], e["results"]["grid-tile"][i]
            grid = f", grid error ratio {_fmt(g8, '.2f', missing='n/a')} (8-px lines) / {_fmt(gt, '.2f', missing='n/a')} (tile lines)"
        lines += ["", f"### {tag}: {bpp:.4f} bpp, PSNR {psnr:.2f} dB{ms}{grid}", ""]
        if e is not None and len(e["results"]["bpp"]) > 1:
            lines += _curve_lines(e) + [""]
        who = "paper" if e is None else "ours"
        curve = e is not None and len(e["results"]["bpp"]) >= 2  # a BD-rate needs a curve of ours
        # a curve with residual stages: also its one-stage part (the coded sizes and λ), where the stages add no cost
        one = ([i for i, k in enumerate(e["results"].get("stages", [])) if k == 1] if curve else [])
        one = one if curve and 2 <= len(one) < len(e["results"]["bpp"]) else []
        lines += [
            f"| codec | PSNR @ {bpp:.4f} bpp | ΔPSNR ({who} − codec) | MS-SSIM @ {bpp:.4f} bpp "
            f"| codec bpp at {psnr:.2f} dB ({who} vs codec) |"
            + (" BD-rate (ours vs codec) | over PSNR |" if curve else "")
            + (" BD-rate, one stage | over PSNR |" if one else ""),
            "|---|---|---|---|---|" + ("---|---|" if curve else "") + ("---|---|" if one else ""),
        ]
        for o in others:
            r = o["results"]
            p = interp_log_bpp(r["bpp"], r["psnr-rgb"], bpp)
            ms_points = [(b, m) for b, m in zip(r["bpp"], r.get("ms-ssim-rgb", ())) if m is not None and math.isfinite(m)]
            m = interp_log_bpp(*zip(*ms_points), bpp) if ms_points else None
            b = bpp_at_quality(r["bpp"], r["psnr-rgb"], psnr)
            rate = "n/a (out of range)" if b is None else f"{b:.4f} ({100 * (bpp / b - 1):+.1f} %)"
            row = (f"| {o['name']} | {_fmt(p, '.2f', ' dB')} | {_fmt(None if p is None else psnr - p, '+.2f', ' dB')} "
                   f"| {_fmt(m, '.4f', missing='n/a')} | {rate} |")
            if curve:
                bd = bd_rate(r["bpp"], r["psnr-rgb"], e["results"]["bpp"], e["results"]["psnr-rgb"])
                span = bd_range(r["bpp"], r["psnr-rgb"], e["results"]["bpp"], e["results"]["psnr-rgb"])
                row += f" {_fmt(bd, '+.1f', ' %', 'n/a (no overlap)')} |"
                row += " n/a |" if span is None else f" {span[0]:.2f} – {span[1]:.2f} dB |"
            if one:
                ob, op = [e["results"]["bpp"][i] for i in one], [e["results"]["psnr-rgb"][i] for i in one]
                bd = bd_rate(r["bpp"], r["psnr-rgb"], ob, op)
                span = bd_range(r["bpp"], r["psnr-rgb"], ob, op)
                row += f" {_fmt(bd, '+.1f', ' %', 'n/a (no overlap)')} |"
                row += " n/a |" if span is None else f" {span[0]:.2f} – {span[1]:.2f} dB |"
            lines.append(row)
    return "\n".join(lines)
