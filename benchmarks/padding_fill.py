"""Format version 2's padding rule, chosen by measurement: PSNR when the padding tokens are the
encoder's own (version 1), copies of the last stored row/column ("clamp", the rule) or mirrored.

    python benchmarks/padding_fill.py     # 16 training photos (seed 0) and a 1276x850 crop

Uses ../shared/data/train (never Kodak, which has no padding); float32 reference arithmetic.
"""
import glob
from pathlib import Path
import numpy as np, torch
from PIL import Image
from leechcodec.models.io import load_weights
from leechcodec.codec import Tiles, indices_to_image, tiles_to_indices, token_grid

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
torch.set_num_threads(2)
m = load_weights()
fs = sorted(glob.glob(str(TRAIN / '*')))
rng = np.random.default_rng(0)
pick = [fs[i] for i in rng.choice(len(fs), 16, replace=False)]
imgs = [Image.open(f).convert("RGB") for f in pick]
big = Image.open(TRAIN / 'imagenet_n03843555_oil_filter.jpg').convert("RGB")
imgs.append(big.crop((280, 260, 280 + 1276, 260 + 850)))
g = m.tile // m.patch
def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2); return 10 * np.log10(255**2 / mse)
def fill(grid, H8, W8, how):
    G = grid.clone()
    R, C = G.shape
    rr = torch.arange(R); cc = torch.arange(C)
    if how == "clamp":
        ri = rr.clamp(max=H8 - 1); ci = cc.clamp(max=W8 - 1)
    elif how == "mirror":
        ri = torch.where(rr < H8, rr, (2 * (H8 - 1) - rr).clamp(min=0))
        ci = torch.where(cc < W8, cc, (2 * (W8 - 1) - cc).clamp(min=0))
    return G[ri][:, ci]
res = {k: [] for k in ("orig", "clamp", "mirror")}
extra = []
for im in imgs:
    w, h = im.size
    tiles = Tiles(im, m.tile)
    idx = tiles_to_indices(m, tiles, "cpu", False, "fp32")
    tx, ty = tiles.tx, tiles.ty
    H8, W8 = -(-h // 8), -(-w // 8)
    extra.append(tx * ty * g * g / (H8 * W8))
    grid = token_grid(torch.from_numpy(idx), tx, ty)
    ref = np.asarray(im)
    for how in res:
        G = grid if how == "orig" else fill(grid, H8, W8, how)
        per_tile = G.reshape(ty, g, tx, g).permute(0, 2, 1, 3).reshape(tx * ty, g * g).numpy()
        out = indices_to_image(m, per_tile, tx, ty, "cpu", False, "fp32", size=(w, h))
        res[how].append(psnr(ref, out))
    print(im.size, " ".join(f"{k} {v[-1]:.3f}" for k, v in res.items()), f"tokens x{extra[-1]:.2f}", flush=True)
for k, v in res.items():
    print(k, f"{np.mean(v):.4f}", f"delta {np.mean(v) - np.mean(res['orig']):+.4f}")
print("mean token overhead of padding", np.mean(extra))
