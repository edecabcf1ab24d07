"""``--bpp`` on Kodak: how close each picture lands to its target, its PSNR and the search's cost.

    python benchmarks/bpp_targets.py [--kodak-dir ../shared/data/kodak] [--targets 0.03,0.05,0.1,0.3,0.55,1]
        [--json docs/results/bpp-targets.json]

Every picture through ``leechcodec.encode(bpp=B)`` (the code path of ``encode --bpp B``), the
bundled model, then ``leechcodec.decode``: per target the mean bpp and PSNR, the smallest and
largest rate over the target (at most 1: never over), the network encodes the search ran, and
the seconds per encode. Networks on ONNX Runtime; about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import leechcodec
from leechcodec import codec
from leechcodec.kodak_eval.metrics import psnr_rgb

from leechcodec.kodak_eval.doc_figures import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak-dir", type=Path, default=Path("../shared/data/kodak"))
    ap.add_argument("--targets", default="0.03,0.05,0.1,0.3,0.55,1")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = leechcodec.load_model()
    paths = sorted(args.kodak_dir.glob("kodim*.png"))
    out = {"command": f"python benchmarks/bpp_targets.py --json {args.json}", "cpu": cpu_name(), "images": len(paths),
           "targets": {}}
    real = codec.tiles_to_indices
    sizes: list = []

    def counted(net, tiles, *a, **k):
        sizes.append((tiles.w, tiles.h))
        return real(net, tiles, *a, **k)

    codec.tiles_to_indices = counted
    for target in (float(x) for x in args.targets.split(",")):
        rows = []
        for p in paths:
            with Image.open(p) as im:
                rgb = im.convert("RGB")
            sizes.clear()
            stats: dict = {}
            t = time.perf_counter()
            data = leechcodec.encode(rgb, model, bpp=target, stats=stats)
            seconds = time.perf_counter() - t
            decoded = leechcodec.decode(data, model)
            rows.append({"image": p.name, "bpp": 8 * len(data) / (rgb.width * rgb.height),
                         "psnr": psnr_rgb(np.asarray(rgb), np.asarray(decoded)), "seconds": seconds,
                         "encodes": len(set(sizes)), "scale": stats["scale"], "stages": stats["stages"],
                         "lambda": stats["lambda"]})
        ratio = [r["bpp"] / target for r in rows]
        out["targets"][f"{target:g}"] = {
            "bpp": float(np.mean([r["bpp"] for r in rows])), "psnr": float(np.mean([r["psnr"] for r in rows])),
            "min_ratio": min(ratio), "max_ratio": max(ratio), "seconds": float(np.mean([r["seconds"] for r in rows])),
            "max_seconds": max(r["seconds"] for r in rows), "max_encodes": max(r["encodes"] for r in rows),
            "lambda_used": sum(r["lambda"] > 0 for r in rows), "per_image": rows}
        t = out["targets"][f"{target:g}"]
        print(f"--bpp {target:g}: {t['bpp']:.4f} bpp, {t['psnr']:.2f} dB, rate/target {t['min_ratio']:.3f}–"
              f"{t['max_ratio']:.3f}, {t['seconds']:.1f} s (max {t['max_seconds']:.1f}), <= {t['max_encodes']} "
              f"encodes, lambda on {t['lambda_used']} pictures", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
