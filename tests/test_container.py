import zlib

import numpy as np
import pytest

from leechcodec import coders, container
from leechcodec.container import Header
from leechcodec.errors import FormatError, LimitError
from leechcodec.lattice import N_CODEWORDS


def _header(**kw):
    base = dict(coder="fixed", mode="RGB", model_id=bytes(range(8)), width=768, height=512, tile=256,
                tiles_x=3, tiles_y=2, payload_length=5)  # fmt: skip
    base.update(kw)
    return Header(**base)


def test_pack_unpack_round_trip():
    h = _header()
    data = container.pack(h, b"hello")
    assert len(data) == container.OVERHEAD + 5
    assert data[:4] == b"LQ24" and data[4] == 2 == h.version == container.VERSION
    h2, payload = container.unpack(data)
    assert h2 == h and payload == b"hello"
    old = _header(version=1)  # version 1 files still read, and say so
    assert container.unpack(container.pack(old, b"hello"))[0].version == 1
    assert int.from_bytes(data[16:20], "big") == 768  # explicit big-endian width


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"PNG!" + d[4:], "bad magic"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:4] + b"\x05" + d[5:], "version 5 .*reads 1, 2, 3 and 4"),
        (lambda d: d[:4] + b"\x00" + d[5:], "version 0"),
        (lambda d: d[:-6] + d[-4:], "payload length"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
        (lambda d: d[:35] + bytes([d[35] ^ 0x10]) + d[36:], "checksum"),
    ],
)
def test_unpack_rejects(mutate, message):
    data = container.pack(_header(), b"hello")
    with pytest.raises(FormatError, match=message):
        container.unpack(mutate(data))


def _resign(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "big")


@pytest.mark.parametrize(
    "offset, value, message",
    [(5, 9, "coder"), (6, 7, "colour mode"), (7, 1, "reserved"), (29, 9, "tile grid")],
)
def test_unpack_rejects_bad_fields_even_with_valid_crc(offset, value, message):
    body = bytearray(container.pack(_header(), b"hello")[:-4])
    body[offset] = value
    with pytest.raises(FormatError, match=message):
        container.unpack(_resign(bytes(body)))


def test_size_limit():
    h = _header(width=20000, height=20000, tiles_x=79, tiles_y=79)
    data = container.pack(h, b"hello")
    with pytest.raises(LimitError):
        container.unpack(data)
    assert container.unpack(data, max_pixels=None)[0].width == 20000


def test_zero_size_rejected():
    h = _header(width=0, tiles_x=0)
    with pytest.raises(FormatError, match="size"):
        container.unpack(container.pack(h, b"hello"))


def test_fixed_coder_round_trip_and_size(rng):
    idx = rng.integers(0, N_CODEWORDS, (3, 1024))
    idx[0, :] = N_CODEWORDS - 1  # the largest value fits
    idx[1, :] = 0
    data = coders.encode_fixed(idx)
    nb = coders.fixed_tile_bytes(1024)
    assert nb == int(np.ceil(1024 * np.log2(N_CODEWORDS) / 8)) == 2251
    assert len(data) == 3 * nb
    np.testing.assert_array_equal(coders.decode_fixed(data, 3, 1024), idx)
    small = rng.integers(0, N_CODEWORDS, (2, 5))
    np.testing.assert_array_equal(coders.decode_fixed(coders.encode_fixed(small), 2, 5), small)


def test_fixed_coder_rejects_bad_payloads():
    with pytest.raises(FormatError, match="expected"):
        coders.decode_fixed(b"\0" * 10, 1, 1024)
    with pytest.raises(FormatError, match="out of range"):
        coders.decode_fixed(b"\xff" * 2251, 1, 1024)
    with pytest.raises(ValueError):
        coders.encode_fixed(np.array([[N_CODEWORDS]]))
