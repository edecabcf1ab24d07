"""The rate knob (leechcodec/rdo.py, ``encode --lambda`` / ``--bpp``), on the bundled model and prior.

λ = 0 is today's stream, larger λ never a larger one, every knob stream decodes with the plain
decoder, and the same bytes come out whatever the number of torch threads.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import leechcodec
from cli.main import cli
from leechcodec import coders, container, lattice, rdo
from leechcodec.errors import RateError
from models.io import load_weights

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
    """Monotone over the knob's range (up to codec.LAMBDA_MAX, where --bpp searches); past it the
    choice saturates (moves are bounded by rdo.MAX_DIST) and sizes only jitter."""
    from leechcodec import codec

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


def test_vanishing_lambda_picks_the_nearest_codewords(model):
    """cost = distance + λ·bits: as λ → 0 the choice is the exact nearest codeword (checks the
    candidates, the distance and the index assembly)."""
    y = torch.nn.functional.normalize(torch.randn(300, 24, generator=torch.Generator().manual_seed(3)), dim=1)
    y[:10] = lattice.vectors(torch.arange(10) * 19_000)  # some latents on codewords, of all three classes
    nearest = lattice.nearest(y)
    cls, sup = rdo.geometric_supports(y, nearest)
    h = model.prior.features(torch.zeros(300, 288, dtype=torch.float64))
    got = rdo.choose(model.prior, h, y.double(), nearest, cls, sup, 1e-12)
    assert torch.equal(got, nearest)
    # a huge λ: the cheapest candidate within MAX_DIST of the latent, never farther
    far = rdo.choose(model.prior, h, y.double(), nearest, cls, sup, 1e6)
    dist = ((lattice.vectors(far).double() - y.double()) ** 2).sum(1)
    assert ((dist <= rdo.MAX_DIST + 1e-9) | (far == nearest)).all() and (far != nearest).any()


def test_same_bytes_with_one_or_two_threads(sweep):
    code = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(int(sys.argv[1]))
        from PIL import Image
        import leechcodec
        from models.io import load_weights
        im = Image.open({str(DEMO_IMAGE)!r}).convert("RGB").crop((300, 150, 556, 350))
        sys.stdout.buffer.write(leechcodec.encode(im, load_weights(), coder="ar", lam=0.03, precision="fp32"))
    """)
    outs = [subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, cwd=REPO, check=True).stdout
            for n in (1, 2)]
    assert outs[0] == outs[1] == sweep[0.03]


def test_target_bpp(model, picture, sweep):
    pixels = picture.size[0] * picture.size[1]
    today = 8 * len(sweep[0.0]) / pixels
    assert leechcodec.encode(picture, model, coder="ar", bpp=today + 0.01, precision="fp32") == sweep[0.0]
    stats: dict = {}
    target = 0.7 * today
    data = leechcodec.encode(picture, model, coder="ar", bpp=target, precision="fp32", stats=stats)
    assert 8 * len(data) / pixels <= target and 8 * len(data) / pixels > 0.6 * today  # at, or just under
    assert 0 < stats["lambda"] < 1
    with pytest.raises(RateError, match="smallest stream the rate knob reaches"):
        leechcodec.encode(picture, model, coder="ar", bpp=0.001)


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
