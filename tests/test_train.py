"""Training: exact resume, DDP on CPU (gloo, 2 processes), export, weights without pickle."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from leechcodec.models import io as model_io
from leechcodec.models.errors import TrainError
from leechcodec.models.train import TrainConfig, export_checkpoint, train
from leechcodec.models.vit import build

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(4):
        sub = d / ("sub" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        arr = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(sub / f"im{i}.{'png' if i % 2 else 'jpg'}")
    return d


def _cfg(image_dir, out, **kw):
    base = dict(data=(str(image_dir),), out=str(out), preset="tiny", crop=64, batch=2, steps=6, lr=3e-3, mix=0.5,
                warmup=2, ckpt_minutes=100.0)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    t = load_file(str(path / "checkpoint.safetensors"))
    return {k: v for k, v in t.items() if k.startswith(("model.", "ema."))}


def _start_run(image_dir, out):
    """A run of 0 steps: its checkpoint holds the weights training starts from."""
    assert train(_cfg(image_dir, out, steps=0), progress=False)["step"] == 0
    return out


def test_resume_equals_uninterrupted(image_dir, tmp_path):
    torch.set_num_threads(1)
    full = train(_cfg(image_dir, tmp_path / "full"), progress=False)
    assert full["step"] == 6
    part = train(_cfg(image_dir, tmp_path / "split", stop_at=3), progress=False)
    assert part["step"] == 3
    with pytest.raises(TrainError, match="--resume"):
        train(_cfg(image_dir, tmp_path / "split"), progress=False)
    done = train(_cfg(image_dir, tmp_path / "split"), resume=True, progress=False)
    assert done["step"] == 6
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # and training moved every weight away from the real seed-0 start (the checkpoint of a
    # 0-step run, which is also what build("tiny") gives right after torch.manual_seed(0))
    start = _weights(_start_run(image_dir, tmp_path / "start"))
    torch.manual_seed(0)
    seed0 = build("tiny")
    assert all(torch.equal(start[p + k], v) for k, v in seed0.state_dict().items() for p in ("model.", "ema."))
    # Adam moves a parameter by about lr per step: 6 steps at lr <= 3e-3 measured 0.0087-0.012
    # (max |change| per tensor); an optimiser step that does nothing, or a group it skips, leaves 0
    for prefix in ("model.", "ema."):
        moved = {k: float((a[prefix + k] - start[prefix + k]).abs().max()) for k, _ in seed0.named_parameters()}
        assert min(moved.values()) > 1e-3, (prefix, sorted(moved.items(), key=lambda kv: kv[1])[:3])
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and {"loss", "psnr", "lr", "img_per_s"} <= log[-1].keys()


def test_mse_loss_option(image_dir, tmp_path):
    """--loss mse: the same first forward pass (same PSNR) scored by mean squared error."""
    torch.set_num_threads(1)
    logs = {}
    for loss in ("l1", "mse"):
        train(_cfg(image_dir, tmp_path / loss, steps=1, mix=0.0, loss=loss), progress=False)
        logs[loss] = json.loads((tmp_path / loss / "log.jsonl").read_text().splitlines()[0])
    assert logs["l1"]["psnr"] == logs["mse"]["psnr"]
    # E[e²] ≥ E[|e|]² (Jensen), and E[e²] < E[|e|] for errors below 1
    assert logs["l1"]["loss"] ** 2 <= logs["mse"]["loss"] < logs["l1"]["loss"]


def test_export_and_load_without_pickle(image_dir, tmp_path, monkeypatch):
    train(_cfg(image_dir, tmp_path / "run", steps=2), progress=False)
    out = tmp_path / "model.safetensors"
    mid = export_checkpoint(tmp_path / "run" / "checkpoint.safetensors", out)
    assert out.read_bytes()[8:9] == b"{"  # safetensors: u64 header length, then JSON
    assert all(v.dtype == torch.float16 for v in load_file(str(out)).values())

    def no_pickle(*a, **k):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    model = model_io.load_weights(out)
    assert model.model_id == mid and len(mid) == 8
    # saving the loaded model again gives the same content id
    assert model_io.save_weights(model, tmp_path / "again.safetensors") == mid


def test_no_torch_load_in_code():
    for py in list(REPO.glob("leechcodec/*.py")) + list(REPO.glob("models/*.py")) + list(REPO.glob("cli/*.py")):
        assert "torch." + "load(" not in py.read_text(), py  # spelled apart so a grep of the code finds none


def test_lr_schedule():
    cfg = TrainConfig(data=("x",), out="y", steps=100, warmup=10, lr=1.0, min_lr=0.0)
    assert cfg.lr_at(0) == pytest.approx(0.1)
    assert cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(55) == pytest.approx(0.5)
    assert cfg.lr_at(100) == pytest.approx(0.0)


def test_bad_data(tmp_path):
    with pytest.raises(TrainError, match="no .png/.jpg"):
        train(_cfg(tmp_path, tmp_path / "o"), progress=False)


# DDP vs one process with the same global batch (conftest.train_like_ddp): measured max |difference|
# 6.4e-7 over weights, EMA and AdamW moments (float rounding: all-reduce vs one backward over both
# samples); a different global batch of the same size differs by 5e-3. 1e-5 sits between the two.
DDP_ATOL = 1e-5


def _assert_same_training(ddp: dict, ref: dict) -> None:
    assert ddp.keys() == ref.keys()
    for k in ddp:
        torch.testing.assert_close(ddp[k], ref[k], rtol=0, atol=DDP_ATOL, msg=lambda m, k=k: f"{k}: {m}")


def test_ddp_two_processes_on_cpu(image_dir, tmp_path, train_like_ddp):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "leechcodec.cli", "train", str(image_dir), "--out", str(out), "--preset", "tiny", "--crop", "64",
           "--batch", "1", "--steps", "3", "--warmup", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    tensors = load_file(str(out / "checkpoint.safetensors"))
    assert any(k.startswith("opt.") for k in tensors)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3  # only rank 0 logs: one line per interval, not two
    assert len(log) == 1
    # 2 processes x batch 1 train as 1 process x batch 2 on the same samples
    _assert_same_training(tensors, train_like_ddp(out / "checkpoint.safetensors", tmp_path / "one", world=2))


def test_cli_resume_without_preset_keeps_the_checkpoints_model(image_dir, tmp_path):
    """`train --resume` without --preset continues the checkpoint's model, not the machine's default
    preset (a run started elsewhere, or with --preset, resumes as it was)."""
    from click.testing import CliRunner

    from leechcodec.cli.main import cli

    run = tmp_path / "run"
    common = [str(image_dir), "--out", str(run), "--batch", "1", "--crop", "32", "--warmup", "1", "--steps", "4",
              "--device", "cpu", "--quiet"]  # fmt: skip
    r = CliRunner().invoke(cli, ["train", *common, "--preset", "tiny", "--stop-at", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", *common, "--resume"])
    assert r.exit_code == 0, r.output
    steps_logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps_logged[-1] == 4
    out = tmp_path / "tok.safetensors"
    export_checkpoint(run / "checkpoint.safetensors", out)
    assert model_io.load_weights(out).cfg.name == "tiny"


def test_default_preset_fits_the_machine(monkeypatch):
    """Without --preset, `train` takes the CPU-sized preset without CUDA and the GPU shots' with it."""
    import torch

    from leechcodec.cli.train import CPU_PRESET, GPU_PRESET, default_preset
    from leechcodec.models.vit import PRESETS

    assert CPU_PRESET in PRESETS and GPU_PRESET in PRESETS
    assert PRESETS[CPU_PRESET].width < PRESETS[GPU_PRESET].width
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_preset("auto") == default_preset("cpu") == CPU_PRESET == "small-skip"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_preset("auto") == default_preset("cuda") == GPU_PRESET == "shot"
    assert default_preset("cpu") == CPU_PRESET


def test_train_help_names_each_preset_and_the_machine_default():
    from click.testing import CliRunner

    from leechcodec.cli.main import cli

    r = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "Default: small-skip on a CPU, shot where CUDA is used" in text
    for name in ("tiny:", "small-skip:", "shot:", "medium, base"):
        assert name in text


def test_cli_export_writes_weights_that_load(image_dir, tmp_path):
    """`leechcodec export` on a real checkpoint: the EMA weights as fp16 release weights, which
    load as the trained preset and whose id the command prints; no overwrite without --force."""
    from click.testing import CliRunner

    from leechcodec.cli.main import cli

    train(_cfg(image_dir, tmp_path / "run", steps=2), progress=False)
    ckpt, out = tmp_path / "run" / "checkpoint.safetensors", tmp_path / "tok.safetensors"
    r = CliRunner().invoke(cli, ["export", str(ckpt), "-o", str(out)])
    assert r.exit_code == 0, r.output
    model = model_io.load_weights(out)
    assert model.cfg == build("tiny").cfg and r.stderr.splitlines()[0] == f"{out}: id {bytes(model.model_id).hex()}"
    from leechcodec.models.runtime import load_onnx  # the ONNX graphs beside it: encode/decode without torch

    assert load_onnx(out).model_id == model.model_id and len(r.stderr.splitlines()) == 3
    ema = {k[4:]: v for k, v in load_file(str(ckpt)).items() if k.startswith("ema.")}
    raw = {k[6:]: v for k, v in load_file(str(ckpt)).items() if k.startswith("model.")}
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)  # after 2 steps the EMA is not the raw weights
    loaded = model.state_dict()
    assert loaded.keys() == ema.keys()
    differ = [k for k in ema if not torch.equal(loaded[k], ema[k].half().float())]
    assert not differ, f"the exported weights are not the checkpoint's EMA in fp16: {differ[:3]}"
    r = CliRunner().invoke(cli, ["export", str(ckpt), "-o", str(out)])
    assert r.exit_code == 8 and "exists" in r.stderr


def test_cli_train_and_export_errors_exit_11(image_dir, tmp_path, tiny_model_path):
    """A TrainError through the CLI: one 'leechcodec: error:' line and exit 11 (README, "Errors and exit codes")."""
    from click.testing import CliRunner

    from leechcodec.cli.main import cli

    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        "no images": (["train", str(empty), "--out", str(tmp_path / "o"), "--preset", "tiny"], "no .png/.jpg"),
        "crop": (["train", str(image_dir), "--out", str(tmp_path / "o"), "--crop", "60"], "multiple of 8"),
        "not a checkpoint": (["export", str(tiny_model_path), "-o", str(tmp_path / "x.safetensors")],
                             "not a leechcodec training checkpoint"),
    }  # fmt: skip
    for name, (args, match) in cases.items():
        r = CliRunner().invoke(cli, args)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 11, (name, r.exit_code, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("leechcodec: error:"), (name, r.stderr)
        assert match in lines[0] and "Traceback" not in r.output, (name, lines)
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "o" / "checkpoint.safetensors").exists()
