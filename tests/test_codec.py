import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

import leechcodec
from leechcodec import codec, coders, container, tiling
from leechcodec.errors import InputImageError, LeechWarning, LimitError, ModelMismatchError


def untile_image(tiles: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of ``tiling.tile_image``: (T, 3, tile, tile) → (height, width, 3), padding cropped."""
    tile = tiles.shape[-1]
    tx, ty = container.tile_grid(width, height, tile)
    full = tiles.reshape(ty, tx, 3, tile, tile).transpose(0, 3, 1, 4, 2).reshape(ty * tile, tx * tile, 3)
    return np.ascontiguousarray(full[:height, :width])


def test_library_does_not_import_models_or_click():
    code = "import sys, leechcodec; leechcodec.encode; print(sorted(m for m in ('leechcodec.models', 'click', 'leechcodec.kodak_eval', 'leechcodec.cli') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("w, h", [(1, 1), (256, 256), (300, 17), (513, 260)])
def test_tile_untile_inverse(w, h, rng):
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    tiles = tiling.tile_image(rgb, 256)
    assert tiles.shape == (-(-w // 256) * -(-h // 256), 3, 256, 256)
    np.testing.assert_array_equal(untile_image(tiles, w, h), rgb)
    # padding replicates the last column and the last row
    tx = -(-w // 256)
    if w % 256:
        last = tiles[tx - 1, :, 0, w % 256 :]  # (3, pad) in the first tile row
        assert (last == rgb[0, w - 1][:, None]).all()
    if h % 256:
        bottom = tiles[-1, :, h % 256 :, (w - 1) % 256]  # (3, pad) below the last row
        assert (bottom == rgb[h - 1, w - 1][:, None]).all()
    for source in (rgb, Image.fromarray(rgb)):  # what encode uses: the same tiles, a batch at a time
        lazy = tiling.Tiles(source, 256)
        assert len(lazy) == len(tiles)
        for sl in (slice(0, len(tiles)), slice(1, 3), slice(len(tiles) - 1, len(tiles) + 5)):
            np.testing.assert_array_equal(lazy[sl], tiles[sl])


def test_indices_round_trip_through_the_model(tiny_model, rng):
    tiles = rng.integers(0, 256, (2, 3, 256, 256), dtype=np.uint8)
    idx = codec.tiles_to_indices(tiny_model, tiles)
    assert idx.shape == (2, 1024)
    out = codec.indices_to_tiles(tiny_model, idx)
    assert out.shape == tiles.shape and out.dtype == np.uint8
    # decode is deterministic: the same indices give the same pixels
    np.testing.assert_array_equal(codec.indices_to_tiles(tiny_model, idx), out)


@pytest.mark.parametrize("w, h", [(1, 1), (31, 300), (256, 256), (700, 257)])
def test_encode_decode_sizes_and_rate(tiny_model, w, h, rng):
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    data = leechcodec.encode(img, tiny_model)
    hdr = leechcodec.read_header(data)
    assert (hdr.width, hdr.height, hdr.mode, hdr.coder, hdr.version) == (w, h, "RGB", "fixed", 2)
    # only the tokens whose 8x8 patch touches the image are stored: per tile rows × cols of them
    rows = [min(32, -(-(h - 256 * r) // 8)) for r in range(-(-h // 256))]
    cols = [min(32, -(-(w - 256 * c) // 8)) for c in range(-(-w // 256))]
    assert len(data) == 38 + sum(coders.fixed_tile_bytes(nr * nc) for nr in rows for nc in cols)
    if (w, h) == (256, 256):
        assert len(data) == 38 + 2251
    out = leechcodec.decode(data, tiny_model)
    assert out.size == (w, h) and out.mode == "RGB"
    # the decoded image re-encodes to the same tokens only approximately; but decoding twice is exact
    assert np.array_equal(np.asarray(out), np.asarray(leechcodec.decode(data, tiny_model)))


def test_decode_matches_token_path(tiny_model, rng):
    """decode(encode(x)) equals synthesis of the encoder's own tokens, padding tokens replaced
    by the stored tokens they copy (format version 2), cropped (float32 reference)."""
    rgb = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    data = leechcodec.encode(Image.fromarray(rgb), tiny_model, precision="fp32")
    idx = codec.tiles_to_indices(tiny_model, tiling.tile_image(rgb, 256))
    filled = coders.fill_padding(idx, container.token_extents(260, 300, 256, 8), 32)
    assert (filled != idx).any() and (filled.reshape(4, 32, 32)[0] == idx.reshape(4, 32, 32)[0]).all()
    tiles = codec.indices_to_tiles(tiny_model, filled)
    out = leechcodec.decode(data, tiny_model, precision="fp32")
    np.testing.assert_array_equal(np.asarray(out), untile_image(tiles, 260, 300))


def test_mode_policy(tiny_model, rng):
    grey = Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), "L")
    assert leechcodec.decode(leechcodec.encode(grey, tiny_model), tiny_model).mode == "L"
    rgba = Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA")
    with pytest.warns(LeechWarning, match="alpha"):
        data = leechcodec.encode(rgba, tiny_model)
    assert leechcodec.decode(data, tiny_model).mode == "RGB"
    i16 = Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16))
    with pytest.warns(LeechWarning, match="8 bits"):
        assert leechcodec.read_header(leechcodec.encode(i16, tiny_model)).mode == "L"
    cmyk = Image.new("CMYK", (9, 9), (10, 20, 30, 40))
    with pytest.warns(LeechWarning, match="CMYK"):
        leechcodec.encode(cmyk, tiny_model)
    pal = Image.new("P", (9, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        leechcodec.encode(pal, tiny_model)  # lossless expansion: no warning


def test_input_errors(tiny_model, tmp_path):
    with pytest.raises(InputImageError, match="cannot read"):
        leechcodec.encode(b"definitely not an image", tiny_model)
    png = tmp_path / "a.png"
    Image.new("RGB", (64, 64), "red").save(png)
    with pytest.raises(InputImageError):
        leechcodec.encode(png.read_bytes()[:60], tiny_model)
    with pytest.raises(LimitError):
        leechcodec.encode(Image.new("RGB", (100, 100)), tiny_model, max_pixels=9999)


def test_wrong_model_is_a_clear_error(tiny_model, rng):
    from leechcodec.models.vit import build

    other = build("tiny")
    other.model_id = b"\x01" * 8
    data = leechcodec.encode(Image.new("RGB", (8, 8)), tiny_model)
    with pytest.raises(ModelMismatchError, match="needs model"):
        leechcodec.decode(data, other)


def _model_with_halo(model, halo):
    import copy
    import dataclasses

    m = copy.copy(model)
    m.cfg = dataclasses.replace(model.cfg, decode_halo=halo)
    return m


def test_halo_decoding_uses_the_neighbours_tokens(tiny_model, rng):
    """Each tile is decoded from its window of the whole token grid, halo tokens around it."""
    import torch

    from leechcodec import lattice

    idx = rng.integers(0, lattice.N_CODEWORDS, (6, 32 * 32))  # 3 × 2 tiles
    plain = codec.indices_to_image(tiny_model, idx, 3, 2)
    np.testing.assert_array_equal(plain, untile_image(codec.indices_to_tiles(tiny_model, idx), 768, 512))
    m = _model_with_halo(tiny_model, 4)
    out = codec.indices_to_image(m, idx, 3, 2)
    assert out.shape == (512, 768, 3)
    grid = idx.reshape(2, 3, 32, 32).transpose(0, 2, 1, 3).reshape(64, 96)
    with torch.inference_mode():  # the middle tile of the top row: rows 0..36, columns 28..68 of the grid
        y = m.synthesis(lattice.vectors(torch.from_numpy(grid[0:36, 28:68]))[None]).float()[0]
    want = y[:, 0:256, 32:288].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out[0:256, 256:512], want)
    assert not np.array_equal(out, plain)
    one = idx[:1]  # a single tile has no neighbours: the halo changes nothing
    np.testing.assert_array_equal(codec.indices_to_image(m, one, 1, 1), codec.indices_to_image(tiny_model, one, 1, 1))


def test_decode_halo_config_is_checked_and_keeps_old_ids(tiny_model):
    import dataclasses
    import json

    from leechcodec.models.config import config_from_json, model_id_of
    from leechcodec.models.io import _fp16_state
    from leechcodec.models.vit import TokenizerConfig

    for bad in (-1, 33):
        with pytest.raises(ValueError, match="decode_halo"):
            TokenizerConfig(name="tiny", width=32, depth=1, dec_depth=1, heads=2, decode_halo=bad)
    d = tiny_model.cfg.to_dict()
    assert config_from_json(json.dumps(d)).decode_halo == 0  # 0 is valid in a weights file
    state = _fp16_state(tiny_model)
    old = {k: v for k, v in d.items() if k not in ("decode_halo", "skip")}
    assert model_id_of(TokenizerConfig.from_dict(old), state) == model_id_of(tiny_model.cfg, state)
    assert model_id_of(dataclasses.replace(tiny_model.cfg, decode_halo=2), state) != model_id_of(tiny_model.cfg, state)


@pytest.mark.parametrize("tx, ty", [(1, 5), (4, 4)])  # a tall thin strip, and a 4 × 4-tile picture
def test_halo_decoding_is_deterministic_and_bounded(tiny_model, rng, tx, ty):
    from leechcodec import lattice

    m = _model_with_halo(tiny_model, 3)
    seen = []
    synth = m.synthesis
    m.synthesis = lambda q: (seen.append(q.shape[1] * q.shape[2]), synth(q))[1]
    idx = rng.integers(0, lattice.N_CODEWORDS, (tx * ty, 32 * 32))
    a = codec.indices_to_image(m, idx, tx, ty)
    b = codec.indices_to_image(m, idx, tx, ty)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (ty * 256, tx * 256, 3)
    w, h = tx * 256 - 77, ty * 256 - 5  # the picture's own size: the padding is not allocated, the rest is the same
    np.testing.assert_array_equal(codec.indices_to_image(m, idx, tx, ty, size=(w, h)), a[:h, :w])
    plain = codec.indices_to_image(tiny_model, idx, tx, ty)  # no halo: tiles on their own, likewise
    np.testing.assert_array_equal(codec.indices_to_image(tiny_model, idx, tx, ty, size=(w, h)), plain[:h, :w])
    for model, full in ((m, a), (tiny_model, plain)):  # pasted into a PIL image (what decode does)
        im = codec.indices_to_image(model, idx, tx, ty, into=Image.new("RGB", (w, h)))
        np.testing.assert_array_equal(np.asarray(im), full[:h, :w])
    seen.clear()
    codec.indices_to_image(m, idx, tx, ty)
    assert len(seen) == tx * ty and max(seen) <= (32 + 2 * 3) ** 2  # one window per tile, never the whole grid


def test_precision_reaches_models_that_take_it_only(tiny_model, rng):
    """bf16 runs the transformer blocks of a LeechTokenizer in bf16; a duck-typed model whose
    analysis/synthesis take no ``block_dtype`` is simply run in float32."""
    import types

    img = Image.fromarray(rng.integers(0, 256, (64, 300, 3), dtype=np.uint8))
    duck = types.SimpleNamespace(analysis=lambda x: tiny_model.analysis(x), synthesis=lambda q: tiny_model.synthesis(q),
                                 model_id=tiny_model.model_id, tile=256, patch=8, prior=None)  # fmt: skip
    ref = leechcodec.encode(img, tiny_model, coder="fixed", precision="fp32")
    assert leechcodec.encode(img, duck, coder="fixed", precision="bf16") == ref
    pix = np.asarray(leechcodec.decode(ref, tiny_model, precision="fp32"))
    np.testing.assert_array_equal(np.asarray(leechcodec.decode(ref, duck, precision="bf16")), pix)
    bf = np.asarray(leechcodec.decode(ref, tiny_model, precision="bf16"), dtype=np.int16)
    assert 0 < np.abs(bf - pix).max() <= 16  # the blocks did run in bf16: close, not identical
