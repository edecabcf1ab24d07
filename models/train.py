"""Training for a number of steps, of the tokenizer or the AR prior: data, checkpoint/resume,
DDP, export. The step, schedule, EMA, optimiser grouping and validation are ``models.loop``'s,
which the GPU shot (``models.shot``) runs on a wall-clock budget.

Exact resume: the batch of step ``s`` on rank ``r`` is drawn from a generator seeded by
``(seed, s, r)``, so it does not depend on how the run was split into segments, and the
checkpoint (model, EMA, AdamW moments, step) holds everything else. Checkpoints are
safetensors too (tensors + JSON metadata), written atomically, never pickled.

Distributed: under ``torchrun --nproc_per_node N`` each rank trains on its own per-step
samples (the role of a DistributedSampler), gradients are averaged by DDP, and only rank 0
logs, validates and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from tqdm import tqdm

from leechcodec.errors import require_cuda
from leechcodec.output import write_file

from . import io as model_io
from .errors import TrainError
from .loop import TrainStep, bf16_autocast, image_files, lr_at, mix_at, psnr, validate
from .prior import PRIOR_PRESETS, ARPrior, PriorConfig, save_prior, token_cache
from .vit import PRESETS, LeechTokenizer, TokenizerConfig, build, pca_init

CKPT_NAME = "checkpoint.safetensors"
PCA_INIT_CROPS = 64  # crops whose 8×8 patches initialise a linear skip path (models.vit.pca_init)


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]
    out: str
    preset: str = "small"
    model_config: dict | None = None  # TokenizerConfig fields; overrides ``preset``
    crop: int = 256
    batch: int = 8
    steps: int = 20_000
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    weight_decay: float = 0.05
    clip: float = 1.0
    ema: float = 0.999
    msssim_weight: float = 0.0
    loss: str = "l1"  # "l1" (the paper's) or "mse" (what PSNR measures)
    mix: float = 0.0  # fraction of tokens the decoder sees unquantized at step 0 ...
    mix_until: float = 0.5  # ... decaying linearly to 0 at this fraction of ``steps``
    stages: int = 1  # residual stages: > 1 trains with quantizer dropout over 1 … stages (models.vit.later_stages)
    freeze_encoder: bool = False  # train the decoder only: stage-1 tokens (and so the prior) stay as they are
    seed: int = 0
    ckpt_minutes: float = 5.0
    val_dir: str | None = None
    val_every: int = 250
    val_images: int = 8
    max_minutes: float | None = None
    stop_at: int | None = None  # stop (checkpointed) at this step although the schedule runs to ``steps``
    device: str = "auto"
    compile: bool = False
    prior: bool = False  # train the AR prior over the tokens of ``tokenizer`` instead
    tokenizer: str | None = None  # release weights whose tokens the prior models (default: bundled)
    extra: dict = field(default_factory=dict)

    def model_cfg(self):
        if self.prior:
            if self.model_config:
                return PriorConfig(**self.model_config)
            if self.preset not in PRIOR_PRESETS:
                raise TrainError(f"unknown prior preset {self.preset!r}; choose from {', '.join(PRIOR_PRESETS)}")
            return PRIOR_PRESETS[self.preset]
        if self.model_config:
            return TokenizerConfig.from_dict(self.model_config)
        if self.preset not in PRESETS:
            raise TrainError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        return PRESETS[self.preset]

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step``: linear warmup over ``warmup`` steps, then cosine from
        ``lr`` to ``min_lr`` at ``steps`` (``models.loop.lr_at``, which the shot runs on time)."""
        return lr_at(step, self.lr, self.min_lr, self.warmup, total=self.steps, unit=1)


# ----------------------------------------------------------------------------- data
def list_images(roots) -> list[Path]:
    files = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(image_files(root, recursive=True))
        else:
            raise TrainError(f"training data not found: {root}")
    if not files:
        raise TrainError(f"no .png/.jpg images under {', '.join(map(str, roots))}")
    return files


class ImageBank:
    """All training images decoded once into uint8 tensors (short side ≥ crop)."""

    def __init__(self, files: list[Path], crop: int, progress: bool = True):
        self.images: list[torch.Tensor] = []
        for f in tqdm(files, desc="loading images", disable=not progress, unit="img"):
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB")
                    if min(im.size) < crop:
                        s = crop / min(im.size)
                        im = im.resize((max(crop, round(im.width * s)), max(crop, round(im.height * s))), Image.BICUBIC)
                    self.images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
            except OSError as e:
                raise TrainError(f"cannot read training image {f}: {e}") from None
        self.crop = crop

    def batch(self, gen: torch.Generator, size: int) -> torch.Tensor:
        """Random crops with random horizontal flips, (size, 3, crop, crop) float in [0, 1]."""
        out = []
        c = self.crop
        for _ in range(size):
            img = self.images[int(torch.randint(len(self.images), (1,), generator=gen))]
            _, h, w = img.shape
            y = int(torch.randint(h - c + 1, (1,), generator=gen))
            x = int(torch.randint(w - c + 1, (1,), generator=gen))
            t = img[:, y : y + c, x : x + c]
            if bool(torch.randint(2, (1,), generator=gen)):
                t = t.flip(-1)
            out.append(t)
        return torch.stack(out).float() / 255.0


def load_val_crops(val_dir: str | None, n: int, size: int) -> torch.Tensor | None:
    """Centre crops of the first ``n`` images of ``val_dir``, uint8 (n, 3, size, size) (validation
    only, never trained on)."""
    if not val_dir:
        return None
    crops = []
    for f in list_images([val_dir])[:n]:
        with Image.open(f) as im:
            im = im.convert("RGB")
            left, top = (im.width - size) // 2, (im.height - size) // 2
            crops.append(np.asarray(im.crop((left, top, left + size, top + size))))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        require_cuda()  # exit 1, as every command
    return torch.device(name)


def save_checkpoint(path: Path, model, ema, opt, step: int, cfg: TrainConfig, stats: dict, tokenizer_id: bytes = b"") -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    meta = {
        "format": "leechcodec-train-checkpoint",
        "step": str(step),
        "train_config": json.dumps(dataclasses.asdict(cfg)),
        "model_config": json.dumps(model.cfg.to_dict()),
        "task": "prior" if cfg.prior else "tokenizer",
        "tokenizer_id": tokenizer_id.hex(),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "stats": json.dumps(stats),
    }
    data = safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, lambda f: f.write(data))


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise TrainError(f"cannot read checkpoint {path}: {e}") from None
    if meta.get("format") != "leechcodec-train-checkpoint":
        raise TrainError(f"{path} is not a leechcodec training checkpoint")
    return tensors, meta


def _part(tensors: dict, prefix: str) -> dict:
    """The state dict stored under ``prefix`` ("model." or "ema.") in a checkpoint's tensors."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_checkpoint(path: Path, model, ema, opt) -> tuple[int, dict]:
    tensors, meta = read_checkpoint(path)
    if json.loads(meta["model_config"]) != model.cfg.to_dict():
        raise TrainError(f"{path} was trained with a different model config")
    model.load_state_dict(_part(tensors, "model."))
    ema.load_state_dict(_part(tensors, "ema."))
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), json.loads(meta.get("stats", "{}"))


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike) -> bytes:
    """Write the EMA weights of a training checkpoint as a release model.

    Tokenizer: fp16 safetensors (returns the model id). Prior: integer safetensors for the
    tokenizer it was trained on (returns the prior id).
    """
    tensors, meta = read_checkpoint(Path(ckpt))
    if meta.get("task") == "prior":
        prior = ARPrior(PriorConfig(**json.loads(meta["model_config"])))
        prior.load_state_dict(_part(tensors, "ema."))
        return save_prior(prior, out, bytes.fromhex(meta["tokenizer_id"]))
    model = LeechTokenizer(TokenizerConfig.from_dict(json.loads(meta["model_config"])))
    model.load_state_dict(_part(tensors, "ema."))
    return model_io.save_weights(model, out)


# ----------------------------------------------------------------------------- loop
def _check_ranks_in_sync(model: torch.nn.Module, device: torch.device) -> None:
    """All ranks must hold the same weights after DDP training; a cheap checksum proves it."""
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).to(device)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise TrainError(f"ranks diverged: weight checksums {[float(g) for g in gathered]}")


class TokenizerTask:
    """Train the ViT tokenizer: ℓ1 (+ optional MS-SSIM) on random crops; metric PSNR."""

    metric = "psnr"
    tokenizer_id = b""

    def __init__(self, cfg: TrainConfig, mcfg: TokenizerConfig, device, main: bool, progress: bool):
        self.cfg, self.device = cfg, device
        self.bank = ImageBank(list_images(cfg.data), cfg.crop, progress=progress and main)
        self.val = load_val_crops(cfg.val_dir, cfg.val_images, mcfg.tile) if main else None
        self.msssim = None
        if cfg.msssim_weight > 0:
            from pytorch_msssim import ms_ssim  # an optional dependency (the [bench] extra), used by this option only

            self.msssim = ms_ssim

    def build(self, mcfg) -> torch.nn.Module:
        return build(mcfg)

    def fresh_init(self, model) -> None:
        if model.cfg.skip == "linear":  # the same crops on every rank, so DDP replicas start identical
            pca_init(model, self.bank.batch(torch.Generator().manual_seed(self.cfg.seed), PCA_INIT_CROPS).to(self.device))

    def batch(self, gen: torch.Generator, size: int) -> torch.Tensor:
        return self.bank.batch(gen, size)

    def loss(self, fwd, x: torch.Tensor, step: int, gen: torch.Generator) -> tuple[torch.Tensor, float]:
        cfg = self.cfg
        mix = mix_at(step, cfg.mix, max(1.0, cfg.mix_until * cfg.steps))
        y = fwd(x, mix=mix, generator=gen, stages=cfg.stages).float()
        loss = F.mse_loss(y, x) if cfg.loss == "mse" else F.l1_loss(y, x)
        if self.msssim is not None:
            loss = loss + cfg.msssim_weight * (1 - self.msssim(y.clamp(0, 1), x, data_range=1.0, size_average=True))
        return loss, float(psnr(y.detach(), x))

    def validate(self, ema) -> float | None:
        return None if self.val is None else validate(ema, self.val, 4)


class PriorTask:
    """Train the AR prior on cached token grids of ``cfg.tokenizer``; metric bits per token."""

    metric = "bits"

    def __init__(self, cfg: TrainConfig, mcfg, device, main: bool, progress: bool):
        self.cfg, self.device = cfg, device
        tok = model_io.load_weights(cfg.tokenizer, prior=None)
        self.tokenizer_id = bytes(tok.model_id)
        out = Path(cfg.out)
        if main:
            out.mkdir(parents=True, exist_ok=True)
        # under DDP rank 0 builds the cache while the others wait at the barrier, then read it
        if dist.is_initialized() and not main:
            dist.barrier()
        self.grids = token_cache(tok, list_images(cfg.data), out, "train", progress and main)
        if dist.is_initialized() and main:
            dist.barrier()
        self.val = None
        if main and cfg.val_dir:
            self.val = token_cache(tok, list_images([cfg.val_dir]), out, "val", progress)

    def build(self, mcfg) -> torch.nn.Module:
        return ARPrior(mcfg)

    def fresh_init(self, model) -> None:
        pass

    def batch(self, gen: torch.Generator, size: int) -> torch.Tensor:
        return self.grids[torch.randint(len(self.grids), (size,), generator=gen)].long()

    def loss(self, fwd, grids: torch.Tensor, step: int, gen: torch.Generator) -> tuple[torch.Tensor, float]:
        bits = fwd(grids)
        return bits, float(bits.detach())

    @torch.no_grad()
    def validate(self, ema) -> float | None:
        if self.val is None:
            return None
        return sum(float(ema(self.val[i : i + 8].long().to(self.device))) * len(self.val[i : i + 8]) for i in range(0, len(self.val), 8)) / len(self.val)


def train(cfg: TrainConfig, resume: bool = False, init_weights: str | None = None, progress: bool = True) -> dict:
    """Train (or resume) a tokenizer, or with ``cfg.prior`` the AR prior; returns the last logged stats.

    Writes ``out/checkpoint.safetensors`` every ``ckpt_minutes`` and at the end,
    and appends one JSON line per log interval to ``out/log.jsonl``.
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = pick_device(cfg.device)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    main = rank == 0
    out = Path(cfg.out)
    ckpt_path = out / CKPT_NAME

    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_cfg()
    if main and not resume and ckpt_path.exists():
        raise TrainError(f"{ckpt_path} exists: pass --resume to continue it or choose another --out")
    if resume and not ckpt_path.is_file():
        raise TrainError(f"--resume: no checkpoint at {ckpt_path}")
    task = (PriorTask if cfg.prior else TokenizerTask)(cfg, mcfg, device, main, progress)
    model = task.build(mcfg).to(device)
    if init_weights and cfg.prior:
        # a prior starts from the EMA weights of another prior run's checkpoint (e.g. the
        # shipped prior's run, continued on the tokens of a retrained tokenizer)
        tensors, meta = read_checkpoint(Path(init_weights))
        if meta.get("task") != "prior":
            raise TrainError(f"--init with --prior takes the checkpoint of a `train --prior` run; {init_weights} is not one")
        if json.loads(meta["model_config"]) != mcfg.to_dict():
            raise TrainError(f"--init checkpoint {init_weights} was trained with a different prior config")
        model.load_state_dict(_part(tensors, "ema."))
    elif init_weights:
        src = model_io.load_weights(init_weights)
        if src.cfg != mcfg:
            raise TrainError(f"--init weights are a {src.cfg.name!r} model, not {mcfg.name!r}")
        model.load_state_dict(src.state_dict())
    elif not resume:
        task.fresh_init(model)
    if cfg.freeze_encoder and not cfg.prior:
        model.encoder.requires_grad_(False)
    ema = task.build(mcfg).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = model.configure_optimizers(cfg.weight_decay, cfg.lr, fused=device.type == "cuda")
    step, stats = 0, {}
    if resume:
        step, stats = load_checkpoint(ckpt_path, model, ema, opt)

    fwd = model
    if distributed:
        fwd = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        fwd = torch.compile(fwd)
    autocast = bf16_autocast(device, enabled=not cfg.prior)  # the prior trains in float32
    update = TrainStep(model, ema, opt, cfg.clip, cfg.ema)
    metric = task.metric

    t_start = time.monotonic()
    t_ckpt = t_start
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log_f = open(out / "log.jsonl", "a") if main else None
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and main), unit="step")
    seen, t_log = 0, time.monotonic()
    loss_acc, metric_acc, n_acc = 0.0, 0.0, 0

    def checkpoint():
        save_checkpoint(ckpt_path, model, ema, opt, step, cfg, stats, task.tokenizer_id)

    model.train()
    try:
        while step < cfg.steps:
            gen = torch.Generator().manual_seed(((cfg.seed * 1_000_003 + step) * 65_537 + rank) % (2**63))
            x = task.batch(gen, cfg.batch).to(device, non_blocking=True)
            lr = cfg.lr_at(step)
            with autocast:
                loss, value = task.loss(fwd, x, step, gen)
            update(loss, lr, step)
            step += 1
            seen += cfg.batch * world
            loss_acc += float(loss.detach())
            metric_acc += value
            n_acc += 1
            bar.update(1)
            now = time.monotonic()
            if main and (step % 25 == 0 or step == cfg.steps):
                stats = {
                    "step": step,
                    "loss": loss_acc / n_acc,
                    metric: metric_acc / n_acc,
                    "lr": lr,
                    "img_per_s": seen / max(1e-9, now - t_log),
                    "elapsed_s": now - t_start,
                }
                if step % cfg.val_every == 0 or step == cfg.steps:
                    v = task.validate(ema)
                    if v is not None:
                        stats[f"val_{metric}"] = v
                bar.set_postfix(loss=f"{stats['loss']:.4f}", **{metric: f"{stats[metric]:.3f}"}, img_s=f"{stats['img_per_s']:.1f}")
                log_f.write(json.dumps(stats) + "\n")
                log_f.flush()
                seen, t_log, loss_acc, metric_acc, n_acc = 0, now, 0.0, 0.0, 0
            stop = (cfg.max_minutes is not None and now - t_start > cfg.max_minutes * 60) or step == cfg.stop_at
            if main and now - t_ckpt > cfg.ckpt_minutes * 60:
                checkpoint()
                t_ckpt = now
            if distributed:
                flag = torch.tensor([int(stop)], device=device)
                dist.all_reduce(flag)
                stop = bool(flag.item())
            if stop:
                break
        if distributed:
            _check_ranks_in_sync(model, device)
        if main:
            checkpoint()
    finally:
        bar.close()
        if log_f:
            log_f.close()
        if distributed:
            dist.barrier()
    return {"step": step, **stats}
