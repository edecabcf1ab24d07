"""What a new user downloads and waits for: the README's install into a fresh venv, timed and sized.

    python benchmarks/install_size.py [--tree .] [--json docs/results/install-after.json]

Makes a fresh virtual environment in a temporary folder, runs ``pip install -e TREE`` in it (the
quick start's install), and prints the seconds (venv included) and the environment's size on
disk. Run it for an older checkout (``git worktree add /tmp/before COMMIT``, ``--tree
/tmp/before``) for the before figure. Packages come from pip's configured index or cache.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory(prefix="install-") as tmp:
        venv = Path(tmp) / "venv"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(tree)], check=True)
        seconds = time.perf_counter() - t0
        mib = size_mib(venv)
        torch = (venv / "lib").glob("python*/site-packages/torch")
        has_torch = any(True for _ in torch)
    print(f"pip install -e {tree}: {seconds:.1f} s, {mib:,.0f} MiB on disk, torch installed: {has_torch}")
    if args.json:
        args.json.write_text(json.dumps({"command": "python benchmarks/install_size.py " + " ".join(sys.argv[1:]),
                                         "tree": str(tree), "seconds": seconds, "mib": mib, "torch": has_torch},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
