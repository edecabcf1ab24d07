"""Decode (or encode) while other processes keep every core busy: how polite are our threads?

    python benchmarks/contention.py [--image docs/kodim23.png] [--runs 5] [--busy 2] [--backend auto]
                                    [--command decode|encode] [--threads N]

Times --runs whole `leechcodec decode` processes of --image's .lq on an idle machine, then the
same while --busy other processes spin on the CPU (a pure-Python loop each, as a build or
another job would), and prints the medians, the worst runs and their ratio. The issue's
target: busy ≤ 2.5× idle on 2 cores with 2 busy processes. Thread pools that spin while they
wait (OpenMP, BLAS, ONNX Runtime with spinning on) lose their time slices to the busy
processes and stretch a short phase many times over.

Stop other background jobs first: this measures time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "leechcodec.cli"]


def _spin(stop) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=REPO / "docs" / "kodim23.png")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--busy", type=int, default=2, help="processes spinning on the CPU during the busy runs")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    ap.add_argument("--command", default="decode", choices=["decode", "encode"])
    ap.add_argument("--threads", type=int, help="--threads for leechcodec [default: its own default]")
    ap.add_argument("--json", type=Path, help="also write the figures here (docs/results/, for the docs' figures)")
    args = ap.parse_args()
    extra = ["--quiet", "-f", *(["--backend", args.backend] if args.backend != "auto" else []),
             *(["--threads", str(args.threads)] if args.threads else [])]  # none of them: any version of the CLI
    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        lq = Path(tmp) / "x.lq"
        subprocess.run([*CLI, "encode", str(args.image), "-o", str(lq), *extra], cwd=REPO, check=True)
        if args.command == "decode":
            cmd = [*CLI, "decode", str(lq), "-o", str(Path(tmp) / "x.png"), *extra]
        else:
            cmd = [*CLI, "encode", str(args.image), "-o", str(lq), *extra]
        timed(cmd)  # warm the page cache
        idle = [timed(cmd) for _ in range(args.runs)]
        stop = multiprocessing.Event()
        hogs = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
        for h in hogs:
            h.start()
        try:
            time.sleep(0.5)
            busy = [timed(cmd) for _ in range(args.runs)]
        finally:
            stop.set()
            for h in hogs:
                h.join()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} CPUs; {args.command} of {args.image.name}, backend {args.backend}, "
          f"threads {args.threads or 'default'}, {args.runs} runs each")
    print(f"  idle: median {statistics.median(idle):.2f} s, worst {max(idle):.2f} s")
    print(f"  {args.busy} busy processes: median {statistics.median(busy):.2f} s, worst {max(busy):.2f} s")
    print(f"  ratio busy/idle: median {statistics.median(busy) / statistics.median(idle):.2f}x, "
          f"worst {max(busy) / statistics.median(idle):.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "command": "python benchmarks/contention.py " + " ".join(sys.argv[1:]), "cpu": cpu, "cores": os.cpu_count(),
            "what": args.command, "busy_processes": args.busy, "idle_s": idle, "busy_s": busy}, indent=2) + "\n")


if __name__ == "__main__":
    main()
