"""The .lq container: a fixed 34-byte big-endian header, the payload, a CRC32 trailer.

Version 3 adds a stage count after the header; version 4 a stage count and the coded size
(the size the tokens were coded at, which the decoder resamples to the picture's size).

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
VERSION = 2  # what the encoder writes for one stage: only the tokens whose patch touches the image are stored
STAGED = 3  # what it writes for two or more residual stages: version 2 plus a stage count after the header
SCALED = 4  # what it writes when the tokens code the picture at another size: a stage count and the coded size
VERSIONS = (1, 2, 3, 4)  # what the decoder reads: version 1 stores every token of every whole tile
MAX_STAGES = 8  # stages a version-3 stream may hold (leechcodec/stages.py); at least 2 (one stage is version 2)
MAX_SCALE = 2  # version 4: each side of the coded size is at most this many times the picture's (and at least 1)
TILE = 256  # the one tile edge of every version: every decoder is built for it
HEADER = struct.Struct(">4sBBBB8sIIHHHI")  # 34 bytes
TRAILER = struct.Struct(">I")  # CRC32 of header + payload
OVERHEAD = HEADER.size + TRAILER.size  # 38 bytes (39 for version 3: its stage count; 47 for version 4)
STAGES = struct.Struct(">B")  # version 3: the number of residual stages, right after the 34-byte header
CODED = struct.Struct(">BII")  # version 4: stages (1 to 8), coded width, coded height, right after the header
MAX_HEAD = HEADER.size + CODED.size  # the longest header of any version (43 bytes)

CODER_IDS = {"fixed": 0, "ar": 1}
CODERS = ("ar", "fixed")  # in the order the CLI offers them
CODER_NAMES = {v: k for k, v in CODER_IDS.items()}
MODE_IDS = {"RGB": 0, "L": 1}
MODE_NAMES = {v: k for k, v in MODE_IDS.items()}
DEFAULT_MAX_PIXELS = 2**26  # 67,108,864 pixels: the default --max-pixels (image_io: it replaces Pillow's guard)
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
    version: int = VERSION
    stages: int = 1  # residual stages of tokens per patch: 1 for versions 1 and 2
    coded_width: int = 0  # version 4: the size the tokens code (0: the picture's own, versions 1 to 3)
    coded_height: int = 0

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) the tokens code: the tiles, the stored tokens and the decoder network's
        picture; the decoder resamples it to (``width``, ``height``) where the two differ (version 4)."""
        return (self.coded_width or self.width, self.coded_height or self.height)

    @property
    def scaled(self) -> bool:
        return self.coded_size != (self.width, self.height)

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def header_size(self) -> int:
        return head_size(self.version)


def head_size(version: int) -> int:
    """Bytes before the payload: the 34-byte header, version 3's stage count, version 4's stage count and coded size."""
    return HEADER.size + {STAGED: STAGES.size, SCALED: CODED.size}.get(version, 0)


def version_for(stages: int, scaled: bool = False) -> int:
    """The version an encoder writes: 2 for one stage at the picture's size (readable by every
    earlier leechcodec), 3 for more stages, 4 for tokens coded at another size."""
    return SCALED if scaled else VERSION if stages == 1 else STAGED


def has_stage_count(version: int) -> bool:
    """Whether a stream of ``version`` says its stages (3 and 4; versions 1 and 2 hold one)."""
    return version in (STAGED, SCALED)


def coded_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size ``encode --scale`` codes a ``width`` × ``height`` picture at (docs/FORMAT.md, *Scale*):
    each side times ``scale``, rounded half up, at least 1 and at most ``MAX_SCALE`` times the side."""
    check_scale(scale)
    return tuple(max(1, min(MAX_SCALE * n, math.floor(n * scale + 0.5))) for n in (width, height))


def check_scale(scale) -> None:
    """Refuse a scale the format cannot code at (``encode --scale``): not a number, or outside (0, ``MAX_SCALE``].

    Raises:
        ValueError: as above.
    """
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
            and 0 < scale <= MAX_SCALE):
        raise ValueError(f"scale must be a number > 0 and at most {MAX_SCALE}, got {scale!r}")


def check_coded(width: int, height: int, coded_w: int, coded_h: int) -> None:
    """Refuse a coded size a version-4 stream cannot hold: a side under 1 or over ``MAX_SCALE``
    times the picture's, or the picture's own size (that stream is version 2 or 3).

    Raises:
        FormatError: as above.
    """
    if not (1 <= coded_w <= MAX_SCALE * width and 1 <= coded_h <= MAX_SCALE * height):
        raise FormatError(f"coded size {coded_w}x{coded_h} for a {width}x{height} picture: each side is 1 to "
                          f"{MAX_SCALE} x the picture's")
    if (coded_w, coded_h) == (width, height):
        raise FormatError(f"a version-{SCALED} stream coded at the picture's own size {width}x{height} is not canonical "
                          f"(version {VERSION} or {STAGED} holds it)")


def tile_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """Tiles across and down for an image; the image is edge-padded up to this grid."""
    return math.ceil(width / tile), math.ceil(height / tile)


def token_extents(width: int, height: int, tile: int, patch: int, version: int = VERSION) -> list[tuple[int, int]]:
    """Per tile (row-major), the rows and columns of its token grid that a stream stores.

    Version 2 stores the tokens whose ``patch`` × ``patch`` block touches the image: tile (R, C)
    keeps rows ``r < min(g, ceil((height − R·tile) / patch))`` and columns likewise, with
    ``g = tile // patch``; the others (padding tokens) are not stored (``coders.fill_padding``).
    Version 1 stores all ``g × g`` of every tile.
    """
    g = tile // patch
    tx, ty = tile_grid(width, height, tile)
    if version == 1:
        return [(g, g)] * (tx * ty)
    rows = [min(g, -(-(height - r * tile) // patch)) for r in range(ty)]
    cols = [min(g, -(-(width - c * tile) // patch)) for c in range(tx)]
    return [(nr, nc) for nr in rows for nc in cols]


def check_size(width: int, height: int, tile: int, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               coded: bool = False) -> None:
    """Refuse an image the format cannot hold, or one over ``max_pixels`` (None: no limit).

    The limit counts the image's pixels, and the image padded to whole tiles (what the
    network processes) may have at most ``MAX_PADDING`` times as many (at least one tile):
    only thin strips pad more: a 1x64M-pixel PNG of ~100 kB would otherwise pad to 16 Gpx.

    ``coded``: the size is the coded size of a scaled picture (version 4, ``--scale``), which
    the same limits apply to; only the messages differ.

    Raises:
        LimitError: more than 65,535 tiles across or down, or over the pixel limit.
    """
    what = "the coded picture" if coded else "image"
    tx, ty = tile_grid(width, height, tile)
    if tx > 0xFFFF or ty > 0xFFFF:
        raise LimitError(f"{what} is {width}x{height}: over 65535 tiles of {tile}px across or down (the .lq limit)")
    if max_pixels is None:
        return
    if width * height > max_pixels:
        hint = " (a smaller --scale, or a larger --max-pixels)" if coded else ""
        raise LimitError(f"{what} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}{hint}")
    padded = tx * ty * tile * tile
    if padded > MAX_PADDING * max(max_pixels, tile * tile):
        raise LimitError(
            f"{what} is {width}x{height}, {padded} pixels once padded to whole {tile}px tiles: "
            f"over {MAX_PADDING} x the limit of {max_pixels}"
        )


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and its payload into .lq bytes."""
    if header.payload_length != len(payload):
        raise ValueError(f"payload_length {header.payload_length} != len(payload) {len(payload)}")
    if header.tile != TILE:  # unpack refuses it
        raise ValueError(f"tile {header.tile}: .lq files have {TILE}px tiles")
    if header.version not in VERSIONS:
        raise ValueError(f"version {header.version}: this leechcodec writes {VERSIONS}")
    low, high = {STAGED: (2, MAX_STAGES), SCALED: (1, MAX_STAGES)}.get(header.version, (1, 1))
    if not low <= header.stages <= high:
        raise ValueError(f"{header.stages} stages in a version-{header.version} stream")
    if header.scaled != (header.version == SCALED):
        raise ValueError(f"coded size {header.coded_size} of a {header.width}x{header.height} picture in a "
                         f"version-{header.version} stream")
    if header.scaled:
        check_coded(header.width, header.height, *header.coded_size)
    head = HEADER.pack(
        MAGIC,
        header.version,
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
    if header.version == STAGED:
        head += STAGES.pack(header.stages)
    elif header.version == SCALED:
        head += CODED.pack(header.stages, *header.coded_size)
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
    if version not in VERSIONS:
        raise FormatError(f"unsupported .lq format version {version} (this leechcodec reads {_versions()})")
    head = head_size(version)
    extra = head - HEADER.size  # version 3's stage count, version 4's stage count and coded size
    if len(data) < head + TRAILER.size:
        raise FormatError(f"truncated .lq stream ({len(data)} bytes, a version-{version} header alone is "
                          f"{head + TRAILER.size})")
    if plen != len(data) - OVERHEAD - extra:
        raise FormatError(f"payload length field says {plen} bytes but the stream carries {max(0, len(data) - OVERHEAD - extra)}")
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
        raise FormatError(f"unsupported tile size {tile} (.lq version {version} has {TILE}px tiles)")
    stages, cw, ch = CODED.unpack_from(data, HEADER.size) if version == SCALED else (1, w, h)
    if version == SCALED:  # the coded size decides the tile grid
        check_coded(w, h, cw, ch)
    if (tx, ty) != tile_grid(cw, ch, tile):
        coded = f"picture coded at {cw}x{ch}" if (cw, ch) != (w, h) else f"{w}x{h} image"
        raise FormatError(f"tile grid {tx}x{ty} does not match a {coded} with {tile}px tiles")
    if version == STAGED:
        stages = STAGES.unpack_from(data, HEADER.size)[0]
    low = 2 if version == STAGED else 1  # one stage at the picture's size is version 2: one stream per tokens
    if has_stage_count(version) and not low <= stages <= MAX_STAGES:
        raise FormatError(f"{stages} residual stages: a version-{version} stream holds {low} to {MAX_STAGES}")
    check_size(w, h, tile, max_pixels)
    if (cw, ch) != (w, h):
        check_size(cw, ch, tile, max_pixels, coded=True)
    header = Header(CODER_NAMES[coder], MODE_NAMES[mode], model_id, w, h, tile, tx, ty, plen, version, stages,
                    *((cw, ch) if version == SCALED else (0, 0)))
    return header, data[head : head + plen]


def read_header(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Header:
    """The validated header of .lq bytes (no model, no torch needed)."""
    return unpack(data, max_pixels)[0]


def _versions() -> str:
    *first, last = map(str, VERSIONS)
    return f"{', '.join(first)} and {last}" if first else last


# (name, offset, struct format) of each header field, in order: what ``describe`` walks
FIELDS = (("magic", 0, "4s"), ("version", 4, "B"), ("coder", 5, "B"), ("mode", 6, "B"), ("flags", 7, "B"),
          ("model id", 8, "8s"), ("width", 16, "I"), ("height", 20, "I"), ("tile", 24, "H"), ("tiles_x", 26, "H"),
          ("tiles_y", 28, "H"), ("payload length", 30, "I"))  # fmt: skip


def describe(data: bytes) -> list[tuple[str, str, str | None]]:
    """Every header field, the payload and the checksum of (possibly damaged) .lq bytes, each
    as ``(name, value, problem)`` with problem None where the field is valid: what a reader
    needs to see where a file breaks. Never raises; ``unpack`` is the validating reader.
    """
    data = bytes(data)
    rows: list[tuple[str, str, str | None]] = []
    got: dict[str, int | bytes] = {}
    for name, off, fmt in FIELDS:
        size = struct.calcsize(">" + fmt)
        if len(data) < off + size:
            missing = f"(bytes {off}-{off + size - 1} missing)"
            rows.append((name, missing, f"truncated: the file ends after {len(data)} bytes"))
            continue
        (v,) = struct.unpack_from(">" + fmt, data, off)
        got[name] = v
        rows.append((name, *_field(name, v, got, len(data))))
        if name == "magic" and rows[-1][2]:  # not a .lq stream at all: the rest would be noise
            return rows
    plen = got.get("payload length")
    body_end = len(data) - TRAILER.size
    head = HEADER.size
    if got.get("version") == STAGED and len(data) >= OVERHEAD + STAGES.size:
        (k,) = STAGES.unpack_from(data, HEADER.size)
        rows.append(("stages", str(k), None if 2 <= k <= MAX_STAGES else f"a version-{STAGED} stream holds 2 to {MAX_STAGES}"))
        head += STAGES.size
    if got.get("version") == SCALED and len(data) >= OVERHEAD + CODED.size:
        k, cw, ch = CODED.unpack_from(data, HEADER.size)
        rows.append(("stages", str(k), None if 1 <= k <= MAX_STAGES else f"a version-{SCALED} stream holds 1 to {MAX_STAGES}"))
        w, h = got.get("width"), got.get("height")
        for name, n, side in (("coded width", cw, w), ("coded height", ch, h)):
            bad = isinstance(side, int) and side >= 1 and not 1 <= n <= MAX_SCALE * side
            rows.append((name, str(n), f"1 to {MAX_SCALE} x the picture's {side}" if bad else None))
        if (cw, ch) == (w, h):
            rows[-1] = (*rows[-1][:2], "the picture's own size: not canonical (versions 2 and 3 hold it)")
        elif cw >= 1 and ch >= 1 and got.get("tile") == TILE:
            want = tile_grid(cw, ch, TILE)
            if (got.get("tiles_x"), got.get("tiles_y")) != want:
                rows.append(("tile grid", f"{got.get('tiles_x')}x{got.get('tiles_y')}",
                             f"a picture coded at {cw}x{ch} has {want[0]}x{want[1]}"))
        head += CODED.size
    if isinstance(plen, int) and len(data) >= OVERHEAD:
        if got.get("coder") == CODER_IDS["ar"] and plen >= 8 and body_end >= head + 8:
            rows.append(("prior id", data[head : head + 8].hex(), None))
        (crc,) = TRAILER.unpack_from(data, body_end)
        want = zlib.crc32(data[:body_end])
        rows.append(("crc32", f"{crc:08x}", None if crc == want else f"the bytes before it hash to {want:08x}: corrupted"))
    elif len(data) < OVERHEAD:
        rows.append(("crc32", "(missing)", f"truncated: a stream has at least {OVERHEAD} bytes"))
    return rows


def _field(name: str, v, got: dict, n_bytes: int) -> tuple[str, str | None]:
    """(value as text, problem or None) of one header field; ``got``: the fields read so far."""
    if name == "magic":
        return repr(v)[1:], None if v == MAGIC else f"not {MAGIC!r}: not a .lq stream"
    if name == "version":
        return str(v), None if v in VERSIONS else f"this leechcodec reads versions {_versions()}"
    if name == "coder":
        return CODER_NAMES.get(v, str(v)), None if v in CODER_NAMES else "unknown coder kind (0 fixed, 1 ar)"
    if name == "mode":
        return MODE_NAMES.get(v, str(v)), None if v in MODE_NAMES else "unknown colour mode (0 RGB, 1 L)"
    if name == "flags":
        return f"{v:#04x}", None if v == 0 else "reserved flags are set"
    if name == "model id":
        return v.hex(), None
    if name in ("width", "height"):
        return str(v), None if v >= 1 else "an image has at least 1 pixel"
    if name == "tile":
        return str(v), None if v == TILE else f"a .lq file has {TILE}px tiles"
    if name in ("tiles_x", "tiles_y"):
        w, h, t = got.get("width"), got.get("height"), got.get("tile")
        if not (isinstance(w, int) and isinstance(h, int) and w >= 1 and h >= 1 and t == TILE):
            return str(v), None
        if got.get("version") == SCALED:  # the grid of the coded size, checked with it (describe)
            return str(v), None
        want = tile_grid(w, h, TILE)[name == "tiles_y"]
        return str(v), None if v == want else f"a {w}x{h} image has {want}"
    version = got.get("version")
    want = n_bytes - OVERHEAD - (head_size(version) - HEADER.size if version in VERSIONS else 0)  # payload length
    return str(v), None if v == want else f"the file carries {max(want, 0)} payload bytes"
