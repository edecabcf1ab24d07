"""Canonical streams (docs/FORMAT.md): one token sequence has one ar payload, one tile edge.

A range decoder reads zeros past the end of its words and never looks at words it does not
need, so before these checks an ar stream with words appended (length field and CRC32 fixed
up) decoded to the same picture; and the container took any tile edge that is a multiple of 8
although version 1 (and every decoder) has 256-pixel tiles.
"""

import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import leechcodec
from leechcodec import coders, container
from leechcodec.container import HEADER, TRAILER, Header
from leechcodec.errors import FormatError, ModelError
from leechcodec.models.config import config_from_json
from leechcodec.models.io import load_weights, save_weights
from leechcodec.models.prior import ARPrior, PRIOR_PRESETS, exact, save_prior
from leechcodec.models.vit import build

PLEN = slice(30, 34)  # payload length field of the header


def _resign(body: bytes) -> bytes:
    return body + TRAILER.pack(zlib.crc32(body))


def _with_payload(lq: bytes, payload: bytes) -> bytes:
    """``lq`` with its payload replaced, the length field and the CRC32 fixed up."""
    head = bytearray(lq[: HEADER.size])
    head[PLEN] = len(payload).to_bytes(4, "big")
    return _resign(bytes(head) + payload)


@pytest.fixture(scope="module")
def ar_pair(tmp_path_factory, one_thread):
    """A tiny tokenizer with a tiny prior, and an ar stream of a small image made with them."""
    torch.manual_seed(3)
    d = tmp_path_factory.mktemp("canonical")
    mid = save_weights(build("tiny"), d / "tiny.safetensors")
    save_prior(ARPrior(PRIOR_PRESETS["tiny"]), d / "tiny.prior.safetensors", mid)
    model = load_weights(d / "tiny.safetensors")
    im = Image.fromarray(np.random.default_rng(7).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    return model, leechcodec.encode(im, model, coder="ar")


@pytest.mark.parametrize("extra", [b"\0" * 4, bytes(range(12)), b"\xff" * 8])
def test_ar_stream_with_appended_words_is_refused(ar_pair, extra):
    model, lq = ar_pair
    payload = container.unpack(lq)[1]
    longer = _with_payload(lq, payload + extra)
    assert container.unpack(longer)[1] == payload + extra  # a valid container: the ar layer must refuse it
    with pytest.raises(FormatError, match=f"{len(extra)} trailing bytes"):
        leechcodec.decode(longer, model)
    assert leechcodec.decode(lq, model).size == (40, 24)  # the stream itself decodes


def test_other_final_words_in_the_last_interval_are_refused():
    """Changing the low bits of the last word keeps the decoded tokens; the stream is refused anyway."""
    torch.manual_seed(5)
    ep = exact(ARPrior(PRIOR_PRESETS["tiny"]), b"\2" * 8)
    idx = np.random.default_rng(4).integers(0, 196_560, (2, 64))
    payload = coders.encode_ar(idx, ep, 8)
    assert np.array_equal(coders.decode_ar(payload, 2, 8, ep), idx)
    last = int.from_bytes(payload[-4:], "little")
    for bit in (0, 1, 7):
        other = payload[:-4] + (last ^ (1 << bit)).to_bytes(4, "little")
        with pytest.raises(FormatError, match="canonical|checksum"):
            coders.decode_ar(other, 2, 8, ep)
    with pytest.raises(FormatError, match="4 trailing bytes"):
        coders.decode_ar(payload + bytes(4), 2, 8, ep)


def _header_bytes(tile: int) -> bytes:
    tx, ty = container.tile_grid(768, 512, tile)
    body = HEADER.pack(container.MAGIC, 1, 0, 0, 0, bytes(8), 768, 512, tile, tx, ty, 5) + b"hello"
    return _resign(body)


@pytest.mark.parametrize("tile", [128, 64, 8, 512, 264])
def test_header_with_a_tile_other_than_256_is_refused(tile):
    with pytest.raises(FormatError, match=f"unsupported tile size {tile}"):
        container.unpack(_header_bytes(tile))
    assert container.unpack(_header_bytes(256))[0].tile == 256


def test_pack_and_model_configs_keep_to_the_format_tile():
    h = Header("fixed", "RGB", bytes(8), 768, 512, 128, 6, 4, 0)
    with pytest.raises(ValueError, match="256px tiles"):
        container.pack(h, b"")
    with pytest.raises(ValueError, match="256px tiles"):
        config_from_json('{"name": "t", "width": 32, "depth": 1, "dec_depth": 1, "heads": 2, "tile": 128}')
    assert config_from_json('{"name": "t", "width": 32, "depth": 1, "dec_depth": 1, "heads": 2}').tile == 256


def test_a_tile_128_model_file_is_a_model_error(tmp_path):
    from leechcodec.models.vit import TokenizerConfig, LeechTokenizer

    torch.manual_seed(0)
    m = LeechTokenizer(TokenizerConfig(name="t128", width=32, depth=1, dec_depth=1, heads=2, head_channels=8, tile=128))
    save_weights(m, tmp_path / "t128.safetensors")
    with pytest.raises(ModelError, match="256px tiles"):
        load_weights(tmp_path / "t128.safetensors")
