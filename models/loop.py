"""The training loop's parts, written once: ``models.train`` (a number of steps, checkpoints,
resume, DDP) and the GPU shot ``models.shot`` (a wall-clock budget on a lent machine) run the
same step, schedule, EMA, optimiser grouping and validation::

    batch ─ autocast (bf16 on CUDA) → model(x, …) (``LeechTokenizer.forward``) → loss
      └─ ``TrainStep``: zero_grad → backward → clip → AdamW (``adamw``) → EMA of the weights

The learning rate follows ``lr_at`` and the unquantized share of tokens ``mix_at``, on steps
(``train``) or on the fraction of the time budget (the shot). Only torch is imported: this
module is on the shot's import path (``models.shot``).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # training and validation images, and a shot's pack


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The images of ``folder`` (by suffix, any case), sorted; ``recursive``: its subfolders' too."""
    paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in [0, 1] after 8-bit rounding, averaged per image, as a 0-d tensor
    on their device (``float`` of it waits for a GPU)."""
    xq = (x.float().clamp(0, 1) * 255).round()
    yq = (y.float().clamp(0, 1) * 255).round()
    mse = ((xq - yq) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(255.0**2 / mse)).mean()


def lr_at(pos: float, peak: float, floor: float, warmup: float, total: float = 1.0, unit: float = 1e-3) -> float:
    """Learning rate at ``pos``: linear warmup to ``peak`` over ``warmup``, then cosine to ``floor``
    at ``total``.

    One unit for all four: ``train`` counts steps (``unit`` 1), the shot fractions of its time
    budget (``total`` 1, ``unit`` 1e-3). The warmup runs one ``unit`` ahead, so that the first
    step learns and the last one before ``warmup`` reaches ``peak``.
    """
    if pos < warmup:
        return peak * min(pos + unit, warmup) / warmup
    t = min(1.0, (pos - warmup) / max(unit, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))


def mix_at(pos: float, mix: float, until: float) -> float:
    """Share of tokens the decoder sees unquantized at ``pos``: ``mix``, falling linearly to 0 at
    ``until`` (in ``pos``'s unit; 0: none at all)."""
    return mix * max(0.0, 1.0 - pos / until) if until > 0 else 0.0


def adamw(model: torch.nn.Module, weight_decay: float, lr: float, betas=(0.9, 0.95), fused: bool = False):
    """AdamW over the trainable parameters of ``model``: weight decay on the matrices and kernels
    (ndim ≥ 2), none on biases, norms and other vectors. ``fused``: one kernel for all (CUDA).
    What ``configure_optimizers`` of ``LeechTokenizer`` and ``ARPrior`` return."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]  # fmt: skip
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))


def bf16_autocast(device: torch.device, enabled: bool = True):
    """The training forward pass's autocast: bf16 on CUDA (where ``enabled``), none elsewhere."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def no_mark(phase: str) -> None:
    """The default of a ``mark(phase)`` hook (``models.shot.Profiler`` times the phases)."""


class TrainStep:
    """What follows a step's forward pass: the learning rate set, the gradient of ``loss``
    clipped to norm ``clip``, an optimiser step, then the EMA of the weights with decay
    ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` steps (a short memory at the start)."""

    def __init__(self, model: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, clip: float,
                 ema_decay: float):  # fmt: skip
        self.opt, self.clip, self.decay = opt, clip, ema_decay
        self.params, self.ema_params = list(model.parameters()), list(ema.parameters())

    def __call__(self, loss: torch.Tensor, lr: float, step: int, mark=no_mark) -> None:
        """Update from ``loss`` of step ``step`` (counted from 0); ``mark`` as in ``LeechTokenizer.forward``."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        n = step + 1
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.params, 1.0 - min(self.decay, (1 + n) / (10 + n)))
        mark("optimizer")


@torch.no_grad()
def validate(model: torch.nn.Module, images: torch.Tensor, batch: int, autocast=None, method: str = "auto") -> float:
    """Mean PSNR (dB) of ``model``'s quantized reconstruction of ``images``: uint8 (N, 3, H, W)
    anywhere, ``batch`` at a time on the model's device, under ``autocast`` if given; ``method``:
    the nearest-codeword search."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device).float().div(255.0)
        with autocast or contextlib.nullcontext():
            y = model(x, method=method)
        total += float(psnr(y.float(), x)) * len(x)
    return total / max(1, len(images))
