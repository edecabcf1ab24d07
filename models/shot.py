"""GPU shot: train a tokenizer for a wall-clock budget on a borrowed GPU, results always in OUT.

A shot is one command on a bare machine that is lent for minutes (README, "Training"): the
training loop of ``models.train`` (its step, schedule, EMA, optimiser and validation are
``models.loop``'s) with a deadline, a profile and files that come back in parts::

    pack (JPEG crops) ─decode once→ uint8 (N, 3, 256, 256) on the GPU
      └─ each step: random crop (256 or 192), dihedral flip, half the steps coded as 2×2
         independent sub-tiles (the decoder learns to join tiles) ─→ tokenizer (bf16) ─→ ℓ1

* The schedule runs on wall-clock time (warmup, then cosine to the end of the budget), since
  the step rate is not known before the machine is; the first ~20 s measure it.
* The nearest-codeword search is timed each way on the device (``models.shot_checks``);
  training uses the fastest (all are exact).
* Every ``save_every`` seconds and at the end the EMA weights go to OUT as fp16 safetensors,
  split into parts under the size limit of what comes back, with ``log.jsonl`` and
  ``summary.json``; a kill at any moment loses at most that interval (``models.shot_files``,
  which also prepares what travels and puts the weights back together at home).

Only torch, numpy, pillow and safetensors are imported on this path (the machine has no
constriction, platformdirs or pytorch-msssim), and no API newer than torch 2.11.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import io as model_io
from .loop import TrainStep, bf16_autocast, lr_at, mix_at, no_mark, psnr, validate
from .shot_checks import SEARCHES, check_exact, encode_demo, sync, time_search
from .shot_files import PART_BYTES, ShotError, commit_summary, join_parts, load_pack, prepare, save_parts
from .vit import PRESETS, build, count_params, pca_init


# ----------------------------------------------------------------------------- data
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
        sync(self.device)
        self.t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.ms[phase].append(1000 * (now - self.t))
        self.t = now

    def summary(self, batch: int) -> dict:
        med = {k: round(float(np.median(v)), 2) for k, v in self.ms.items() if v}
        step = sum(med.values())
        return {"steps": len(self.ms["data"]), "ms": med, "step_ms": round(step, 2),
                "share": {k: round(v / step, 3) for k, v in med.items()}, "crops_per_s": round(1000 * batch / step, 1)}  # fmt: skip


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

    opt = model.configure_optimizers(args.weight_decay, args.lr, fused=device.type == "cuda")
    autocast = bf16_autocast(device)
    update = TrainStep(model, ema, opt, args.clip, args.ema)

    def lr(frac: float) -> float:
        return lr_at(frac, args.lr, args.min_lr, args.warmup)

    def train_step(frac: float, step: int, mark=no_mark) -> tuple:
        """Step ``step`` at ``frac`` of the budget: the shot's batch and loss, then ``update``;
        returns (loss, output, input, mix, mse phase), all left on the device."""
        crop = model.cfg.tile if rng.random() < 0.5 else model.cfg.tile * 3 // 4
        split = rng.random() < args.split
        x = sample_batch(train_pack, gen, args.batch, crop)
        mark("data")
        mix = mix_at(frac, args.mix, args.mix_until)
        with autocast:
            y = model(x, mix, gen, args.stages, split=split, method=method, mark=mark)
        mse_phase = frac >= args.mse_from
        loss = F.mse_loss(y.float(), x) if mse_phase else F.l1_loss(y.float(), x)
        update(loss, lr(frac), step, mark)
        return loss.detach(), y.detach(), x, mix, mse_phase

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
                    y = model(x, split=split, method=method)
                F.l1_loss(y.float(), x).backward()
        opt.zero_grad(set_to_none=True)
        sync(device)
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
            train_step(0.0, step, prof)
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
        loss, y, x, mix, mse_phase = train_step(frac, step)
        step += 1
        images += args.batch
        if step % 10 == 0:
            acc_loss += loss
            acc_psnr += psnr(y, x)
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
            stats = {"step": step, "images": images, "lr": lr(frac),
                     "loss": float(acc_loss) / acc_n, "psnr": float(acc_psnr) / acc_n,
                     "images_per_s": round(acc_img / (now - t_log), 1), "mix": round(mix, 3), "mse": mse_phase}  # fmt: skip
            if args.val_every and now - t_val > args.val_every:
                stats["val_psnr"] = round(validate(ema, val, 16, autocast, method), 3)
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
    stats = {**stats, "step": step, "images": images, "val_psnr": round(validate(ema, val, 16, autocast, method), 3)}
    log({"event": "end", **stats})
    save(final=True)
    log_f.close()
    return stats


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
