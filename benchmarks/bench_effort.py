"""encode --effort on Kodak: PSNR gained against extra encode seconds, per number of rounds.

    python benchmarks/bench_effort.py --kodak-dir ../shared/data/kodak [--model PATH] [--rounds 2,4,8,16,24]

One refinement run per image up to the largest round count, snapshotting the tokens after each
listed count (a round never undoes an earlier one, so the snapshot after r rounds is what
``--effort r`` produces, before the codec's whole-picture check, which this also applies).
Each snapshot is decoded exactly as ``leechcodec.decode`` does (decoder halo included).
Prints per-image lines and the means: PSNR, gain over effort 0, extra encode seconds (the
refinement, the encoder pass it starts from, and the check's two decodes).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kodak_eval.metrics import psnr_rgb
from leechcodec import codec, container, refine
from models.io import load_weights


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak-dir", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--rounds", default="2,4,8,16,24")
    args = ap.parse_args()
    rounds = sorted(int(r) for r in args.rounds.split(","))
    model = load_weights(args.model, prior=None)
    print(f"model {model.cfg.name} id {model.model_id.hex()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for f in sorted(Path(args.kodak_dir).glob("kodim*.png"))[: args.images]:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        h, w, _ = rgb.shape
        tx, ty = container.tile_grid(w, h, model.tile)
        tiles = codec.tile_image(rgb, model.tile)
        idx0 = codec.tiles_to_indices(model, tiles)
        x = torch.from_numpy(tiles).float().div_(255.0)
        mask = torch.zeros(len(tiles), 1, model.tile, model.tile)
        for t in range(len(tiles)):
            r, c = divmod(t, tx)
            mask[t, :, : min(model.tile, h - r * model.tile), : min(model.tile, w - c * model.tile)] = 1.0
        snaps, t0 = {}, time.perf_counter()

        def on_round(r, best):
            if r in rounds:
                snaps[r] = (time.perf_counter() - t0, best.numpy().copy())

        refine.refine_tiles(model, x, torch.from_numpy(idx0), mask, rounds[-1], on_round)
        t1 = time.perf_counter()
        base = psnr_rgb(rgb, codec.indices_to_image(model, idx0, tx, ty)[:h, :w])
        # the codec's whole-picture check decodes twice when tiles paint their neighbours
        check = 2 * (time.perf_counter() - t1) if model.decode_halo > 0 and tx * ty > 1 else 0.0
        row = [base]
        for r in rounds:
            secs, idx = snaps[r]
            p = psnr_rgb(rgb, codec.indices_to_image(model, idx, tx, ty)[:h, :w])
            row += [max(p, base), secs + check]  # the codec keeps the start when the picture got worse
        rows.append(row)
        print(f"{f.stem}  {base:.2f} dB  " + "  ".join(f"r{r} {row[1 + 2 * i] - base:+.2f} dB {row[2 + 2 * i]:.1f} s"
                                              for i, r in enumerate(rounds)), flush=True)  # fmt: skip
    m = np.mean(rows, axis=0)
    print(f"mean over {len(rows)} images: effort 0 {m[0]:.3f} dB")
    for i, r in enumerate(rounds):
        print(f"  --effort {r}: {m[1 + 2 * i]:.3f} dB ({m[1 + 2 * i] - m[0]:+.3f} dB), +{m[2 + 2 * i]:.1f} s encode")


if __name__ == "__main__":
    main()
