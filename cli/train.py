"""`leechcodec train` and `leechcodec export`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from .common import (
    OutputError,
    check_device,
    check_output,
    force_option,
    handle_errors,
    version_option,
    write_output,
)
from leechcodec.errors import require_torch
from leechcodec.models.errors import TrainError

from .errors_table import help_block


CPU_PRESET, GPU_PRESET = "small-skip", "shot"  # models/vit.py PRESETS


def default_preset(device: str) -> str:
    """The tokenizer preset ``train`` uses without --preset: the GPU shots' on CUDA, a CPU-sized one elsewhere."""
    import torch  # lazy, as every torch import of the CLI: `leechcodec --help` starts without torch

    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return GPU_PRESET if cuda else CPU_PRESET


@click.command(epilog=help_block("train"))
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder: checkpoint.safetensors and log.jsonl.")
@click.option("--preset", default=None,
              help="Model size. Default: small-skip on a CPU, shot where CUDA is used (--device). "
                   "tiny: tests only (seconds); small-skip: 3.5 M parameters, the size that trained best on 2 "
                   "CPU cores (small: the same without the linear skip path); shot: 10 M, the bundled model's, "
                   "for GPUs (on a CPU it trains fewer than half as many crops a minute as small-skip); medium, "
                   "base (paper-like, 170 M): larger GPU runs. With --prior: tiny, small (default) or small-cb "
                   "(small plus a bias per codeword).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="JSON file of model config fields (overrides --preset).")
@click.option("--prior", "prior", is_flag=True,
              help="Train the autoregressive prior for the ar coder instead, on the token grids of --tokenizer "
                   "(tokenized once into OUT, with mirror images); --batch counts 256-px tiles.")
@click.option("--tokenizer", type=click.Path(exists=True, dir_okay=False),
              help="With --prior: the tokenizer weights whose tokens to model [default: the bundled model].")
@click.option("--crop", default=256, show_default=True, help="Training crop size in pixels (a multiple of 8).")
@click.option("--batch", default=8, show_default=True, help="Crops per step (per process under torchrun).")
@click.option("--steps", default=20_000, show_default=True, help="Total optimizer steps (the cosine schedule ends here).")
@click.option("--lr", default=1e-3, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--min-lr", default=1e-5, show_default=True, help="Learning rate at the end of the cosine.")
@click.option("--warmup", default=200, show_default=True, help="Linear warmup steps.")
@click.option("--weight-decay", default=0.05, show_default=True,
              help="AdamW weight decay of the weight matrices and kernels (biases and norms get none).")
@click.option("--clip", default=1.0, show_default=True, help="Gradient-norm clipping.")
@click.option("--ema", default=0.999, show_default=True, help="EMA decay of the weights that get exported.")
@click.option("--loss", type=click.Choice(["l1", "mse"]), default="l1", show_default=True,
              help="Pixel loss: l1 (as in the paper) or mse (what PSNR measures; e.g. a last phase from --init).")
@click.option("--msssim-weight", default=0.0, show_default=True, help="Add w·(1−MS-SSIM) to the pixel loss (off by default).")
@click.option("--mix", default=0.0, show_default=True,
              help="Fraction of tokens the decoder sees unquantized at the start; decays to 0 (see --mix-until).")
@click.option("--mix-until", default=0.5, show_default=True, help="Fraction of --steps at which --mix reaches 0.")
@click.option("--stages", default=1, show_default=True, type=click.IntRange(1, 8),
              help="Residual Λ24 stages to train for: each crop keeps 1 … STAGES of them (quantizer dropout).")
@click.option("--freeze-encoder", is_flag=True,
              help="Train the decoder only (e.g. with --stages from --init weights): stage-1 tokens, and so the prior, stay valid.")
@click.option("--seed", default=0, show_default=True,
              help="Seed of the initial weights and of the crops each step draws.")
@click.option("--ckpt-minutes", default=5.0, show_default=True, help="Save the full training state this often.")
@click.option("--val-dir", type=click.Path(exists=True, file_okay=False), help="Images for periodic validation (centre crops), e.g. Kodak.")
@click.option("--val-every", default=250, show_default=True, help="Validate every N steps.")
@click.option("--max-minutes", type=float, help="Stop (with a checkpoint) after this many minutes; resume later.")
@click.option("--stop-at", type=int, help="Stop (with a checkpoint) at this step; the schedule still runs to --steps.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train: 'auto' takes CUDA when there is a GPU, else the CPU.")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model (worth it on a GPU).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--init", "init_weights", type=click.Path(exists=True, dir_okay=False), help="Start from these release weights (same preset); with --prior, from the EMA weights of a `train --prior` checkpoint (e.g. to carry a prior over to a retrained tokenizer).")
@click.option("--threads", type=int, help="CPU threads for torch (default: all cores).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@version_option
@handle_errors
def train(data, out, preset, prior, tokenizer, config_file, crop, batch, steps, lr, min_lr, warmup, weight_decay, clip, ema,
          loss, msssim_weight, mix, mix_until, stages, freeze_encoder, seed, ckpt_minutes, val_dir, val_every, max_minutes, stop_at, device, use_compile, resume,
          init_weights, threads, quiet):  # fmt: skip
    """Train the ViT tokenizer on the images under DATA (folders searched recursively).

    ℓ1 (or --loss mse) on random crops with flips, AdamW with warmup + cosine, gradient
    clipping, EMA weights, bf16 autocast on GPU. The full state is checkpointed to
    OUT/checkpoint.safetensors every --ckpt-minutes; --resume continues exactly.
    Runs unchanged under `torchrun --nproc_per_node N`.

    With --prior, trains the autoregressive prior of the ar coder (cross-entropy in
    bits per token; same schedule, EMA, checkpoints, resume and DDP); export it as
    NAME.prior.safetensors beside the tokenizer NAME.safetensors.

    \b
    Examples:
      leechcodec train ../shared/data/train --out runs/a --val-dir ../shared/data/kodak
      leechcodec train ../shared/data/train --out runs/a --resume --max-minutes 9
      leechcodec train ../shared/data/train --out runs/s --init models/weights/leech.safetensors \
          --preset shot --stages 3 --freeze-encoder --loss mse --lr 1e-4
      leechcodec export runs/a/checkpoint.safetensors -o my-model.safetensors
      leechcodec train --prior ../shared/data/train --out runs/p --tokenizer my-model.safetensors --batch 16
      leechcodec export runs/p/checkpoint.safetensors -o my-model.prior.safetensors
    """
    require_torch("train")  # exit 1, one line, before any work (as every command)
    check_device(device)
    import torch  # lazy: the CLI starts without torch

    from leechcodec.models.train import TrainConfig, read_checkpoint  # lazy: imports torch
    from leechcodec.models.train import train as run

    if threads:
        torch.set_num_threads(threads)
    model_config = None
    if preset is None and resume and not config_file and not prior:  # keep the checkpoint's model, whatever the machine
        ckpt = Path(out) / "checkpoint.safetensors"
        if ckpt.is_file():
            model_config = json.loads(read_checkpoint(ckpt)[1]["model_config"])
    if preset is None:
        preset = "small" if prior else default_preset(device)
    if tokenizer and not prior:
        raise TrainError("--tokenizer goes with --prior")
    if crop % 8:
        raise TrainError(f"--crop {crop} is not a multiple of 8")
    if config_file:
        try:
            model_config = json.loads(Path(config_file).read_text())
        except (OSError, ValueError) as e:
            raise TrainError(f"cannot read --config {config_file}: {e}") from None
    cfg = TrainConfig(
        data=tuple(data), out=out, preset=preset, model_config=model_config, crop=crop, batch=batch,
        steps=steps, lr=lr, min_lr=min_lr, warmup=warmup, weight_decay=weight_decay, clip=clip, ema=ema,
        loss=loss, msssim_weight=msssim_weight, mix=mix, mix_until=mix_until, seed=seed, ckpt_minutes=ckpt_minutes, val_dir=val_dir,
        val_every=val_every, max_minutes=max_minutes, stop_at=stop_at, device=device, compile=use_compile,
        prior=prior, tokenizer=tokenizer, stages=stages, freeze_encoder=freeze_encoder,
    )  # fmt: skip
    stats = run(cfg, resume=resume, init_weights=init_weights, progress=not quiet)
    click.echo(f"step {stats['step']}: checkpoint in {Path(out) / 'checkpoint.safetensors'}", err=True)


@click.command(epilog=help_block("export"))
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, help="Release weights to write (.safetensors).")
@force_option
@version_option
@handle_errors
def export(checkpoint, output, force):
    """Write the EMA weights of a training CHECKPOINT as release weights.

    A tokenizer becomes fp16 safetensors; a prior (train --prior) becomes integer
    safetensors, bound to its tokenizer: name it NAME.prior.safetensors beside
    NAME.safetensors and the ar coder finds it.

    \b
    Examples:
      leechcodec export runs/a/checkpoint.safetensors -o leech.safetensors
      leechcodec export runs/p/checkpoint.safetensors -o leech.prior.safetensors
    """
    require_torch("export")
    from leechcodec.models.train import export_checkpoint, read_checkpoint  # lazy: imports torch

    if output == "-":
        raise OutputError("export needs a file name, not '-'")
    check_output(output, force)
    with tempfile.TemporaryDirectory() as tmp:  # then the output rules of write_output (symlinks, devices, modes)
        staged = Path(tmp) / "weights.safetensors"
        mid = export_checkpoint(checkpoint, staged)
        write_output(output, lambda f: f.write(staged.read_bytes()), force)
    click.echo(f"{output}: id {mid.hex()}", err=True)
    if read_checkpoint(Path(checkpoint))[1].get("task") != "prior" and Path(output).is_file():
        try:  # the ONNX graphs beside a tokenizer: encode and decode then run without torch
            from leechcodec.models.export_onnx import export as export_graphs  # lazy: onnx is optional

            for g in export_graphs(output):
                click.echo(f"{g}: its ONNX graph (structure only; the weights stay in {Path(output).name})", err=True)
        except ImportError as e:
            click.echo(f"leechcodec: note: no ONNX graphs written ({e.name} is not installed: pip install "
                       "'leechcodec[train]'); encode and decode will run this model on torch", err=True)
