"""The figures that README.md, MODEL_CARD.md and the ``--help`` texts quote, made from measured results.

Committed sources, each written by a program, never by hand:

* the bench block of README.md (between ``<!-- bench:start -->`` and ``<!-- bench:end -->``),
  written by ``leechcodec bench --kodak ... --update-readme README.md``: the Kodak rates, PSNR,
  the rate knob's curve and the BD-rates against the classical codecs;
* ``docs/results/speed.json``, written by ``python -m leechcodec.kodak_eval.doc_figures --measure``: whole
  ``leechcodec`` commands timed on ``docs/kodim23.png`` on this machine (CPU named in the file),
  and how close ``compare`` gets the classical codecs' sizes;
* ``docs/results/{inference,contention,install}-{before,after}.json``, written by
  ``benchmarks/cli_speed.py --json``, ``benchmarks/contention.py --json`` and
  ``benchmarks/install_size.py --json``: the torch-era codec (before) against ONNX Runtime (after);
* ``docs/results/scale-filters.json``, ``bpp-targets.json`` and ``scale-memory.json``, written by
  ``benchmarks/scale_filters.py``, ``benchmarks/bpp_targets.py`` and ``benchmarks/scale_memory.py``
  (``--json``): the resampling filters, ``--bpp`` on Kodak and a 12 MP photo at ``--scale 2``;
* ``docs/results/quantizer-search.json``, written by ``benchmarks/quantizer_search.py --json``:
  the exact Λ24 search against brute force at 1k, 64k and 1M vectors;
* ``docs/results/quantizer-examples.json``, written by ``benchmarks/examples.py --json``: what the two
  examples of "Use Λ24-SQ in your own model" print, and their seconds.

From them :func:`figures` makes a table name → text (``"+56.6 %"``). A doc quotes one as
``<!-- fig:NAME -->TEXT<!-- /fig -->`` (the comment is invisible on GitHub), and ``cli/figures.py``
holds the table for the help texts (the CLI reads no Markdown and imports no torch for ``--help``).

    python -m leechcodec.kodak_eval.doc_figures            # rewrite the marked figures and cli/figures.py
    python -m leechcodec.kodak_eval.doc_figures --check    # exit 1 if a doc or cli/figures.py disagrees (a test runs it)
    python -m leechcodec.kodak_eval.doc_figures --measure  # time the commands again, then rewrite (minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from leechcodec import ratecontrol

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SPEED = REPO / "docs" / "results" / "speed.json"
CONSTANTS = REPO / "cli" / "figures.py"
DOCS = ("README.md", "MODEL_CARD.md", "docs/training-log.md", "models/weights/NOTICE.md")

BENCH_START, BENCH_END = "<!-- bench:start -->", "<!-- bench:end -->"
MARK = re.compile(r"<!-- fig:([\w.-]+) -->(.*?)<!-- /fig -->", re.S)
CODECS = {"jpeg2000": "JPEG2000 (OpenJPEG)", "webp": "WebP (libwebp)", "avif": "AVIF (libavif)", "jpeg": "JPEG (libjpeg)"}
KNOB_POINTS = ("0.01", "0.03", "0.1")  # the --lambda points the help text quotes


class FigureError(Exception):
    """A source is missing or does not have the shape this module reads."""


def _num(text: str) -> float:
    return float(text.replace("−", "-").replace("+", "").replace("%", "").replace("dB", "").replace(",", "").strip())


def parse_bench(readme: str) -> dict:
    """The numbers of the bench block: ``{"ar": {...}, "fixed": {...}, "curve": [...], "at_ar": {...}, ...}``."""
    if BENCH_START not in readme or BENCH_END not in readme:
        raise FigureError("README.md has no bench block")
    block = readme.split(BENCH_START, 1)[1].split(BENCH_END, 1)[0]
    out: dict = {"at_ar": {}, "at_fixed": {}, "bd": {}, "bd_range": {}, "bd1": {}, "bd1_range": {}, "bpp_for_ours": {},
                 "curve": [], "fixed_curve": []}
    section = None
    for line in block.splitlines():
        m = re.match(r"### leechcodec \((\w[\w-]*), (ar|fixed)\)[^:]*: ([\d.]+) bpp, PSNR ([\d.]+) dB, MS-SSIM ([\d.]+)", line)
        if m:
            section = m.group(2)
            out[section] = {"preset": m.group(1), "bpp": float(m.group(3)), "psnr": float(m.group(4)),
                            "msssim": float(m.group(5))}
            continue
        m = re.match(r"_generated (\S+) by", line)
        if m:
            out["date"] = m.group(1)
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 10 and re.match(r"^[\d.]+$", cells[0]):  # a curve's settings: --scale, --stages, --lambda, …
            point = {"scale": cells[0], "stages": int(cells[1]), "lambda": cells[2], "bpp": float(cells[3]),
                     "of_first": _num(cells[4]), "psnr": _num(cells[5]), "dpsnr": _num(cells[6]),
                     "msssim": float(cells[7]), "encode_s": float(cells[8]), "decode_s": float(cells[9])}
            out["curve" if section == "ar" else "fixed_curve"].append(point)
        elif len(cells) >= 5 and section and cells[0] in CODECS.values():
            key = next(k for k, v in CODECS.items() if v == cells[0])
            out[f"at_{section}"][key] = _num(cells[1])
            if section == "ar":
                m = re.match(r"([\d.]+) \(([+-][\d.]+) %\)", cells[4])
                if m:
                    out["bpp_for_ours"][key] = float(m.group(1))
                if len(cells) in (7, 9):
                    out["bd"][key] = _num(cells[5])
                    out["bd_range"][key] = cells[6]
                if len(cells) == 9:  # the curve's one-stage part (report.markdown_table)
                    out["bd1"][key] = _num(cells[7])
                    out["bd1_range"][key] = cells[8]
    missing = [k for k in ("ar", "fixed") if k not in out] + [c for c in CODECS if c not in out["bd"]]
    if missing or len(out["curve"]) < 2:
        raise FigureError(f"the bench block lacks {missing or 'the --lambda curve'}")
    return out


def _pct(x: float, digits: int = 1) -> str:
    return f"{x:+.{digits}f} %".replace("-", "−")


def _s(x: float) -> str:
    return f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def figures(readme: str, speed: dict | None) -> dict[str, str]:
    """Name → text of every figure the docs may quote."""
    b = parse_bench(readme)
    f: dict[str, str] = {"bench.date": b.get("date", "n/a")}
    for coder in ("ar", "fixed"):
        f[f"{coder}.bpp"] = f"{b[coder]['bpp']:.4f}"
        f[f"{coder}.psnr"] = f"{b[coder]['psnr']:.2f}"
        f[f"{coder}.msssim"] = f"{b[coder]['msssim']:.4f}"
        for codec, psnr in b[f"at_{coder}"].items():
            f[f"at_{coder}.{codec}"] = f"{psnr:.2f}"
            f[f"at_{coder}.{codec}.gap"] = f"{b[coder]['psnr'] - psnr:+.1f}".replace("-", "−")
    f["preset"] = b["ar"]["preset"]
    f["ar.of_fixed"] = f"{100 * b['ar']['bpp'] / b['fixed']['bpp']:.0f} %"
    for codec, bd in b["bd"].items():
        f[f"bd.{codec}"] = _pct(bd)
    for codec, bpp in b["bpp_for_ours"].items():
        f[f"bpp_for_ours.{codec}"] = f"{bpp:.4f}"
    for codec, span in b["bd_range"].items():
        f[f"bd.{codec}.range"] = span
    for codec, bd in b["bd1"].items():
        f[f"bd1.{codec}"] = _pct(bd)
        f[f"bd1.{codec}.range"] = b["bd1_range"][codec]
    every = b["curve"]
    curve = [p for p in every if p["stages"] == 1 and p["scale"] == "1"]  # the rate knob at one stage, the picture's size
    f["curve.min_bpp"] = f"{min(p['bpp'] for p in every):.4f}"
    f["curve.max_bpp"] = f"{max(p['bpp'] for p in every):.4f}"
    f["curve.min_psnr"] = f"{min(p['psnr'] for p in every):.2f}"
    f["curve.points"] = str(len(every))
    f["curve.max_lambda"] = max(curve, key=lambda p: float(p["lambda"]))["lambda"]
    best = max(every, key=lambda p: p["psnr"])
    f["curve.best_psnr"] = f"{best['psnr']:.2f}"
    f["curve.best_psnr.at"] = f"{best['bpp']:.4f} bpp (scale {best['scale']}, {best['stages']} stages, lambda {best['lambda']})"
    for p in b["fixed_curve"]:
        f[f"fixed.{p['stages']}.bpp"] = f"{p['bpp']:.4f}"
        f[f"fixed.{p['stages']}.psnr"] = f"{p['psnr']:.2f}"
        f[f"fixed.{p['stages']}.decode_s"] = f"{p['decode_s']:.2f} s"
        f[f"fixed.{p['stages']}.encode_s"] = f"{p['encode_s']:.2f} s"
    for p in every:  # each (scale, stages, lambda) setting of the curve: the --quality table quotes them
        key = f"point.{p['scale']}.{p['stages']}.{p['lambda']}"
        f[f"{key}.bpp"] = f"{p['bpp']:.4f}"
        f[f"{key}.psnr"] = f"{p['psnr']:.2f}"
        f[f"{key}.msssim"] = f"{p['msssim']:.4f}"
        f[f"{key}.encode_s"] = f"{p['encode_s']:.2f} s"
        f[f"{key}.decode_s"] = f"{p['decode_s']:.2f} s"
    one = next(p for p in every if p["stages"] == 1 and float(p["lambda"]) == 0 and p["scale"] == "1")
    for p in every:  # time of each setting at lambda 0 against the default: what stages and sizes cost
        if float(p["lambda"]) == 0 and p is not one:
            f[f"time.{p['scale']}.{p['stages']}.encode"] = f"{p['encode_s'] / one['encode_s']:.1f}×"
            f[f"time.{p['scale']}.{p['stages']}.decode"] = f"{p['decode_s'] / one['decode_s']:.1f}×"
    for p in curve:
        if p["lambda"] in KNOB_POINTS:
            f[f"knob.{p['lambda']}.bytes"] = _pct(p["of_first"] - 100, 0)
            f[f"knob.{p['lambda']}.dpsnr"] = f"{p['dpsnr']:+.1f} dB".replace("-", "−")
    on = [p["encode_s"] for p in curve if float(p["lambda"]) > 0]
    f["knob.extra_encode_s"] = _s(statistics.mean(on) - curve[0]["encode_s"])
    if speed:
        f["cpu"] = f"{speed['cpu']}, {speed['cores']} cores"
        f["cpu.busy"] = f"{f['cpu']}, load average before the runs {speed['load_before']:.1f}"
        f["speed.load"] = f"{speed['load_before']:.1f}"
        f["speed.encode_s"] = _s(statistics.median(speed["encode_s"]))
        f["speed.decode_s"] = _s(statistics.median(speed["decode_s"]))
        f["speed.encode_min_s"] = _s(min(speed["encode_s"]))
        f["speed.decode_min_s"] = _s(min(speed["decode_s"]))
        f["speed.runs"] = str(len(speed["encode_s"]))
        f["speed.encode_line"] = re.sub(r", [\d.]+ s$", ", … s", speed["encode_line"])
        f["speed.decode_line"] = re.sub(r", [\d.]+ s$", ", … s", speed["decode_line"])
        f["speed.install_s"] = _s(speed["install_s"]) if speed.get("install_s") else "n/a"
        f["bpp.target"] = f"{speed['bpp_target']:g}"
        f["bpp.s"] = _s(statistics.median(speed["bpp_s"]))
        f["bpp.passes"] = str(speed["bpp_passes"])
        f["effort.2.extra_s"] = _s(speed["effort2_extra_s"])
        for name, c in speed["compare"].items():
            offs = [abs(v) for v in c["off_pct"].values()]
            f[f"compare.{name}.size"] = c["size"]
            f[f"compare.{name}.max_off"] = f"{max(offs):.1f} %"
            for codec, v in c["off_pct"].items():
                f[f"compare.{name}.{codec}"] = _pct(v)
    return f


# ---------------------------------------------------------------------------------------------- writing

def constants_text(figs: dict[str, str]) -> str:
    body = "".join(f"    {k!r}: {v!r},\n" for k, v in sorted(figs.items()))
    return ('"""Figures the help texts quote: generated by ``python -m leechcodec.kodak_eval.doc_figures`` from the\n'
            'measured results (README.md\'s bench block, docs/results/speed.json); do not edit by hand."""\n\n'
            f"FIGURES = {{\n{body}}}\n")


def fill(text: str, figs: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked figure set from ``figs``, and the problems found (unknown names)."""
    problems: list[str] = []

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in figs:
            problems.append(f"unknown figure {name!r}")
            return m.group(0)
        return f"<!-- fig:{name} -->{figs[name]}<!-- /fig -->"

    return MARK.sub(one, text), problems


def check(figs: dict[str, str], repo: Path = REPO) -> list[str]:
    """Every disagreement between the docs (and cli/figures.py) and ``figs``, as lines."""
    problems = []
    for rel in DOCS:
        path = repo / rel
        if not path.exists():
            continue
        text = path.read_text()
        for m in MARK.finditer(text):
            want = figs.get(m.group(1))
            if want is None:
                problems.append(f"{rel}: figure {m.group(1)!r} is not made from the results")
            elif m.group(2) != want:
                problems.append(f"{rel}: figure {m.group(1)} says {m.group(2)!r}, the results give {want!r}")
    constants = repo / "cli" / "figures.py"
    if not constants.exists() or constants.read_text() != constants_text(figs):
        problems.append("cli/figures.py is not the one the results make (python -m leechcodec.kodak_eval.doc_figures)")
    return problems


def write(figs: dict[str, str], repo: Path = REPO) -> list[str]:
    problems = []
    for rel in DOCS:
        path = repo / rel
        if path.exists():
            new, bad = fill(path.read_text(), figs)
            problems += [f"{rel}: {p}" for p in bad]
            path.write_text(new)
    (repo / "cli" / "figures.py").write_text(constants_text(figs))
    return problems


def runtime_figures(results: dict[str, dict]) -> dict[str, str]:
    """``inf.*``, ``cont.*`` and ``install.*`` figures from the before/after result files (``load``)."""
    f: dict[str, str] = {}
    for when in ("before", "after"):
        inf = results.get(f"inference-{when}")
        if inf:
            f["inf.cpu"] = f"{inf['cpu']}, {inf['cores']} cores"
            for name, key in (("encode (ar)", "encode"), ("decode (ar)", "decode"), ("encode --coder fixed", "encode_fixed"),
                              ("decode (fixed)", "decode_fixed"), ("leechcodec --help", "help")):
                f[f"inf.{when}.{key}"] = f"{inf['processes'][name]['s']:.2f} s"
            f[f"inf.{when}.encode_mib"] = f"{inf['processes']['encode (ar)']['mib']:.0f} MiB"
            ph = inf["phases"]
            start = sum(v for k, v in ph.items() if k.startswith("import") or k.startswith("load"))
            f[f"inf.{when}.startup"] = f"{start:.2f} s"
            big = inf.get("big")
            if big:
                f[f"inf.{when}.big_encode"] = f"{big['encode_s']:.1f} s"
                f[f"inf.{when}.big_decode"] = f"{big['decode_s']:.1f} s"
                f[f"inf.{when}.big_mib"] = f"{max(big['encode_mib'], big['decode_mib']):.0f} MiB"
        cont = results.get(f"contention-{when}")
        if cont:
            idle = statistics.median(cont["idle_s"])
            f[f"cont.{when}.idle"] = f"{idle:.2f} s"
            f[f"cont.{when}.busy"] = f"{statistics.median(cont['busy_s']):.2f} s"
            f[f"cont.{when}.worst"] = f"{max(cont['busy_s']):.2f} s"
            f[f"cont.{when}.ratio"] = f"{statistics.median(cont['busy_s']) / idle:.1f}×"
            f[f"cont.{when}.worst_ratio"] = f"{max(cont['busy_s']) / idle:.1f}×"
        inst = results.get(f"install-{when}")
        if inst:
            f[f"install.{when}.s"] = f"{inst['seconds']:.0f} s"
            f[f"install.{when}.size"] = f"{inst['mib']:,.0f} MiB"
    return f


def filter_figures(res: dict | None) -> dict[str, str]:
    """``filter.*`` figures from ``docs/results/scale-filters.json`` (``benchmarks/scale_filters.py``):
    at each scale, Lanczos down and up (bpp, PSNR), and each other filter's and the best
    sharpening's difference from it."""
    if not res:
        return {}
    f: dict[str, str] = {"filter.cpu": res["cpu"], "filter.images": str(len(res["images"]))}
    rows = res["rows"]
    for s in sorted({r["scale"] for r in rows}):
        at = [r for r in rows if r["scale"] == s]
        base = next(r for r in at if r["down"] == r["up"] == "lanczos" and r["sharpen"] is None)
        key = f"filter.{s:g}"
        f[f"{key}.bpp"] = f"{base['bpp']:.4f}"
        f[f"{key}.psnr"] = f"{base['psnr']:.2f}"
        for r in at:
            if r["sharpen"] is None and r["up"] == "lanczos" and r["down"] != "lanczos":
                f[f"{key}.down.{r['down']}"] = (f"{r['psnr'] - base['psnr']:+.3f} dB, "
                                                f"{_pct(100 * (r['bpp'] / base['bpp'] - 1))} bytes").replace("-", "−")
            if r["sharpen"] is None and r["down"] == "lanczos" and r["up"] != "lanczos":
                f[f"{key}.up.{r['up']}"] = f"{r['psnr'] - base['psnr']:+.3f} dB".replace("-", "−")
        sharp = max((r for r in at if r["sharpen"] and r["down"] == r["up"] == "lanczos"), key=lambda r: r["psnr"])
        f[f"{key}.sharpen"] = f"{sharp['psnr'] - base['psnr']:+.3f} dB".replace("-", "−")
    return f


def scale_figures(memory: dict | None, targets: dict | None) -> dict[str, str]:
    """``scale.mem.*`` (``benchmarks/scale_memory.py``: a 12 MP photo coded at twice its size) and
    ``target.*`` (``benchmarks/bpp_targets.py``: ``--bpp`` on Kodak) figures."""
    f: dict[str, str] = {}
    if memory:
        f["scale.mem.cpu"] = memory["cpu"]
        f["scale.mem.encode_mib"] = f"{memory['encode_mib']:,.0f} MiB"
        f["scale.mem.decode_mib"] = f"{memory['decode_mib']:,.0f} MiB"
        f["scale.mem.encode_s"] = _s(memory["encode_s"])
        f["scale.mem.decode_s"] = _s(memory["decode_s"])
    if targets:
        f["target.cpu"] = targets["cpu"]
        for name, t in targets["targets"].items():
            f[f"target.{name}.bpp"] = f"{t['bpp']:.4f}"
            f[f"target.{name}.psnr"] = f"{t['psnr']:.2f}"
            f[f"target.{name}.max_ratio"] = f"{t['max_ratio']:.3f}"
            f[f"target.{name}.min_ratio"] = f"{t['min_ratio']:.3f}"
            f[f"target.{name}.s"] = _s(t["seconds"])
            f[f"target.{name}.max_s"] = _s(t["max_seconds"])
            f[f"target.{name}.encodes"] = str(t["max_encodes"])
            f[f"target.{name}.lambda_used"] = str(t["lambda_used"])
    return f


def search_figures(res: dict | None) -> dict[str, str]:
    """``qsearch.*`` figures from ``docs/results/quantizer-search.json``
    (``benchmarks/quantizer_search.py``): per batch size and search, seconds, vectors per second
    and peak memory (or why brute force with one score matrix was not run), and the exact
    search's speed-up over chunked brute force."""
    if not res:
        return {}
    f: dict[str, str] = {"qsearch.machine": f"{res['machine']}, {res['threads']} threads"}
    rows = {(r["n"], r["method"]): r for r in res["rows"]}
    f["qsearch.min_agree"] = f"{100 * min(r['agree'] for r in res['rows'] if 'agree' in r):.2f} %"
    for (n, method), r in rows.items():
        key = f"qsearch.{n}.{method}"
        if "skipped" in r:
            f[f"{key}.s"] = f[f"{key}.mib"] = "not run: " + r["skipped"]
            continue
        f[f"{key}.s"] = f"{r['seconds']:.3f} s" if r["seconds"] < 10 else _s(r["seconds"])
        f[f"{key}.rate"] = f"{r['n'] / r['seconds']:,.0f}"
        f[f"{key}.mib"] = f"{r['peak_mib']:,.0f} MiB"
        f[f"{key}.agree"] = f"{100 * r['agree']:.2f} %"
        brute = rows.get((n, "brute-chunked"))
        if method == "exact" and brute and "seconds" in brute:
            f[f"qsearch.{n}.speedup"] = f"{brute['seconds'] / r['seconds']:.0f}×"
    return f


def example_figures(res: dict | None) -> dict[str, str]:
    """``example.*`` figures from ``docs/results/quantizer-examples.json`` (``benchmarks/examples.py``): each
    example's command and output as a fenced block, and its seconds."""
    if not res:
        return {}
    f: dict[str, str] = {"example.cpu": f"{res['cpu']}, {res['threads']} threads"}
    for name, run in res["runs"].items():
        f[f"example.{name}.output"] = f"\n```text\n$ {run['command']}\n{run['stdout'].rstrip()}\n```\n"
        f[f"example.{name}.s"] = f"{run['seconds'] / 60:.1f} minutes" if run["seconds"] >= 60 else _s(run["seconds"])
    return f


def load(repo: Path = REPO) -> dict[str, str]:
    speed_path = repo / "docs" / "results" / "speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.exists() else None
    figs = figures((repo / "README.md").read_text(), speed)
    results = {p.stem: json.loads(p.read_text()) for p in (repo / "docs" / "results").glob("*-*.json")}
    figs.update(runtime_figures(results))
    figs.update(filter_figures(results.get("scale-filters")))
    figs.update(scale_figures(results.get("scale-memory"), results.get("bpp-targets")))
    figs.update(search_figures(results.get("quantizer-search")))
    figs.update(example_figures(results.get("quantizer-examples")))
    return figs


# ---------------------------------------------------------------------------------------------- measuring

def cpu_name() -> str:
    """The CPU's model name (lscpu), for the results files: every timing names its machine."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return name


def _timed(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        raise FigureError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return time.perf_counter() - t, p.stderr


def _compare_offsets(stderr: str) -> dict[str, float]:
    """``codec → % larger than leechcodec`` from ``leechcodec compare``'s summary line."""
    line = stderr.strip().splitlines()[-1]
    found = re.findall(r"(JPEG2000|AVIF|WebP|JPEG) [\d,]+ B \([\d.]+ dB\) ([+-][\d.]+) %", line)
    if not found:
        raise FigureError(f"no sizes in compare's summary: {line!r}")
    return {name.lower(): float(v) for name, v in found}


def measure(runs: int = 3, install_s: float | None = None) -> dict:
    """Time whole ``leechcodec`` processes on docs/kodim23.png (minutes on 2 cores)."""
    import onnxruntime  # lazy: ~0.1 s of import, for the version only --measure writes

    exe = [sys.executable, "-m", "leechcodec"]
    img = str(REPO / "docs" / "kodim23.png")
    res: dict = {"command": "python -m leechcodec.kodak_eval.doc_figures --measure", "image": "docs/kodim23.png",
                 "cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
                 "load_before": os.getloadavg()[0], "install_s": install_s,
                 "encode_s": [], "decode_s": [], "bpp_target": 0.1, "bpp_s": [], "compare": {}}
    with tempfile.TemporaryDirectory() as tmp:
        lq, png = f"{tmp}/kodim23.lq", f"{tmp}/kodim23-decoded.png"
        for _ in range(runs):  # the quick start's two commands (their names as there: the lines show them)
            t, enc = _timed([*exe, "encode", img, "-o", lq, "-f"])
            res["encode_s"].append(t)
            t, dec = _timed([*exe, "decode", lq, "-o", png, "-f"])
            res["decode_s"].append(t)
        res["encode_line"] = enc.strip().splitlines()[-1].replace(lq, "kodim23.lq")
        res["decode_line"] = dec.strip().splitlines()[-1].replace(png, "kodim23-decoded.png")
        res["bpp_s"].append(_timed([*exe, "encode", img, "-o", lq, "-f", "--bpp", str(res["bpp_target"])])[0])
        # network encodes at different coded sizes, at most (leechcodec.ratecontrol.search)
        res["bpp_passes"] = ratecontrol.MAX_SIZES
        t0 = _timed([*exe, "encode", img, "-o", lq, "-f", "--coder", "fixed"])[0]
        t2 = _timed([*exe, "encode", img, "-o", lq, "-f", "--coder", "fixed", "--effort", "2"])[0]
        res["effort2_extra_s"] = t2 - t0  # two rounds and the whole-picture check (two decodes)
        small = f"{tmp}/kodim23-160x120.png"
        Image.open(img).crop((0, 0, 160, 120)).save(small)
        for name, src in (("kodim23", img), ("small", small)):
            w, h = Image.open(src).size
            err = _timed([*exe, "compare", src, "-o", f"{tmp}/c.png", "-f"])[1]
            res["compare"][name] = {"size": f"{w}×{h}", "off_pct": _compare_offsets(err)}
    res["load_after"] = os.getloadavg()[0]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 on any disagreement")
    ap.add_argument("--measure", action="store_true", help="time the commands again into docs/results/speed.json")
    ap.add_argument("--runs", type=int, default=3, help="--measure: runs of the quick start's encode and decode")
    ap.add_argument("--install-s", type=float, help="--measure: seconds a fresh `pip install -e .` took")
    args = ap.parse_args(argv)
    if args.measure:
        SPEED.parent.mkdir(parents=True, exist_ok=True)
        SPEED.write_text(json.dumps(measure(args.runs, args.install_s), indent=2, ensure_ascii=False) + "\n")
    figs = load()
    problems = check(figs) if args.check else write(figs)
    for p in problems:
        print(f"doc_figures: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
