"""The .lq container: a fixed 34-byte big-endian header, the payload, a CRC32 trailer.

See docs/FORMAT.md for the byte layout. ``pack`` and ``unpack`` are exact inverses;
``unpack`` validates every field (and the checksum) before anything is decoded.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from .errors import FormatError, LimitError

MAGIC = b"LQ24"
VERSION = 1
TILE = 256  # the one tile edge of version 1: every decoder is built for it
HEADER = struct.Struct(">4sBBBB8sIIHHHI")  # 34 bytes
TRAILER = struct.Struct(">I")  # CRC32 of header + payload
OVERHEAD = HEADER.size + TRAILER.size  # 38 bytes

CODER_IDS = {"fixed": 0, "ar": 1}
CODERS = ("ar", "fixed")  # in the order the CLI offers them
CODER_NAMES = {v: k for k, v in CODER_IDS.items()}
MODE_IDS = {"RGB": 0, "L": 1}
MODE_NAMES = {v: k for k, v in MODE_IDS.items()}
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # 64 megapixels, like Pillow's decompression-bomb guard
MAX_PADDING = 4  # the image padded to whole tiles may have this many times max_pixels (check_size)


@dataclass(frozen=True)
class Header:
    """Decoded header fields of a .lq stream."""

    coder: str  # "fixed" or "ar"
    mode: str  # "RGB" or "L": the colour mode decode returns
    model_id: bytes  # 8-byte content hash of the weights
    width: int
    height: int
    tile: int  # tile edge in pixels (TILE)
    tiles_x: int
    tiles_y: int
    payload_length: int

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def pixels(self) -> int:
        return self.width * self.height


def tile_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """Tiles across and down for an image; the image is edge-padded up to this grid."""
    return math.ceil(width / tile), math.ceil(height / tile)


def check_size(width: int, height: int, tile: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuse an image the format cannot hold, or one over ``max_pixels`` (None: no limit).

    The limit counts the image's pixels, and the image padded to whole tiles (what the
    network processes) may have at most ``MAX_PADDING`` times as many (at least one tile):
    only thin strips pad more: a 1x64M-pixel PNG of ~100 kB would otherwise pad to 16 Gpx.

    Raises:
        LimitError: more than 65,535 tiles across or down, or over the pixel limit.
    """
    tx, ty = tile_grid(width, height, tile)
    if tx > 0xFFFF or ty > 0xFFFF:
        raise LimitError(f"image is {width}x{height}: over 65535 tiles of {tile}px across or down (the .lq limit)")
    if max_pixels is None:
        return
    if width * height > max_pixels:
        raise LimitError(f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    padded = tx * ty * tile * tile
    if padded > MAX_PADDING * max(max_pixels, tile * tile):
        raise LimitError(
            f"image is {width}x{height}, {padded} pixels once padded to whole {tile}px tiles: "
            f"over {MAX_PADDING} x the limit of {max_pixels}"
        )


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and its payload into .lq bytes."""
    if header.payload_length != len(payload):
        raise ValueError(f"payload_length {header.payload_length} != len(payload) {len(payload)}")
    if header.tile != TILE:  # unpack refuses it
        raise ValueError(f"tile {header.tile}: .lq version {VERSION} has {TILE}px tiles")
    head = HEADER.pack(
        MAGIC,
        VERSION,
        CODER_IDS[header.coder],
        MODE_IDS[header.mode],
        0,
        header.model_id,
        header.width,
        header.height,
        header.tile,
        header.tiles_x,
        header.tiles_y,
        header.payload_length,
    )
    body = head + payload
    return body + TRAILER.pack(zlib.crc32(body))


def unpack(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Header, bytes]:
    """Parse and validate .lq bytes; returns the header and the payload.

    Raises:
        FormatError: not a .lq stream, unsupported version, checksum mismatch, or an
            inconsistent header field (a tile edge other than ``TILE`` included).
        LimitError: the image is larger than ``max_pixels`` (None disables the check).
    """
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .lq stream (bad magic)")
    if len(data) < OVERHEAD:
        raise FormatError(f"truncated .lq stream ({len(data)} bytes, the header alone is {OVERHEAD})")
    magic, version, coder, mode, flags, model_id, w, h, tile, tx, ty, plen = HEADER.unpack_from(data)
    if version != VERSION:
        raise FormatError(f"unsupported .lq format version {version} (this leechcodec reads {VERSION})")
    if plen != len(data) - OVERHEAD:
        raise FormatError(f"payload length field says {plen} bytes but the stream carries {len(data) - OVERHEAD}")
    (crc,) = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    if crc != zlib.crc32(data[: -TRAILER.size]):
        raise FormatError("checksum mismatch: the .lq stream is corrupted")
    if coder not in CODER_NAMES:
        raise FormatError(f"unknown coder kind {coder}")
    if mode not in MODE_NAMES:
        raise FormatError(f"unknown colour mode {mode}")
    if flags != 0:
        raise FormatError(f"reserved flags are set ({flags:#04x})")
    if w < 1 or h < 1:
        raise FormatError(f"invalid image size {w}x{h}")
    if tile != TILE:
        raise FormatError(f"unsupported tile size {tile} (.lq version {VERSION} has {TILE}px tiles)")
    if (tx, ty) != tile_grid(w, h, tile):
        raise FormatError(f"tile grid {tx}x{ty} does not match a {w}x{h} image with {tile}px tiles")
    check_size(w, h, tile, max_pixels)
    header = Header(CODER_NAMES[coder], MODE_NAMES[mode], model_id, w, h, tile, tx, ty, plen)
    return header, data[HEADER.size : HEADER.size + plen]
