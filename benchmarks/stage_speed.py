"""Encode and decode time against the number of residual stages: whole `leechcodec` processes.

    python benchmarks/stage_speed.py [--image docs/kodim23.png] [--runs 5] [--stages 4] [--json F]

For K = 1 … --stages, the median wall time of --runs `encode --stages K` processes with the ar
coder (at λ 0, where the fewest later tokens are left out) and with the fixed coder, and of the
`decode` of each file, with the ratio to K = 1 (the issue's target: at most 1.3x; the decoder
network runs once whatever K is). Stop background jobs first: this measures time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from cli_speed import CLI, REPO, median_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=REPO / "docs" / "kodim23.png")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stages", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    out = {"cpu": cpu, "cores": os.cpu_count(), "load_before": os.getloadavg()[0], "image": args.image.name,
           "runs": args.runs, "rows": []}
    print(f"{cpu}, {os.cpu_count()} CPUs, load {out['load_before']:.2f}; {args.image.name}, median of {args.runs}")
    with tempfile.TemporaryDirectory() as d:
        lq, png = Path(d) / "a.lq", Path(d) / "a.png"
        base = {}
        for coder in ("ar", "fixed"):
            for k in range(1, args.stages + 1):
                enc = median_of([*CLI, "encode", str(args.image), "-o", str(lq), "-f", "--quiet", "--coder", coder,
                                 "--stages", str(k)], args.runs)[0]
                size = lq.stat().st_size
                dec = median_of([*CLI, "decode", str(lq), "-o", str(png), "-f", "--quiet"], args.runs)[0]
                base.setdefault(coder, (enc, dec))
                row = {"coder": coder, "stages": k, "bytes": size, "encode_s": enc, "decode_s": dec,
                       "encode_ratio": enc / base[coder][0], "decode_ratio": dec / base[coder][1]}
                out["rows"].append(row)
                print(f"{coder:5s} K={k}: {size:6d} bytes, encode {enc:.2f} s ({row['encode_ratio']:.2f}x), "
                      f"decode {dec:.2f} s ({row['decode_ratio']:.2f}x)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
