"""Hostile input, resource limits and crash safety (issue 6).

Every malformed input, for encode and decode, through the library and the CLI: a typed
error, exit code, exactly one "leechcodec: error:" line, no traceback, no output file,
no temp file, and little time and memory.
"""

import contextlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file

import leechcodec
from leechcodec.cli import common
from leechcodec.cli import main as cli_main
from leechcodec.cli.main import cli
from leechcodec import coders, container
from leechcodec.errors import FormatError, InputImageError, LeechError, LeechWarning, LimitError, ModelError
from leechcodec.image_io import read_image, to_rgb_array
from leechcodec.models.io import load_weights

# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs with one torch thread (conftest.one_thread)."""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def rgb(rng):
    return Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` but that carries no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _tiff_claiming_300_samples(im: Image.Image) -> bytes:
    """A TIFF whose SamplesPerPixel tag says 300 (Pillow logs an error, then refuses it)."""
    data = bytearray(_save(im, "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 277:  # SamplesPerPixel
            struct.pack_into("<H", data, entry + 8, 300)
    return bytes(data)


def _lq(width=40, height=50, tile=256, tiles=(1, 1), payload=b"", model_id=bytes(8), version=1, coder=0, mode=0,
        stages=None):
    """A .lq stream with any header fields (``stages``: version 3's stage count byte) and a correct CRC32."""
    body = container.HEADER.pack(b"LQ24", version, coder, mode, 0, model_id, width, height, tile, *tiles, len(payload))
    body += (bytes([stages]) if stages is not None else b"") + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def _resign(data: bytes) -> bytes:
    return data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "big")


def _one_line_error(result, code, match=None):
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("leechcodec: error:"), result.stderr
    assert "Traceback" not in result.output
    if match:
        assert match in lines[0], lines[0]


@contextlib.contextmanager
def _traced():
    """Yields a function giving the peak Python/numpy memory traced so far."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _no_leftovers(folder: Path, keep=()):
    names = {p.name for p in folder.iterdir()} - set(keep)
    assert not [n for n in names if n.startswith(".") or n.endswith(".part")], names


# -- images: the mode policy ---------------------------------------------------------------

# mode → (decoded mode, warns?)
POLICY = {
    "RGB": ("RGB", False), "L": ("L", False), "1": ("L", False), "P": ("RGB", False), "RGBX": ("RGB", False),
    "I": ("L", True), "I;16": ("L", True), "I;16B": ("L", True), "F": ("L", True),
    "RGBA": ("RGB", True), "RGBa": ("RGB", True), "LA": ("L", True), "La": ("L", True), "PA": ("RGB", True),
    "P+tRNS": ("RGB", True), "CMYK": ("RGB", True), "YCbCr": ("RGB", True), "LAB": ("RGB", True),
    "HSV": ("RGB", True),
}  # fmt: skip


@pytest.mark.parametrize("mode", sorted(POLICY))
def test_every_mode_follows_the_policy(mode, rgb):
    im = rgb.convert("P") if mode == "P+tRNS" else Image.new(mode, (5, 4))
    if mode == "P+tRNS":
        im.info["transparency"] = 0
    expected, warns = POLICY[mode]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a, out_mode = to_rgb_array(im)
    assert a.dtype == np.uint8 and a.shape == (im.height, im.width, 3) and out_mode == expected
    assert any(issubclass(w.category, LeechWarning) for w in caught) == warns


def test_deep_and_float_samples_are_reduced_as_documented():
    a16 = Image.fromarray(np.array([[0x1234, 0xFFFF]], np.uint16))
    assert a16.mode.startswith("I;16")
    with pytest.warns(LeechWarning):
        assert to_rgb_array(a16)[0][0, :, 0].tolist() == [0x12, 0xFF]
    f = Image.fromarray(np.array([[np.nan, np.inf, -np.inf, 300.0, 127.6]], np.float32), "F")
    with pytest.warns(LeechWarning):
        assert to_rgb_array(f)[0][0, :, 0].tolist() == [0, 255, 0, 255, 128]


@pytest.mark.parametrize(
    "mode, fmt, decoded",
    [("LA", "PNG", "L"), ("I;16", "PNG", "L"), ("1", "PNG", "L"), ("P+tRNS", "PNG", "RGB"), ("CMYK", "JPEG", "RGB"),
     ("F", "TIFF", "L")],
)  # fmt: skip
def test_cli_encodes_exotic_files(runner, tmp_path, rgb, tiny_model_path, mode, fmt, decoded):
    im = rgb.convert("P") if mode == "P+tRNS" else rgb.convert("L" if mode in ("I;16", "F") else mode)
    if mode == "P+tRNS":
        im.info["transparency"] = 0
    elif mode in ("I;16", "F"):
        im = im.convert(mode)
    src = tmp_path / f"in.{fmt.lower()}"
    src.write_bytes(_save(im, fmt))
    lq, out = tmp_path / "a.lq", tmp_path / "b.png"
    r = runner.invoke(cli, ["encode", str(src), "-o", str(lq), "--quiet", "--model", str(tiny_model_path)])
    assert r.exit_code == 0, r.output
    assert ("leechcodec: warning:" in r.stderr) == POLICY[mode][1], r.stderr
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--quiet", "--model", str(tiny_model_path)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).mode == decoded and Image.open(out).size == im.size


# -- images: sizes, truncation, limits -----------------------------------------------------


def test_zero_pixel_images_are_refused(tiny_model):
    with pytest.raises(InputImageError, match="no pixels"):
        leechcodec.encode(Image.new("RGB", (0, 0)), tiny_model)
    with pytest.raises(InputImageError, match="no pixels"):
        leechcodec.encode(Image.new("L", (7, 0)), tiny_model)
    with pytest.raises(InputImageError):
        read_image(_png_header_only(0, 0))


@pytest.mark.parametrize("size", [(100_000, 100_000), (9000, 9000), (1, 70_000_000)])
def test_huge_png_header_is_refused_before_decoding_pixels(size):
    # the file has no pixel data: decoding it would be an InputImageError ("truncated"), not a LimitError
    with pytest.raises(LimitError):
        read_image(_png_header_only(*size))


@pytest.fixture
def pixels_not_read(monkeypatch):
    """Image loading stops at the pixels (a header that got past every size guard reaches it):
    the sizes that reached it, and nothing allocated."""
    from PIL import ImageFile

    reached = []

    def stop(self):
        reached.append(self.size)
        raise OSError("pixels not read in this test")

    monkeypatch.setattr(ImageFile.ImageFile, "load", stop)
    return reached


def test_max_pixels_replaces_pillows_decompression_bomb_guard(pixels_not_read):
    """--max-pixels is the limit that applies: a 95-megapixel header (over Pillow's 89,478,485, and
    a 200-megapixel one, over twice it, where Pillow raises instead of warning) reaches the pixel
    decode when the limit allows it, and is refused in our words when it does not; Pillow's own
    setting is as it was afterwards."""
    pillows = Image.MAX_IMAGE_PIXELS
    assert pillows < 95_000_000 < leechcodec.DEFAULT_MAX_PIXELS * 2
    for w, h in [(10_000, 9_500), (20_000, 10_000)]:
        with pytest.raises(InputImageError, match="pixels not read"):
            read_image(_png_header_only(w, h), max_pixels=w * h)
        with pytest.raises(LimitError, match=f"= {w * h} pixels, over the limit of {w * h - 1}$"):
            read_image(_png_header_only(w, h), max_pixels=w * h - 1)
        with pytest.raises(LimitError, match=f"over the limit of {leechcodec.DEFAULT_MAX_PIXELS}( pixels)?$"):
            read_image(_png_header_only(w, h))
    assert pixels_not_read == [(10_000, 9_500), (20_000, 10_000)]
    assert Image.MAX_IMAGE_PIXELS == pillows
    with pytest.raises(LimitError, match="image too large"):  # None: no limit of ours, Pillow's guard stays
        read_image(_png_header_only(20_000, 10_000), max_pixels=None)


def test_max_pixels_applies_when_pillows_guard_is_lowered(monkeypatch, rgb):
    """An application that lowered Image.MAX_IMAGE_PIXELS: leechcodec's limit still decides, and
    Pillow's setting is put back."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = _save(rgb, "PNG")
    pixels = rgb.width * rgb.height
    assert pixels > 2 * 100
    assert read_image(data, max_pixels=pixels).size == rgb.size
    with pytest.raises(LimitError, match=f"over the limit of {pixels - 1}$"):
        read_image(data, max_pixels=pixels - 1)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_cli_max_pixels_raises_the_limit(runner, tmp_path, pixels_not_read):
    """`encode --max-pixels 10^8` on a 95-megapixel picture: past the size checks (here the test
    stops at the pixels: exit 3), not refused at Pillow's 89.48 megapixels (exit 7)."""
    src = tmp_path / "big.png"
    src.write_bytes(_png_header_only(10_000, 9_500))
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "o.lq"), "--max-pixels", "100000000"])
    _one_line_error(r, 3, "pixels not read")
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "o.lq")])
    _one_line_error(r, 7, "over the limit of 67108864")


def test_thin_strip_is_refused_before_padding_to_tiles(tiny_model):
    """A 1-px-wide strip passes the pixel count but would pad 256x: refused before any padding."""
    strip = Image.new("L", (1, 90_000))
    with _traced() as peak:
        with pytest.raises(LimitError, match="padded"):
            leechcodec.encode(strip, tiny_model, max_pixels=100_000)
        assert peak() < 50e6, peak()  # padding would be 256 x 90,112 x 3 bytes = 69 MB


def test_check_size_rules():
    container.check_size(8192, 8192, 256)  # exactly the default limit
    container.check_size(8200, 8000, 256)  # padding a big image is fine
    container.check_size(1, 1, 256, max_pixels=1)  # one tile always fits
    with pytest.raises(LimitError, match="over the limit"):
        container.check_size(8193, 8192, 256)
    with pytest.raises(LimitError, match="padded"):
        container.check_size(1, 16_000_000, 256)  # 16 Mpx, but 4 Gpx once padded
    with pytest.raises(LimitError, match="65535 tiles"):
        container.check_size(256 * 65536, 1, 256, max_pixels=None)


def test_more_tiles_than_the_format_holds_is_a_limit_error(tiny_model):
    """Even with no pixel limit: refused before padding (which would need 12.9 GB here)."""
    with pytest.raises(LimitError, match="65535 tiles"):
        leechcodec.encode(Image.new("L", (256 * 65536, 1)), tiny_model, max_pixels=None)


def test_truncated_files_and_lazy_images_are_input_errors(rgb, tiny_model, tmp_path):
    png, jpg = _save(rgb, "PNG"), _save(rgb, "JPEG")
    for data in (png[: len(png) // 2], jpg[: len(jpg) // 2], jpg[:-10], png[:40], b"", b"GIF89a"):
        with pytest.raises(InputImageError):
            leechcodec.encode(data, tiny_model)
    path = tmp_path / "t.png"
    path.write_bytes(png[: len(png) // 2])
    lazy = Image.open(path)  # only the header is read here; the truncation shows on load
    with pytest.raises(InputImageError, match="truncated"):
        leechcodec.encode(lazy, tiny_model)


def test_unknown_format_message_has_no_object_repr():
    with pytest.raises(InputImageError) as e:
        read_image(b"not an image at all")
    assert "0x" not in str(e.value) and "BytesIO" not in str(e.value)


# -- decoding: small hostile streams stay small --------------------------------------------

HOSTILE_STREAMS = {
    "20 bytes": b"LQ24" + bytes(16),
    "claims 4G x 4G": _lq(2**32 - 1, 2**32 - 1, tiles=(0xFFFF, 0xFFFF)),
    "claims 1 x 64M": _lq(1, 64 * 1024 * 1024, tiles=(1, 0xFFFF)),
    "claims 40000 x 40000": _lq(40000, 40000, tiles=(157, 157)),
    "claims 65535 tiles, tile 8": _lq(8 * 0xFFFF, 1, tile=8, tiles=(0xFFFF, 1)),
    "length field 4 GB": _resign(_lq()[:30] + b"\xff\xff\xff\xff" + _lq()[34:]),
    "payload too short": _lq(payload=b"\0" * 100),
    "payload value out of range": None,  # filled in below (needs the tiny model's id)
    "tile 64": _lq(tile=64, payload=b"\0" * 100),
    "version 9": _lq(version=9),
    "version 3 without its stage count": _lq(version=3),
    "0 stages": _lq(version=3, stages=0),
    "1 stage in version 3": _lq(version=3, stages=1),
    "9 stages": _lq(version=3, stages=9),
    "2 stages, one stage's payload": _lq(version=3, stages=2, payload=bytes(coders.fixed_tile_bytes(35))),  # 7x5 tokens
    "coder ar": _lq(coder=1),
    "mode 7": _lq(mode=7),
}


# the error each stream must raise (exactly that class) and a fragment of its message, which
# names the check that refuses it: a size the tile grid field cannot hold is an inconsistent
# grid (FormatError) before it is a size over the limit; "coder ar": the tiny model has no AR
# prior (ar payloads are fuzzed in test_prior.py)
HOSTILE_ERRORS = {
    "20 bytes": (FormatError, "truncated"),
    "claims 4G x 4G": (FormatError, "tile grid"),
    "claims 1 x 64M": (FormatError, "tile grid"),
    "claims 40000 x 40000": (LimitError, "over the limit"),
    "claims 65535 tiles, tile 8": (FormatError, "tile"),
    "length field 4 GB": (FormatError, "payload length"),
    "payload too short": (FormatError, "fixed-rate payload is 100 bytes"),
    "payload value out of range": (FormatError, "out of range"),
    "tile 64": (FormatError, "tile"),
    "version 9": (FormatError, "version 9"),
    "version 3 without its stage count": (FormatError, "a version-3 header alone is 39"),
    "0 stages": (FormatError, "0 residual stages: a version-3 stream holds 2 to 8"),
    "1 stage in version 3": (FormatError, "1 residual stages: a version-3 stream holds 2 to 8"),
    "9 stages": (FormatError, "9 residual stages"),
    "2 stages, one stage's payload": (FormatError, "for 1 tiles and 2 stages"),
    "coder ar": (ModelError, "no AR prior"),
    "mode 7": (FormatError, "colour mode 7"),
}


@pytest.fixture
def forward_passes(monkeypatch):
    """Every tokenizer forward pass (analysis or synthesis) from now on, as (name, batch size):
    the work bound of the hostile-input tests (wall-clock limits misfire on a busy machine)."""
    from leechcodec.models.vit import LeechTokenizer

    calls = []
    for name in ("analysis", "synthesis"):
        real = getattr(LeechTokenizer, name)

        def spy(self, x, _real=real, _name=name):
            calls.append((_name, len(x)))
            return _real(self, x)

        monkeypatch.setattr(LeechTokenizer, name, spy)
    return calls


def test_hostile_streams_each_name_their_error():
    assert HOSTILE_ERRORS.keys() == HOSTILE_STREAMS.keys()


@pytest.mark.parametrize("name", sorted(HOSTILE_STREAMS))
def test_small_hostile_streams_fail_fast_and_small(name, tiny_model, forward_passes):
    data = HOSTILE_STREAMS[name]
    if data is None:
        data = _lq(model_id=bytes(tiny_model.model_id), payload=b"\xff" * 2251)
    elif len(data) > 30:
        data = _resign(data[:8] + bytes(tiny_model.model_id) + data[16:])
    assert len(data) <= 2300
    error, match = HOSTILE_ERRORS[name]
    with _traced() as peak:
        with pytest.raises(LeechError, match=match) as e:
            leechcodec.decode(data, tiny_model, max_pixels=None if "64M" in name else leechcodec.DEFAULT_MAX_PIXELS)
        assert type(e.value) is error, (name, e.value)
        # work, not seconds: under 10 MB traced and no forward pass of the network at all
        assert peak() < 10e6 and not forward_passes, (peak(), forward_passes, name)


# -- the CLI: every malformed input --------------------------------------------------------


def _encode_cases(tmp_path: Path, rgb: Image.Image, lq: bytes):
    png = _save(rgb, "PNG")
    return {
        "missing file": (None, 3, "no such file"),
        "empty file": (b"", 3, None),
        "text": (b"hello world\n", 3, "format"),
        "truncated png": (png[: len(png) // 2], 3, "truncated"),
        "truncated jpeg": (_save(rgb, "JPEG")[:300], 3, None),
        "png header 0x0": (_png_header_only(0, 0), 3, None),
        "png header 100000x100000": (_png_header_only(100_000, 100_000), 7, None),
        "png header 9000x9000": (_png_header_only(9000, 9000), 7, "limit"),
        "tiff with 300 samples per pixel": (_tiff_claiming_300_samples(rgb), 3, None),  # no Pillow log line
        "a .lq file": (lq, 3, "leechcodec decode"),
    }


def _decode_cases(lq: bytes, rgb: Image.Image, model_id: bytes):
    return {
        "missing file": (None, 3, "no such file"),
        "empty file": (b"", 4, "bad magic"),
        "20 bytes": (b"LQ24" + bytes(16), 4, "truncated"),
        "a png": (_save(rgb, "PNG"), 4, "leechcodec encode"),
        "a jpeg": (_save(rgb, "JPEG"), 4, "leechcodec encode"),
        "flipped payload bit": (lq[:100] + bytes([lq[100] ^ 1]) + lq[101:], 4, "checksum"),
        "truncated": (lq[:-7], 4, None),
        "extra byte": (lq + b"\0", 4, None),
        "length 4 GB (re-signed)": (_resign(lq[:30] + b"\xff\xff\xff\xff" + lq[34:]), 4, "payload length"),
        "bad tile grid (re-signed)": (_resign(lq[:26] + b"\0\5" + lq[28:]), 4, "tile grid"),
        "payload out of range (re-signed)": (_resign(lq[:34] + b"\xff" * (len(lq) - 38) + lq[-4:]), 4, "out of range"),
        "size bomb (re-signed)": (_lq(40000, 40000, tiles=(157, 157), model_id=model_id), 7, None),
        "other model (re-signed)": (_resign(lq[:8] + b"\1" * 8 + lq[16:]), 5, "model"),
    }


@pytest.fixture(scope="module")
def lq_bytes(tiny_model):
    rng = np.random.default_rng(3)
    return leechcodec.encode(Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)), tiny_model)


# the malformed inputs that are refused only after the model is loaded: the header is valid
# and only the model (its id, its codebook range) can tell; every other one is refused first
NEEDS_MODEL = {"decode": {"payload out of range (re-signed)", "other model (re-signed)"}, "encode": set()}


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_cli_every_malformed_input(command, runner, tmp_path, rgb, lq_bytes, tiny_model, tiny_model_path, monkeypatch,
                                   forward_passes):  # fmt: skip
    if command == "encode":
        cases = _encode_cases(tmp_path, rgb, lq_bytes)
    else:
        cases = _decode_cases(lq_bytes, rgb, bytes(tiny_model.model_id))
    assert len(cases) >= 9 and NEEDS_MODEL[command] <= cases.keys()
    out = tmp_path / ("out.lq" if command == "encode" else "out.png")
    loads = []
    load_model = cli_main.load_model
    monkeypatch.setattr(cli_main, "load_model", lambda *a, **k: loads.append(a) or load_model(*a, **k))
    for name, (data, code, match) in cases.items():
        src = tmp_path / "input.bin"
        if data is None:
            src.unlink(missing_ok=True)
        else:
            src.write_bytes(data)
        loads.clear()
        r = runner.invoke(cli, [command, str(src), "-o", str(out), "--model", str(tiny_model_path)])
        # work, not seconds: the model is loaded only when it must be, and never run
        assert len(loads) == (name in NEEDS_MODEL[command]) and not forward_passes, (name, len(loads), forward_passes)
        try:
            _one_line_error(r, code, match)
        except AssertionError as e:
            raise AssertionError(f"{command} {name}: {e}") from None
        assert not out.exists(), name
        _no_leftovers(tmp_path)
        if data is not None:  # the same bytes through stdin
            r = runner.invoke(cli, [command, "-", "-o", str(out), "--model", str(tiny_model_path)], input=data)
            _one_line_error(r, code)


def _leechcodec_exe() -> list[str]:
    exe = Path(sys.executable).with_name("leechcodec")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "leechcodec.cli"]


@pytest.mark.parametrize(
    "args_of, code",
    [
        (lambda d, m: ["decode", str(d / "twenty.lq"), "-o", str(d / "o.png"), "--model", m], 4),
        (lambda d, m: ["decode", str(d / "bomb.lq"), "-o", str(d / "o.png"), "--model", m], 7),
        (lambda d, m: ["encode", str(d / "bomb.png"), "-o", str(d / "o.lq"), "--model", m], 7),
        (lambda d, m: ["encode", str(d / "twenty.lq"), "-o", str(d / "o.lq"), "--model", m], 3),
    ],
    ids=["decode 20 bytes", "decode size bomb", "encode png size bomb", "encode a .lq"],
)
def test_real_process_fails_fast_with_one_line(tmp_path, tiny_model_path, args_of, code):
    (tmp_path / "twenty.lq").write_bytes(b"LQ24" + bytes(16))
    (tmp_path / "bomb.lq").write_bytes(_lq(40000, 40000, tiles=(157, 157)))
    (tmp_path / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LEECHCODEC_DEBUG", None)
    args = _leechcodec_exe() + args_of(tmp_path, str(tiny_model_path))
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == code, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("leechcodec: error:"), r.stderr
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".*"))


def test_cli_internal_error_exits_70_and_debug_shows_the_traceback(runner, tmp_path, lq_bytes, monkeypatch):
    """An unexpected exception (a bug) is one line and exit 70; LEECHCODEC_DEBUG=1 lets it through
    with its traceback instead (README, "Errors and exit codes")."""
    src = tmp_path / "a.lq"
    src.write_bytes(lq_bytes)

    def bug(*a, **k):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(leechcodec, "read_header", bug)
    monkeypatch.delenv("LEECHCODEC_DEBUG", raising=False)
    r = runner.invoke(cli, ["info", str(src)])
    _one_line_error(r, 70, "internal error: ZeroDivisionError: planted bug (LEECHCODEC_DEBUG=1 shows details)")
    # a real process, as a user runs it: the traceback on stderr and Python's exit status 1
    code = "import sys, leechcodec; from leechcodec.cli.main import main\n"
    code += "def bug(*a, **k): raise ZeroDivisionError('planted bug')\n"
    code += "leechcodec.read_header = bug; sys.argv[0] = 'leechcodec'; main()"
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", LEECHCODEC_DEBUG="1", PYTHONPATH=repo)
    p = subprocess.run([sys.executable, "-c", code, "info", str(src)], capture_output=True, text=True, timeout=120,
                       env=env)  # fmt: skip
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback (most recent call last)" in p.stderr
    assert p.stderr.rstrip().endswith("ZeroDivisionError: planted bug")
    assert "leechcodec: error:" not in p.stderr


def test_cli_closed_pipe_exits_141_quietly(tmp_path, lq_bytes, tiny_model_path):
    """`leechcodec decode x.lq -o - | head -c 10`: when the reader has gone, exit 141 (as if killed
    by SIGPIPE) and print nothing. The read end is closed before the process starts, so every
    write fails, whatever the pipe's buffer size."""
    src = tmp_path / "a.lq"
    src.write_bytes(lq_bytes)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LEECHCODEC_DEBUG", None)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        args = _leechcodec_exe() + ["decode", str(src), "-o", "-", "--model", str(tiny_model_path), "--quiet"]
        p = subprocess.run(args, stdout=write_end, stderr=subprocess.PIPE, timeout=120, env=env)
    finally:
        os.close(write_end)
    assert p.returncode == 141 and p.stderr == b"", (p.returncode, p.stderr.decode(errors="replace"))


# -- crash safety: temp file + rename ------------------------------------------------------


def test_output_goes_through_a_temp_file_in_the_target_folder(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "x.lq"
    target.parent.mkdir()
    seen = {}
    real_link = os.link

    def spy(src, dst):  # a new file is linked into place: that never replaces what appeared meanwhile
        seen["src"], seen["dst"] = Path(src), Path(dst)
        seen["existed"] = Path(src).read_bytes()
        real_link(src, dst)

    monkeypatch.setattr(os, "link", spy)
    common.write_output(str(target), lambda f: f.write(b"data"), force=False)
    assert seen["src"].parent == target.parent and seen["src"].name.startswith(".x.lq.") and seen["dst"] == target
    assert seen["existed"] == b"data" and target.read_bytes() == b"data"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    _no_leftovers(target.parent)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt(), ValueError("bad mode")])
def test_failed_write_keeps_old_output_and_leaves_no_temp(tmp_path, error):
    target = tmp_path / "x.png"
    target.write_bytes(b"precious")

    def writer(f):
        f.write(b"partial")
        raise error

    expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else common.OutputError
    with pytest.raises(expected) as e:
        common.write_output(str(target), writer, force=True)
    if expected is common.OutputError:
        assert "None" not in str(e.value)
    assert target.read_bytes() == b"precious"
    _no_leftovers(tmp_path)


def test_unwritable_folder_is_an_output_error(tmp_path, monkeypatch):
    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied")

    import leechcodec.output

    monkeypatch.setattr(leechcodec.output, "_new_temp", refuse)
    with pytest.raises(common.OutputError, match="Permission denied"):
        common.write_output(str(tmp_path / "x.lq"), lambda f: f.write(b"x"), force=False)


def test_library_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    """Reading the umask means setting it, for every thread of the process: write_file leaves the
    kernel to apply it (open with 0666), for a new file and for one it replaces."""
    from leechcodec.output import write_file

    def forbidden(*a):
        raise AssertionError("library code changed the process umask")

    mask = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", forbidden)
        write_file(tmp_path / "new.lq", lambda f: f.write(b"x"))
        write_file(tmp_path / "new.lq", lambda f: f.write(b"y"))
    finally:
        monkeypatch.undo()
        os.umask(mask)
    assert (tmp_path / "new.lq").read_bytes() == b"y"
    assert (tmp_path / "new.lq").stat().st_mode & 0o777 == 0o640
    _no_leftovers(tmp_path)


APPEARS = {
    "symlink": lambda p: p.symlink_to(p.parent / "elsewhere"),
    "fifo": os.mkfifo,
    "directory": lambda p: p.mkdir(),
    "file": lambda p: p.write_bytes(b"theirs"),
}


@pytest.mark.parametrize("kind", APPEARS)
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_what_appears_during_the_work_is_not_replaced(tmp_path, kind, force):
    """check_output runs before a long encode; the write checks again: what appeared at the output
    meanwhile is left as it is (a regular file is replaced only with --force), no temp file stays."""
    target = tmp_path / "x.lq"
    common.check_output(str(target), force)

    def writer(f):
        f.write(b"ours")
        APPEARS[kind](target)

    if kind == "file" and force:
        common.write_output(str(target), writer, force=force)
        assert target.read_bytes() == b"ours"
    else:
        with pytest.raises(common.OutputError, match=f"cannot write {target}: (a {kind}|a directory|a FIFO) appeared"):
            common.write_output(str(target), writer, force=force)
        still = os.lstat(target).st_mode
        assert {"symlink": stat.S_ISLNK, "fifo": stat.S_ISFIFO, "directory": stat.S_ISDIR, "file": stat.S_ISREG}[kind](still)
        assert not (tmp_path / "elsewhere").exists()
        if kind == "file":
            assert target.read_bytes() == b"theirs"
    _no_leftovers(tmp_path)


def test_the_folder_is_flushed_after_the_rename(tmp_path, monkeypatch):
    """fsync of the file, then of its folder (a crash right after the rename keeps the new name)."""
    from leechcodec.output import write_file

    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_file(tmp_path / "a.lq", lambda f: f.write(b"x"))
    write_file(tmp_path / "a.lq", lambda f: f.write(b"y"))
    assert synced == ["file", "dir", "file", "dir"]


@pytest.mark.parametrize("make, output, words", [
    (lambda d: (d / "f.png").write_bytes(b"x"), "f.png/x.lq", "f.png is not a directory"),
    (lambda d: ((d / "loop1").symlink_to(d / "loop2"), (d / "loop2").symlink_to(d / "loop1")), "loop1", "symlink loop"),
    (lambda d: None, "newdir/", "newdir/ names a directory (it ends with '/') and there is none"),
    (lambda d: (d / "f.lq").write_bytes(b"x"), "f.lq/", "f.lq/ names a directory"),
])  # fmt: skip
def test_cli_impossible_output_paths_are_output_errors(runner, tmp_path, lq_bytes, tiny_model_path, monkeypatch,
                                                      make, output, words):  # fmt: skip
    """A parent that is a file, a symlink loop, a trailing slash: exit 8 with one line, nothing
    written (no file named 'newdir' for `-o newdir/`: a trailing slash means a directory, which
    leechcodec does not create)."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "a.png"
    Image.new("RGB", (20, 12), (9, 99, 199)).save(src)
    (tmp_path / "s.lq").write_bytes(lq_bytes)
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (["encode", str(src)], ["decode", "s.lq"]):
        r = runner.invoke(cli, [*args, "-o", output, "--model", str(tiny_model_path), "--quiet"])
        _one_line_error(r, 8, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(IsADirectoryError):
        from leechcodec.output import write_file

        write_file("newdir/", lambda f: f.write(b"x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_interrupt_during_write_exits_130(runner, tmp_path, lq_bytes, tiny_model_path, monkeypatch):
    src, out = tmp_path / "a.lq", tmp_path / "o.png"
    src.write_bytes(lq_bytes)
    out.write_bytes(b"precious")

    def interrupted_save(self, fp, *a, **kw):
        fp.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    r = runner.invoke(cli, ["decode", str(src), "-o", str(out), "--force", "--model", str(tiny_model_path)])
    _one_line_error(r, 130, "interrupted")
    assert out.read_bytes() == b"precious"
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("ext, match", [(".psd", "cannot write PSD"), (".xbm", "XBM"), (".blp", "BLP")])
def test_cli_unwritable_image_formats_are_output_errors(runner, tmp_path, lq_bytes, tiny_model_path, ext, match):
    src, out = tmp_path / "a.lq", tmp_path / f"o{ext}"
    src.write_bytes(lq_bytes)
    r = runner.invoke(cli, ["decode", str(src), "-o", str(out), "--model", str(tiny_model_path)])
    _one_line_error(r, 8, match)
    assert "None" not in r.stderr and not out.exists()
    _no_leftovers(tmp_path, keep={"a.lq"})


# -- weights -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_parts(tiny_model_path):
    from safetensors import safe_open

    with safe_open(str(tiny_model_path), framework="pt") as f:
        meta = f.metadata()
    return load_file(str(tiny_model_path)), meta


def _weights(tmp_path, state, meta, name="w.safetensors") -> Path:
    path = tmp_path / name
    save_file(state, path, metadata=meta)
    return path


def _with_config(meta: dict, **changes) -> dict:
    cfg = json.loads(meta["config"])
    cfg.update(changes)
    return dict(meta, config=json.dumps(cfg))


@pytest.mark.parametrize(
    "content",
    [b"", b"1234567", b"\x80\x04\x95" + bytes(64), b"PK\x03\x04" + bytes(64), os.urandom(4096),
     (2**63).to_bytes(8, "little") + b"{}", (99_000_000).to_bytes(8, "little") + b"{}",
     (20).to_bytes(8, "little") + b'{"not json' + bytes(10), (2).to_bytes(8, "little") + b"[]"],
    ids=["empty", "7 bytes", "pickle", "zip (torch.save)", "random", "header 2^63", "header 99 MB, file short",
         "bad json header", "json list header"],
)  # fmt: skip
def test_not_safetensors_is_a_model_error(tmp_path, content):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError):
        load_weights(path)


def test_missing_and_directory_are_model_errors(tmp_path):
    for path in (tmp_path / "none.safetensors", tmp_path):
        with pytest.raises(ModelError, match="not found"):
            load_weights(path)


BAD_CONFIGS = {
    "not json": "{width: 32",
    "a list": "[1, 2]",
    "a string": '"tiny"',
    "deeply nested": "[" * 100_000 + "]" * 100_000,
    "unknown field": {"dropout": 0.1},
    "width as string": {"width": "32"},
    "width as float": {"width": 32.0},
    "width as bool": {"width": True},
    "zero heads": {"heads": 0},
    "negative depth": {"depth": -1},
    "nan mlp ratio": {"mlp_ratio": float("nan")},
    "infinite mlp ratio": {"mlp_ratio": float("inf")},
    "huge mlp ratio": {"mlp_ratio": 1e300},
    "huge width": {"width": 10**12, "heads": 2},
    "astronomical width": {"width": 10**40, "heads": 2},
    "huge depth": {"depth": 10**9},
    "tile not a multiple of 8": {"tile": 12, "patch": 4, "stem": "linear"},
    "too many tokens per tile": {"tile": 65528, "patch": 8},
    "unknown stem": {"stem": "mlp"},
    "latent dim": {"latent_dim": 16},
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_metadata_is_a_model_error_without_allocating(tmp_path, tiny_parts, name, monkeypatch):
    state, meta = tiny_parts
    bad = BAD_CONFIGS[name]
    meta = dict(meta, config=bad) if isinstance(bad, str) else _with_config(meta, **bad)
    path = _weights(tmp_path, state, meta)
    # work, not seconds: a config is only ever built on the meta device (shapes, no memory), and
    # only one of no more blocks than the file has tensors (a depth of 10^9 would never finish)
    from leechcodec.models import io as model_io_mod

    real = model_io_mod.LeechTokenizer

    def bounded(cfg):
        assert torch.empty(0).device.type == "meta", f"{name}: a model built in memory before its tensors were checked"
        assert cfg.depth + cfg.dec_depth <= len(state), f"{name}: a {cfg.depth}+{cfg.dec_depth}-block model was built"
        return real(cfg)

    monkeypatch.setattr(model_io_mod, "LeechTokenizer", bounded)
    with pytest.raises(ModelError):
        load_weights(path)


def test_metadata_without_the_format_tag_is_a_model_error(tmp_path, tiny_parts):
    state, meta = tiny_parts
    for m in (None, {k: v for k, v in meta.items() if k != "config"}, dict(meta, format="other-tokenizer")):
        with pytest.raises(ModelError, match="not a leechcodec tokenizer"):
            load_weights(_weights(tmp_path, state, m))


def test_tensors_that_do_not_match_the_config_are_model_errors(tmp_path, tiny_parts):
    state, meta = tiny_parts
    name = sorted(state)[0]
    renamed = {("x." + k if k == name else k): v for k, v in state.items()}
    missing = {k: v for k, v in state.items() if k != name}
    extra = dict(state, extra=torch.zeros(3, dtype=torch.float16))
    reshaped = dict(state, **{name: torch.zeros(state[name].numel() + 1, dtype=torch.float16)})
    for bad in (renamed, missing, extra, reshaped):
        with pytest.raises(ModelError, match="do not match"):
            load_weights(_weights(tmp_path, bad, meta))
    small = _with_config(meta, name="small", width=192, depth=3, dec_depth=4, heads=3, head_channels=16)
    with pytest.raises(ModelError, match="do not match"):  # a known preset's config over tiny tensors
        load_weights(_weights(tmp_path, state, small))


def test_non_finite_or_integer_tensors_are_model_errors(tmp_path, tiny_parts):
    state, meta = tiny_parts
    name = sorted(state)[0]
    nan = state[name].clone()
    nan.view(-1)[0] = float("nan")
    for bad in (dict(state, **{name: nan}), dict(state, **{name: state[name].to(torch.int16)})):
        with pytest.raises(ModelError, match="finite"):
            load_weights(_weights(tmp_path, bad, meta))


def test_cli_bad_model_files_one_line(runner, tmp_path, rgb, tiny_parts):
    state, meta = tiny_parts
    src = tmp_path / "in.png"
    src.write_bytes(_save(rgb, "PNG"))
    bad = [_weights(tmp_path, state, _with_config(meta, width=10**12, heads=2), "huge.safetensors")]
    header_bomb = tmp_path / "bomb.safetensors"
    header_bomb.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    bad.append(header_bomb)
    for path in bad:
        r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "o.lq"), "--model", str(path)])
        _one_line_error(r, 6)
        assert not (tmp_path / "o.lq").exists()
