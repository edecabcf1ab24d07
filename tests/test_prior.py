"""AR prior and the ar coder: structure, exact integer arithmetic, real constriction streams."""

import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

import leechcodec
from leechcodec.cli.main import cli
from leechcodec import coders, lattice, probability
from leechcodec.container import HEADER, TRAILER
from leechcodec.errors import FormatError, ModelError, ModelMismatchError
from leechcodec.models.io import load_weights, save_weights
from leechcodec.models.prior import (
    ARPrior,
    PRIOR_PRESETS,
    context,
    exact,
    load_prior,
    prior_path_for,
    save_prior,
)
from leechcodec.models.errors import TrainError
from leechcodec.models.train import TrainConfig, export_checkpoint, train
from leechcodec.models.vit import build

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A tiny tokenizer with a tiny (untrained) prior beside it, loaded together."""
    torch.manual_seed(3)
    d = tmp_path_factory.mktemp("pair")
    mid = save_weights(build("tiny"), d / "tiny.safetensors")
    save_prior(ARPrior(PRIOR_PRESETS["tiny"]), d / "tiny.prior.safetensors", mid)
    return d / "tiny.safetensors", load_weights(d / "tiny.safetensors")


def _grids(rng, n, g=32):
    return rng.integers(0, lattice.N_CODEWORDS, (n, g * g))


def test_split_join_roundtrip_over_the_whole_codebook():
    idx = torch.arange(lattice.N_CODEWORDS)
    cls, a, b = lattice.split_index(idx)
    assert torch.equal(lattice.join_index(cls, a, b), idx)
    for k in range(3):  # every (support, detail) pair of a class occurs exactly once
        sel = cls == k
        assert int(sel.sum()) == lattice.SUPPORT[k] * lattice.DETAIL[k]
        assert int(a[sel].max()) == lattice.SUPPORT[k] - 1 and int(b[sel].max()) == lattice.DETAIL[k] - 1


def test_exp_table_is_exp():
    """The table is part of the format (docs/FORMAT.md): all 4,353 entries, exactly
    max(1, round(2^24 · e^(−d/256))) for d = 0 … 17·256, here from 40-digit decimal arithmetic
    (e^(−d/256) is irrational for d > 0, so no entry is a tie and 40 digits decide every rounding)."""
    from decimal import ROUND_HALF_EVEN, Decimal, localcontext

    assert (probability.EXP_ONE, probability.EXP_FRAC, probability.EXP_SPAN) == (2**24, 8, 17 * 256)
    with localcontext() as ctx:
        ctx.prec = 40
        rounded = [(2**24 * (Decimal(-d) / 256).exp()).to_integral_value(ROUND_HALF_EVEN) for d in range(4353)]
    want = [max(1, int(e)) for e in rounded]
    t = probability.exp_table()
    assert t.shape == (4353,) and bool((t == t.round()).all())  # whole numbers (held as float64)
    bad = [(d, int(t[d]), w) for d, w in enumerate(want) if int(t[d]) != w]
    assert not bad, f"{len(bad)} entries differ (d, table, exact): {bad[:5]}"


def test_context_is_causal():
    rng = np.random.default_rng(0)
    vec = torch.from_numpy(lattice.codebook()[_grids(rng, 1, 8).reshape(1, 8, 8)]).float()
    ctx = context(vec)  # (1, 8, 8, 288)
    for r in range(8):
        for c in range(8):
            later = vec.clone()
            flat = later.view(64, 24)
            flat[r * 8 + c :] = 0  # wipe (r, c) and everything after it in raster order
            assert torch.equal(context(later)[0, r, c], ctx[0, r, c])


def test_exact_prior_tracks_the_float_model():
    torch.manual_seed(0)
    m = ARPrior(PRIOR_PRESETS["tiny"]).eval()
    ep = exact(m, b"\0" * 8)
    rng = np.random.default_rng(1)
    vec = torch.from_numpy(lattice.codebook()[_grids(rng, 2, 8).reshape(2, 8, 8)]).float()
    ctx = context(vec).reshape(-1, 288)
    with torch.no_grad():
        want = m.cls_head(m.features(ctx)).numpy()
    got = ep.class_logits(ep.features(ctx.numpy())) / 2**8
    assert float(np.abs(want - got).max()) < 0.05


def test_exact_prior_is_bit_identical_across_batches():
    """Batches of any size give the same integers (every product sum is exact); the thread count
    of the BLAS neither (tests/test_numpy_coding.py, and test_thread_count_does_not_change_the_stream)."""
    torch.manual_seed(1)
    ep = exact(ARPrior(PRIOR_PRESETS["small"]), b"\0" * 8)
    rng = np.random.default_rng(2)
    vec = torch.from_numpy(lattice.codebook()[_grids(rng, 3, 32).reshape(3, 32, 32)]).float()
    ctx = context(vec).reshape(-1, 288).numpy()
    full = ep.support_logits(ep.features(ctx), 1)
    parts = np.concatenate([ep.support_logits(ep.features(ctx[i : i + 37]), 1) for i in range(0, len(ctx), 37)])
    assert np.array_equal(full, parts)
    assert bool((full == full.round()).all())  # integers


@pytest.mark.parametrize("preset", ["tiny", "small", "small-cb"])
def test_ar_roundtrip_and_real_bits_match_the_model(preset):
    torch.manual_seed(2)
    m = ARPrior(PRIOR_PRESETS[preset]).eval()
    if m.codeword_bias is not None:
        with torch.no_grad():
            m.codeword_bias.normal_(0, 2)
    ep = exact(m, b"\1" * 8)
    rng = np.random.default_rng(3)
    idx = _grids(rng, 2)
    payload = coders.encode_ar(idx, ep, 32)
    assert np.array_equal(coders.decode_ar(payload, 2, 32, ep), idx)
    with torch.no_grad():
        model_bits = float(m.bits(torch.from_numpy(idx).view(2, 32, 32))) * idx.size
    real_bits = 8 * (len(payload) - coders.AR_HEAD)
    assert abs(real_bits - model_bits) < 0.03 * model_bits + 64  # the 17-nat floor of the table clips extreme tails


def test_ar_codes_predictable_tokens_in_few_bits():
    # a constant grid costs the prior's own estimate; a trained prior makes it cheap (see below)
    torch.manual_seed(4)
    m = ARPrior(PRIOR_PRESETS["tiny"])
    grids = torch.full((4, 8, 8), 12345)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        loss = m.bits(grids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ep = exact(m.eval(), b"\0" * 8)
    idx = grids.reshape(4, -1).numpy()
    payload = coders.encode_ar(idx, ep, 8)
    assert np.array_equal(coders.decode_ar(payload, 4, 8, ep), idx)
    assert 8 * len(payload) < 0.1 * lattice.BITS_PER_INDEX * idx.size


def test_ar_stream_errors():
    torch.manual_seed(5)
    ep = exact(ARPrior(PRIOR_PRESETS["tiny"]), b"\2" * 8)
    other = exact(ARPrior(PRIOR_PRESETS["tiny"]), b"\2" * 8)
    idx = _grids(np.random.default_rng(4), 2)
    payload = coders.encode_ar(idx, ep, 32)
    with pytest.raises(ModelMismatchError, match="prior"):
        coders.decode_ar(payload, 2, 32, other)
    with pytest.raises(FormatError, match="malformed"):
        coders.decode_ar(payload[:-1], 2, 32, ep)
    bad = bytearray(payload)
    bad[40] ^= 0x10
    with pytest.raises(FormatError):
        coders.decode_ar(bytes(bad), 2, 32, ep)
    with pytest.raises(FormatError):  # truncated words
        coders.decode_ar(payload[: coders.AR_HEAD + 8], 2, 32, ep)


def test_prior_file_roundtrip_and_checks(tmp_path, monkeypatch):
    torch.manual_seed(6)
    m = ARPrior(PRIOR_PRESETS["tiny"])
    path = tmp_path / "p.safetensors"
    pid = save_prior(m, path, b"\7" * 8)
    assert all(v.dtype in (torch.int32, torch.int64) for v in load_file(str(path)).values())

    def no_pickle(*a, **k):
        raise AssertionError("pickle must not be used")

    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    ep = load_prior(path, b"\7" * 8)
    assert ep.prior_id == pid == exact(m, b"\7" * 8).prior_id
    with pytest.raises(ModelError, match="prior of model"):
        load_prior(path, b"\x08" * 8)
    state = load_file(str(path))
    state["cls_head.weight"] = state["cls_head.weight"].float()
    save_file(state, str(tmp_path / "f.safetensors"), metadata={"format": "leechcodec-prior", "config": '{"name": "tiny", "hidden": 32, "layers": 1}', "tokenizer_id": "00" * 8})
    with pytest.raises(ModelError, match="integers"):
        load_prior(tmp_path / "f.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelError):
        load_prior(tmp_path / "junk.safetensors")
    assert prior_path_for("a/leech.safetensors") == Path("a/leech.prior.safetensors")


def test_codec_ar_is_lossless_over_tokens(tiny_pair, one_thread):
    _, model = tiny_pair
    assert model.prior is not None
    rng = np.random.default_rng(7)
    im = Image.fromarray((rng.random((300, 200, 3)) * 255).astype(np.uint8))
    ar = leechcodec.encode(im, model, coder="ar")
    fixed = leechcodec.encode(im, model, coder="fixed")
    assert leechcodec.read_header(ar).coder == "ar" and leechcodec.read_header(fixed).coder == "fixed"
    assert leechcodec.encode(im, model) == ar  # auto picks ar when there is a prior
    assert np.array_equal(np.asarray(leechcodec.decode(ar, model)), np.asarray(leechcodec.decode(fixed, model)))
    bare = load_weights(tiny_pair[0], prior=None)
    with pytest.raises(ModelError, match="prior"):
        leechcodec.decode(ar, bare)
    with pytest.raises(ModelError, match="prior"):
        leechcodec.encode(im, bare, coder="ar")
    assert leechcodec.read_header(leechcodec.encode(im, bare)).coder == "fixed"


def test_cli_ar(tiny_pair, tmp_path, one_thread):
    path, model = tiny_pair
    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(8).random((64, 64, 3)) * 255).astype(np.uint8)).save(img)
    r = CliRunner().invoke(cli, ["encode", str(img), "-o", str(tmp_path / "a.lq"), "--model", str(path), "--coder", "ar", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "a.lq")])
    assert "coder:      ar" in r.output and f"prior id:   {model.prior.prior_id.hex()}" in r.output
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "a.lq"), "-o", str(tmp_path / "b.png"), "--model", str(path), "--quiet"])
    assert r.exit_code == 0, r.output
    # a tokenizer without a prior beside it: ar is refused in one line, exit 6
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(path.read_bytes())
    r = CliRunner().invoke(cli, ["encode", str(img), "-o", str(tmp_path / "c.lq"), "--model", str(lone), "--coder", "ar"])
    assert r.exit_code == 6 and "prior" in r.output and not (tmp_path / "c.lq").exists()
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "a.lq"), "-o", str(tmp_path / "d.png"), "--model", str(lone)])
    assert r.exit_code == 6 and "prior" in r.output


def _prior_cfg(data, out, tok, **kw):
    base = dict(data=(str(data),), out=str(out), prior=True, tokenizer=str(tok), preset="tiny", batch=2, steps=6,
                lr=3e-3, warmup=2, ckpt_minutes=100.0)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_train_prior_resumes_exactly_and_exports(tiny_pair, kodak_crops, tmp_path, one_thread):
    tok = tiny_pair[0]
    full = train(_prior_cfg(kodak_crops, tmp_path / "full", tok), progress=False)
    train(_prior_cfg(kodak_crops, tmp_path / "split", tok, stop_at=3), progress=False)
    done = train(_prior_cfg(kodak_crops, tmp_path / "split", tok), resume=True, progress=False)
    assert full["step"] == done["step"] == 6 and "bits" in full
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint.safetensors"))
    for k in a:
        if k.startswith(("model.", "ema.")):
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    pid = export_checkpoint(tmp_path / "full" / "checkpoint.safetensors", tmp_path / "p.safetensors")
    assert load_prior(tmp_path / "p.safetensors", tiny_pair[1].model_id).prior_id == pid


def test_prior_init_starts_from_another_runs_ema_and_binds_to_the_new_tokenizer(tiny_pair, kodak_crops, tmp_path, one_thread):
    tok = tiny_pair[0]
    first = tmp_path / "first"
    train(_prior_cfg(kodak_crops, first, tok, steps=3), progress=False)
    torch.manual_seed(5)
    other = tmp_path / "other.safetensors"
    other_id = save_weights(build("tiny"), other)  # a retrained tokenizer: another model id
    assert other_id != tiny_pair[1].model_id
    src = load_file(str(first / "checkpoint.safetensors"))
    # zero steps from --init: the new run's weights and EMA are the first run's EMA exactly
    train(_prior_cfg(kodak_crops, tmp_path / "zero", other, steps=0), init_weights=str(first / "checkpoint.safetensors"), progress=False)
    zero = load_file(str(tmp_path / "zero" / "checkpoint.safetensors"))
    for k, v in src.items():
        if k.startswith("ema."):
            assert torch.equal(zero[k], v) and torch.equal(zero["model." + k[4:]], v), k
    # a few steps on: exported for the new tokenizer, refused for the old one
    train(_prior_cfg(kodak_crops, tmp_path / "next", other, steps=2), init_weights=str(first / "checkpoint.safetensors"), progress=False)
    export_checkpoint(tmp_path / "next" / "checkpoint.safetensors", tmp_path / "p.safetensors")
    assert load_prior(tmp_path / "p.safetensors", other_id).prior_id
    with pytest.raises(ModelError, match="not of"):
        load_prior(tmp_path / "p.safetensors", tiny_pair[1].model_id)
    # a tokenizer run's checkpoint, or a prior of another config, is refused in one line
    tok_run = tmp_path / "tokrun"
    train(TrainConfig(data=(str(kodak_crops),), out=str(tok_run), preset="tiny", batch=1, steps=1, warmup=1, crop=64,
                      ckpt_minutes=100.0), progress=False)  # fmt: skip
    with pytest.raises(TrainError, match="not one"):
        train(_prior_cfg(kodak_crops, tmp_path / "bad1", other), init_weights=str(tok_run / "checkpoint.safetensors"), progress=False)
    with pytest.raises(TrainError, match="different prior config"):
        train(_prior_cfg(kodak_crops, tmp_path / "bad2", other, preset="small"), init_weights=str(first / "checkpoint.safetensors"), progress=False)


def test_ddp_prior_two_processes_on_cpu(tiny_pair, kodak_crops, tmp_path, train_like_ddp):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "leechcodec.cli", "train", "--prior", str(kodak_crops), "--tokenizer", str(tiny_pair[0]), "--out", str(out),
           "--preset", "tiny", "--batch", "1", "--steps", "3", "--warmup", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    meta_ok = export_checkpoint(out / "checkpoint.safetensors", tmp_path / "p.safetensors")
    assert len(meta_ok) == 8
    # 2 processes x batch 1 train as 1 process x batch 2 on the same grids (conftest.train_like_ddp):
    # measured max |difference| 1.0e-7 over weights, EMA and AdamW moments; a different
    # global batch of the same size differs by 4.7e-3. 1e-5 sits between the two.
    ddp = load_file(str(out / "checkpoint.safetensors"))
    ref = train_like_ddp(out / "checkpoint.safetensors", tmp_path / "one", world=2)
    assert ddp.keys() == ref.keys()
    for k in ddp:
        torch.testing.assert_close(ddp[k], ref[k], rtol=0, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_thread_count_does_not_change_the_stream(tiny_pair, tmp_path):
    """Encode with 2 threads, decode in a fresh process with OMP_NUM_THREADS=1: same pixels."""
    path, model = tiny_pair
    rng = np.random.default_rng(9)
    im = Image.fromarray((rng.random((256, 512, 3)) * 255).astype(np.uint8))
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = leechcodec.encode(im, model, coder="ar")
        want = np.asarray(leechcodec.decode(leechcodec.encode(im, model, coder="fixed"), model))
    finally:
        torch.set_num_threads(n)
    (tmp_path / "a.lq").write_bytes(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "leechcodec.cli", "decode", str(tmp_path / "a.lq"), "-o", str(tmp_path / "a.png"),
                        "--model", str(path), "--quiet"], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), want)


def test_bits_per_index_constant():
    assert lattice.BITS_PER_INDEX == pytest.approx(math.log2(196_560))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_ar_streams_only_raise_format_errors(tiny_pair, one_thread, data):
    """Re-signed (valid CRC32) ar streams with changed payload bytes: a format or prior-mismatch
    error (the prior id is in the payload), or the same tokens, so the same pixels; never a crash."""
    _, model = tiny_pair
    im = Image.fromarray(np.random.default_rng(10).integers(0, 256, (40, 300, 3), dtype=np.uint8))
    lq = bytearray(_ar_stream(model, im))
    want = _decoded(model, bytes(lq))
    start, end = HEADER.size, len(lq) - TRAILER.size
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(start, end - 1))
        lq[i] = data.draw(st.integers(0, 255))
    body = bytes(lq[:-TRAILER.size])
    try:
        out = leechcodec.decode(body + TRAILER.pack(zlib.crc32(body)), model)
    except (FormatError, ModelMismatchError):
        return
    # a mutation that decodes must give the right tokens (their CRC matched): the unmutated pixels
    assert out.size == im.size and out.mode == "RGB"
    differ = int((np.asarray(out) != want).sum())
    assert differ == 0, f"a mutated ar stream decoded to other pixels ({differ} samples differ)"


_STREAMS: dict = {}
_DECODED: dict = {}


def _decoded(model, lq: bytes) -> np.ndarray:
    if lq not in _DECODED:
        _DECODED[lq] = np.asarray(leechcodec.decode(lq, model))
    return _DECODED[lq]


def _ar_stream(model, im) -> bytes:
    key = (bytes(model.prior.prior_id), im.size)
    if key not in _STREAMS:
        _STREAMS[key] = leechcodec.encode(im, model, coder="ar")
    return _STREAMS[key]


def test_training_tokens_are_the_streams_tokens(tiny_model, tmp_path, rng):
    """The prior learns on the grids a version-2 stream decodes to: the padding filled with
    copies of the last stored row/column, the same for the mirror image; cached once."""
    from leechcodec.models.prior import token_cache

    src = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (77, 301, 3), dtype=np.uint8)).save(src)
    grids = token_cache(tiny_model, [src], tmp_path / "out", "train", progress=False)
    assert grids.shape == (4, 32, 32)  # 2 tiles, and 2 of the mirror image
    data = leechcodec.encode(src, tiny_model, coder="fixed", precision="fp32")
    stream = coders.decode_fixed(data[34:-4], 2, 1024, [(10, 32), (10, 6)]).reshape(2, 32, 32)
    assert np.array_equal(grids[:2].numpy(), stream)
    for g in grids:
        assert (g[10:] == g[9]).all()  # rows past the picture copy its last row
    assert (grids[1, :, 6:] == grids[1, :, 5:6]).all() and (grids[3, :, 6:] == grids[3, :, 5:6]).all()
    assert list((tmp_path / "out").glob("tokens-train-*-v2.safetensors"))
