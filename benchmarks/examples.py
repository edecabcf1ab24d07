"""Run the two examples of README's "Use Λ24-SQ in your own model" and keep what they print.

    python benchmarks/examples.py [--pictures-dir ../shared/data/train-small] \
        [--json docs/results/quantizer-examples.json]

Each example runs as the README gives it, in a fresh process; its standard output, its
seconds and the machine go into the results file, from which the README's copy of the outputs
is made (``python -m leechcodec.kodak_eval.doc_figures``). About ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from leechcodec.kodak_eval.doc_figures import cpu_name

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pictures-dir", default="../shared/data/train-small")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "train": ["examples/train_autoencoder.py", args.pictures_dir],
            "tokenize": ["examples/tokenize_folder.py", args.pictures_dir, "-o", f"{tmp}/tokens.npy", "--limit", "200"],
        }
        for name, cmd in commands.items():
            shown = " ".join(["python", *cmd]).replace(tmp, "out")
            print(f"$ {shown}", flush=True)
            t = time.perf_counter()
            p = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
            seconds = time.perf_counter() - t
            if p.returncode:
                raise SystemExit(f"{shown} failed: {p.stderr[-2000:]}")
            print(p.stdout, end="", flush=True)
            runs[name] = {"command": shown, "seconds": seconds, "stdout": p.stdout.replace(tmp, "out")}
    out = {"command": "python benchmarks/examples.py" + (f" --json {args.json}" if args.json else ""),
           "cpu": cpu_name(), "threads": torch.get_num_threads(), "runs": runs}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
