"""GPU shot (models/shot.py, shot_files.py, shot_checks.py, scripts/gpu_shot.sh): the dry run on
the CPU, the 64 MiB check, putting the weight parts back together, and the pieces of the
training step."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leechcodec
from leechcodec.models import io as model_io
from leechcodec.models import loop, shot, shot_checks, shot_files
from leechcodec.models.vit import build, pca_init

REPO = Path(__file__).resolve().parents[1]


def _pack(folder: Path, n: int = 12, size: int = 256) -> Path:
    """JPEG crops like ../shared/data/train-shot: smooth colour fields with some texture."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        a = rng.random((3, 3))
        img = np.stack([a[c, 0] * yy + a[c, 1] * xx + a[c, 2] * 0.3 for c in range(3)], -1)
        img = img + 0.1 * rng.standard_normal((size, size, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"c{i:02d}.jpg", quality=90)
    return folder


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """scripts/gpu_shot.sh as the GPU runs it, with DEVICE=cpu, the tiny shot preset and a
    budget of a few seconds; the weights are split into small parts to exercise joining."""
    root = tmp_path_factory.mktemp("shot")
    carry = root / "carry"
    _pack(carry / "pack")
    out = root / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "PRESET": "shot-tiny", "MINUTES": "0.1", "CARRY": str(carry),
           "PYTHON": sys.executable, "DEADLINE": "3"}  # fmt: skip
    args = ["--batch", "2", "--search-tokens", "256", "--holdout", "4", "--probe-s", "0.5", "--log-every", "0.5",
            "--save-every", "1", "--val-every", "1", "--part-bytes", "100000",
            "--compile", "--compile-backend", "eager", "--profile-steps", "2"]  # fmt: skip
    proc = subprocess.run([str(REPO / "scripts" / "gpu_shot.sh"), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_dry_run_leaves_what_can_come_back(dry_run):
    files = sorted(p for p in dry_run.rglob("*") if p.is_file())
    names = [p.name for p in files]
    assert 0 < len(files) <= 8, names
    assert all(p.stat().st_size <= 16 * 2**20 for p in files)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert not any(n.endswith(".tmp") for n in names)
    assert {"log.jsonl", "summary.json", "shot.log"} <= set(names)


def test_dry_run_summary_and_log(dry_run):
    summary = json.loads((dry_run / "summary.json").read_text())
    assert summary["final"] is True
    assert summary["preset"] == "shot-tiny" and summary["init"] == "fresh"
    assert summary["steps"] > 0 and summary["images"] == 2 * summary["steps"]
    assert summary["images_per_s"] > 0
    assert summary["search_used"] in ("structured", "tiled")
    assert summary["search"]["agree"] == 1.0
    assert len(summary["weights"]["parts"]) >= 2  # split by --part-bytes
    recs = [json.loads(line) for line in (dry_run / "log.jsonl").read_text().splitlines()]
    events = [r["event"] for r in recs]
    assert events[:4] == ["pack", "setup", "compile", "profile"] and "rate" in events and events[-1] == "save"
    profile = recs[3]
    assert profile["steps"] == 2 and set(profile["ms"]) == set(shot.PHASES)
    assert profile["step_ms"] == pytest.approx(sum(profile["ms"].values()), abs=0.1) and profile["crops_per_s"] > 0
    assert summary["compile"] is True and summary["search"]["agree"] == 1.0
    # one generation of parts is left, the one summary.json names
    assert sorted(p.name for p in dry_run.glob("shot.safetensors.*")) == sorted(summary["weights"]["parts"])


def test_dry_run_parts_round_trip_an_image(dry_run, tmp_path):
    dest = tmp_path / "w.safetensors"
    summary = shot_files.join_parts(dry_run, dest)
    model = model_io.load_weights(dest, prior=None)
    assert model.model_id.hex() == summary["weights"]["model_id"]
    assert model.cfg.name == "shot-tiny" and model.cfg.head == "overlap"
    img = Image.fromarray((np.random.default_rng(1).random((40, 72, 3)) * 255).astype(np.uint8))
    back = leechcodec.decode(leechcodec.encode(img, model, coder="fixed"), model)
    assert back.size == img.size


def test_join_refuses_a_cut_off_save(dry_run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in dry_run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    part = copy / json.loads((copy / "summary.json").read_text())["weights"]["parts"][1]
    data = bytearray(part.read_bytes())
    data[10] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(shot_files.ShotError, match="do not match"):
        shot_files.join_parts(copy, tmp_path / "w.safetensors")
    part.unlink()
    with pytest.raises(shot_files.ShotError, match="no complete shot output"):
        shot_files.join_parts(copy, tmp_path / "w.safetensors")


def _parts_model(seed: int):
    torch.manual_seed(seed)
    return build("shot-tiny")


def _save(out: Path, scratch: Path, model) -> dict:
    weights = shot_files.save_parts(model, out, scratch, part_bytes=50_000)
    shot_files.commit_summary(out, {"preset": "shot-tiny", "weights": weights})
    return weights


@pytest.mark.parametrize("cut", ["second part", "before the summary"])
def test_a_save_cut_off_half_way_keeps_the_previous_weights(tmp_path, monkeypatch, cut):
    """A kill during a save (here an exception at the worst moments) leaves the previous
    generation joinable: the new parts never overwrite the ones summary.json names."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir(), scratch.mkdir()
    first = _save(out, scratch, _parts_model(0))
    assert len(first["parts"]) >= 2
    second = _save(out, scratch, _parts_model(1))  # a second generation, beside the first
    assert second["parts"] != first["parts"] and second["sha256"] != first["sha256"]
    assert not any((out / n).exists() for n in first["parts"])  # the old generation removed after the switch

    real_write = shot_files.write_file
    calls = {"n": 0}

    def dying_write(path, writer):
        calls["n"] += 1
        if (cut == "second part" and calls["n"] == 2) or (cut == "before the summary" and Path(path).name == "summary.json"):
            raise KeyboardInterrupt("killed")
        return real_write(path, writer)

    monkeypatch.setattr(shot_files, "write_file", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _save(out, scratch, _parts_model(2))
    monkeypatch.setattr(shot_files, "write_file", real_write)
    summary = shot_files.join_parts(out, tmp_path / "back.safetensors")
    assert summary["weights"]["sha256"] == second["sha256"]
    back = model_io.load_weights(tmp_path / "back.safetensors", prior=None)
    assert back.model_id.hex() == second["model_id"]
    # and the next save after the kill still works, into the free generation
    third = _save(out, scratch, _parts_model(3))
    assert shot_files.join_parts(out, tmp_path / "third.safetensors")["weights"]["sha256"] == third["sha256"]


def test_gpu_check_dry_run(tmp_path):
    """scripts/gpu_check.sh as the GPU runs it, on the CPU with the tiny preset: exactness of
    every search, and the before/after profiles with crops/s."""
    carry = tmp_path / "carry"
    _pack(carry / "pack", n=8)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "PRESET": "shot-tiny", "CARRY": str(carry),
           "PYTHON": sys.executable, "PROBE_S": "1", "BATCH": "1", "TOKENS": "128", "COMPILE_BACKEND": "eager",
           "IMAGE": str(carry / "pack" / "c00.jpg")}  # fmt: skip
    proc = subprocess.run([str(REPO / "scripts" / "gpu_check.sh"), "--search-tokens", "128"], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exact = json.loads((out / "exact.log").read_text().strip().splitlines()[-1])
    assert all(exact[m]["agree"] == 1.0 for m in shot_checks.SEARCHES)
    assert re.search(r"before: search tiled, compile off s, crops/s [0-9.]+ \(profiled step", proc.stdout), proc.stdout
    assert re.search(r"after: search \w+, compile [0-9.]+ s, crops/s [0-9.]+", proc.stdout), proc.stdout


def _git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".carry/\n")
    (repo / "tracked.bin").write_bytes(b"t" * 5000)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    (repo / "loose.bin").write_bytes(b"u" * 700)  # untracked, not ignored: travels too
    return repo


def test_prepare_counts_what_travels_and_refuses_too_much(tmp_path):
    repo = _git_repo(tmp_path)
    pack = _pack(tmp_path / "pack", n=3)
    init = tmp_path / "init.safetensors"
    init.write_bytes(b"w" * 1000)
    sizes = shot_files.prepare(repo, str(pack), ".carry", init=str(init))
    pack_bytes = sum(p.stat().st_size for p in pack.iterdir())
    assert sizes["tracked"] == 5000 + len(".carry/\n")
    assert sizes["untracked"] == 700
    assert sizes["carried"] == pack_bytes + 1000
    assert sizes["total"] == sizes["tracked"] + sizes["untracked"] + sizes["carried"]
    assert sorted(p.name for p in (repo / ".carry" / "pack").iterdir()) == sorted(p.name for p in pack.iterdir())
    with pytest.raises(shot_files.ShotError, match="over the"):
        shot_files.prepare(repo, str(pack), ".carry", init=str(init), limit=sizes["total"] - 1)


def test_prepare_refuses_a_carry_folder_that_git_would_send(tmp_path):
    repo = _git_repo(tmp_path)
    with pytest.raises(shot_files.ShotError, match="not ignored"):
        shot_files.prepare(repo, str(_pack(tmp_path / "pack", n=1)), "carry-here")


def test_wall_clock_schedule():
    """The shot's schedule is train's (models.loop.lr_at) on fractions of the budget: the warmup
    runs one unit (1e-3) ahead and never passes the peak."""
    assert loop.lr_at(0.0, 1e-3, 1e-5, 0.05) == pytest.approx(2e-5)
    assert loop.lr_at(0.025, 1e-3, 1e-5, 0.05) == pytest.approx(5.2e-4)
    assert loop.lr_at(0.0495, 1e-3, 1e-5, 0.05) == pytest.approx(1e-3)
    assert loop.lr_at(0.05, 1e-3, 1e-5, 0.05) == pytest.approx(1e-3)
    assert loop.lr_at(1.0, 1e-3, 1e-5, 0.05) == pytest.approx(1e-5)
    lrs = [loop.lr_at(f, 1e-3, 1e-5, 0.05) for f in np.linspace(0, 1, 41)]
    peak = lrs.index(max(lrs))
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))


def test_sample_batch_crops_and_flips():
    pack = torch.arange(2 * 3 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 3, 16, 16)
    x = shot.sample_batch(pack, torch.Generator().manual_seed(0), 6, 8)
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    # every crop is a flipped/transposed window of one pack image
    src = pack.float() / 255
    for b in range(6):
        found = False
        for img in src:
            for t in (img, img.flip(-1), img.flip(-2), img.flip(-1).flip(-2)):
                for u in (t, t.transpose(-1, -2)):
                    w = u.unfold(1, 8, 1).unfold(2, 8, 1)  # (3, 9, 9, 8, 8)
                    found |= bool(((w - x[b][:, None, None]).abs().sum((0, 3, 4)) == 0).any())
        assert found


def test_split_forward_encodes_quarters_independently():
    torch.manual_seed(0)
    model = build("shot-tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    seen = {}

    def grab(module, inp, out):
        seen["q"] = inp[0].detach().clone()

    model.decoder.register_forward_hook(grab)
    with torch.no_grad():
        model(x, split=True, method="structured")
        q1 = seen["q"]
        x2 = x.clone()
        x2[..., 32:, 32:] = torch.rand(1, 3, 32, 32)  # change the bottom-right quarter only
        model(x2, split=True, method="structured")
        q2 = seen["q"]
    assert q1.shape == (1, 8, 8, 24)
    assert torch.equal(q1[:, :4], q2[:, :4]) and torch.equal(q1[:, :, :4], q2[:, :, :4])
    assert not torch.equal(q1[:, 4:, 4:], q2[:, 4:, 4:])


def test_overlap_head_starts_as_the_linear_pca_path():
    """With the PCA start, the overlapping skip decoder paints each token's own 8×8 patch
    exactly as the linear one does (up to its per-channel bias), nothing outside it."""
    torch.manual_seed(0)
    imgs = torch.rand(8, 3, 64, 64)
    lin, ov = build("small-skip"), build("shot-tiny")
    pca_init(lin, imgs)
    pca_init(ov, imgs)
    q = torch.nn.functional.normalize(torch.randn(1, 4, 4, 24), dim=-1)
    a = torch.nn.functional.linear(q, lin.decoder.skip.weight, lin.decoder.skip.bias)  # (1, 4, 4, 192)
    a = a.view(1, 4, 4, 3, 8, 8).permute(0, 3, 1, 4, 2, 5).reshape(1, 3, 32, 32)
    b = ov.decoder.skip(q.permute(0, 3, 1, 2))
    bias_lin = lin.decoder.skip.bias.view(3, 64)
    assert torch.allclose(a - bias_lin.view(3, 8, 8).repeat(1, 4, 4), b - ov.decoder.skip.bias.view(3, 1, 1), atol=1e-5)


def test_prepare_does_not_copy_weights_that_travel_anyway(tmp_path):
    repo = _git_repo(tmp_path)
    (repo / ".carry" / "pack").mkdir(parents=True)
    (repo / ".carry" / "pack" / "kept.jpg").write_bytes(b"x")
    with pytest.raises(shot_files.ShotError, match="INIT="):
        shot_files.prepare(repo, str(_pack(tmp_path / "pack", n=1)), ".carry", init=str(repo / "tracked.bin"))
    assert (repo / ".carry" / "pack" / "kept.jpg").is_file()  # refused before touching the carry folder
