"""Golden streams: .lq files made with a frozen tiny model pin the format (style habit 13).

tests/data holds a frozen tiny tokenizer and AR prior, three source pictures and each one
coded with the ``fixed`` and the ``ar`` coder, with golden.json giving the SHA-256 of every
stream, of its token indices and of its decoded pixels. tests/data/make_golden.py made them
and is run by hand only. A change that alters the bytes, the tokens or the pixels of any of
them fails here; changing them on purpose is a new format version (docs/FORMAT.md), with
these streams kept and still decoded.

Tokens and bytes are the format. Pixels come from float32 networks: their hashes were
checked bit-identical with 1, 2, 3 and 4 torch threads on the machine that made them
(golden.json, "made_with"), but another CPU kernel or torch version may round a few of the
pixels that sit within 1e-4 of a rounding boundary (40-80 per picture) the other way; the
failure message says whether the tokens still match.
"""

import dataclasses
import hashlib
import importlib.util
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import leechcodec
from leechcodec.cli.main import cli
from leechcodec import container
from leechcodec.errors import ModelError, ModelMismatchError
from leechcodec.models.io import load_weights, save_weights
from leechcodec.models.prior import LATER_FIELDS, PRIOR_PRESETS, ARPrior, PriorConfig, load_prior, prior_id_of, save_prior
from leechcodec.models.vit import build

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
MANIFEST = json.loads((DATA / "golden.json").read_text())
STREAMS = {s["file"]: s for s in MANIFEST["streams"]}
AR_STREAMS = [name for name, s in STREAMS.items() if s["coder"] == "ar"]
CURRENT = [name for name, s in STREAMS.items()
           if s["version"] in (container.VERSION, container.STAGED, container.SCALED)]  # what the encoder writes
PRIOR_ID = slice(container.HEADER.size, container.HEADER.size + 8)  # first 8 payload bytes of an ar stream


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def golden(one_thread):
    """The frozen tokenizer with its prior (NAME.prior.safetensors beside it)."""
    model = load_weights(DATA / MANIFEST["tokenizer"]["file"])
    assert model.prior is not None
    return model


def _load_generator():
    """tests/data/make_golden.py as a module: its stream → tokens step is the one the hashes were made with."""
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tokens = _load_generator().tokens
_tokens_sha256 = _load_generator().tokens_sha256


def _resigned(data: bytes, offset: int, value: bytes) -> bytes:
    """``data`` with ``value`` written at ``offset`` and a valid CRC32 trailer."""
    body = data[:offset] + value + data[offset + len(value) : -container.TRAILER.size]
    return body + container.TRAILER.pack(zlib.crc32(body))


def test_frozen_models_have_their_ids(golden):
    assert golden.model_id.hex() == MANIFEST["tokenizer"]["model_id"]
    assert golden.prior.prior_id.hex() == MANIFEST["prior"]["prior_id"]  # what the encoder writes
    assert [i.hex() for i in golden.prior.ids] == [MANIFEST["prior"]["prior_id"], MANIFEST["prior"]["legacy_prior_id"]]


@pytest.mark.parametrize("name", STREAMS)
def test_golden_stream_decodes_to_its_pixels(golden, name):
    s = STREAMS[name]
    data = (DATA / name).read_bytes()
    assert sha256(data) == s["sha256"], "the committed stream itself changed"
    h = leechcodec.read_header(data)
    assert (h.coder, h.mode, f"{h.width}x{h.height}", h.version) == (s["coder"], s["mode"], s["size"], s["version"])
    assert h.stages == s.get("stages", 1)
    assert "{}x{}".format(*h.coded_size) == s.get("coded_size", s["size"])
    assert h.model_id.hex() == MANIFEST["tokenizer"]["model_id"]
    tokens_ok = _tokens_sha256(_tokens(data, golden)) == s["tokens_sha256"]
    assert tokens_ok, "the coder decodes other tokens: the bitstream format changed"
    im = leechcodec.decode(data, golden, precision="fp32")  # the reference decode; bf16 differs by design
    assert (im.mode, "{}x{}".format(*im.size)) == (s["mode"], s["size"])
    assert sha256(im.tobytes()) == s["pixels_sha256"], (
        f"same tokens, other pixels: the decoder's arithmetic changed, or floating point differs from the "
        f"machine that made the goldens ({MANIFEST['made_with']}, here torch {torch.__version__})"
    )


@pytest.mark.parametrize("name", CURRENT)
def test_golden_source_reencodes_to_the_same_bytes(golden, name):
    s = STREAMS[name]
    src = DATA / s["source"]
    assert sha256(src.read_bytes()) == s["source_sha256"]
    data = leechcodec.encode(src, golden, coder=s["coder"], precision="fp32", **s.get("encode", {}))
    assert data == (DATA / name).read_bytes()


@pytest.mark.parametrize("name", [n for n in CURRENT if STREAMS[n]["coder"] == "ar"])
def test_ar_streams_do_not_depend_on_the_coder_chunk_size(golden, name, monkeypatch):
    """coders.CHUNK bounds the memory of a wavefront over many tiles; rows coded a few at a
    time must give the same words, and decode the same tokens."""
    from leechcodec import coders

    data = (DATA / name).read_bytes()
    want = _tokens(data, golden)
    monkeypatch.setattr(coders, "CHUNK", 3)
    assert _tokens_sha256(_tokens(data, golden)) == STREAMS[name]["tokens_sha256"]
    src = DATA / STREAMS[name]["source"]
    assert leechcodec.encode(src, golden, coder="ar", precision="fp32", **STREAMS[name].get("encode", {})) == data
    assert np.array_equal(_tokens(data, golden), want)


def test_every_version_has_golden_streams_of_both_coders_and_a_padded_picture():
    """Old versions stay decodable (their streams are kept); the current one pins the encoder."""
    for version in container.VERSIONS:
        mine = [s for s in STREAMS.values() if s["version"] == version]
        assert {s["coder"] for s in mine} == {"fixed", "ar"}
        assert any(s["size"] == "301x77" for s in mine)  # padded on both sides
    staged = {s.get("stages") for s in STREAMS.values() if s["version"] == container.STAGED}
    assert staged == {2, 3}
    scaled = [s for s in STREAMS.values() if s["version"] == container.SCALED]
    assert {s["stages"] for s in scaled} == {1, 2}  # one stage and residual stages at a coded size
    assert {s["encode"]["scale"] < 1 for s in scaled} == {True, False}  # coded smaller and larger


@pytest.mark.parametrize("name", [n for n, s in STREAMS.items() if s["version"] == container.SCALED])
def test_version_4_streams_code_the_coded_size(golden, name):
    """The tokens of a version-4 stream are those of the source resampled to the coded size (what
    the encoder codes at that size written as version 2 or 3), and decode gives the picture's size."""
    from PIL import Image

    from leechcodec import scale

    s = STREAMS[name]
    data = (DATA / name).read_bytes()
    h = leechcodec.read_header(data)
    with Image.open(DATA / s["source"]) as im:
        src = im.convert("RGB")
    small = scale.to_size(src, h.coded_size)
    kw = {k: v for k, v in s["encode"].items() if k != "scale"}
    plain = leechcodec.encode(small, golden, coder=s["coder"], precision="fp32", **kw)
    assert leechcodec.read_header(plain).version in (container.VERSION, container.STAGED)
    assert np.array_equal(_tokens(plain, golden), _tokens(data, golden))


@pytest.mark.parametrize("name", [n for n, s in STREAMS.items() if s["version"] == container.STAGED])
def test_version_3_streams_hold_their_stages(golden, name):
    """Stage 1 of a staged stream is the single-stage stream's tokens (the same encoder); the
    later stages are tokens or, in the ar coder, left out; the fixed coder leaves none out."""
    data = (DATA / name).read_bytes()
    tokens = _tokens(data, golden)
    s = STREAMS[name]
    assert tokens.shape[0] == s["stages"] == leechcodec.read_header(data).stages
    single = DATA / name.replace(f".s{s['stages']}.v3.", ".v2.")
    assert np.array_equal(tokens[0], _tokens(single.read_bytes(), golden))  # λ never moves stage 1 of several
    later = tokens[1:]
    assert ((later >= 0) | (later == -1)).all() and (later < 196560).all()
    if s["coder"] == "fixed":
        assert (later >= 0).all()


def test_version_2_stores_only_tokens_that_touch_the_picture(golden):
    """301x77 pads to 2 tiles of 32x32 tokens; version 2 stores 32x10 + 6x10 of them and
    rebuilds the rest, version 1 stores all 2048: the same tokens where both store them."""
    v1, v2 = (DATA / "rgb-301x77.fixed.lq").read_bytes(), (DATA / "rgb-301x77.fixed.v2.lq").read_bytes()
    from leechcodec import coders

    assert len(v1) == 38 + 2 * 2251 and len(v2) == 38 + coders.fixed_tile_bytes(320) + coders.fixed_tile_bytes(60)
    t1, t2 = _tokens(v1, golden).reshape(2, 32, 32), _tokens(v2, golden).reshape(2, 32, 32)
    assert np.array_equal(t1[0, :10, :32], t2[0, :10, :32]) and np.array_equal(t1[1, :10, :6], t2[1, :10, :6])
    assert np.array_equal(t2[0, 10:], np.broadcast_to(t2[0, 9], (22, 32)))  # padding rows copy the last row
    assert np.array_equal(t2[1, :10, 6:], np.broadcast_to(t2[1, :10, 5:6], (10, 26)))
    assert np.array_equal(t2[1, 10:], np.broadcast_to(t2[1, 9], (22, 32)))
    assert (t2[1, 9:, 6:] == t2[1, 9, 5]).all()  # the corner copies the last stored token
    a1, a2 = (DATA / "rgb-301x77.ar.lq").read_bytes(), (DATA / "rgb-301x77.ar.v2.lq").read_bytes()
    assert len(a2) < len(a1) and np.array_equal(_tokens(a2, golden).reshape(2, 32, 32), t2)


# ----------------------------------------------------------------------------- stable ids
class _ConfigBeforeCodewordBias:
    """A prior config as saved before ``codeword_bias`` existed (only ``to_dict`` is hashed)."""

    def __init__(self, cfg: PriorConfig):
        self.d = {k: v for k, v in cfg.to_dict().items() if k != "codeword_bias"}

    def to_dict(self) -> dict:
        return dict(self.d)


def test_prior_id_ignores_a_later_field_at_its_default(golden):
    cfg, mid = golden.prior.cfg, golden.model_id
    state = {k: v.astype(np.int64) for k, v in golden.prior.w.items()}
    assert not cfg.codeword_bias
    old = prior_id_of(_ConfigBeforeCodewordBias(cfg), state, mid)
    assert old == prior_id_of(cfg, state, mid) == golden.prior.prior_id
    # a value that changes the probabilities changes the id
    assert prior_id_of(dataclasses.replace(cfg, codeword_bias=True), state, mid) != old
    # the legacy recipe hashed the whole config: the ids released priors and their streams carry
    assert prior_id_of(cfg, state, mid, legacy=True) == bytes.fromhex(MANIFEST["prior"]["legacy_prior_id"]) != old
    # the ar fuzz seeds were written before codeword_bias existed (git 3e8c9f0) with this very prior
    seed = (REPO / "fuzz" / "corpus" / "rgb-70x90.ar-valid.bin").read_bytes()[1:]
    assert seed[PRIOR_ID] == old


def test_every_later_prior_field_defaults_to_the_old_behaviour():
    """A field added to PriorConfig keeps old ids only if LATER_FIELDS names it with its default."""
    first = {"name", "hidden", "layers"}  # the fields of the first release
    for f in dataclasses.fields(PriorConfig):
        if f.name not in first:
            assert LATER_FIELDS.get(f.name, ...) == f.default, (
                f"PriorConfig.{f.name} defaults to {f.default!r}: a field added later needs that default to keep "
                f"the old behaviour and models.prior.LATER_FIELDS to name it with it"
            )


@pytest.mark.parametrize("name", AR_STREAMS[:1])
def test_ar_stream_with_the_legacy_prior_id_decodes(golden, name):
    data = (DATA / name).read_bytes()
    legacy = _resigned(data, PRIOR_ID.start, bytes.fromhex(MANIFEST["prior"]["legacy_prior_id"]))
    assert sha256(leechcodec.decode(legacy, golden, precision="fp32").tobytes()) == STREAMS[name]["pixels_sha256"]
    with pytest.raises(ModelMismatchError, match="needs prior 0101010101010101"):
        leechcodec.decode(_resigned(data, PRIOR_ID.start, b"\1" * 8), golden)


def test_prior_file_must_name_an_id_its_weights_give(golden, tmp_path):
    """load_prior checks the prior id a file names: either recipe's, nothing else."""
    path = DATA / MANIFEST["prior"]["file"]
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    for name, value, ok in (("legacy", MANIFEST["prior"]["legacy_prior_id"], True), ("other", "00" * 8, False)):
        p = tmp_path / f"{name}.prior.safetensors"
        save_file(state, str(p), metadata={**meta, "prior_id": value})
        if ok:
            assert load_prior(p, golden.model_id).prior_id == golden.prior.prior_id
        else:
            with pytest.raises(ModelError, match="hash to prior id"):
                load_prior(p, golden.model_id)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("name", STREAMS)
def test_info_needs_no_model(name, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("info must not load a model")

    for where in ("leechcodec.cli.main.load_model", "leechcodec.cli.common.load_model", "leechcodec.models.io.load_weights", "leechcodec.models.prior.load_prior"):
        monkeypatch.setattr(where, no_model)
    s = STREAMS[name]
    r = CliRunner().invoke(cli, ["info", str(DATA / name)])
    assert r.exit_code == 0, r.output
    assert f"{s['size']} ({s['mode']})" in r.output and f"coder:      {s['coder']}" in r.output
    assert f"model id:   {MANIFEST['tokenizer']['model_id']}" in r.output
    assert f"format:     version {s['version']} (" in r.output
    assert ("coded size: " + s.get("coded_size", "-") in r.output) == ("coded_size" in s)
    assert (f"prior id:   {MANIFEST['prior']['prior_id']}" in r.output) == (s["coder"] == "ar")


def test_cli_names_the_model_and_prior_a_stream_needs(golden, tmp_path):
    torch.manual_seed(2)
    other = tmp_path / "other.safetensors"
    other_mid = save_weights(build("tiny"), other)
    torch.manual_seed(2)
    other_prior = tmp_path / "other-prior.safetensors"
    save_prior(ARPrior(PRIOR_PRESETS["tiny"]), other_prior, golden.model_id)
    lq, golden_path = DATA / AR_STREAMS[0], DATA / MANIFEST["tokenizer"]["file"]
    runner = CliRunner()
    for args, needs, loaded in (
        (["--model", str(other)], f"model {MANIFEST['tokenizer']['model_id']}", other_mid.hex()),
        (["--model", str(golden_path), "--prior", str(other_prior)], f"prior {MANIFEST['prior']['prior_id']}", ""),
    ):
        r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "out.png"), *args])
        assert r.exit_code == 5, r.output
        assert f"this file needs {needs}" in r.stderr and loaded in r.stderr
        assert "see MODEL_CARD.md, 'Released models'" in r.stderr
        assert not (tmp_path / "out.png").exists()
