"""The rate knob (leechcodec/rdo.py, ``encode --lambda`` / ``--bpp``), on the bundled model and prior.

λ = 0 is today's stream, larger λ never a larger one, every knob stream decodes with the plain
decoder, and the same bytes come out whatever the number of threads.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec.cli.main import cli
from leechcodec import coders, container, lattice, probability, rdo
from leechcodec.errors import RateError
from leechcodec.models.io import load_weights

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGE = REPO / "docs" / "kodim23.png"

LAMS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)


@pytest.fixture(scope="module")
def model(one_thread):
    m = load_weights()
    assert m.prior is not None
    return m


@pytest.fixture(scope="module")
def picture():
    """A 256x200 crop of the demo image: one tile, a padded edge."""
    with Image.open(DEMO_IMAGE) as im:
        return im.convert("RGB").crop((300, 150, 556, 350))


@pytest.fixture(scope="module")
def sweep(model, picture):
    return {lam: leechcodec.encode(picture, model, coder="ar", lam=lam, precision="fp32") for lam in LAMS}


def _tokens(data: bytes, model) -> np.ndarray:
    h, payload = container.unpack(data)
    return coders.decode_ar(payload, h.n_tiles, 32, model.prior, extents=container.token_extents(h.width, h.height, 256, 8))


def test_lambda_0_is_todays_stream(model, picture, sweep):
    assert sweep[0.0] == leechcodec.encode(picture, model, coder="ar", precision="fp32")


def test_larger_lambda_never_gives_a_larger_stream(model, picture, sweep):
    """Monotone over the knob's range (up to ratecontrol.LAMBDA_MAX, where --bpp searches); past it
    the choice saturates (moves are bounded by rdo.MAX_DIST) and sizes only jitter."""
    from leechcodec import ratecontrol as codec

    sizes = [len(sweep[lam]) for lam in LAMS]
    assert LAMS[-1] == codec.LAMBDA_MAX and all(b < a for a, b in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] < 0.6 * sizes[0], sizes  # the knob reaches far: under 60 % of today's
    beyond = len(leechcodec.encode(picture, model, coder="ar", lam=3 * codec.LAMBDA_MAX, precision="fp32"))
    assert beyond > 0.9 * sizes[-1], (beyond, sizes)  # a larger λ buys (almost) nothing more


def test_knob_streams_decode_with_the_plain_decoder(model, picture, sweep):
    ref = np.asarray(picture).astype(float)
    psnr = {}
    for lam, data in sweep.items():
        out = leechcodec.decode(data, model, precision="fp32")
        assert out.size == picture.size
        psnr[lam] = 10 * np.log10(255**2 / np.mean((ref - np.asarray(out).astype(float)) ** 2))
    assert psnr[0.003] > psnr[0.0] - 0.2 and psnr[0.3] < psnr[0.0]  # softer as the files shrink
    # the tokens move only where the prior pays for it: a few at small λ, many at large λ
    t0, t1, t3 = _tokens(sweep[0.0], model), _tokens(sweep[0.003], model), _tokens(sweep[0.1], model)
    moved_small, moved_large = (t1 != t0).mean(), (t3 != t0).mean()
    assert 0 < moved_small < moved_large < 1


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_vanishing_lambda_picks_the_nearest_codewords(model):
    """cost = distance + λ·bits: as λ → 0 the choice is the exact nearest codeword (checks the
    candidates, the distance and the index assembly)."""
    y = _unit(np.random.default_rng(3).standard_normal((300, 24)))
    y[:10] = lattice.vectors(np.arange(10) * 19_000)  # some latents on codewords, of all three classes
    nearest = lattice.nearest(y)
    cls, sup = rdo.geometric_supports(y, nearest)
    h = model.prior.features(np.zeros((300, 288)))
    got = rdo.choose(model.prior, h, y, nearest, cls, sup, 1e-12)
    assert np.array_equal(got, nearest)
    # a huge λ: the cheapest candidate within MAX_DIST of the latent, never farther
    far = rdo.choose(model.prior, h, y, nearest, cls, sup, 1e6)
    dist = ((lattice.vectors(far).astype(np.float64) - y) ** 2).sum(1)
    assert ((dist <= rdo.MAX_DIST + 1e-9) | (far == nearest)).all() and (far != nearest).any()


def _bits(logits) -> np.ndarray:
    """−log2 p of each symbol of one row of logits, from the coder's integer frequencies."""
    f = probability.frequencies(logits)[0]
    return np.log2(f.sum()) - np.log2(f)


def _costs(prior, h, y, cls: int, sup: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The codewords of support ``sup`` of class ``cls`` and their |y − v/√32|² + λ·bits at a
    position with prior features ``h`` (1, hidden) and unit latent ``y`` (24,): class, support
    and detail bits."""
    start = lattice.BASES[cls] + sup * lattice.DETAIL[cls]
    idx = np.arange(start, start + lattice.DETAIL[cls])
    rate = (_bits(prior.class_logits(h))[cls] + _bits(prior.support_logits(h, cls))[sup]
            + _bits(prior.detail_logits(h, cls, np.array([sup]))))  # fmt: skip
    v = lattice.codebook()[idx].astype(np.float64) / np.sqrt(lattice.SQ_NORM)
    return idx, ((np.asarray(y, np.float64) - v) ** 2).sum(1) + lam * rate


def _cost(prior, h, y, idx: int, lam: float) -> float:
    cls, sup, det = (int(v) for v in lattice.split_index(idx))
    return float(_costs(prior, h, y, cls, sup, lam)[1][det])


def _brute_choice(prior, h, y, cls, sup, lam: float) -> dict[int, float]:
    """Every codeword of every candidate support within MAX_DIST of ``y``, with its cost."""
    costs = {}
    for k, a in zip(cls.tolist(), sup.tolist()):
        idx, cost = _costs(prior, h, y, k, a, lam)
        dist = ((y.astype(np.float64) - lattice.codebook()[idx] / np.sqrt(lattice.SQ_NORM)) ** 2).sum(1)
        costs.update((int(j), float(c)) for j, c, d in zip(idx, cost, dist) if d <= rdo.MAX_DIST)
    return costs


@pytest.mark.parametrize("lam", [0.03, 0.1])
def test_choice_is_the_cheapest_candidate_by_brute_force(model, lam):
    """``rdo.choose`` against a brute force on a small grid of positions: every codeword of every
    candidate support (its class, support and detail bits from the coder's frequencies, and its
    squared distance), the cheapest within MAX_DIST is the one chosen (or the nearest codeword,
    if none is within it)."""
    g = np.random.default_rng(5)
    n = 12
    y = _unit(g.standard_normal((n, 24)))
    y[:4] = _unit(lattice.vectors(g.integers(0, lattice.N_CODEWORDS, 4)) + 0.15 * g.standard_normal((4, 24)))  # near codewords
    nearest = lattice.nearest(y)
    ctx = lattice.codebook()[g.integers(0, lattice.N_CODEWORDS, n * 12)]
    h = model.prior.features(ctx.reshape(n, 288))  # varied contexts: 12 neighbours each
    cls, sup = rdo.geometric_supports(y, nearest)
    got = rdo.choose(model.prior, h, y, nearest, cls, sup, lam, likely=0)
    moved = 0
    for i in range(n):
        costs = _brute_choice(model.prior, h[i : i + 1], y[i], cls[i], sup[i], lam)
        want = min(costs.values()) if costs else None
        if want is None:
            assert int(got[i]) == int(nearest[i])
        else:
            assert int(got[i]) in costs and costs[int(got[i])] == pytest.approx(want, abs=1e-9), (i, int(got[i]))
        moved += int(got[i]) != int(nearest[i])
    assert moved >= 3, moved  # the rate moved some tokens: the bits are in play
    # the prior's likeliest supports only add candidates: never a dearer choice
    more = rdo.choose(model.prior, h, y, nearest, cls, sup, lam)
    for i in range(n):
        assert _cost(model.prior, h[i : i + 1], y[i], int(more[i]), lam) <= _cost(
            model.prior, h[i : i + 1], y[i], int(got[i]), lam) + 1e-9


def test_supports_are_found_a_bounded_batch_at_a_time(model, picture, sweep, monkeypatch):
    """The rate search's big intermediates, geometric_supports' (n, 4096) float32 scores and the
    (M, 128, 24) float64 codewords of the candidates of ``choose``, are made for at most
    ``rdo.SUPPORT_BATCH`` latents and ``rdo.CHOOSE_BATCH`` positions at once, whatever the
    picture's size (a 12-megapixel picture's 187,500 tokens held 3 GB at once), and the stream
    is the one of single calls."""
    calls, chosen = [], []
    real, real_choose = rdo.geometric_supports, getattr(rdo, "_choose", None)

    def spy(y, nearest, m=None):
        calls.append(y.shape[0])
        return real(y, nearest, m)

    def spy_choose(prior, h, *args):
        chosen.append(h.shape[0])
        return real_choose(prior, h, *args)

    monkeypatch.setattr(rdo, "geometric_supports", spy)
    monkeypatch.setattr(rdo, "_choose", spy_choose, raising=False)
    monkeypatch.setattr(rdo, "SUPPORT_BATCH", 100, raising=False)
    monkeypatch.setattr(rdo, "CHOOSE_BATCH", 7, raising=False)
    assert leechcodec.encode(picture, model, coder="ar", lam=0.03, precision="fp32") == sweep[0.03]
    assert sum(calls) == 1024 and max(calls) <= 100, calls  # one tile's tokens, 100 at a time
    assert sum(chosen) == 32 * 25 and max(chosen) <= 7, chosen  # its stored tokens, 7 at a time


def test_batched_candidates_are_one_calls():
    y = _unit(np.random.default_rng(7).standard_normal((3000, 24)))
    nearest = lattice.nearest(y)
    want = rdo.geometric_supports(y, nearest)
    for batch in (4096, 1000, 7):
        got = rdo.candidate_supports(y, nearest, batch)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), batch


def test_same_bytes_with_one_or_two_threads(sweep):
    """One or two threads for the networks (torch) and for the prior's matmuls (the BLAS under
    numpy, which reads its thread count from the environment at import)."""
    code = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(int(sys.argv[1]))
        from PIL import Image
        import leechcodec
        from leechcodec.models.io import load_weights
        im = Image.open({str(DEMO_IMAGE)!r}).convert("RGB").crop((300, 150, 556, 350))
        sys.stdout.buffer.write(leechcodec.encode(im, load_weights(), coder="ar", lam=0.03, precision="fp32"))
    """)
    outs = [subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, cwd=REPO, check=True,
                           env={**os.environ, "OPENBLAS_NUM_THREADS": str(n), "OMP_NUM_THREADS": str(n)}).stdout
            for n in (1, 2)]  # fmt: skip
    assert outs[0] == outs[1] == sweep[0.03]


@pytest.mark.parametrize("fraction", [0.5])
def test_target_bpp_at_a_fixed_size(model, picture, sweep, fraction):
    """--bpp B with --scale 1: at the picture's own size, the largest stream at or under B that the
    λ search finds, within ratecontrol.BPP_TOLERANCE (2 %, what the help and README promise) of B."""
    from leechcodec import ratecontrol

    pixels = picture.size[0] * picture.size[1]
    today = 8 * len(sweep[0.0]) / pixels
    # a target above today's stream: a second stage fills the room, stage 1 is today's tokens
    roomy = leechcodec.encode(picture, model, coder="ar", bpp=today + 0.01, scale=1, precision="fp32")
    assert len(sweep[0.0]) < len(roomy) <= (today + 0.01) * pixels / 8
    assert leechcodec.read_header(roomy).stages == 2
    assert leechcodec.encode(picture, model, coder="ar", bpp=today + 0.01, stages=1, scale=1,
                             precision="fp32") == sweep[0.0]
    stats: dict = {}
    target = fraction * today
    data = leechcodec.encode(picture, model, coder="ar", bpp=target, scale=1, precision="fp32", stats=stats)
    assert ratecontrol.BPP_TOLERANCE == 0.02
    assert (1 - ratecontrol.BPP_TOLERANCE) * target <= 8 * len(data) / pixels <= target, (8 * len(data) / pixels, target)
    assert 0 < stats["lambda"] < 1 and stats["coded_size"] == picture.size
    assert data == leechcodec.encode(picture, model, coder="ar", lam=stats["lambda"], precision="fp32")
    with pytest.raises(RateError, match="smallest stream the rate knob reaches"):
        leechcodec.encode(picture, model, coder="ar", bpp=0.001, scale=1)


@pytest.mark.parametrize("fraction", [0.25, 0.6, 1.7, 4.0])
def test_target_bpp_never_overshoots(model, picture, sweep, fraction):
    """--bpp B: at or under B, within 2 % of it, the coded size (and above twice the size, the
    stages) chosen per picture; the stream decodes at the picture's size; the search runs the
    network at no more than ratecontrol.MAX_SIZES sizes, and one between the closest two."""
    from leechcodec import ratecontrol

    pixels = picture.size[0] * picture.size[1]
    target = fraction * 8 * len(sweep[0.0]) / pixels
    sizes = []
    real = leechcodec.codec.tiles_to_indices

    def counted(net, tiles, *a, **k):
        sizes.append((tiles.w, tiles.h))
        return real(net, tiles, *a, **k)

    stats: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(leechcodec.codec, "tiles_to_indices", counted)
        data = leechcodec.encode(picture, model, coder="ar", bpp=target, precision="fp32", stats=stats)
    got = 8 * len(data) / pixels
    assert (1 - ratecontrol.BPP_TOLERANCE) * target <= got <= target, (got, target, stats)
    assert len(set(sizes)) <= ratecontrol.MAX_SIZES + 1, sizes
    h = leechcodec.read_header(data)
    assert h.coded_size == stats["coded_size"] and (h.version == 4) == (h.coded_size != picture.size)
    assert (fraction < 1) == (h.coded_size[0] < picture.size[0])  # a smaller picture below today's rate
    assert leechcodec.decode(data, model).size == picture.size
    with pytest.raises(RateError, match="smallest stream"):
        leechcodec.encode(picture, model, coder="ar", bpp=0.001)


def test_bpp_search_reaches_the_tolerance_on_a_steep_knob():
    """Where the sizes fall steeply across the target (a 1000-byte drop within 0.1 % of λ), the
    search's first steps land far under it; it goes on until it is within the tolerance."""
    from leechcodec import ratecontrol as codec

    lam_c = 0.0123

    def stream(lam):  # 2000 bytes below lam_c, 1000 above lam_c·e^0.001, linear in log λ between
        t = min(1.0, max(0.0, (np.log(lam) - np.log(lam_c)) / 1e-3)) if lam > 0 else 0.0
        return bytes(int(round(2000 - 1000 * t)))

    calls = []
    target = 8 * 1500 / 1000  # bpp of 1500 bytes over 1000 pixels

    def counted(lam):
        calls.append(lam)
        return stream(lam)

    lam, data = codec.search_lambda(counted, target, 1000)
    assert (1 - codec.BPP_TOLERANCE) * 1500 <= len(data) <= 1500, len(data)
    assert data == stream(lam) and 2 + codec.BPP_STEPS < len(calls) <= 2 + codec.BPP_STEPS + codec.BPP_MORE_STEPS


def test_cli_knob_options(tmp_path, picture):
    src = tmp_path / "p.png"
    picture.save(src)
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "a.lq"), "--lambda", "0.03"])
    assert r.exit_code == 0 and "lambda 0.03" in r.stderr
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "b.lq"), "--bpp", "0.0001"])
    assert r.exit_code == 12 and r.stderr.count("\n") == 1 and not (tmp_path / "b.lq").exists()
    for bad in (["--lambda", "0.1", "--bpp", "0.1"], ["--lambda", "0.1", "--coder", "fixed"], ["--lambda", "-1"],
                ["--bpp", "0"]):
        r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "c.lq"), *bad])
        assert r.exit_code == 2, bad


def test_effort_then_knob_starts_from_the_refined_tokens(model, picture):
    """With --effort, the knob's targets are the refined latents, whose nearest codewords are the
    refined tokens: a vanishing λ keeps the effort's stream, a larger one shrinks it."""
    refined = leechcodec.encode(picture, model, coder="ar", effort=1, precision="fp32")
    assert refined != leechcodec.encode(picture, model, coder="ar", precision="fp32")  # effort moved tokens
    assert leechcodec.encode(picture, model, coder="ar", effort=1, lam=1e-9, precision="fp32") == refined
    smaller = leechcodec.encode(picture, model, coder="ar", effort=1, lam=0.03, precision="fp32")
    assert len(smaller) < 0.9 * len(refined)
    assert leechcodec.decode(smaller, model).size == picture.size


@pytest.mark.parametrize("bits_per_token", [8.0, 10.6, 14.0])
@pytest.mark.parametrize("target", [0.03, 0.1, 0.5, 1.2])
def test_bpp_search_never_returns_a_stream_over_the_target(bits_per_token, target):
    """ratecontrol.search on a picture whose bits per token are not Kodak's (so its first size lands
    over or under the target): what it returns is at or under the target, within 2 % of it, from
    at most MAX_SIZES + 1 sizes. The stand-in coders make a stream of as many bytes as its tokens'
    bits (λ takes off up to 60 %, a later stage costs 1.8 times stage 1's bits)."""
    import math
    from types import SimpleNamespace

    from leechcodec import ratecontrol

    w, h, patch = 768, 512, 8
    sizes = []

    def code_at(size):
        sizes.append(size)
        return SimpleNamespace(size=size, tokens=ratecontrol.tokens_of(size, patch))

    def stream(c, lam, k):
        scale = c.size[0] / w
        bits = c.tokens * bits_per_token * scale**ratecontrol.TOKEN_EXPONENT * (1 + 1.8 * (k - 1))
        bits *= max(0.4, 1 - 20 * lam)
        return bytes(math.ceil((ratecontrol.HEADER_BITS + bits) / 8))

    data, lam = ratecontrol.search(code_at, stream, target, (w, h), patch)
    got = 8 * len(data) / (w * h)
    assert (1 - ratecontrol.BPP_TOLERANCE) * target <= got <= target, (got, target, sizes)
    assert len(set(sizes)) <= ratecontrol.MAX_SIZES + 1, sizes
