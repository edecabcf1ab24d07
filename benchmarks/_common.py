"""What the Kodak benchmarks share. They run as ``python benchmarks/NAME.py``, so this folder is
on ``sys.path`` and they import it as ``from _common import …`` (not a benchmark itself)."""

import argparse
from pathlib import Path

import torch


def kodak_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options of every Kodak benchmark (--kodak-dir, --model, --images); add its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak-dir", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=24)
    return ap


def kodak_pngs(args: argparse.Namespace) -> list[Path]:
    """The first --images kodim*.png files of --kodak-dir, in name order."""
    return sorted(Path(args.kodak_dir).glob("kodim*.png"))[: args.images]


def torch_threads() -> str:
    """``torch 2.13.0+cpu, 2 threads``: what runs the networks, for a benchmark's first line."""
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
