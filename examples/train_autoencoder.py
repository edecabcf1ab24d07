"""Train a small convolutional autoencoder with Λ24-SQ as its bottleneck, on a CPU, in minutes.

    python examples/train_autoencoder.py PICTURES_DIR [--pictures 300] [--steps 4000]

Each 8×8 patch of a 64×64 crop becomes one token, an index into the 196,560 codewords of the
Leech lattice's first shell (17.585 bits: 0.2748 bits per pixel). The encoder's 64 channels
are projected to 24 and back by the quantizer itself (``dim=64``), the gradient goes straight
through it, and there is no codebook to learn and no auxiliary loss. Prints the held-out PSNR
and how much of the codebook the tokens use. Needs torch (pip install 'leechcodec[train]').
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from leechcodec import LeechQuantizer

CROP = 64


def load_pictures(folder: Path, count: int, seed: int) -> torch.Tensor:
    """``count`` pictures of ``folder``, each resized to 128 px on its short side and centre-cropped
    to 128×128: (count, 3, 128, 128) uint8."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if len(files) < 2:
        raise SystemExit(f"{folder}: no pictures found")
    files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))[:count]]
    out = []
    for f in files:
        im = Image.open(f).convert("RGB")
        s = 128 / min(im.size)
        im = im.resize((max(128, round(im.width * s)), max(128, round(im.height * s))), Image.Resampling.LANCZOS)
        left, top = (im.width - 128) // 2, (im.height - 128) // 2
        out.append(np.asarray(im.crop((left, top, left + 128, top + 128))).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def crops(pictures: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random 64×64 crops in [0, 1]."""
    i = torch.randint(len(pictures), (n,), generator=gen)
    y, x = torch.randint(128 - CROP + 1, (2, n), generator=gen)
    return torch.stack([pictures[a, :, b : b + CROP, c : c + CROP] for a, b, c in zip(i, y, x)]).float() / 255


class AutoEncoder(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        act = nn.GELU
        self.encoder = nn.Sequential(  # three stride-2 steps: one 64-channel vector per 8×8 patch
            nn.Conv2d(3, width, 3, 2, 1), act(), nn.Conv2d(width, 2 * width, 3, 2, 1), act(),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), act(), nn.Conv2d(2 * width, width, 1),
            nn.BatchNorm2d(width))  # latents centred across tokens: their directions spread over the sphere
        self.quantizer = LeechQuantizer(dim=width, channel_first=True)  # 64 → 24 → Λ24 → 64
        self.decoder = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, 1, 1), act(), nn.ConvTranspose2d(2 * width, 2 * width, 4, 2, 1), act(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), act(), nn.ConvTranspose2d(width, width, 4, 2, 1), act(),
            nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quantized, indices = self.quantizer(self.encoder(x))  # (B, 64, h, w) and int64 (B, h, w)
        return self.decoder(quantized), indices


def evaluate(model: AutoEncoder, held_out: torch.Tensor) -> tuple[float, torch.Tensor]:
    """PSNR (dB) of the 8-bit reconstructions of ``held_out``, and their token indices."""
    with torch.no_grad():
        out, idx = model.eval()(held_out)
    model.train()
    mse = ((out.clamp(0, 1) * 255).round() - held_out * 255).pow(2).mean((1, 2, 3))
    return float((10 * torch.log10(255**2 / mse)).mean()), idx


def usage(idx: torch.Tensor) -> str:
    counts = torch.bincount(idx.flatten(), minlength=LeechQuantizer.codebook_size).float()
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * p.log2()).sum())
    return (f"{int((counts > 0).sum()):,} distinct codewords of {LeechQuantizer.codebook_size:,} "
            f"in {idx.numel():,} tokens, index entropy {entropy:.2f} bits")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pictures_dir", type=Path)
    ap.add_argument("--pictures", type=int, default=300, help="pictures to train on (a few are held out)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    pictures = load_pictures(args.pictures_dir, args.pictures, args.seed)
    held_out = pictures[-32:].float()[:, :, 32:96, 32:96] / 255  # the centres of 32 pictures not trained on
    pictures = pictures[:-32]
    gen = torch.Generator().manual_seed(args.seed)
    model = AutoEncoder()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.steps, pct_start=0.05)
    print(f"{len(pictures)} training pictures, {len(held_out)} held out; "
          f"{LeechQuantizer.bits_per_index / 64:.4f} bpp ({LeechQuantizer.bits_per_index:.3f} bits per 8×8 patch)")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x = crops(pictures, args.batch, gen)
        out, _ = model(x)
        loss = (out - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % (args.steps // 5) == 0 or step == args.steps:
            psnr, idx = evaluate(model, held_out)
            print(f"step {step:5d}  {time.perf_counter() - start:6.0f} s  held-out PSNR {psnr:.2f} dB  {usage(idx)}",
                  flush=True)


if __name__ == "__main__":
    main()
