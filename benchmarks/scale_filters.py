"""Which resampling filters the coded size should use: Pillow's filters down and up, and a sharpening.

    python benchmarks/scale_filters.py [--kodak-dir ../shared/data/kodak] [--scales 0.5,0.75,1.5]
        [--json docs/results/scale-filters.json]

Eight Kodak pictures (kodim01, 04, …, 22: every third), the bundled model, ar coder: each picture
resampled to the coded size (scale × each side, rounded) with a *down* filter (the encoder's
choice: Lanczos, bicubic, box, bilinear; above scale 1 only Lanczos and bicubic), coded and
decoded at that size, resampled back with an *up* filter (the decoder's: Lanczos, bicubic,
bilinear), optionally followed by an unsharp mask (radius, percent; threshold 0); PSNR against
the original and bits per original pixel, averaged over the pictures. The decoder's filter
becomes part of the format (docs/FORMAT.md, *Resampling*): this is the measurement that chose it
(README, "Scale"). Networks on ONNX Runtime; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import leechcodec
from leechcodec.kodak_eval.doc_figures import cpu_name
from leechcodec.kodak_eval.metrics import psnr_rgb

NAMES = tuple(f"kodim{i:02d}.png" for i in (1, 4, 7, 10, 13, 16, 19, 22))
DOWN = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX,
        "bilinear": Image.Resampling.BILINEAR}
UP = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
SHARPEN = (None, (0.7, 50), (1.0, 30), (1.0, 60), (2.0, 30))  # (radius, percent) of ImageFilter.UnsharpMask


def measure(kodak: Path, scales: list[float]) -> list[dict]:
    model = leechcodec.load_model()
    rows: dict[tuple, list] = {}
    for name in NAMES:
        with Image.open(kodak / name) as im:
            im = im.convert("RGB")
        ref = np.asarray(im)
        w, h = im.size
        for s in scales:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            for down, dfilt in DOWN.items():
                if s > 1 and down not in ("lanczos", "bicubic"):
                    continue
                data = leechcodec.encode(im.resize(size, dfilt), model)
                decoded = leechcodec.decode(data, model)
                bpp = 8 * len(data) / (w * h)
                for up, ufilt in UP.items():
                    back = decoded.resize((w, h), ufilt)
                    for sharp in SHARPEN:
                        out = back if sharp is None else back.filter(ImageFilter.UnsharpMask(*sharp, threshold=0))
                        rows.setdefault((s, down, up, sharp), []).append((bpp, psnr_rgb(ref, np.asarray(out))))
        print(name, flush=True)
    return [{"scale": s, "down": d, "up": u, "sharpen": None if sh is None else list(sh),
             "bpp": float(np.mean([b for b, _ in v])), "psnr": float(np.mean([p for _, p in v]))}
            for (s, d, u, sh), v in rows.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak-dir", type=Path, default=Path("../shared/data/kodak"))
    ap.add_argument("--scales", default="0.5,0.75,1.5")
    ap.add_argument("--json", type=Path, help="write the results here (docs/results/scale-filters.json)")
    args = ap.parse_args()
    t = time.perf_counter()
    rows = measure(args.kodak_dir, [float(x) for x in args.scales.split(",")])
    for s in sorted({r["scale"] for r in rows}):
        print(f"\nscale {s:g}: down, up, sharpen → bpp, PSNR (best first)")
        for r in sorted((r for r in rows if r["scale"] == s), key=lambda r: -r["psnr"])[:12]:
            print(f"  {r['down']:8s} {r['up']:8s} {str(r['sharpen']):10s} {r['bpp']:.4f} {r['psnr']:.3f} dB")
    if args.json:
        args.json.write_text(json.dumps({"command": "python benchmarks/scale_filters.py --json " + str(args.json),
                                         "cpu": cpu_name(), "images": list(NAMES), "seconds": time.perf_counter() - t,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
