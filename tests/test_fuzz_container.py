"""Property-based hunts over the .lq container and the full decoder (hypothesis).

Valid headers round-trip exactly; every mutation (truncation, bit flips, overwritten header
fields, an inflated length field, another model's id) raises a LeechError subclass, never
anything else, within a deadline. Example counts are kept small: the whole file runs in
seconds on 2 cores.
"""

import contextlib
import zlib
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import leechcodec
from leechcodec import container
from leechcodec.container import CODER_IDS, DEFAULT_MAX_PIXELS, MODE_IDS, Header
from leechcodec.errors import FormatError, LeechError, LimitError, ModelMismatchError

# Deadlines are generous on purpose. Hypothesis checks one only after an example returns, so
# it cannot catch a hang (pytest's run time does); it flags a slow example, and on a busy 2-core
# machine a 2-s deadline failed correct code. A container example parses at most ~100 bytes in
# well under a millisecond, a decoder example runs the tiny network on at most 2 tiles (about
# 1 s under load), so 30 s and 120 s still catch a runaway loop or allocation without misfiring
# on a stalled machine. The decoder's work is bounded by count instead (_tiles_decoded): no
# forward pass for a refused stream, one tile per tile of the header for one that decodes.
FAST = settings(max_examples=300, deadline=timedelta(seconds=30))
DECODE = settings(max_examples=100, deadline=timedelta(seconds=120), suppress_health_check=[HealthCheck.too_slow])
WIDTH, PLEN = slice(16, 20), slice(30, 34)  # header fields (docs/FORMAT.md)


def _resign(data: bytes) -> bytes:
    body = data[: -container.TRAILER.size]
    return body + container.TRAILER.pack(zlib.crc32(body))


@st.composite
def headers(draw):
    """A valid header (any coder, mode, id and size the format can hold) and its payload."""
    tile = container.TILE  # the one tile edge of every version
    width = draw(st.integers(1, min(2**32 - 1, 0xFFFF * tile)))
    height = draw(st.integers(1, min(2**32 - 1, 0xFFFF * tile)))
    payload = draw(st.binary(max_size=64))
    version = draw(st.sampled_from(container.VERSIONS))
    stages = {container.STAGED: draw(st.integers(2, container.MAX_STAGES)),
              container.SCALED: draw(st.integers(1, container.MAX_STAGES))}.get(version, 1)
    coded = (0, 0)
    if version == container.SCALED:  # a coded size other than the picture's, each side 1 to 2 x (and tiles <= 65535)
        cap = 0xFFFF * tile
        coded = (draw(st.integers(1, min(cap, container.MAX_SCALE * width))),
                 draw(st.integers(1, min(cap, container.MAX_SCALE * height))))
        if coded == (width, height):
            coded = (width + 1, height) if width + 1 <= min(cap, 2 * width) else (max(1, width - 1), height)
        if coded == (width, height):  # a 1 x 1 picture coded at 1 x 1: code it at 2 x 1
            coded = (2, height)
    tx, ty = container.tile_grid(*(coded if coded != (0, 0) else (width, height)), tile)
    header = Header(
        draw(st.sampled_from(sorted(CODER_IDS))), draw(st.sampled_from(sorted(MODE_IDS))),
        draw(st.binary(min_size=8, max_size=8)), width, height, tile, tx, ty, len(payload), version, stages, *coded,
    )  # fmt: skip
    return header, payload


def _is_valid(header: Header, payload: bytes) -> bool:
    return (
        header.coder in CODER_IDS and header.mode in MODE_IDS and header.width >= 1 and header.height >= 1
        and header.tile == container.TILE and header.payload_length == len(payload)
        and (header.tiles_x, header.tiles_y) == container.tile_grid(*header.coded_size, header.tile)
        and (header.version == container.SCALED) == header.scaled
        and all(1 <= c <= container.MAX_SCALE * n for c, n in zip(header.coded_size, (header.width, header.height)))
    )  # fmt: skip


@FAST
@given(headers())
def test_valid_headers_round_trip_exactly(hp):
    header, payload = hp
    data = container.pack(header, payload)
    assert container.unpack(data, max_pixels=None) == (header, payload)
    assert container.pack(*container.unpack(data, max_pixels=None)) == data
    limit = DEFAULT_MAX_PIXELS
    over = False
    for w, h in {(header.width, header.height), header.coded_size}:  # the picture's size and the coded one
        padded = container.tile_grid(w, h, header.tile)
        over |= w * h > limit or padded[0] * padded[1] * header.tile**2 > container.MAX_PADDING * max(limit, header.tile**2)
    if over:
        with pytest.raises(LimitError):
            container.unpack(data)
    else:
        assert container.unpack(data) == (header, payload)


@FAST
@given(headers(), st.data())
def test_truncated_or_extended_streams_are_format_errors(hp, data):
    stream = container.pack(*hp)
    cut = data.draw(st.integers(0, len(stream) - 1))
    with pytest.raises(FormatError):
        container.unpack(stream[:cut])
    with pytest.raises(FormatError):
        container.unpack(stream + data.draw(st.binary(min_size=1, max_size=16)))


@FAST
@given(headers(), st.data())
def test_any_single_bit_flip_is_a_format_error(hp, data):
    stream = bytearray(container.pack(*hp))
    bit = data.draw(st.integers(0, 8 * len(stream) - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):  # magic, length or CRC32 (which catches every 1-bit error)
        container.unpack(bytes(stream), max_pixels=None)


@FAST
@given(headers(), st.data())
def test_inflated_length_field_is_refused_before_any_allocation(hp, data):
    header, payload = hp
    stream = bytearray(container.pack(header, payload))
    claimed = data.draw(st.integers(len(payload) + 1, 2**32 - 1))
    stream[PLEN] = claimed.to_bytes(4, "big")
    for candidate in (bytes(stream), _resign(bytes(stream))):
        with pytest.raises(FormatError, match="payload length"):
            container.unpack(candidate)


@FAST
@given(headers(), st.lists(st.tuples(st.integers(0, container.HEADER.size - 1), st.integers(1, 255)), min_size=1))
def test_resigned_header_mutations_are_refused_or_consistent(hp, edits):
    """Past the checksum: every header field is validated; what gets through is consistent."""
    stream = bytearray(container.pack(*hp))
    for pos, xor in edits:
        stream[pos] ^= xor
    try:
        header, payload = container.unpack(_resign(bytes(stream)), max_pixels=None)
    except LeechError:
        return
    assert _is_valid(header, payload)


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_never_escape(tail, magic):
    stream = (container.MAGIC if magic else b"") + tail
    for candidate in (stream, _resign(stream) if len(stream) >= 4 else stream):
        try:
            header, payload = container.unpack(candidate)
        except LeechError:
            continue
        assert _is_valid(header, payload)


# -- the full decoder, with the tiny model -------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs with one torch thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def streams(tiny_model):
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    grey = Image.fromarray(rng.integers(0, 256, (20, 300), dtype=np.uint8))  # two tiles
    return [leechcodec.encode(rgb, tiny_model), leechcodec.encode(grey, tiny_model)]


@contextlib.contextmanager
def _tiles_decoded(model):
    """The tiles the network synthesises (one entry per forward pass: its batch size) while the
    block runs."""
    tiles = []
    real = model.synthesis
    model.synthesis = lambda q: tiles.append(len(q)) or real(q)
    try:
        yield tiles
    finally:
        del model.synthesis


def _decode_or_refuse(data: bytes, model) -> None:
    with _tiles_decoded(model) as tiles:
        try:
            image = leechcodec.decode(data, model)
        except LeechError:
            assert not tiles, f"a refused stream ran the network on {sum(tiles)} tiles"
            return
    header = leechcodec.read_header(data)
    assert image.size == (header.width, header.height) and image.mode == header.mode
    assert sum(tiles) == header.n_tiles, (sum(tiles), header.n_tiles)


@DECODE
@given(
    st.data(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
    st.one_of(st.none(), st.integers(0, 10**6)),
    st.booleans(),
)
def test_decode_mutated_streams_only_raise_leech_errors(tiny_model, streams, data, edits, cut, resign):
    stream = bytearray(data.draw(st.sampled_from(streams)))
    for pos, xor in edits:
        stream[pos % len(stream)] ^= xor
    if cut is not None:
        stream = stream[: cut % len(stream)]
    stream = bytes(stream)
    _decode_or_refuse(_resign(stream) if resign and len(stream) >= 4 else stream, tiny_model)


@DECODE
@given(st.integers(1, 256), st.integers(1, 256), st.sampled_from(sorted(MODE_IDS)))
def test_decode_any_consistent_one_tile_header(tiny_model, width, height, mode):
    """Any size that fits one tile, in either mode and either version, decodes to exactly that
    size and mode (version 1 stores every token of the tile, version 2 those inside the picture)."""
    from leechcodec import coders

    idx = np.random.default_rng(width * 257 + height).integers(0, 196560, (1, 1024))
    for version in (1, 2):  # one stage (version 3 holds two or more: tests/test_stages.py)
        payload = coders.encode_fixed(idx, container.token_extents(width, height, 256, 8, version))
        header = Header("fixed", mode, bytes(tiny_model.model_id), width, height, 256, 1, 1, len(payload), version)
        with _tiles_decoded(tiny_model) as tiles:
            image = leechcodec.decode(container.pack(header, payload), tiny_model)
        assert image.size == (width, height) and image.mode == mode and tiles == [1]


@DECODE
@given(st.binary(min_size=8, max_size=8))
def test_decode_other_model_id_is_a_mismatch(tiny_model, streams, model_id):
    if model_id == bytes(tiny_model.model_id):
        return
    stream = bytearray(streams[0])
    stream[8:16] = model_id
    with _tiles_decoded(tiny_model) as tiles, pytest.raises(ModelMismatchError):
        leechcodec.decode(_resign(bytes(stream)), tiny_model)
    assert not tiles


@DECODE
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_hostile_coded_sizes_are_refused_without_work(tiny_model, streams, cw, ch, stages):
    """A re-signed version-4 header with any coded size and stage count: one stream is consistent
    (the picture coded at cw x ch), the rest are refused as FormatError (exit 4: absurd sizes,
    stage counts, grids) or LimitError (a coded size within 2 x over the pixel limit), with no
    network run; the CLI prints one line for either."""
    base = bytearray(streams[0])  # a 90 x 70 picture, one tile, version 2
    head = container.HEADER.unpack_from(base)
    tx, ty = container.tile_grid(max(cw, 1), max(ch, 1), 256) if cw and ch else (1, 1)
    fields = (*head[:1], container.SCALED, *head[2:9], min(tx, 0xFFFF), min(ty, 0xFFFF), head[11])
    stream = container.HEADER.pack(*fields) + container.CODED.pack(stages, cw, ch) + bytes(base[34:-4])
    stream = _resign(stream + b"\0\0\0\0")
    with _tiles_decoded(tiny_model) as tiles:
        try:
            image = leechcodec.decode(stream, tiny_model)
        except (FormatError, LimitError) as e:
            assert not tiles, f"a refused stream ran the network on {sum(tiles)} tiles"
            sane = 1 <= cw <= 180 and 1 <= ch <= 140 and (cw, ch) != (90, 70) and 1 <= stages <= 8
            assert isinstance(e, FormatError) or sane, (cw, ch, stages, e)
            return
        except LeechError:  # the payload (a version-2 one-stage stream's) may not fit other tokens: never silent
            assert not tiles
            return
    assert image.size == (90, 70)


@DECODE
@given(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1))
def test_decode_huge_claimed_size_is_refused_without_work(tiny_model, streams, width, height):
    """A re-signed header claiming any size: a limit or a format error, never a big allocation."""
    stream = bytearray(streams[0])
    stream[WIDTH] = width.to_bytes(4, "big")
    stream[20:24] = height.to_bytes(4, "big")
    with _tiles_decoded(tiny_model) as tiles:
        try:
            leechcodec.decode(_resign(bytes(stream)), tiny_model)
        except (FormatError, LimitError):
            assert not tiles, f"a refused size ran the network on {sum(tiles)} tiles"
            return
    assert container.tile_grid(width, height, 256) == (1, 1) and tiles == [1]
