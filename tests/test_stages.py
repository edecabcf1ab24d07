"""Residual Λ24 stages (format version 3): round trips, the rate interface, refusals.

The tiny models of tests/data (untrained, with a prior) run everything in seconds; the Kodak
checks of --bpp and --quality (slow) use the bundled model.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import coders, container, lattice, quality, stages, tiling
from leechcodec.cli.main import cli
from leechcodec.models.io import load_weights

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "tiny.safetensors"  # with tiny.prior.safetensors: the ar coder


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:90, 0:300]
    rgb = np.stack([x * 255 // 300, (x * y) % 256, (y * 3) % 256], -1) + rng.integers(0, 30, (90, 300, 1))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _tokens(data: bytes, model) -> np.ndarray:
    """(S, T, N) tokens of a stream, straight from the coders."""
    h, payload = container.unpack(data)
    g = model.tile // model.patch
    ext = container.token_extents(h.width, h.height, model.tile, model.patch, h.version)
    if h.coder == "ar":
        out = coders.decode_ar(payload, h.n_tiles, g, model.prior, extents=ext,
                               stages=h.stages if h.version == container.STAGED else None)
    else:
        out = coders.decode_fixed_stages(payload, h.stages, h.n_tiles, g * g, ext)
    return out if out.ndim == 3 else out[None]


def _expected(model, picture, k: int, lam: float = 0.0, every: bool = False, first=None) -> np.ndarray:
    """The tokens an encoder must write, from the encoder's latents and stages.later_tokens;
    ``first``: stage 1's tokens as the stream has them (λ > 0 chooses them anew), else the nearest."""
    from leechcodec import codec

    w, h = picture.size
    tiles = tiling.tile_image(np.asarray(picture), model.tile)
    latents: list = []
    nearest = codec.tiles_to_indices(model, tiles, latents=latents)
    ext = container.token_extents(w, h, model.tile, model.patch)
    g = model.tile // model.patch
    first = coders.fill_padding(nearest, ext, g) if first is None else first
    rest = stages.later_tokens(np.concatenate(latents), first, stages.gains(model, k), lam, every)
    rest = [coders.fill_padding(t.reshape(first.shape), ext, g) for t in rest]
    return np.stack([first, *rest])


@pytest.mark.parametrize("coder", ["fixed", "ar"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_stage_round_trip(tiny_frozen, picture, coder, k):
    """K = 1 … 3: the stream holds exactly the encoder's tokens (fixed: every later token; ar at
    λ = 0: those that lower the distance), K = 1 is today's version-2 stream, and decoding twice
    gives the same pixels; more stages move the decoder's input closer to the latents."""
    data = leechcodec.encode(picture, tiny_frozen, coder=coder, stages=k, precision="fp32")
    h = leechcodec.read_header(data)
    assert (h.version, h.stages) == ((2, 1) if k == 1 else (3, k))
    got = _tokens(data, tiny_frozen)
    want = _expected(tiny_frozen, picture, k, every=coder == "fixed")
    assert np.array_equal(got, want)
    if k == 1:
        assert data == leechcodec.encode(picture, tiny_frozen, coder=coder, precision="fp32")
    a = np.asarray(leechcodec.decode(data, tiny_frozen, precision="fp32"))
    b = np.asarray(leechcodec.decode(data, tiny_frozen, precision="fp32"))
    assert a.shape == (90, 300, 3) and np.array_equal(a, b)
    if k > 1:  # the later stages reach the decoder
        assert not np.array_equal(a, np.asarray(leechcodec.decode(leechcodec.encode(picture, tiny_frozen, coder=coder),
                                                                  tiny_frozen, precision="fp32")))
    if coder == "fixed":
        assert len(data) - container.OVERHEAD - (k > 1) == k * (len(leechcodec.encode(picture, tiny_frozen, coder="fixed"))
                                                                - container.OVERHEAD)


def test_more_stages_bring_the_decoders_input_closer_to_the_latents(tiny_frozen, picture):
    from leechcodec import codec

    tiles = tiling.tile_image(np.asarray(picture), tiny_frozen.tile)
    latents: list = []
    first = codec.tiles_to_indices(tiny_frozen, tiles, latents=latents)
    z = np.concatenate(latents).reshape(-1, 24)
    gain = stages.gains(tiny_frozen, 4)
    toks = np.concatenate([first.reshape(1, -1), stages.later_tokens(z, first, gain)])
    err = [((stages.latent_sum(toks[:k], gain) - z) ** 2).sum(1).mean() for k in range(1, 5)]
    assert err[0] > err[1] > err[2] > err[3]
    assert np.allclose(stages.latent_sum(toks[:1], gain), lattice.vectors(first.reshape(-1)))


def test_lambda_leaves_out_later_tokens_and_trailing_stages(tiny_frozen, picture):
    """With λ the ar coder drops the later tokens not worth their bits (fewer bytes); a stage
    left without a token is not written (its count shrinks, version 2 when none is left)."""
    sizes, counts = [], []
    for lam in (0.0, 0.004, 0.01, 1.0):
        data = leechcodec.encode(picture, tiny_frozen, coder="ar", stages=3, lam=lam, precision="fp32")
        sizes.append(len(data))
        toks = _tokens(data, tiny_frozen)
        counts.append(int((toks[1:] >= 0).sum()))
        assert np.array_equal(toks, _expected(tiny_frozen, picture, 3, lam, first=toks[0])[: len(toks)])
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert counts[0] > counts[1] >= counts[2] and counts[-1] == 0
    assert leechcodec.read_header(leechcodec.encode(picture, tiny_frozen, coder="ar", stages=3, lam=1.0)).version == 2


def test_quality_table_is_monotone():
    """A higher quality never has fewer stages, nor, with as many, a smaller scale or a larger
    lambda; the rows are met exactly, the ends are the table's, and on the bench (README's block)
    the rows rise in both rate and PSNR."""
    from leechcodec.kodak_eval import doc_figures, run

    settings = [quality.quality_setting(q / 4) for q in range(0, 401)]
    order = [(k, s, -lam) for s, k, lam in settings]
    assert order == sorted(order)
    for q, s, k, lam in quality.QUALITY:
        assert quality.quality_setting(q) == (s, k, lam)
    assert {row[1:] for row in quality.QUALITY} <= set(run.CURVE)  # every row is a point of the bench's curve
    assert settings[-1] == quality.QUALITY[0][1:] and settings[0] == quality.QUALITY[-1][1:]
    points = {(float(p["scale"]), p["stages"], float(p["lambda"])): p
              for p in doc_figures.parse_bench(doc_figures.README.read_text())["curve"]}
    rows = [points[row[1:]] for row in reversed(quality.QUALITY)]  # lowest quality first
    assert all(a["bpp"] < b["bpp"] and a["psnr"] < b["psnr"] for a, b in zip(rows, rows[1:])), rows
    for bad in (-1, 101, float("nan"), True):
        with pytest.raises(ValueError):
            quality.quality_setting(bad)


def test_quality_and_bpp_pick_stages(tiny_frozen, picture):
    st: dict = {}
    leechcodec.encode(picture, tiny_frozen, quality=100, stats=st)
    assert st["stages"] == quality.QUALITY[0][2] > 1 and st["scale"] == quality.QUALITY[0][1]
    from leechcodec.ratecontrol import stages_for_bpp

    assert stages_for_bpp(0.1) == 2 and stages_for_bpp(0.6) == 4 and stages_for_bpp(9) == 8
    with pytest.raises(ValueError, match="not two"):
        leechcodec.encode(picture, tiny_frozen, quality=50, lam=0.01)
    with pytest.raises(ValueError, match="fixed coder"):
        leechcodec.encode(picture, tiny_frozen, coder="fixed", quality=50)
    with pytest.raises(ValueError, match="stages must be 1 to 8"):
        leechcodec.encode(picture, tiny_frozen, stages=9)


def _stream_with_stages(data: bytes, k: int) -> bytes:
    body = bytearray(data[:-4])
    body[container.HEADER.size] = k
    return bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big")


@pytest.mark.parametrize("k", [0, 1, 9, 255, 3])
def test_bad_stage_counts_are_refused_with_exit_4(tiny_frozen, picture, tmp_path, k):
    """A stage count outside 2 … 8 (one stage is version 2), or one the payload does not hold
    (3 stages over a 2-stage fixed payload), is a FormatError: exit 4, one line, no file written."""
    good = leechcodec.encode(picture, tiny_frozen, coder="fixed", stages=2)
    bad = tmp_path / "bad.lq"
    bad.write_bytes(_stream_with_stages(good, k))
    out = tmp_path / "out.png"
    r = CliRunner().invoke(cli, ["decode", str(bad), "-o", str(out), "--model", str(TINY)])
    assert r.exit_code == 4, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output and not out.exists()
    assert ("residual stages: a version-3 stream holds 2 to 8" if k != 3 else "for 2 tiles and 3 stages") in lines[0]
    if k != 3:
        r = CliRunner().invoke(cli, ["info", str(bad)])
        assert r.exit_code == 4 and "stages:" in r.stdout and "<- a version-3 stream holds 2 to 8" in r.stdout


def test_cli_stages_quality_and_info(tmp_path, picture):
    src = tmp_path / "a.png"
    picture.save(src)
    runner = CliRunner()
    for args, k in ((["--stages", "2"], 2), (["--coder", "fixed", "--stages", "3"], 3), (["-q", "100"], None)):
        lq = tmp_path / "a.lq"
        r = runner.invoke(cli, ["encode", str(src), "-o", str(lq), "--model", str(TINY), "-f", *args])
        assert r.exit_code == 0, r.output
        h = leechcodec.read_header(lq.read_bytes())
        assert h.stages == (k or quality.QUALITY[0][2]) and h.version == (3 if k else 4)
        r = runner.invoke(cli, ["info", str(lq)])
        assert r.exit_code == 0 and f"stages:     {h.stages} (up to {h.stages} tokens per 8x8 patch)" in r.stdout
        r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "b.png"), "--model", str(TINY), "-f"])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "c.lq"), "--model", str(TINY), "-q", "50",
                            "--bpp", "0.3"])
    assert r.exit_code == 2 and "one of --lambda, --bpp and --quality" in r.output
    r = runner.invoke(cli, ["encode", "--help"])
    assert "--quality" in r.output and "-q" in r.output and "--stages" in r.output


@pytest.mark.slow
def test_quality_and_bpp_meet_their_targets_on_kodak(kodak_dir):
    """On Kodak with the bundled model: a --quality row's mean size is the one the README quotes
    from the bench (within 5 %), and --bpp lands at or under its target, within 5 %, with the
    stages it needs (two Kodak pictures, a low and a high target)."""
    from leechcodec.cli.figures import FIGURES

    model = leechcodec.load_model()
    paths = sorted(kodak_dir.glob("kodim*.png"))
    assert len(paths) == 24
    q, s, k, lam = next(row for row in quality.QUALITY if row[2] == 2 and row[1] < 2)
    sizes = []
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        st: dict = {}
        sizes.append(8 * len(leechcodec.encode(rgb, model, quality=q, stats=st)) / (rgb.width * rgb.height))
    documented = float(FIGURES[f"point.{s:g}.{k}.{lam:g}.bpp"])
    assert abs(np.mean(sizes) / documented - 1) < 0.05, (np.mean(sizes), documented)
    for name, target in (("kodim23.png", 0.08), ("kodim05.png", 0.5), ("kodim23.png", 0.6)):
        with Image.open(kodak_dir / name) as im:
            rgb = im.convert("RGB")
        st = {}
        data = leechcodec.encode(rgb, model, bpp=target, stats=st)
        got = 8 * len(data) / (rgb.width * rgb.height)
        assert 0.98 * target <= got <= target, (name, got, target)
        # kodim23 at scale 1 is 0.107 bpp: smaller for 0.08; kodim05 twice the size; kodim23 at twice its size
        # is 0.35 bpp, so 0.6 needs a second stage
        assert (st["scale"] < 1, st["stages"]) == ((True, 1) if target < 0.1 else (False, 1 + (target > 0.55)))


def test_the_readme_quality_table_is_the_code_table():
    """README.md's --quality table lists QUALITY's rows, in order, with nothing typed in their cells."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| (\d) \| ([\d.]+) \| <!-- fig:point\.([\d.]+)\.(\d)\.([\d.]+)\.bpp -->",
                      readme, re.M)
    assert [(int(q), float(s), int(k), float(lam)) for q, s, k, lam, *_ in rows] == list(quality.QUALITY)
    assert all(float(s) == float(s2) and k == k2 and float(lam) == float(lam2) for _, s, k, lam, s2, k2, lam2 in rows)


def test_a_decoder_fine_tune_keeps_its_prior_with_a_new_id(tmp_path):
    """rebind_prior: the same integer prior for a tokenizer with the old encoder and another
    decoder (train --freeze-encoder); refused when the encoder changed."""
    import torch

    from leechcodec.models.io import save_weights
    from leechcodec.models.errors import TrainError
    from leechcodec.models.prior import rebind_prior

    old = load_weights(TINY, prior=None)
    with torch.no_grad():
        old.decoder.norm.weight.add_(0.25)
    save_weights(old, tmp_path / "dec.safetensors")
    pid = rebind_prior(DATA / "tiny.prior.safetensors", TINY, tmp_path / "dec.safetensors", tmp_path / "dec.prior.safetensors")
    new = load_weights(tmp_path / "dec.safetensors")
    assert bytes(new.prior.prior_id) == pid != bytes(load_weights(TINY).prior.prior_id)
    data = leechcodec.encode(DATA / "rgb-301x77.png", new, coder="ar")
    ref = leechcodec.encode(DATA / "rgb-301x77.png", load_weights(TINY), coder="ar")
    # another model id (header) and prior id (payload head), the same index CRC and range-coder words
    assert data[8:16] != ref[8:16] and data[34:42] != ref[34:42] and data[42:-4] == ref[42:-4]
    with torch.no_grad():
        old.encoder.norm.weight.add_(0.25)
    save_weights(old, tmp_path / "enc.safetensors")
    with pytest.raises(TrainError, match="another encoder"):
        rebind_prior(DATA / "tiny.prior.safetensors", TINY, tmp_path / "enc.safetensors", tmp_path / "x.safetensors")


def test_training_path_adds_the_later_stages_of_the_codec():
    """Quantizer dropout (models.vit.later_stages): a crop keeping K stages gets the decoder input
    the codec builds from its K stages at λ 0; its stage-1 path keeps the straight-through gradient."""
    import torch

    from leechcodec.models.config import PRESETS
    from leechcodec.models.vit import build, later_stages
    from leechcodec.quantizer import normalize

    torch.manual_seed(0)
    model = build(PRESETS["tiny"]).eval()
    x = torch.rand(6, 3, 64, 64)
    z = normalize(model.analysis(x)).detach()
    first = lattice.vectors(lattice.nearest(z.reshape(-1, 24))).reshape(z.shape).float()
    extra = later_stages(z, first, 3, model.cfg, torch.Generator().manual_seed(1))
    k_of = [0 if e.abs().sum() == 0 else 1 for e in extra]  # which crops kept more than one stage
    assert 0 < sum(k_of) < len(k_of)  # some crops keep one stage, some more
    gain = stages.gains(model, 3)
    for i, more in enumerate(k_of):
        if more:
            toks = stages.later_tokens(z[i].reshape(-1, 24).numpy(), lattice.nearest(z[i].reshape(-1, 24)).numpy(), gain)
            sums = [stages.latent_sum(np.concatenate([lattice.nearest(z[i].reshape(-1, 24)).numpy()[None], toks[:j]]), gain)
                    for j in (1, 2)]
            got = (first[i] + extra[i]).reshape(-1, 24).numpy()
            assert any(np.allclose(got, s, atol=1e-5) for s in sums)
    y = model(x, generator=torch.Generator().manual_seed(1), stages=3)
    y.sum().backward()
    assert model.encoder.out.weight.grad is not None and y.shape == x.shape


def test_a_stage_without_tokens_is_not_canonical(tiny_frozen, picture):
    """The encoder leaves out a trailing stage that holds no token; a stream that keeps one codes
    the same tokens as a shorter one, and is refused (one stream per token sequence)."""
    from leechcodec.errors import FormatError

    w, h = picture.size
    g = tiny_frozen.tile // tiny_frozen.patch
    ext = container.token_extents(w, h, tiny_frozen.tile, tiny_frozen.patch)
    first = _tokens(leechcodec.encode(picture, tiny_frozen, coder="ar"), tiny_frozen)[0]
    empty = lambda f: np.full((1, *f.shape), stages.ABSENT)  # noqa: E731
    payload = coders.encode_ar(first, tiny_frozen.prior, g, extents=ext, later=empty)
    tx, ty = container.tile_grid(w, h, tiny_frozen.tile)
    head = container.Header("ar", "RGB", bytes(tiny_frozen.model_id), w, h, tiny_frozen.tile, tx, ty, len(payload), 3, 2)
    with pytest.raises(FormatError, match="stage 2 holds no token"):
        leechcodec.decode(container.pack(head, payload), tiny_frozen)
