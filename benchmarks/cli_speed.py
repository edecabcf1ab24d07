"""What a user waits for: whole `leechcodec` processes, timed from the shell's point of view.

    python benchmarks/cli_speed.py [--image docs/kodim23.png] [--runs 5] [--kodak-dir ../shared/data/kodak]
                                   [--big PHOTO | --big-from DIR] [--precision auto] [--backend auto]
                                   [--model PATH]

Prints, on this machine:

* the phases of one encode and one decode of --image inside a single process (imports, load
  model and prior, read, tokenizer network + nearest codeword, ar coding, write, …), with the
  networks on ONNX Runtime (``--backend onnx``, what a CPU gets by default) or torch;
* the median wall time (and peak memory) of --runs whole processes for `--help`, `info`,
  encode and decode with the ar and the fixed coder;
* with --kodak-dir: throughput of one `encode`/`decode` process over all the Kodak images;
* with --big PHOTO (or --big-from DIR: a 4000×3000 mosaic of the photos in DIR): encode and
  decode of a large photo, time and peak memory.

Stop background jobs first: this measures time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "leechcodec.cli"]

PHASES = r"""
import json, sys, time
t = [("start", time.perf_counter())]
def mark(name): t.append((name, time.perf_counter()))
backend = sys.argv[4]
if backend == "torch":
    import torch; mark("import torch")
import numpy as np, leechcodec
from leechcodec import codec, coders, container, image_io
try:
    from leechcodec.models.load import load
except ImportError:  # a leechcodec before ONNX Runtime (the "before" figures of issue 30)
    import torch; mark("import torch")
    from leechcodec.models.io import load_weights
    load = lambda path, backend: load_weights(path)
mark("import leechcodec, models")
model = load(sys.argv[3] or None, backend=backend); mark("load tokenizer + prior")
data = open(sys.argv[1], "rb").read()
im = image_io.prepare(image_io.read_image(data)); rgb, _ = image_io.to_rgb_array(im); mark("read image")
precision = sys.argv[2]
try:
    from threadpoolctl import threadpool_limits
    limit = threadpool_limits(1, user_api="blas")  # as codec.encode and decode
except ImportError:  # before ONNX Runtime: no such limit
    import contextlib
    limit = contextlib.nullcontext()
with limit:
    idx = codec.tiles_to_indices(model, codec.Tiles(rgb, 256), precision=precision); mark("encoder network + nearest")
    payload = coders.encode_ar(idx, model.prior, 32); mark("ar encode")
    back = coders.decode_ar(payload, len(idx), 32, model.prior); mark("ar decode")
    h, w, _ = rgb.shape
    tx, ty = container.tile_grid(w, h, 256)
    out = codec.indices_to_image(model, back, tx, ty, precision=precision, size=(w, h)); mark("decoder network")
import io
from PIL import Image
Image.fromarray(out).save(io.BytesIO(), format="PNG"); mark("write PNG")
if getattr(model, "runtime", "torch") == "onnxruntime":
    import onnxruntime
    info = f"onnxruntime {onnxruntime.__version__} ({model.threads} threads), torch imported: {'torch' in sys.modules}"
else:
    info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
print(json.dumps([(n, b - a) for (_, a), (n, b) in zip(t, t[1:])] + [info]))
"""


def run(args: list[str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of one process; it must succeed."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    p.stderr.close()
    if p.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {err.strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def median_of(args: list[str], runs: int) -> tuple[float, float]:
    got = [run(args) for _ in range(runs)]
    return statistics.median(s for s, _ in got), max(m for _, m in got)


def mosaic(folder: Path, out: Path, size=(4000, 3000)) -> None:
    """A photo-like test picture: the photos of ``folder`` pasted side by side at their own size."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no photos in {folder}")
    canvas, x, y, row, i = Image.new("RGB", size), 0, 0, 0, 0
    while y < size[1]:
        with Image.open(files[i % len(files)]) as im:
            im = im.convert("RGB")
            canvas.paste(im, (x, y))
            x, row, i = x + im.width, max(row, im.height), i + 1
        if x >= size[0]:
            x, y, row = 0, y + row, 0
    canvas.save(out, quality=92)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=REPO / "docs" / "kodim23.png")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"],
                    help="what runs the networks (torch: the numbers before ONNX Runtime)")
    ap.add_argument("--model", type=Path, help="tokenizer weights (its prior beside it) [default: the bundled model]")
    ap.add_argument("--kodak-dir", type=Path)
    ap.add_argument("--big", type=Path, help="a large photo to encode and decode once")
    ap.add_argument("--big-from", type=Path, help="make --big as a 4000x3000 mosaic of the photos in this folder")
    ap.add_argument("--json", type=Path, help="also write the figures here (docs/results/, for the docs' figures)")
    args = ap.parse_args()
    result: dict = {"command": "python benchmarks/cli_speed.py " + " ".join(sys.argv[1:]), "runs": args.runs}
    image = args.image.resolve()
    # torch is imported in the children only: a forked child's peak memory counts its parent's
    out = subprocess.run([sys.executable, "-c", PHASES, str(image), args.precision, str(args.model or ""), args.backend],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout  # fmt: skip
    phases = json.loads(out)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    result.update(cpu=cpu, cores=os.cpu_count(), runtime=phases.pop(), load_before=os.getloadavg()[0])
    result["phases"] = dict(phases)
    print(f"{cpu}, {os.cpu_count()} CPUs, {result['runtime']}, backend {args.backend}, precision {args.precision}, "
          f"image {image.name}")
    print("\nphases of one encode + decode in one process (s):")
    for name, sec in phases:
        print(f"  {name:28s} {sec:6.3f}")

    tmp = Path(tempfile.mkdtemp(prefix="cli-speed-"))
    try:
        p = ["--precision", args.precision, *(["--backend", args.backend] if args.backend != "auto" else []),
             *(["--model", str(args.model.resolve())] if args.model else [])]  # no --backend: any version's CLI
        lq_ar, lq_fixed = tmp / "ar.lq", tmp / "fixed.lq"
        rows = [
            ("leechcodec --help", [*CLI, "--help"]),
            ("encode (ar)", [*CLI, "encode", str(image), "-o", str(lq_ar), "-f", "--quiet", *p]),
            ("info", [*CLI, "info", str(lq_ar)]),
            ("decode (ar)", [*CLI, "decode", str(lq_ar), "-o", str(tmp / "a.png"), "-f", "--quiet", *p]),
            ("encode --coder fixed", [*CLI, "encode", str(image), "-o", str(lq_fixed), "-f", "--quiet", "--coder", "fixed",
                                      *p]),  # fmt: skip
            ("decode (fixed)", [*CLI, "decode", str(lq_fixed), "-o", str(tmp / "f.png"), "-f", "--quiet", *p]),
        ]
        print(f"\nwhole processes, median of {args.runs} (s), peak memory (MiB):")
        result["processes"] = {}
        for name, cmd in rows:
            sec, mib = median_of(cmd, args.runs)
            result["processes"][name] = {"s": sec, "mib": mib}
            print(f"  {name:28s} {sec:6.2f} s  {mib:6.0f} MiB")

        if args.kodak_dir:
            files = sorted(str(f) for f in args.kodak_dir.glob("kodim*.png"))
            print(f"\nmany files in one process ({len(files)} Kodak images):")
            for coder in ("fixed", "ar"):
                d = tmp / f"batch-{coder}"
                back = tmp / f"back-{coder}"
                d.mkdir()
                back.mkdir()
                enc, mib_e = run([*CLI, "encode", *files, "-o", str(d), "--quiet", "--coder", coder, *p])
                dec, mib_d = run([*CLI, "decode", *sorted(map(str, d.iterdir())), "-o", str(back), "--quiet", *p])
                n = len(files)
                print(f"  {coder:5s} encode {enc:6.1f} s ({n / enc:.2f} images/s, {mib_e:.0f} MiB)   "
                      f"decode {dec:6.1f} s ({n / dec:.2f} images/s, {mib_d:.0f} MiB)")  # fmt: skip

        big = args.big
        if args.big_from:
            big = tmp / "mosaic.jpg"
            mosaic(args.big_from, big)
        if big:
            with Image.open(big) as im:
                size = im.size
            lq = tmp / "big.lq"
            enc, mib_e = run([*CLI, "encode", str(big), "-o", str(lq), "--quiet", *p])
            dec, mib_d = run([*CLI, "decode", str(lq), "-o", str(tmp / "big.png"), "--quiet", *p])
            mp = size[0] * size[1] / 1e6
            result["big"] = {"size": f"{size[0]}x{size[1]}", "encode_s": enc, "encode_mib": mib_e, "decode_s": dec,
                             "decode_mib": mib_d}
            print(f"\nlarge photo {size[0]}x{size[1]} ({mp:.1f} MP), ar: encode {enc:.1f} s, {mib_e:.0f} MiB peak; "
                  f"decode {dec:.1f} s, {mib_d:.0f} MiB peak; {8 * lq.stat().st_size / (mp * 1e6):.4f} bpp")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
