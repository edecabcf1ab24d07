"""encode --effort: token refinement against the decoder (leechcodec/refine.py)."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import codec, refine


@pytest.fixture(scope="module")
def trained_like():
    """The tiny model with its PCA skip path: untrained, but its tokens carry the picture."""
    from models.vit import build, pca_init

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
    the real pixels is what never rises."""
    torch.set_num_threads(1)
    img = np.asarray(_photo(40, 30, seed=2))
    tiles = codec.tile_image(img, 256)
    idx = codec.tiles_to_indices(trained_like, tiles)
    new = refine.refine_indices(trained_like, tiles, idx, 40, 30, 4)
    def err(ix):
        return float(((codec.indices_to_tiles(trained_like, ix)[0, :, :30, :40].astype(float) - img.transpose(2, 0, 1)) ** 2).sum())
    assert err(new) <= err(idx)


def test_halo_models_keep_the_better_picture(trained_like):
    """With a decoder halo, a tile's tokens also paint its neighbours: the codec keeps the
    refined tokens only if the whole decoded picture is better."""
    import copy
    import dataclasses

    torch.set_num_threads(1)
    m = copy.copy(trained_like)
    m.cfg = dataclasses.replace(m.cfg, decode_halo=4)
    img = _photo(300, 260, seed=3)  # 2 × 2 tiles
    base = _psnr(img, leechcodec.decode(leechcodec.encode(img, m, coder="fixed"), m))
    more = _psnr(img, leechcodec.decode(leechcodec.encode(img, m, coder="fixed", effort=2), m))
    assert more >= base


def test_cli_effort(tiny_model_path, tmp_path):
    from cli.main import cli

    _photo(70, 50).save(tmp_path / "a.png")
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.lq"), "--effort", "2",
                                 "--model", str(tiny_model_path), "--coder", "fixed", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "a.lq"), "-o", str(tmp_path / "b.png"), "--model", str(tiny_model_path), "--quiet"])
    assert r.exit_code == 0 and Image.open(tmp_path / "b.png").size == (70, 50)
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.lq"), "--effort", "-1"])
    assert r.exit_code != 0 and not (tmp_path / "c.lq").exists()
