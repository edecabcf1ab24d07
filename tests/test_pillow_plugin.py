"""The Pillow plugin (leechcodec/pillow.py): Image.open/save of .lq files, on real streams.

The streams of tests/data were coded with the frozen tiny model there, so most tests decode
with it (``set_model``); the bundled model is used where the default matters. Pixels are
compared with ``leechcodec.decode`` of the same bytes at the same precision.
"""

import io
import pickle
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import leechcodec
import leechcodec.pillow as lqpil
from leechcodec import container
from leechcodec.container import Header
from leechcodec.errors import FormatError, LeechWarning, LimitError, ModelError, ModelMismatchError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
RGB_FIXED = DATA / "rgb-301x77.fixed.lq"
STREAMS = ["rgb-301x77.fixed.lq", "rgb-301x77.ar.lq", "grey-45x61.fixed.lq", "grey-45x61.ar.lq",  # format version 1
           "rgb-301x77.fixed.v2.lq", "rgb-301x77.ar.v2.lq", "grey-45x61.ar.v2.lq",  # version 2
           "rgb-301x77.fixed.s2.v3.lq", "rgb-301x77.ar.s3.v3.lq"]  # version 3: residual stages


@pytest.fixture
def settings(monkeypatch):
    """The plugin's model settings and limit, restored after the test."""
    monkeypatch.setattr(lqpil, "_settings", lqpil._settings)
    monkeypatch.setattr(lqpil, "MAX_PIXELS", lqpil.MAX_PIXELS)


@pytest.fixture
def tiny(tiny_frozen, settings):
    """The plugin decodes and encodes with the frozen tiny model, in float32."""
    lqpil.set_model(tiny_frozen, precision="fp32")
    return tiny_frozen


def _resigned(data: bytes, offset: int, value: bytes) -> bytes:
    """``data`` with ``value`` written at ``offset`` and a valid CRC32 trailer."""
    body = data[:offset] + value + data[offset + len(value) : -container.TRAILER.size]
    return body + container.TRAILER.pack(zlib.crc32(body))


def _forged(width: int, height: int) -> bytes:
    """A valid stream of a ``width`` x ``height`` header and an empty payload."""
    tx, ty = container.tile_grid(width, height, container.TILE)
    return container.pack(Header("fixed", "RGB", bytes(8), width, height, container.TILE, tx, ty, 0), b"")


def _unpack_error(data: bytes, max_pixels=container.DEFAULT_MAX_PIXELS) -> str:
    """What ``container.unpack`` says of bad bytes: the words the plugin must raise."""
    with pytest.raises((FormatError, LimitError)) as e:
        container.unpack(data, max_pixels)
    return str(e.value)


def test_registered_once_with_pillow():
    lqpil.register()
    lqpil.register()
    assert Image.ID.count("LQ") == 1
    assert Image.OPEN["LQ"][0] is lqpil.LqImageFile
    assert Image.SAVE["LQ"] is lqpil._save
    assert Image.registered_extensions()[".lq"] == "LQ"
    assert Image.MIME["LQ"] == "image/x-leechcodec"


def test_open_reads_the_header_only():
    """Open, size, mode and verify() in a fresh process: no torch, no model (and no
    registration by ``import leechcodec`` alone)."""
    code = textwrap.dedent(f"""
        import io, sys
        import leechcodec
        from PIL import Image
        Image.init()
        print('LQ' in Image.OPEN)
        import leechcodec.pillow as lqpil
        for name in ({RGB_FIXED.name!r}, 'grey-45x61.ar.lq'):
            im = Image.open({str(DATA)!r} + '/' + name)
            print(im.format, im.size, im.mode, im.info['coder'])
            im.verify()
        bad = bytearray(open({str(RGB_FIXED)!r}, 'rb').read())
        bad[100] ^= 4
        im = Image.open(io.BytesIO(bytes(bad)))
        try:
            im.verify()
        except lqpil.LqFormatError as e:
            print('verify:', e)
        print(sorted(m for m in ('torch', 'leechcodec.models', 'leechcodec.codec') if m in sys.modules))
        print(lqpil._load_weights.cache_info().currsize)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.splitlines() == [
        "False",
        "LQ (301, 77) RGB fixed",
        "LQ (45, 61) L ar",
        "verify: checksum mismatch: the .lq stream is corrupted",
        "[]",
        "0",
    ]


@pytest.mark.parametrize("name", STREAMS)
def test_load_gives_the_pixels_of_decode(tiny, name):
    data = (DATA / name).read_bytes()
    want = leechcodec.decode(data, tiny, precision="fp32")
    for source in (DATA / name, io.BytesIO(data)):
        with Image.open(source) as im:
            assert (im.format, im.size, im.mode) == ("LQ", want.size, want.mode)
            h = leechcodec.read_header(data)
            assert im.info == {"coder": name.split(".")[1], "model_id": tiny.model_id.hex(), "stages": h.stages,
                               "coded_size": h.coded_size}
            assert (im.info["coded_size"] != im.size) == (h.version == 4)  # version 4: the size the tokens code
            im.load()
            assert im.im.mode == want.mode
            np.testing.assert_array_equal(np.asarray(im), np.asarray(want))


def test_default_precision_is_decodes(tiny_frozen, settings):
    lqpil.set_model(tiny_frozen)  # precision "auto", as leechcodec.decode and the CLI
    data = RGB_FIXED.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(leechcodec.decode(data, tiny_frozen)))


def test_load_like_pillows(tiny, monkeypatch):
    """Decoded once, pixel access returned every time, the file closed if Image.open opened it."""
    from leechcodec import codec

    calls = []
    decode = codec.decode
    monkeypatch.setattr(codec, "decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    im = Image.open(RGB_FIXED)
    fp = im.fp
    assert im.tile and not calls  # not decoded by open
    first = im.load()
    assert first[5, 7] == im.getpixel((5, 7)) and im.load()[5, 7] == first[5, 7]
    assert len(calls) == 1 and not im.tile
    assert fp.closed and im.fp is None
    im.copy().tobytes()  # works on the loaded pixels, no decode
    assert len(calls) == 1
    buf = io.BytesIO(RGB_FIXED.read_bytes())
    Image.open(buf).load()
    assert not buf.closed  # a caller's file stays open, as Pillow leaves it


@pytest.mark.parametrize("coder", ["fixed", "ar"])
def test_save_and_open_round_trip(tiny, coder, tmp_path):
    src = Image.open(DATA / "rgb-301x77.png")
    want = leechcodec.encode(src, tiny, coder=coder, precision="fp32")
    path = tmp_path / "x.lq"
    src.save(path, coder=coder)  # format from the extension
    buf = io.BytesIO()
    src.save(buf, format="LQ", coder=coder)
    assert path.read_bytes() == buf.getvalue() == want
    assert leechcodec.read_header(want).coder == coder
    for source in (path, io.BytesIO(want)):
        with Image.open(source) as im:
            np.testing.assert_array_equal(np.asarray(im), np.asarray(leechcodec.decode(want, tiny, precision="fp32")))


def test_save_options(tiny, tiny_frozen):
    src = Image.open(DATA / "grey-45x61.png")
    buf = io.BytesIO()
    src.save(buf, format="LQ", coder="fixed", effort=1, precision="bf16", model=tiny_frozen)
    assert buf.getvalue() == leechcodec.encode(src, tiny_frozen, coder="fixed", effort=1, precision="bf16")
    for opts in ({"quality": 100}, {"stages": 2, "coder": "fixed"}, {"lambda": 0.01}, {"bpp": 2.0}):
        buf = io.BytesIO()
        src.save(buf, format="LQ", model=tiny_frozen, precision="fp32", **opts)
        kw = {("lam" if k == "lambda" else k): v for k, v in opts.items()}
        assert buf.getvalue() == leechcodec.encode(src, tiny_frozen, precision="fp32", **kw)
    assert leechcodec.read_header(buf.getvalue()).stages > 1  # bpp 2.0 leaves room for stages
    with pytest.raises(ValueError, match="quality must be"):
        src.save(io.BytesIO(), format="LQ", quality=101)
    with pytest.raises(ValueError, match="unknown coder"):
        src.save(io.BytesIO(), format="LQ", coder="zip")
    with pytest.raises(ValueError, match="unknown precision"):
        src.save(io.BytesIO(), format="LQ", precision="fp8")
    with pytest.raises(ValueError, match="unknown precision"):
        lqpil.set_model(tiny_frozen, precision="fp8")


def test_grey_stays_grey_and_other_modes_convert_as_encode_does(tiny):
    grey = Image.open(DATA / "grey-45x61.png")
    assert grey.mode == "L"
    buf = io.BytesIO()
    grey.save(buf, format="LQ", coder="fixed")
    with Image.open(buf) as im:
        assert im.mode == "L"
        im.load()
        assert im.mode == im.im.mode == "L" and im.size == (45, 61)
    rgba = Image.open(DATA / "rgb-301x77.png").convert("RGBA")
    buf = io.BytesIO()
    with pytest.warns(LeechWarning, match="alpha"):
        rgba.save(buf, format="LQ", coder="fixed")
    assert buf.getvalue() == leechcodec.encode(rgba.convert("RGB"), tiny, coder="fixed", precision="fp32")
    assert Image.open(buf).mode == "RGB"


def test_bundled_model_by_default(settings, one_thread):
    lqpil.set_model(None, precision="fp32")
    model = lqpil.model_for()
    assert lqpil.model_for() is model and model.prior is not None  # loaded once, with its prior
    buf = io.BytesIO()
    Image.open(DATA / "grey-45x61.png").save(buf, format="LQ")  # coder "auto": ar with the bundled prior
    data = buf.getvalue()
    assert leechcodec.read_header(data).coder == "ar" and Image.open(buf).info["model_id"] == model.model_id.hex()
    with Image.open(buf) as im:
        np.testing.assert_array_equal(np.asarray(im), np.asarray(leechcodec.decode(data, model, precision="fp32")))
    # a stream of another model: refused at load, with decode's words
    with Image.open(RGB_FIXED) as im, pytest.raises(lqpil.LqModelMismatchError) as e:
        im.load()
    assert isinstance(e.value, OSError) and isinstance(e.value, ModelMismatchError)
    assert str(e.value).startswith("this file needs model 145d441354bf57c2, the loaded model is ")


def test_model_per_image_and_by_path(tiny_frozen, settings, one_thread):
    data = (DATA / "grey-45x61.fixed.lq").read_bytes()
    want = np.asarray(leechcodec.decode(data, tiny_frozen, precision="fp32"))
    lqpil.set_model(DATA / "tiny.safetensors", precision="fp32")  # a path, read once
    assert lqpil.model_for().model_id == tiny_frozen.model_id
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), want)
    lqpil.set_model(object(), precision="fp32")  # a default that cannot decode: the image's own is used
    for model in (tiny_frozen, str(DATA / "tiny.safetensors")):
        im = Image.open(io.BytesIO(data))
        im.model = model
        np.testing.assert_array_equal(np.asarray(im), want)


def test_save_errors_are_oserrors_and_leave_no_file(tiny_frozen, settings, tmp_path):
    from leechcodec.models.io import load_weights

    no_prior = load_weights(DATA / "tiny.safetensors", prior=None)
    path = tmp_path / "x.lq"
    with pytest.raises(lqpil.LqModelError, match="needs an AR prior") as e:
        Image.open(DATA / "grey-45x61.png").save(path, coder="ar", model=no_prior)
    assert isinstance(e.value, OSError) and isinstance(e.value, ModelError)
    assert not path.exists()
    lqpil.MAX_PIXELS = 1000
    with pytest.raises(lqpil.LqLimitError, match="over the limit of 1000"):
        Image.open(DATA / "grey-45x61.png").save(io.BytesIO(), format="LQ", model=tiny_frozen)


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".part")]


def test_save_to_a_path_is_atomic_and_does_not_overwrite_unasked(tiny, tmp_path):
    """``leechcodec.pillow.save``: the whole file or the old one, never an emptied one; an existing
    file is replaced only with ``overwrite=True`` (refused before any encoding otherwise)."""
    src = Image.open(DATA / "grey-45x61.png")
    path = tmp_path / "x.lq"
    lqpil.save(src, path, coder="fixed")
    want = leechcodec.encode(src, tiny, coder="fixed", precision="fp32")
    assert path.read_bytes() == want
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        lqpil.save(src, path, coder="fixed")
    assert path.read_bytes() == b"precious"
    lqpil.MAX_PIXELS = 1000  # a save that fails half-way: the old file stays whole
    with pytest.raises(lqpil.LqLimitError, match="over the limit of 1000"):
        lqpil.save(src, path, overwrite=True, coder="fixed")
    assert path.read_bytes() == b"precious"
    lqpil.MAX_PIXELS = container.DEFAULT_MAX_PIXELS
    lqpil.save(src, path, overwrite=True, coder="fixed")
    assert path.read_bytes() == want
    _no_temp_files(tmp_path)


def test_image_save_to_a_path_is_pillows(tiny, tmp_path):
    """What the docs say of ``Image.save(path)``: Pillow empties the file before the plugin runs,
    so a failed save leaves an existing file empty (and removes one it created). If Pillow ever
    stops doing that, this test says the docs can change."""
    src = Image.open(DATA / "grey-45x61.png")
    path = tmp_path / "x.lq"
    path.write_bytes(b"precious")
    lqpil.MAX_PIXELS = 1000
    with pytest.raises(lqpil.LqLimitError):
        src.save(path, coder="fixed")
    assert path.read_bytes() == b""
    for text in (lqpil.__doc__, lqpil.save.__doc__, (REPO / "README.md").read_text()):
        assert "empt" in text and "atomic" in text


def test_other_files_are_not_claimed():
    png = DATA / "rgb-301x77.png"
    assert not lqpil._accept(png.read_bytes()[:16]) and lqpil._accept(RGB_FIXED.read_bytes()[:16])
    assert Image.open(png).format == "PNG"
    with pytest.raises(UnidentifiedImageError) as e:
        Image.open(png, formats=["LQ"])
    assert not isinstance(e.value, FormatError)  # Pillow's own "cannot identify", not ours


def _corrupt_cases() -> list:
    good = RGB_FIXED.read_bytes()
    be = int.to_bytes
    return [
        pytest.param(good[:20], id="truncated-header"),
        pytest.param(good[:37], id="truncated-trailer"),
        pytest.param(good[:-100], id="cut-payload"),
        pytest.param(good + b"\0", id="trailing-byte"),
        pytest.param(_resigned(good, 4, b"\x03"), id="version"),
        pytest.param(_resigned(good, 5, b"\x09"), id="coder"),
        pytest.param(_resigned(good, 6, b"\x07"), id="mode"),
        pytest.param(_resigned(good, 7, b"\x01"), id="flags"),
        pytest.param(_resigned(good, 16, be(0, 4, "big")), id="width-0"),
        pytest.param(_resigned(good, 24, be(128, 2, "big")), id="tile"),
        pytest.param(_resigned(good, 26, be(3, 2, "big")), id="tile-grid"),
    ]


@pytest.mark.parametrize("bad", _corrupt_cases())
def test_corrupt_header_is_unidentified_with_leechcodecs_words(bad, tmp_path):
    want = _unpack_error(bad)
    path = tmp_path / "bad.lq"
    path.write_bytes(bad)
    for source in (io.BytesIO(bad), path):
        with pytest.raises(UnidentifiedImageError) as e:
            Image.open(source)
        assert isinstance(e.value, lqpil.LqUnidentifiedImageError) and isinstance(e.value, FormatError)
        assert str(e.value) == want


def test_damaged_payload_found_by_verify_and_load(tiny):
    bad = bytearray(RGB_FIXED.read_bytes())
    bad[1000] ^= 0x20
    bad = bytes(bad)
    want = _unpack_error(bad)
    assert want.startswith("checksum mismatch")
    im = Image.open(io.BytesIO(bad))
    assert im.size == (301, 77)  # the header is fine: open does not read the payload
    with pytest.raises(lqpil.LqFormatError) as e:
        im.verify()
    assert isinstance(e.value, OSError) and isinstance(e.value, FormatError) and str(e.value) == want
    with Image.open(io.BytesIO(bad)) as im, pytest.raises(OSError) as e:
        im.load()
    assert isinstance(e.value, FormatError) and str(e.value) == want


def test_verify_like_pillows(tiny):
    im = Image.open(RGB_FIXED)
    fp = im.fp
    im.verify()  # a sound stream
    assert fp.closed and im.fp is None
    with pytest.raises(OSError, match="reopen"):
        im.load()
    im = Image.open(RGB_FIXED)
    im.load()
    with pytest.raises(RuntimeError, match="directly after open"):
        im.verify()


def test_pillows_decompression_bomb_check(monkeypatch, settings):
    pixels = 301 * 77
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels // 2 - 1)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(RGB_FIXED)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels - 1)
    with pytest.warns(Image.DecompressionBombWarning):
        assert Image.open(RGB_FIXED).size == (301, 77)
    monkeypatch.undo()
    lqpil.MAX_PIXELS = None  # only Pillow's limit: a header claiming 400 megapixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(_forged(20000, 20000)))


@pytest.mark.parametrize("data, max_pixels", [(_forged(20000, 20000), container.DEFAULT_MAX_PIXELS),
                                               (RGB_FIXED.read_bytes(), 1000)])  # fmt: skip
def test_leechcodec_limit_at_open(settings, data, max_pixels):
    lqpil.MAX_PIXELS = max_pixels
    with pytest.raises(lqpil.LqLimitError) as e:
        Image.open(io.BytesIO(data))
    assert isinstance(e.value, OSError) and isinstance(e.value, LimitError)
    assert str(e.value) == _unpack_error(data, max_pixels)


@pytest.mark.parametrize(
    "cls", [lqpil.LqUnidentifiedImageError, lqpil.LqFormatError, lqpil.LqLimitError, lqpil.LqModelError,
            lqpil.LqModelMismatchError, lqpil.LqInputImageError],
)  # fmt: skip
def test_error_classes_pickle_and_keep_their_words(cls):
    e = pickle.loads(pickle.dumps(cls("the words")))
    assert type(e) is cls and str(e) == "the words"
    assert isinstance(e, OSError) and isinstance(e, leechcodec.LeechError)


def test_encode_still_refuses_a_lq_input_once_pillow_reads_them(tiny):
    """leechcodec.encode codes images; a .lq given to it is a mistake even though Pillow can now open it."""
    from leechcodec.errors import InputImageError

    for src in (RGB_FIXED, RGB_FIXED.read_bytes()):
        with pytest.raises(InputImageError, match="is a .lq stream, not an image"):
            leechcodec.encode(src, tiny)
    leechcodec.encode(Image.open(RGB_FIXED), tiny, coder="fixed")  # an image a caller opened is theirs to code
