"""GPU shot: train a tokenizer for a wall-clock budget on a borrowed GPU, results always in OUT.

A shot is one command on a bare machine that is lent for minutes (README, "Training"):

    pack (JPEG crops) ─decode once→ uint8 (N, 3, 256, 256) on the GPU
      └─ each step: random crop (256 or 192), dihedral flip, half the steps coded as 2×2
         independent sub-tiles (the decoder learns to join tiles) ─→ tokenizer (bf16) ─→ ℓ1

* The schedule runs on wall-clock time (warmup, then cosine to the end of the budget), since
  the step rate is not known before the machine is; the first ~20 s measure it.
* The nearest-codeword search is timed both ways on the device (structured exact search,
  float32 matmul over all 196,560 codewords); training uses the faster one.
* Every ``save_every`` seconds and at the end the EMA weights go to OUT as fp16 safetensors,
  split into parts under the size limit of what comes back, with ``log.jsonl`` and
  ``summary.json``; a kill at any moment loses at most that interval.

Only torch, numpy, pillow and safetensors are imported on this path (the machine has no
constriction, platformdirs or pytorch-msssim), and no API newer than torch 2.11.
``join_parts`` (here) puts the weights back together on the way home.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from leechcodec import lattice
from leechcodec.output import write_file
from leechcodec.quantizer import normalize

from . import io as model_io
from .train import psnr, psnr_tensor
from .vit import PRESETS, build, count_params, later_stages, pca_init

PART_BYTES = 15 * 2**20  # what comes back is at most 16 MiB a file
MAX_TRAVEL = 64 * 2**20  # what travels to the device: tracked + untracked-not-ignored + carried
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
WEIGHTS_NAME = "shot.safetensors"


class ShotError(Exception):
    """A shot cannot start or its outputs cannot be put back together."""


# ----------------------------------------------------------------------------- data
def load_pack(folder: str | os.PathLike, tile: int = 256, workers: int = 8) -> torch.Tensor:
    """Every image of ``folder`` (sorted) decoded once: uint8 (N, 3, tile, tile), centre crops."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ShotError(f"no images in the pack {folder}")

    def read(p: Path) -> np.ndarray:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            if w < tile or h < tile:
                raise ShotError(f"{p} is {w}×{h}, smaller than the {tile}px tile")
            l, t = (w - tile) // 2, (h - tile) // 2
            return np.asarray(im.crop((l, t, l + tile, t + tile))).transpose(2, 0, 1)

    with ThreadPoolExecutor(workers) as ex:
        arrays = list(ex.map(read, files))
    return torch.from_numpy(np.stack(arrays))


def sample_batch(pack: torch.Tensor, gen: torch.Generator, batch: int, crop: int) -> torch.Tensor:
    """Random ``crop``-px crops with random flips and transposes, float in [0, 1], on pack's device."""
    n, _, size, _ = pack.shape
    dev = pack.device
    idx = torch.randint(n, (batch,), generator=gen, device=dev)
    oy = torch.randint(size - crop + 1, (batch,), generator=gen, device=dev)
    ox = torch.randint(size - crop + 1, (batch,), generator=gen, device=dev)
    r = torch.arange(crop, device=dev)
    rows = (oy[:, None] + r)[:, None, :, None]  # (B, 1, c, 1)
    cols = (ox[:, None] + r)[:, None, None, :]  # (B, 1, 1, c)
    x = pack[idx[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None], rows, cols]  # (B, 3, c, c)
    flips = torch.rand(batch, 3, generator=gen, device=dev) < 0.5  # (B, 3): h-flip, v-flip, transpose
    x = torch.where(flips[:, 0, None, None, None], x.flip(-1), x)
    x = torch.where(flips[:, 1, None, None, None], x.flip(-2), x)
    x = torch.where(flips[:, 2, None, None, None], x.transpose(-1, -2), x)
    return x.float().div_(255.0)


# ----------------------------------------------------------------------------- search
SEARCHES = ("structured", "tiled", "tiled16")  # every one exact (leechcodec.lattice); the shot uses the fastest
def time_search(device: torch.device, n: int = 65_536, reps: int = 3) -> dict:
    """Seconds per call of each exact nearest search on ``n`` random unit vectors, and whether they agree."""
    z = normalize(torch.randn(n, lattice.DIM, device=device, generator=torch.Generator(device).manual_seed(0)))
    out, idx = {}, {}
    for method in SEARCHES:
        idx[method] = lattice.nearest(z, method)  # warm-up: tables, kernels
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            lattice.nearest(z, method)
        _sync(device)
        out[f"{method}_ms"] = 1000 * (time.perf_counter() - t) / reps
    out["tokens"] = n
    ref = lattice.nearest_brute(z[:4096]) if device.type == "cpu" else lattice.nearest_brute(z)
    out["agree"] = min(float((idx[m][: len(ref)] == ref).float().mean()) for m in SEARCHES)  # with float64
    out["use"] = min(SEARCHES, key=lambda m: out[f"{m}_ms"])
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def quantize_ste(z: torch.Tensor, method: str) -> torch.Tensor:
    """Unit latents (..., 24) → nearest codewords, straight-through gradient."""
    with torch.no_grad():
        idx = lattice.nearest(z.detach().float().reshape(-1, lattice.DIM), method)  # float64-exact under autocast
        q = lattice.vectors(idx, check=False).view(z.shape).to(z.dtype)  # in range by construction: no device wait
    return z + (q - z).detach()


def _no_mark(phase: str) -> None:
    pass


def forward(model, x: torch.Tensor, split: bool, method: str, mix: float = 0.0, gen: torch.Generator | None = None,
            mark=_no_mark, stages: int = 1) -> torch.Tensor:  # fmt: skip
    """Training path. ``split``: the encoder sees the four quarter tiles of ``x`` on their own
    (as the codec encodes 256-px tiles) and the decoder the joined token grid. ``mark(phase)``
    is called at the end of each phase (``Profiler``). ``stages`` > 1: quantizer dropout over
    residual stages (``models.vit.later_stages``)."""
    B, _, H, W = x.shape
    if split:
        h, w = H // 2, W // 2
        xs = x.view(B, 3, 2, h, 2, w).permute(0, 2, 4, 1, 3, 5).reshape(4 * B, 3, h, w)
        z = model.analysis(xs)  # (4B, h/p, w/p, 24)
        gh, gw = z.shape[1:3]
        z = z.view(B, 2, 2, gh, gw, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * gh, 2 * gw, -1)
    else:
        z = model.analysis(x)
    z = normalize(z.float())
    mark("encoder")
    q = quantize_ste(z, method)
    if stages > 1:
        q = q + later_stages(z.detach(), q.detach(), stages, model.cfg, gen)
    if mix > 0:
        keep = torch.rand(z.shape[:-1] + (1,), generator=gen, device=z.device) < mix
        q = torch.where(keep, z, q)
    mark("search")
    y = model.synthesis(q)
    mark("decoder")
    return y


PHASES = ("data", "encoder", "search", "decoder", "backward", "optimizer")


class Profiler:
    """Wall time of each phase of the training step, the device synchronised at each boundary
    (so the phases add up to a slower step than an unprofiled one: ``crops_per_s`` of the
    profile is a floor; the ``rate`` event of the shot measures the real one)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.ms: dict[str, list[float]] = {k: [] for k in PHASES}
        self.t = 0.0

    def start(self) -> None:
        _sync(self.device)
        self.t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.ms[phase].append(1000 * (now - self.t))
        self.t = now

    def summary(self, batch: int) -> dict:
        med = {k: round(float(np.median(v)), 2) for k, v in self.ms.items() if v}
        step = sum(med.values())
        return {"steps": len(self.ms["data"]), "ms": med, "step_ms": round(step, 2),
                "share": {k: round(v / step, 3) for k, v in med.items()}, "crops_per_s": round(1000 * batch / step, 1)}  # fmt: skip


def lr_at(frac: float, peak: float, floor: float, warmup: float) -> float:
    """Learning rate at ``frac`` ∈ [0, 1] of the time budget: linear warmup, then cosine to ``floor``."""
    if frac < warmup:
        return peak * max(frac, 1e-3) / warmup
    t = min(1.0, (frac - warmup) / max(1e-9, 1.0 - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- outputs
def save_parts(model, out: Path, scratch: Path, part_bytes: int = PART_BYTES) -> dict:
    """Write ``model`` as release weights split into parts in ``out``, beside the previous ones.

    Two generations alternate (``shot.safetensors.a.partK`` and ``.b.partK``): the new parts
    never overwrite the ones the current summary.json names, so a kill at any moment leaves
    that summary and its parts intact. ``commit_summary`` then switches summary.json to the new
    generation with one rename and only afterwards removes the old parts. The returned record
    (the SHA-256 of the whole file) goes into summary.json, which ``join_parts`` checks.
    """
    full = scratch / WEIGHTS_NAME
    mid = model_io.save_weights(model, full)
    data = full.read_bytes()
    try:
        current = json.loads((out / "summary.json").read_text())["weights"]["parts"]
    except (OSError, ValueError, KeyError, TypeError):
        current = []
    slot = "b" if any(n.startswith(f"{WEIGHTS_NAME}.a.") for n in current) else "a"
    parts = [data[i : i + part_bytes] for i in range(0, len(data), part_bytes)]
    names = [f"{WEIGHTS_NAME}.{slot}.part{k}" for k in range(len(parts))]
    for name, blob in zip(names, parts):
        write_file(out / name, lambda f, b=blob: f.write(b))
    return {
        "model_id": mid.hex(),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "parts": names,
    }


def commit_summary(out: Path, summary: dict) -> None:
    """Make ``summary`` (whose ``weights`` came from ``save_parts``) the shot's result: one
    rename of summary.json, then the parts of other generations are removed."""
    write_file(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=1).encode()))
    keep = set(summary["weights"]["parts"])
    for p in out.glob(f"{WEIGHTS_NAME}.*part*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)


def join_parts(folder: str | os.PathLike, dest: str | os.PathLike, decode_halo: int | None = None) -> dict:
    """Put the weights of a shot's OUT folder back together into ``dest``; returns summary.json.

    ``decode_halo``: rewrite the config's ``decode_halo`` (for weights trained before their
    preset had one); the model id in the returned summary is then the new one.

    Raises:
        ShotError: no summary, a missing part, or bytes that do not match the recorded SHA-256.
    """
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        rec = summary["weights"]
        data = b"".join((folder / name).read_bytes() for name in rec["parts"])
    except (OSError, ValueError, KeyError) as e:
        raise ShotError(f"{folder} holds no complete shot output: {e}") from None
    if hashlib.sha256(data).hexdigest() != rec["sha256"]:
        raise ShotError(f"the weight parts in {folder} do not match summary.json (a save was cut off)")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_file(dest, lambda f: f.write(data))
    if decode_halo is not None:
        import dataclasses

        model = model_io.load_weights(dest, prior=None)
        model.cfg = dataclasses.replace(model.cfg, decode_halo=decode_halo)
        summary["weights"]["model_id"] = model_io.save_weights(model, dest).hex()
    return summary


def travel_bytes(repo: str | os.PathLike, carry: list[str]) -> dict:
    """Bytes that would travel to the device: git-tracked files present in the working tree,
    untracked files git does not ignore, and the ``carry`` paths (files or folders)."""
    repo = Path(repo)

    def listed(*args: str) -> list[Path]:
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", *args], capture_output=True, check=True).stdout
        return [repo / p for p in out.decode().split("\0") if p]

    def size(paths) -> int:
        return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())

    tracked = size(listed())
    untracked = size(listed("--others", "--exclude-standard"))
    carried = 0
    for c in carry:
        p = repo / c
        carried += size(p.rglob("*")) if p.is_dir() else size([p])
    return {"tracked": tracked, "untracked": untracked, "carried": carried, "total": tracked + untracked + carried}


# ----------------------------------------------------------------------------- the shot
def run(args: argparse.Namespace) -> dict:
    t0 = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ShotError("DEVICE=cuda but no CUDA device is available")
    torch.manual_seed(args.seed)
    # with autotuning on, the first shot spent ~60 s in its first 10 steps (4 shapes, fwd and bwd)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    log_f = open(out / "log.jsonl", "a")

    def log(rec: dict) -> None:
        rec = {"t": round(time.monotonic() - t0, 2), **rec}
        log_f.write(json.dumps(rec) + "\n")
        log_f.flush()
        print(json.dumps(rec), flush=True)

    pack = load_pack(args.pack)
    gen = torch.Generator(device).manual_seed(args.seed)
    rng = random.Random(args.seed)  # per-step choices on the host: no device sync
    n_val = min(args.holdout, len(pack) // 4)
    perm = torch.randperm(len(pack), generator=torch.Generator().manual_seed(args.seed))
    val = pack[perm[:n_val]].to(device)
    train_pack = pack[perm[n_val:]].to(device)
    log({"event": "pack", "images": len(pack), "train": len(train_pack), "val": n_val,
         "mb_on_device": round(train_pack.numel() / 1e6, 1), "load_s": round(time.monotonic() - t0, 1)})  # fmt: skip

    if args.init:
        model = model_io.load_weights(args.init, prior=None).to(device)
        init = {"init": args.init, "init_id": bytes(model.model_id).hex()}
    else:
        model = build(args.preset).to(device)
        if model.cfg.skip == "linear":
            pca_init(model, sample_batch(train_pack, torch.Generator(device).manual_seed(args.seed), 64, 128))
        init = {"init": "fresh"}
    preset = model.cfg.name
    model.train()
    ema = build(model.cfg).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    ema.eval()
    ema.model_id = b"\0" * 8

    search = time_search(device, n=args.search_tokens)
    method = args.search if args.search != "auto" else search["use"]
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    log({"event": "setup", "device": dev_name,
         "torch": torch.__version__, "preset": preset, "params": count_params(model), "batch": args.batch,
         "search": search, "search_used": method, "compile": args.compile, **init})  # fmt: skip

    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), **fused,
    )  # fmt: skip
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    m_params, e_params = list(model.parameters()), list(ema.parameters())

    def train_step(frac: float, mark=_no_mark) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, bool]:
        """One optimiser step; returns (loss, output, input, mix, mse phase), all left on the device."""
        lr = lr_at(frac, args.lr, args.min_lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        crop = model.cfg.tile if rng.random() < 0.5 else model.cfg.tile * 3 // 4
        split = rng.random() < args.split
        x = sample_batch(train_pack, gen, args.batch, crop)
        mark("data")
        mix = args.mix * max(0.0, 1.0 - frac / args.mix_until) if args.mix_until > 0 else 0.0
        with autocast:
            y = forward(model, x, split, method, mix, gen, mark, args.stages)
        mse_phase = frac >= args.mse_from
        loss = F.mse_loss(y.float(), x) if mse_phase else F.l1_loss(y.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        torch.nn.utils.clip_grad_norm_(m_params, args.clip)
        opt.step()
        d = min(args.ema, (1 + train_step.n) / (10 + train_step.n))
        with torch.no_grad():
            torch._foreach_lerp_(e_params, m_params, 1.0 - d)
        train_step.n += 1
        mark("optimizer")
        return loss.detach(), y.detach(), x, mix, mse_phase

    train_step.n = 0

    if args.compile:
        # every (crop, split) shape compiled before the clock, inside the deadline (t0)
        t_c = time.monotonic()
        for blk in [*model.encoder.blocks, *model.decoder.blocks]:
            blk.compile(backend=args.compile_backend, dynamic=False)
        tile = model.cfg.tile
        for crop in (tile, tile * 3 // 4):
            for split in (False, True):
                x = sample_batch(train_pack, gen, args.batch, crop)
                with autocast:
                    y = forward(model, x, split, method)
                F.l1_loss(y.float(), x).backward()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        log({"event": "compile", "backend": args.compile_backend, "s": round(time.monotonic() - t_c, 1)})

    budget = args.minutes * 60.0
    if args.deadline:
        left = args.deadline * 60.0 - (time.monotonic() - t0) - args.reserve_s
        if left <= 0:
            raise ShotError(f"the setup took {time.monotonic() - t0:.0f} s: no time left before the {args.deadline} min deadline")
        budget = min(budget, left)
    t_train = time.monotonic()
    step = images = 0
    if args.profile_steps:
        prof = Profiler(device)
        for _ in range(args.profile_steps):
            prof.start()
            train_step(0.0, prof)
            step += 1
            images += args.batch
        log({"event": "profile", "search_used": method, "compile": args.compile, **prof.summary(args.batch)})
    t_save = t_log = t_val = time.monotonic()
    acc_loss = torch.zeros((), device=device)  # summed on the device: read once per log line
    acc_psnr = torch.zeros((), device=device)
    acc_n = acc_img = 0
    rate_logged = False
    stats: dict = {}

    def save(final: bool) -> None:
        weights = save_parts(ema, out, scratch, args.part_bytes)
        summary = {"final": final, "preset": preset, **init, "config": model.cfg.to_dict(), "steps": step,
                   "images": images, "train_minutes": round((time.monotonic() - t_train) / 60, 3),
                   "images_per_s": round(images / max(1e-9, time.monotonic() - t_train), 1),
                   "device": dev_name, "torch": torch.__version__, "batch": args.batch, "lr": args.lr,
                   "mse_from": args.mse_from, "search": search, "search_used": method, "compile": args.compile,
                   "last": stats, "weights": weights}  # fmt: skip
        commit_summary(out, summary)
        log({"event": "save", "step": step, "final": final, "model_id": weights["model_id"], "bytes": weights["bytes"]})

    t_rate = time.monotonic()
    step_rate0, images_rate0 = step, images
    while True:
        now = time.monotonic()
        frac = min(1.0, (now - t_train) / budget)
        if frac >= 1.0 and step > step_rate0:  # (at least one timed step after the profile)
            break
        loss, y, x, mix, mse_phase = train_step(frac)
        step += 1
        images += args.batch
        if step % 10 == 0:
            acc_loss += loss
            acc_psnr += psnr_tensor(y, x)
            acc_n += 1
        acc_img += args.batch
        now = time.monotonic()
        if not rate_logged and now - t_rate > args.probe_s:
            rate = (images - images_rate0) / (now - t_rate)
            mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
            log({"event": "rate", "step": step, "images_per_s": round(rate, 1),
                 "s_per_step": round((now - t_rate) / (step - step_rate0), 4), "max_mem_gib": round(mem, 2),
                 "projected_steps": int(step + rate / args.batch * (budget - (now - t_train))),
                 "projected_images": int(images + rate * (budget - (now - t_train)))})  # fmt: skip
            rate_logged = True
            if args.profile_only:
                break
        if now - t_log > args.log_every and acc_n:
            stats = {"step": step, "images": images, "lr": lr_at(frac, args.lr, args.min_lr, args.warmup),
                     "loss": float(acc_loss) / acc_n, "psnr": float(acc_psnr) / acc_n,
                     "images_per_s": round(acc_img / (now - t_log), 1), "mix": round(mix, 3), "mse": mse_phase}  # fmt: skip
            if args.val_every and now - t_val > args.val_every:
                stats["val_psnr"] = validate(ema, val, method, autocast)
                t_val = now
            log({"event": "train", **stats})
            t_log, acc_n, acc_img = now, 0, 0
            acc_loss.zero_()
            acc_psnr.zero_()
        if now - t_save > args.save_every:
            save(final=False)
            t_save = time.monotonic()
    if not rate_logged and step > step_rate0:  # a budget shorter than --probe-s: the rate of what ran
        now = time.monotonic()
        log({"event": "rate", "step": step, "images_per_s": round((images - images_rate0) / (now - t_rate), 1),
             "s_per_step": round((now - t_rate) / (step - step_rate0), 4), "short": True})  # fmt: skip
    if args.profile_only:
        log({"event": "end", "step": step, "images": images, "profile_only": True})
        log_f.close()
        return {"step": step, "images": images}
    stats = {**stats, "step": step, "images": images, "val_psnr": validate(ema, val, method, autocast)}
    log({"event": "end", **stats})
    save(final=True)
    log_f.close()
    return stats


@torch.no_grad()
def validate(model, val: torch.Tensor, method: str, autocast) -> float:
    """PSNR of ``model`` on the held-out crops (whole 256-px tiles, quantized)."""
    vals = []
    for i in range(0, len(val), 16):
        x = val[i : i + 16].float().div(255.0)
        with autocast:
            y = forward(model, x, False, method)
        vals.append(psnr(y.float(), x) * len(x))
    return round(sum(vals) / max(1, len(val)), 3)


def check_exact(image: str, device: str, n_time: int = 65_536) -> dict:
    """The training search's exactness on ``device``: the bundled model's latents of ``image``
    searched by every method under bf16 autocast, against the float64 reference; then each
    method's time on ``n_time`` tokens (``time_search``)."""
    dev = torch.device(device)
    model = model_io.load_weights(prior=None).to(dev)
    from leechcodec.codec import tile_image

    with Image.open(image) as im:
        tiles = tile_image(np.asarray(im.convert("RGB")), model.cfg.tile)  # the codec's tiles
    x = torch.from_numpy(tiles).to(dev).float().div(255.0)
    with torch.no_grad():
        z = normalize(model.analysis(x).float()).reshape(-1, lattice.DIM)
    ref = lattice.nearest_brute(z)
    out: dict = {"event": "exact", "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "tokens": len(z)}  # fmt: skip
    for method in SEARCHES:
        lattice.TILED_STATS.update(rows=0, uncertified=0)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            idx = lattice.nearest(z, method)
        out[method] = {"agree": float((idx == ref).float().mean()),
                       "uncertified": lattice.TILED_STATS["uncertified"] if method != "structured" else None}  # fmt: skip
    out["time"] = time_search(dev, n=n_time)
    print(json.dumps(out), flush=True)
    return out


def encode_demo(image: str, dest: str, device: str) -> None:
    """Encode ``image`` with the bundled model and its prior (ar coder) on ``device`` into ``dest``:
    decoding it at home on the CPU checks that the ar coder is bit-exact across devices."""
    import leechcodec

    model = model_io.load_weights(device=device)
    data = leechcodec.encode(image, model, coder="ar", device=device)
    write_file(dest, lambda f: f.write(data))
    print(json.dumps({"event": "encode_demo", "image": image, "bytes": len(data), "device": device,
                      "model_id": bytes(model.model_id).hex()}), flush=True)  # fmt: skip


def prepare(repo: str | os.PathLike, pack: str, carry: str = ".carry", init: str | None = None,
            wheels: list[str] = (), limit: int = MAX_TRAVEL) -> dict:  # fmt: skip
    """Fill the ignored folder ``carry`` with the pack, the init weights and wheels, and check
    that what travels stays within 64 MiB.

    Raises:
        ShotError: ``carry`` is not ignored by git, a missing input, or over 64 MiB.
    """
    import shutil

    repo = Path(repo).resolve()
    dest = repo / carry
    dest.mkdir(parents=True, exist_ok=True)  # a "dir/" pattern matches only an existing folder
    if subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", carry]).returncode != 0:
        raise ShotError(f"{carry} is not ignored by git: it would travel twice")
    if init and Path(init).resolve().is_relative_to(repo):
        raise ShotError(f"{init} is in the working tree and travels anyway: give it to gpu_shot.sh as INIT={init}")
    src = Path(pack)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTS) if src.is_dir() else []
    if not files:
        raise ShotError(f"no images in the pack {pack}")
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "pack").mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, dest / "pack" / f.name)
    if init:
        shutil.copyfile(init, dest / "init.safetensors")
    if wheels:
        (dest / "wheels").mkdir()
        for w in wheels:
            shutil.copyfile(w, dest / "wheels" / Path(w).name)
    sizes = travel_bytes(repo, [carry])
    sizes["pack_images"] = len(files)
    if sizes["total"] > limit:
        raise ShotError(
            f"{sizes['total'] / 2**20:.1f} MiB would travel (tracked {sizes['tracked'] / 2**20:.1f}, untracked "
            f"{sizes['untracked'] / 2**20:.1f}, carried {sizes['carried'] / 2**20:.1f}), over the {limit / 2**20:g} MiB limit"
        )
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leechcodec.models.shot", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train for --minutes, results in --out")
    t.add_argument("--pack", required=True, help="folder of training crops (e.g. .carry/pack)")
    t.add_argument("--out", required=True, help="results folder ($OUT on the device)")
    t.add_argument("--scratch", default="/tmp/leech-shot", help="scratch folder (not returned)")
    t.add_argument("--minutes", type=float, required=True, help="training budget (wall clock)")
    t.add_argument("--preset", default="shot", choices=sorted(PRESETS))
    t.add_argument("--init", help="start from these release weights (their preset)")
    t.add_argument("--device", default="cuda")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--min-lr", type=float, default=1e-5)
    t.add_argument("--warmup", type=float, default=0.05, help="fraction of the budget")
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--mix", type=float, default=0.5, help="unquantized token fraction at the start")
    t.add_argument("--mse-from", type=float, default=1.0,
                   help="fraction of the budget after which the loss is MSE instead of l1 (1: l1 throughout)")
    t.add_argument("--mix-until", type=float, default=0.2, help="fraction of the budget where mix reaches 0")
    t.add_argument("--split", type=float, default=0.5, help="fraction of steps coded as 2×2 independent tiles")
    t.add_argument("--stages", type=int, default=1,
                   help="residual stages to train for (quantizer dropout, models.vit.later_stages); the encoder "
                        "changes too, so the prior is retrained at home (scripts/shot_home.sh)")
    t.add_argument("--search", default="auto", choices=["auto", *SEARCHES])
    t.add_argument("--search-tokens", type=int, default=65_536, help="tokens for timing the two searches")
    t.add_argument("--holdout", type=int, default=32, help="pack images held out for validation")
    t.add_argument("--part-bytes", type=int, default=PART_BYTES, help="split the weights into parts of this size")
    t.add_argument("--cudnn-benchmark", action="store_true", help="let cudnn autotune each new shape")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--probe-s", type=float, default=20.0, help="seconds after which the step rate is logged")
    t.add_argument("--log-every", type=float, default=10.0, help="seconds")
    t.add_argument("--val-every", type=float, default=60.0, help="seconds")
    t.add_argument("--save-every", type=float, default=120.0, help="seconds")
    t.add_argument("--deadline", type=float, help="minutes from process start by which the shot has ended "
                   "(setup and compilation included); shortens the training budget when needed")
    t.add_argument("--reserve-s", type=float, default=30.0, help="seconds kept for the final validation and save")
    t.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks (every crop "
                   "shape compiled before the clock starts, inside --deadline)")
    t.add_argument("--compile-backend", default="inductor", help="torch.compile backend (the CPU dry run: eager)")
    t.add_argument("--profile-steps", type=int, default=8, help="steps timed phase by phase at the start (0: none)")
    t.add_argument("--profile-only", action="store_true",
                   help="stop after the profile and the rate probe (--probe-s); no weights saved")
    pr = sub.add_parser("prepare", help="copy the pack, init weights and wheels into CARRY; check the 64 MiB limit")
    pr.add_argument("--pack", required=True, help="e.g. ../shared/data/train-shot")
    pr.add_argument("--carry", default=".carry", help="ignored folder to fill (relative to the repo root)")
    pr.add_argument("--init", help="weights to start from (later shots: the shipped shot model)")
    pr.add_argument("--wheel", action="append", default=[], help="a wheel the device lacks (constriction)")
    j = sub.add_parser("join", help="put a shot's weight parts back together (checks SHA-256); prints the model id")
    j.add_argument("folder", help="the shot's returned files")
    j.add_argument("dest", help="release weights to write")
    j.add_argument("--decode-halo", type=int, help="set the config's decode_halo (tokens)")
    c = sub.add_parser("exact", help="the search's exactness under bf16 autocast on --device, and its speed")
    c.add_argument("--image", default="docs/kodim23.png")
    c.add_argument("--device", default="cuda")
    c.add_argument("--tokens", type=int, default=65_536, help="tokens for timing each search")
    d = sub.add_parser("encode-demo", help="encode an image with the bundled model, ar coder, on --device")
    d.add_argument("image")
    d.add_argument("dest")
    d.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "train":
            run(args)
        elif args.cmd == "prepare":
            sizes = prepare(".", args.pack, args.carry, args.init, args.wheel)
            print(f"{args.carry}: {sizes['pack_images']} pack images; travelling {sizes['total'] / 2**20:.1f} MiB of 64 "
                  f"(tracked {sizes['tracked'] / 2**20:.1f}, untracked {sizes['untracked'] / 2**20:.1f}, "
                  f"carried {sizes['carried'] / 2**20:.1f})")  # fmt: skip
        elif args.cmd == "join":
            summary = join_parts(args.folder, args.dest, args.decode_halo)
            print(summary["weights"]["model_id"])
            print(f"{args.dest}: preset {summary['preset']}, {summary['steps']} steps, {summary['images']} images, "
                  f"{summary['images_per_s']} images/s, {summary['train_minutes']} min on {summary['device']}, "
                  f"final={summary['final']}", file=sys.stderr)  # fmt: skip
        elif args.cmd == "exact":
            check_exact(args.image, args.device, args.tokens)
        else:
            encode_demo(args.image, args.dest, args.device)
    except ShotError as e:
        print(f"shot: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
