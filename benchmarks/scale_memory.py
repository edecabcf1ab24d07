"""What a 12 MP photo coded at twice its size needs: peak memory and seconds of encode and decode.

    python benchmarks/scale_memory.py [--json docs/results/scale-memory.json] [--scale 2]

A 4000x3000 picture (docs/kodim23.png resized with Lanczos: photo-like content) through the
CLI, ``leechcodec encode --scale 2`` (coded at 8000x6000, 48 MP: 750,000 tokens) and
``leechcodec decode``, each a fresh process under ``/usr/bin/time -v`` (its maximum resident
set size). Minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from leechcodec.kodak_eval.doc_figures import cpu_name

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> tuple[float, float]:
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr[-2000:]}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return time.perf_counter() - t, kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--scale", type=float, default=2.0)
    args = ap.parse_args()
    exe = [sys.executable, "-m", "leechcodec"]
    with tempfile.TemporaryDirectory() as tmp:
        src, lq, png = f"{tmp}/big.png", f"{tmp}/big.lq", f"{tmp}/big-decoded.png"
        Image.open(REPO / "docs" / "kodim23.png").convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS).save(src)
        enc_s, enc_mib = run([*exe, "encode", src, "-o", lq, "--scale", str(args.scale), "--quiet"])
        dec_s, dec_mib = run([*exe, "decode", lq, "-o", png, "--quiet"])
        size = Path(lq).stat().st_size
    out = {"command": f"python benchmarks/scale_memory.py --json {args.json}", "cpu": cpu_name(), "picture": "4000x3000",
           "scale": args.scale, "encode_s": enc_s, "encode_mib": enc_mib, "decode_s": dec_s, "decode_mib": dec_mib,
           "bytes": size}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
