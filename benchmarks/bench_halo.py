"""The decoder halo on Kodak: PSNR, grid error ratios and decode time per halo, same tokens.

    python benchmarks/bench_halo.py --kodak-dir ../shared/data/kodak [--model PATH] [--halos 0,4,6,8]

Each image is encoded once; its tokens are decoded with the model's ``decode_halo`` set to
each value (``leechcodec.codec.indices_to_image``, what ``leechcodec.decode`` runs). Prints the
means over the images: PSNR on 8-bit RGB, the grid error ratios of
``kodak_eval.metrics.grid_ratios`` (8-px lines / 256-px tile lines; 1.0 = no visible grid)
and seconds per decode.
"""

import dataclasses
import time

import numpy as np
from PIL import Image

from leechcodec import codec, container
from leechcodec.kodak_eval.metrics import grid_ratios, psnr_rgb
from leechcodec.models.io import load_weights

from _common import kodak_parser, kodak_pngs, torch_threads


def main():
    ap = kodak_parser(__doc__)
    ap.add_argument("--halos", default="0,4,5,6,8,16")
    args = ap.parse_args()
    model = load_weights(args.model, prior=None)
    halos = [int(h) for h in args.halos.split(",")]
    print(f"model {model.cfg.name} id {model.model_id.hex()} (its halo: {model.decode_halo}), {torch_threads()}")
    res = {h: [] for h in halos}
    for f in kodak_pngs(args):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        h, w, _ = rgb.shape
        tx, ty = container.tile_grid(w, h, model.tile)
        idx = codec.tiles_to_indices(model, codec.tile_image(rgb, model.tile))
        for halo in halos:
            model.cfg = dataclasses.replace(model.cfg, decode_halo=halo)
            t = time.perf_counter()
            out = codec.indices_to_image(model, idx, tx, ty)[:h, :w]
            res[halo].append((psnr_rgb(rgb, out), *grid_ratios(rgb, out), time.perf_counter() - t))
    for halo in halos:
        a = np.array(res[halo])
        print(f"halo {halo}: PSNR {a[:, 0].mean():.3f} dB, 8-px ratio {np.nanmean(a[:, 1]):.3f}, "
              f"tile ratio {np.nanmean(a[:, 2]):.3f}, decode {a[:, 3].mean():.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
