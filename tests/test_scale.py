"""The coded size as a rate knob (``encode --scale``, format version 4): CLI, limits, hostile headers, plugin.

The frozen tiny model of tests/data codes the pictures (the format and the resampling do not
depend on its quality); docs/FORMAT.md's resampling itself is checked in test_format_spec.py.
"""

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import container
from leechcodec.cli.main import cli
from leechcodec.errors import FormatError, LimitError

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "tiny.safetensors"


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(11)
    return Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))


def _one_line(r) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def test_cli_scale_codes_another_size_and_decodes_the_picture(tmp_path, picture):
    src, lq, out = tmp_path / "a.png", tmp_path / "a.lq", tmp_path / "b.png"
    picture.save(src)
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(src), "-o", str(lq), "--model", str(TINY), "--scale", "0.5"])
    assert r.exit_code == 0, r.output
    assert "coded at 60x45 (scale 0.5)" in r.stderr
    h = leechcodec.read_header(lq.read_bytes())
    assert (h.version, h.coded_size, (h.width, h.height), h.tiles_x) == (4, (60, 45), (120, 90), 1)
    r = runner.invoke(cli, ["info", str(lq)])
    assert r.exit_code == 0 and "coded size: 60x45 (scale 0.5 x 0.5; decode resamples to 120x90)" in r.stdout
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--model", str(TINY)])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (120, 90)
    full = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "c.lq"), "--model", str(TINY)])
    assert full.exit_code == 0 and len(lq.read_bytes()) < len((tmp_path / "c.lq").read_bytes())


@pytest.mark.parametrize("bad", ["0", "-1", "2.01", "nan", "inf", "x"])
def test_cli_refuses_scales_outside_the_format(tmp_path, picture, bad):
    src = tmp_path / "a.png"
    picture.save(src)
    r = CliRunner().invoke(cli, ["encode", str(src), "-o", str(tmp_path / "a.lq"), "--model", str(TINY), "--scale", bad])
    assert r.exit_code == 2 and not (tmp_path / "a.lq").exists()


def test_library_refuses_bad_scales(tiny_frozen, picture):
    for bad in (0, -0.5, 2.5, float("nan"), "1", True):
        with pytest.raises(ValueError, match="scale must be"):
            leechcodec.encode(picture, tiny_frozen, scale=bad)


def test_a_scale_that_rounds_to_the_picture_is_version_2(tiny_frozen, picture):
    """The coded size is rounded as FORMAT.md says; where it is the picture's own, the stream is
    the plain one (version 2), byte for byte."""
    assert container.coded_size(120, 90, 1.004) == (120, 90)
    assert leechcodec.encode(picture, tiny_frozen, scale=1.004) == leechcodec.encode(picture, tiny_frozen)
    assert container.coded_size(120, 90, 1.005) == (121, 90)  # 120.6 rounds up, 90.45 down
    assert leechcodec.read_header(leechcodec.encode(picture, tiny_frozen, scale=1.005)).version == 4


@pytest.mark.parametrize("size, scale, coded", [((1, 1), 0.3, (1, 1)), ((16, 16), 0.5, (8, 8)), ((7, 300), 0.05, (1, 15)),
                                               ((3, 2), 2.0, (6, 4)), ((300, 1), 2.0, (600, 2))])
def test_tiny_and_thin_pictures_code_and_decode(tiny_frozen, size, scale, coded):
    rgb = np.random.default_rng(size[0]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    data = leechcodec.encode(Image.fromarray(rgb), tiny_frozen, scale=scale)
    h = leechcodec.read_header(data)
    assert h.coded_size == coded and h.version == (2 if coded == size else 4)
    assert leechcodec.decode(data, tiny_frozen).size == size


def test_max_pixels_applies_to_the_coded_size(tmp_path, tiny_frozen, picture):
    """120x90 = 10,800 pixels is under the limit, coded at 240x180 = 43,200 it is not: exit 7, one
    line, nothing written; the decoder refuses such a stream under the same limit."""
    with pytest.raises(LimitError, match="the coded picture is 240x180"):
        leechcodec.encode(picture, tiny_frozen, scale=2, max_pixels=20_000)
    src, lq = tmp_path / "a.png", tmp_path / "a.lq"
    picture.save(src)
    r = CliRunner().invoke(cli, ["encode", str(src), "-o", str(lq), "--model", str(TINY), "--scale", "2",
                                 "--max-pixels", "20000"])
    assert r.exit_code == 7 and "--max-pixels" in _one_line(r) and not lq.exists()
    data = leechcodec.encode(picture, tiny_frozen, scale=2)
    with pytest.raises(LimitError):
        leechcodec.decode(data, tiny_frozen, max_pixels=20_000)
    assert leechcodec.decode(data, tiny_frozen, max_pixels=50_000).size == (120, 90)


def _with_coded_size(data: bytes, cw: int, ch: int, stages: int | None = None, grid: bool = True) -> bytes:
    """``data`` (a version-4 stream) with another coded size (and tile grid to match), re-signed."""
    body = bytearray(data[:-4])
    body[34:43] = container.CODED.pack(body[34] if stages is None else stages, cw, ch)
    if grid and cw and ch:
        tx, ty = container.tile_grid(cw, ch, 256)
        body[26:30] = min(tx, 0xFFFF).to_bytes(2, "big") + min(ty, 0xFFFF).to_bytes(2, "big")
    return bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big")


@pytest.mark.parametrize("cw, ch, stages, why", [
    (0, 45, 1, "each side is 1 to 2 x"), (241, 90, 1, "each side is 1 to 2 x"), (60, 2**32 - 1, 1, "each side is 1 to 2 x"),
    (120, 90, 1, "not canonical"), (60, 45, 0, "holds 1 to 8"), (60, 45, 9, "holds 1 to 8"),
])
def test_hostile_coded_sizes_exit_4_with_one_line(tmp_path, tiny_frozen, picture, cw, ch, stages, why):
    good = leechcodec.encode(picture, tiny_frozen, scale=0.5)
    bad = tmp_path / "bad.lq"
    bad.write_bytes(_with_coded_size(good, cw, ch, stages))
    with pytest.raises(FormatError, match=why):
        leechcodec.read_header(bad.read_bytes())
    out = tmp_path / "out.png"
    r = CliRunner().invoke(cli, ["decode", str(bad), "-o", str(out), "--model", str(TINY)])
    assert r.exit_code == 4 and why in _one_line(r) and not out.exists()
    r = CliRunner().invoke(cli, ["info", str(bad)])
    assert r.exit_code == 4 and "<-" in r.stdout


def test_a_grid_that_does_not_match_the_coded_size_is_refused(tiny_frozen, picture):
    wide = picture.resize((200, 90))
    good = leechcodec.encode(wide, tiny_frozen, scale=2)  # 400x180: two tiles across
    with pytest.raises(FormatError, match="picture coded at 250x180"):
        leechcodec.read_header(_with_coded_size(good, 250, 180, grid=False))  # one tile across, the grid says two


def test_the_coded_size_is_what_the_decoder_decodes(tiny_frozen, picture):
    """A stream whose coded size is changed to another of the same tile grid no longer decodes (its
    stored tokens are those of the coded size): the decoder reads the field."""
    good = leechcodec.encode(picture, tiny_frozen, scale=0.5, coder="ar")
    with pytest.raises(FormatError):
        leechcodec.decode(_with_coded_size(good, 100, 45), tiny_frozen)


def test_pillow_plugin_shows_and_writes_the_coded_size(tiny_frozen, picture):
    import leechcodec.pillow as lqpil

    buf = io.BytesIO()
    lqpil.set_model(tiny_frozen)
    try:
        picture.save(buf, format="LQ", scale=0.5)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            assert im.size == (120, 90) and im.info["coded_size"] == (60, 45)
            im.load()
            assert np.array_equal(np.asarray(im), np.asarray(leechcodec.decode(buf.getvalue(), tiny_frozen)))
    finally:
        lqpil.set_model(None)
