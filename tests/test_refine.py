"""encode --effort: token refinement against the decoder (leechcodec/refine.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import codec, coders, container, refine, tiling

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGE = REPO / "docs" / "kodim23.png"


@pytest.fixture(scope="module")
def trained_like():
    """The tiny model with its PCA skip path: untrained, but its tokens carry the picture."""
    from leechcodec.models.vit import build, pca_init

    torch.manual_seed(0)
    m = build("shot-tiny")
    pca_init(m, torch.rand(4, 3, 64, 64))
    m.model_id = b"\1" * 8
    return m.eval()


def _photo(w, h, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([np.sin(6 * xx + c) * 0.3 + 0.5 + 0.2 * yy for c in range(3)], -1) + 0.05 * rng.standard_normal((h, w, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _psnr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return 10 * np.log10(255**2 / np.mean((a - b) ** 2))


def test_more_effort_never_lowers_psnr(trained_like):
    torch.set_num_threads(1)
    img = _photo(96, 80)
    scores = []
    for effort in (0, 1, 3, 6):
        data = leechcodec.encode(img, trained_like, coder="fixed", effort=effort)
        out = leechcodec.decode(data, trained_like)  # the plain decoder: the format is unchanged
        assert out.size == img.size and len(data) == len(leechcodec.encode(img, trained_like, coder="fixed"))
        scores.append(_psnr(img, out))
    assert all(b >= a for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] > scores[0], scores  # and it does something


def test_effort_zero_is_the_encoders_tokens(trained_like):
    img = _photo(64, 64, seed=1)
    assert leechcodec.encode(img, trained_like, effort=0, coder="fixed") == leechcodec.encode(img, trained_like, coder="fixed")


def test_refine_counts_only_real_pixels(trained_like):
    """Padding is cropped on decode, so it must not pull the tokens: with a mask, the error on
    the real pixels is what never rises, with the padding tokens the decoder rebuilds."""
    torch.set_num_threads(1)
    img = np.asarray(_photo(40, 30, seed=2))
    tiles = tiling.tile_image(img, 256)
    idx = codec.tiles_to_indices(trained_like, tiles)
    new = refine.refine_indices(trained_like, tiles, idx, 40, 30, 4)
    extents = container.token_extents(40, 30, 256, 8)
    assert np.array_equal(new, coders.fill_padding(new, extents, 32))  # padding tokens are the decoder's copies
    def err(ix):
        return float(((codec.indices_to_tiles(trained_like, ix)[0, :, :30, :40].astype(float) - img.transpose(2, 0, 1)) ** 2).sum())
    assert err(new) <= err(coders.fill_padding(idx, extents, 32))


def _tokens(data: bytes, model) -> np.ndarray:
    """The (T, g, g) tokens a fixed-coder stream decodes to, padding tokens filled."""
    h, payload = container.unpack(data)
    g = model.tile // model.patch
    return coders.decode_fixed(payload, h.n_tiles, g * g, container.token_extents(h.width, h.height, h.tile, model.patch)).reshape(-1, g, g)


def test_halo_models_keep_the_better_picture(trained_like):
    """With a decoder halo, a tile's tokens also paint its neighbours: the codec keeps the
    refined tokens only if the whole decoded picture is better. Here they are: the stored tokens
    of the full tile and of the strips beside it moved, and the decoded picture is better."""
    import copy
    import dataclasses

    torch.set_num_threads(1)
    m = copy.copy(trained_like)
    m.cfg = dataclasses.replace(m.cfg, decode_halo=4)
    img = _photo(300, 260, seed=3)  # 2 × 2 tiles, the right and bottom ones padded
    plain, refined = leechcodec.encode(img, m, coder="fixed"), leechcodec.encode(img, m, coder="fixed", effort=2)
    base = _psnr(img, leechcodec.decode(plain, m))
    more = _psnr(img, leechcodec.decode(refined, m))
    stored = coders.stored_mask(container.token_extents(300, 260, 256, 8), 32)  # (4, 32, 32)
    moved = ((_tokens(refined, m) != _tokens(plain, m)) & stored).reshape(4, -1).sum(1)
    assert (moved[:3] > 0).all(), moved  # the 44 x 4 px corner tile may keep its tokens
    assert more > base, (base, more)


@pytest.fixture(scope="module")
def bundled(one_thread):
    from leechcodec.models.io import load_weights

    return load_weights()


def _crop(path, box):
    with Image.open(path) as im:
        return im.convert("RGB").crop(box)


# Crops whose decoded PSNR effort lowered while refinement measured the encoder's padding
# instead of the decoder's version-2 fill (kodim23 120x90: 28.32 -> 27.82 dB at effort 2).
ODD_SIZES = [
    pytest.param(DEMO_IMAGE, (100, 300, 220, 390), 2, id="120x90"),
    pytest.param(DEMO_IMAGE, (0, 0, 120, 90), 1, id="120x90-corner"),
    pytest.param("kodim01.png", (0, 0, 300, 1), 1, id="300x1"),
    pytest.param("kodim01.png", (0, 0, 1, 300), 2, id="1x300"),
    pytest.param(DEMO_IMAGE, (300, 150, 600, 407), 1, id="300x257", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("source, box, effort", ODD_SIZES)
def test_effort_never_lowers_the_decoded_psnr_at_odd_sizes(bundled, source, box, effort, request):
    """The bundled model (decoder halo 6) on pictures whose sides are not multiples of 256: the
    tokens are refined against what the decoder makes of the stream, padding tokens rebuilt
    from the stored ones, so the decoded picture is never worse than at effort 0."""
    if isinstance(source, str):
        source = request.getfixturevalue("kodak_dir") / source
    img = _crop(source, box)
    plain = leechcodec.encode(img, bundled, coder="fixed", precision="fp32")
    refined = leechcodec.encode(img, bundled, coder="fixed", effort=effort, precision="fp32")
    assert len(refined) == len(plain)
    base = _psnr(img, leechcodec.decode(plain, bundled, precision="fp32"))
    more = _psnr(img, leechcodec.decode(refined, bundled, precision="fp32"))
    assert more >= base, (base, more)


def test_cli_effort(tiny_model_path, tmp_path):
    from leechcodec.cli.main import cli

    _photo(70, 50).save(tmp_path / "a.png")
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.lq"), "--effort", "2",
                                 "--model", str(tiny_model_path), "--coder", "fixed", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "a.lq"), "-o", str(tmp_path / "b.png"), "--model", str(tiny_model_path), "--quiet"])
    assert r.exit_code == 0 and Image.open(tmp_path / "b.png").size == (70, 50)
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.lq"), "--effort", "-1"])
    assert r.exit_code != 0 and not (tmp_path / "c.lq").exists()


def test_long_effort_shows_progress_on_one_tile(tiny_model, capsys):
    """The effort bar counts rounds, so a one-tile picture at a high effort shows progress too."""
    img = np.asarray(_photo(70, 50))
    tiles = tiling.tile_image(img, tiny_model.tile)  # one tile
    assert len(tiles) == 1
    idx = codec.tiles_to_indices(tiny_model, tiles)
    refine.refine_indices(tiny_model, tiles, idx, 70, 50, 5, progress=True)
    err = capsys.readouterr().err
    assert "effort" in err and "0/5 [" in err and "round" in err, err  # (it may stop early: nothing left to gain)
