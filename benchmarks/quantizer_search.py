"""The exact Λ24 search of ``LeechQuantizer`` against a brute-force matmul search, at 1k, 64k and
1M vectors: seconds and peak memory.

    python benchmarks/quantizer_search.py [--json docs/results/quantizer-search.json] [--device cuda]

Three searches of the same unit vectors (float32, Gaussian directions, seed 0):

* ``exact``: ``lattice.nearest`` on a torch tensor, what ``LeechQuantizer`` calls (structured on
  a CPU, the certified matmul on CUDA; docs/LATTICE.md): chunks of rows, no score matrix;
* ``brute``: one batch × 196,560 float32 score matrix and its argmax, as the paper's code
  searches; skipped (its size noted) where that matrix would not fit in half the free memory;
* ``brute-chunked``: the same 1,024 rows at a time (a 768 MiB score matrix).

Each search runs in a fresh process; its peak memory is the process's resident set (GPU: the
allocator's peak) during the search above what it held before (the vectors, the tables).
``agree`` is the share of 2,000 sampled rows whose index is the float64 nearest
(``lattice.nearest_brute``). Minutes on 2 cores (brute force at 1M: most of them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from leechcodec import lattice
from leechcodec.kodak_eval.doc_figures import cpu_name

SIZES = (1_000, 65_536, 1_000_000)
METHODS = ("exact", "brute", "brute-chunked")
CHUNK = 1024


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def one(method: str, n: int, device: str) -> dict:
    """Time one search in this process and measure its peak memory."""
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.standard_normal((n, lattice.DIM), dtype=np.float32))
    z = (z / z.norm(dim=1, keepdim=True)).to(device)
    book = torch.from_numpy(lattice.codebook()).float().to(device)  # the paper code's (196560, 24) table
    lattice.nearest(z[:64])  # the search's tables, outside the timing
    cuda = device.startswith("cuda")

    def search() -> torch.Tensor:
        if method == "exact":
            return lattice.nearest(z)
        if method == "brute":
            return (z @ book.T).argmax(1)
        return torch.cat([(z[i : i + CHUNK] @ book.T).argmax(1) for i in range(0, n, CHUNK)])

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _rss_kib("VmRSS") * 1024
    t = time.perf_counter()
    idx = search()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024
    sample = np.random.default_rng(1).choice(n, min(n, 2000), replace=False)
    ref = lattice.nearest_brute(z[sample].double().cpu().numpy())
    agree = float((idx[sample].cpu().numpy() == ref).mean())
    return {"method": method, "n": n, "seconds": seconds, "peak_mib": (peak - before) / 2**20, "agree": agree}


def score_matrix_fits(n: int, device: str) -> tuple[bool, float]:
    """Whether an n × 196,560 float32 score matrix fits in half the free memory; its GiB."""
    need = n * lattice.N_CODEWORDS * 4
    if device.startswith("cuda"):
        free = torch.cuda.mem_get_info()[0]
    else:
        free = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemAvailable:"))
    return need < free / 2, need / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.device)))
        return
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    print(f"{machine}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = []
    for n in args.sizes:
        for method in METHODS:
            fits, gib = score_matrix_fits(n, args.device)
            if method == "brute" and not fits:
                rows.append({"method": method, "n": n, "skipped": f"needs a {gib:,.0f} GiB score matrix"})
            else:
                p = subprocess.run([sys.executable, __file__, "--device", args.device, "--one", method, str(n)],
                                   capture_output=True, text=True)
                if p.returncode:
                    raise SystemExit(f"{method} at {n}: {p.stderr[-2000:]}")
                rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            what = r.get("skipped") or (f"{r['seconds']:9.3f} s  {r['peak_mib']:9.1f} MiB  "
                                        f"{r['n'] / r['seconds']:12,.0f} vectors/s  "
                                        f"float64 nearest: {100 * r['agree']:.2f} %")
            print(f"{n:>9,}  {method:<14} {what}", flush=True)
    out = {"command": "python benchmarks/quantizer_search.py" + (f" --json {args.json}" if args.json else "")
           + (f" --device {args.device}" if args.device != "cpu" else ""),
           "machine": machine, "device": args.device, "threads": torch.get_num_threads(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
