"""encode --effort on Kodak: PSNR gained against extra encode seconds.

    python benchmarks/bench_effort.py --kodak-dir ../shared/data/kodak [--model PATH] [--efforts 2,4,8]

Every image is encoded with ``leechcodec.encode(..., effort=N)`` for N = 0 and each listed
effort (the path ``leechcodec encode --effort N`` runs) and decoded with ``leechcodec.decode``.
Prints per-image lines and the means over the images: PSNR, gain over effort 0, and the encode
seconds each effort adds.
"""

import time

import numpy as np
from PIL import Image

import leechcodec
from leechcodec.kodak_eval.metrics import psnr_rgb
from leechcodec.models.io import load_weights

from _common import kodak_parser, kodak_pngs, torch_threads


def main():
    ap = kodak_parser(__doc__)
    ap.add_argument("--efforts", default="2,4,8")
    args = ap.parse_args()
    efforts = [0] + sorted(int(e) for e in args.efforts.split(",") if int(e) > 0)
    model = load_weights(args.model, prior=None)
    print(f"model {model.cfg.name} id {model.model_id.hex()}, {torch_threads()}")
    rows = []
    for f in kodak_pngs(args):
        img = Image.open(f).convert("RGB")
        ref = np.asarray(img)
        row = []
        for e in efforts:
            t = time.perf_counter()
            data = leechcodec.encode(img, model, coder="fixed", effort=e)
            secs = time.perf_counter() - t
            row += [psnr_rgb(ref, np.asarray(leechcodec.decode(data, model))), secs]
        rows.append(row)
        print(f"{f.stem}  effort 0 {row[0]:.2f} dB {row[1]:.1f} s  "
              + "  ".join(f"effort {e} {row[2 * i] - row[0]:+.2f} dB +{row[2 * i + 1] - row[1]:.1f} s"
                          for i, e in enumerate(efforts) if e), flush=True)  # fmt: skip
    m = np.mean(rows, axis=0)
    print(f"mean over {len(rows)} images: effort 0 {m[0]:.3f} dB, encode {m[1]:.2f} s")
    for i, e in enumerate(efforts[1:], 1):
        print(f"  --effort {e}: {m[2 * i]:.3f} dB ({m[2 * i] - m[0]:+.3f} dB), +{m[2 * i + 1] - m[1]:.1f} s encode")


if __name__ == "__main__":
    main()
