"""Residual stages on a set of pictures: the gains, PSNR per stage count, and bits per token of each stage.

    python benchmarks/stages.py PHOTO... [--weights W.safetensors] [--stages 4] [--lambdas 0,0.005]
        [--json out.json]

For each picture: the encoder's unit latents, then stage by stage the mean of ``r_k · c_k``
(the least-squares gain of stage k's unit codeword for its residual ``r_k``: what
``stage_gain``/``stage_decay`` in models/config.py were fitted to) and the mean squared
residual left. Then, for K = 1 … --stages, the fixed coder's bpp and PSNR, and the ar coder's
at each λ: bpp, PSNR, and the measured bits of each stage's tokens (the stream's size with
K stages minus with K − 1, per token; 17.585 is the fixed coder's). Networks on ONNX Runtime
(or torch, for weights without graphs), float32.
"""

from __future__ import annotations

import argparse
import json
import math
import platform

import numpy as np
from PIL import Image

import leechcodec
from leechcodec import codec, lattice, stages


def psnr(a: np.ndarray, b) -> float:
    mse = ((a.astype(np.float64) - np.asarray(b, dtype=np.float64)) ** 2).mean()
    return 10 * math.log10(255**2 / mse)


def residual_gains(model, images, k_max: int) -> list[dict]:
    """Per stage: mean r·c (the best fixed gain), mean |r|, mean |z − ẑ|² after the stage."""
    zs = []
    for im in images:
        tiles = codec.tile_image(np.asarray(im), model.tile)
        lat: list = []
        codec.tiles_to_indices(model, tiles, latents=lat)
        zs.append(np.concatenate(lat).reshape(-1, lattice.DIM))
    z = np.concatenate(zs)
    gain = stages.gains(model, k_max)
    rec = np.zeros_like(z)
    out = []
    for k in range(k_max):
        r = z - rec
        c = lattice.vectors(lattice.nearest(r)).astype(np.float32)
        rc = (r * c).sum(1)
        rec = rec + gain[k] * c
        out.append({"stage": k + 1, "mean_r_dot_c": float(rc.mean()), "mean_norm_r": float(np.linalg.norm(r, axis=1).mean()),
                    "gain_used": float(gain[k]), "mse_after": float(((z - rec) ** 2).sum(1).mean())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--stages", type=int, default=4)
    ap.add_argument("--lambdas", default="0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    model = leechcodec.load_model(args.weights) if args.weights else leechcodec.load_model()
    images = [Image.open(p).convert("RGB") for p in args.photos]
    arrays = [np.asarray(im) for im in images]
    pixels = [a.shape[0] * a.shape[1] for a in arrays]
    tokens = [sum(r * c for r, c in leechcodec.container.token_extents(a.shape[1], a.shape[0], 256, 8)) for a in arrays]
    report = {"weights": args.weights or "bundled", "model_id": bytes(model.model_id).hex(), "pictures": len(images),
              "cpu": platform.processor() or platform.machine(), "gains": residual_gains(model, images, args.stages),
              "fixed": [], "ar": []}
    for g in report["gains"]:
        print(f"stage {g['stage']}: mean r.c {g['mean_r_dot_c']:.3f} (gain used {g['gain_used']:.3f}), "
              f"mean |r| {g['mean_norm_r']:.3f}, |z - z^|^2 after {g['mse_after']:.4f}")
    for k in range(1, args.stages + 1):
        sizes, ps = [], []
        for im, a in zip(images, arrays):
            data = leechcodec.encode(im, model, coder="fixed", stages=k, precision="fp32")
            sizes.append(len(data))
            ps.append(psnr(a, leechcodec.decode(data, model, precision="fp32")))
        row = {"stages": k, "bpp": float(np.mean([8 * s / p for s, p in zip(sizes, pixels)])), "psnr": float(np.mean(ps))}
        report["fixed"].append(row)
        print(f"fixed, {k} stages: {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB")
    if model.prior is not None:
        for lam in (float(x) for x in args.lambdas.split(",")):
            prev = None
            for k in range(1, args.stages + 1):
                sizes, ps, used = [], [], []
                for im, a in zip(images, arrays):
                    st: dict = {}
                    data = leechcodec.encode(im, model, coder="ar", stages=k, lam=lam, stats=st, precision="fp32")
                    sizes.append(len(data))
                    used.append(st["stages"])
                    ps.append(psnr(a, leechcodec.decode(data, model, precision="fp32")))
                row = {"stages": k, "lambda": lam, "bpp": float(np.mean([8 * s / p for s, p in zip(sizes, pixels)])),
                       "psnr": float(np.mean(ps)), "stages_used": used}
                if prev is not None:  # what stage k added, per stored token
                    row["stage_bits_per_token"] = float(8 * (sum(sizes) - sum(prev)) / sum(tokens))
                prev = sizes
                report["ar"].append(row)
                extra = f", stage {k}: {row['stage_bits_per_token']:.3f} bits/token" if "stage_bits_per_token" in row else ""
                print(f"ar, lambda {lam:g}, {k} stages: {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB{extra}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
