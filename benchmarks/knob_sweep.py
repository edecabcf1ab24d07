"""The rate knob (``encode --lambda``) on a folder of pictures: mean bpp, PSNR and encode time per λ.

    python benchmarks/knob_sweep.py PHOTO... --lambdas 0,0.01,0.03,0.06 [--effort N]
        [--likely K] [--geometric M] [--max-dist D]

The last three override ``leechcodec.rdo``'s LIKELY, GEOMETRIC and MAX_DIST, which is how their
values were chosen on training photos (docs/training-log.md, "Rate knob"). float32 reference arithmetic.
"""

import argparse
import time

import numpy as np
from PIL import Image

import leechcodec
from leechcodec import rdo
from leechcodec.models.io import load_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--lambdas", default="0,0.01,0.03,0.06")
    ap.add_argument("--effort", type=int, default=0)
    ap.add_argument("--likely", type=int, default=rdo.LIKELY)
    ap.add_argument("--geometric", type=int, default=rdo.GEOMETRIC)
    ap.add_argument("--max-dist", type=float, default=rdo.MAX_DIST)
    args = ap.parse_args()
    rdo.LIKELY, rdo.GEOMETRIC, rdo.MAX_DIST = args.likely, args.geometric, args.max_dist
    model = load_weights()
    images = [Image.open(p).convert("RGB") for p in args.photos]
    print(f"likely {rdo.LIKELY}, geometric {rdo.GEOMETRIC}, max_dist {rdo.MAX_DIST}, effort {args.effort}, "
          f"{len(images)} pictures")
    for lam in (float(x) for x in args.lambdas.split(",")):
        bpp, psnr, secs = [], [], []
        for im in images:
            t = time.perf_counter()
            data = leechcodec.encode(im, model, coder="ar", lam=lam, effort=args.effort, precision="fp32")
            secs.append(time.perf_counter() - t)
            out = np.asarray(leechcodec.decode(data, model, precision="fp32")).astype(np.float64)
            mse = np.mean((np.asarray(im).astype(np.float64) - out) ** 2)
            psnr.append(10 * np.log10(255**2 / mse))
            bpp.append(8 * len(data) / (im.width * im.height))
        print(f"lambda {lam:g}: {np.mean(bpp):.4f} bpp, {np.mean(psnr):.3f} dB, encode {np.mean(secs):.2f} s", flush=True)


if __name__ == "__main__":
    main()
