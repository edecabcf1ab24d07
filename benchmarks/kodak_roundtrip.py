"""Kodak round trip with the bundled (or given) model: sizes, real bytes, PSNR, MS-SSIM, time.

    python benchmarks/kodak_roundtrip.py --kodak-dir ../shared/data/kodak [--model PATH] [--coder ar|fixed]
        [--precision auto|fp32|bf16] [--out DIR]

Runs the same `leechcodec.encode`/`leechcodec.decode` the CLI runs, writes the .lq files
and decoded PNGs under --out, checks each decoded PNG has the original size, and prints a
per-image table and the averages (PSNR on 8-bit RGB per image, then averaged), with the grid
error ratios of ``kodak_eval.metrics.grid_ratios`` (8-px lines / 256-px tile lines; 1.0: no grid).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import leechcodec
from leechcodec.kodak_eval.metrics import grid_ratios, ms_ssim_rgb, psnr_rgb
from leechcodec.torch_nets import native_bf16
from leechcodec.models.io import load_weights


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak-dir", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="out/kodak-roundtrip")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--coder", default="auto", choices=["auto", *leechcodec.CODERS])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="the networks' arithmetic (encode/decode --precision)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_weights(args.model)
    leechcodec.decode(leechcodec.encode(Image.new("RGB", (8, 8)), model), model)  # warm-up
    print(f"model {model.cfg.name} id {model.model_id.hex()}, coder {args.coder}, precision {args.precision} "
          f"(bf16 native: {native_bf16()}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    files = sorted(Path(args.kodak_dir).glob("kodim*.png"))[: args.images]
    for f in files:
        img = Image.open(f).convert("RGB")
        t0 = time.perf_counter()
        data = leechcodec.encode(img, model, coder=args.coder, precision=args.precision)
        t1 = time.perf_counter()
        rec = leechcodec.decode(data, model, precision=args.precision)
        t2 = time.perf_counter()
        (out / f"{f.stem}.lq").write_bytes(data)
        rec.save(out / f"{f.stem}.png")
        back = Image.open(out / f"{f.stem}.png")
        if back.size != img.size:
            raise SystemExit(f"{f.name}: decoded size {back.size} != {img.size}")
        a, b = np.asarray(img), np.asarray(back.convert("RGB"))
        bpp = 8 * (out / f"{f.stem}.lq").stat().st_size / (img.width * img.height)
        ms = ms_ssim_rgb(a, b)
        g8, gt = grid_ratios(a, b)
        rows.append((f.stem, bpp, psnr_rgb(a, b), ms, t1 - t0, t2 - t1, g8, gt))
        print(f"{f.stem}  {img.width}x{img.height}  {bpp:.4f} bpp  {rows[-1][2]:6.2f} dB  MS-SSIM {ms:.4f}  "
              f"enc {t1 - t0:5.2f} s  dec {t2 - t1:5.2f} s  grid {g8:.3f} / {gt:.3f}")  # fmt: skip
    m = np.nanmean([r[1:] for r in rows], axis=0)
    print(f"mean over {len(rows)} images: {m[0]:.4f} bpp (max {max(r[1] for r in rows):.4f}), PSNR {m[1]:.2f} dB, "
          f"MS-SSIM {m[2]:.4f}, encode {m[3]:.2f} s, decode {m[4]:.2f} s, encode+decode {m[3] + m[4]:.2f} s, "
          f"grid error ratio {m[5]:.3f} (8-px lines) / {m[6]:.3f} (tile lines)")  # fmt: skip


if __name__ == "__main__":
    main()
