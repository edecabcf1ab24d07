"""Comparison pictures at equal file size (kodak_eval.figures) and `leechcodec compare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from leechcodec.cli.common import OutputError
from leechcodec.cli.main import cli
from leechcodec.kodak_eval.codecs import CLASSICAL
from leechcodec.kodak_eval.figures import (
    GAP,
    MARGIN,
    Panel,
    Row,
    crops_figure,
    match_bytes,
    panel_lines,
    panels,
    pick_crop,
)

REPO = Path(__file__).resolve().parents[1]
RGB_256 = REPO / "tests" / "data" / "rgb-256x256.png"


@pytest.fixture(scope="module")
def photo():
    """A 256x256 crop of the demo picture (kodim23: the parrot's head), natural enough for real rates."""
    with Image.open(REPO / "docs" / "kodim23.png") as im:
        return im.convert("RGB").crop((256, 128, 512, 384))


@pytest.fixture(scope="module")
def bundled(one_thread):
    from leechcodec.models.io import load_weights

    return load_weights()


@pytest.fixture(scope="module")
def shown(bundled):
    with Image.open(RGB_256) as im:
        return panels(im, bundled, codecs=("jpeg2000", "webp", "jpeg"))


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_match_bytes_finds_the_closest_quality(photo, codec):
    """Against every quality 0..100: the bisection (and its look at the neighbours) lands on the best one."""
    c = CLASSICAL[codec]
    sizes = {q: len(c.encode(photo, q)) for q in range(101)}
    for target in (1500, 2500, 4000):
        value, data = match_bytes(photo, codec, target)
        best = min(abs(n - target) for n in sizes.values())
        assert isinstance(value, int) and data == c.encode(photo, value)
        assert abs(len(data) - target) == best, (target, value, len(data))
        if codec == "jpeg" and target > 2000:
            assert abs(len(data) - target) <= 0.03 * target
    exact = sizes[40]
    assert len(match_bytes(photo, codec, exact)[1]) == exact  # an exact size is found as is
    assert match_bytes(photo, codec, 1)[0] == min(sizes, key=lambda q: (sizes[q], q))  # below any file: the smallest


def test_match_bytes_ties_and_neighbours(photo, monkeypatch):
    """Two files equally far from the target: the one not above it; a dip in size just past the
    bisection's answer (sizes are only nearly monotone in quality) is found."""
    from leechcodec.kodak_eval import codecs

    sizes = {q: 100 + 10 * q for q in range(101)}
    sizes.update({10: 210, 11: 200})
    monkeypatch.setattr(codecs.ClassicalCodec, "encode", lambda self, image, q: bytes(sizes[q]))
    assert match_bytes(photo, "jpeg", 205) == (11, bytes(200))  # 210 and 200 are both 5 away
    sizes.update({10: 200, 11: 210, 13: 204})
    assert match_bytes(photo, "jpeg", 206)[0] == 13  # the bisection stops at 10 (200 bytes)


def test_match_bytes_jpeg2000_within_3_percent(photo):
    c = CLASSICAL["jpeg2000"]
    for target in (1200, 2000, 3500, 6000):
        value, data = match_bytes(photo, "jpeg2000", target)
        assert isinstance(value, float) and data == c.encode(photo, value)
        assert abs(len(data) - target) <= 0.03 * target, (target, value, len(data))


def _fake_panels(height: int, width: int, planted: tuple[int, int, int, int] | None, rng) -> list[Panel]:
    """An original, two decodes with small noise everywhere, and one with a patch of large errors."""
    yy, xx = np.mgrid[0:height, 0:width]
    ref = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1)
    ref = ref.astype(np.uint8)
    out = [Panel("original", None, None, None, Image.fromarray(ref))]
    for k in range(3):
        noisy = np.clip(ref.astype(int) + rng.integers(-3, 4, ref.shape), 0, 255)
        if k == 2 and planted is not None:
            x, y, w, h = planted
            noisy[y : y + h, x : x + w] = rng.integers(0, 256, (h, w, 3))
        out.append(Panel(f"c{k}", 100, 0.1, 30.0, Image.fromarray(noisy.astype(np.uint8))))
    return out


def test_pick_crop_finds_a_planted_difference(rng):
    x, y, w, h = 205, 131, 40, 30
    box = pick_crop(_fake_panels(300, 400, (x, y, w, h), rng), 96)
    bx, by, bw, bh = box
    assert (bw, bh) == (96, 96) and bx % 8 == 0 and by % 8 == 0
    assert bx <= x and x + w <= bx + bw and by <= y and y + h <= by + bh, box
    # at the bottom-right corner: the window is clamped flush with the edges
    assert pick_crop(_fake_panels(300, 401, (390, 290, 11, 10), rng), 96) == (401 - 96, 300 - 96, 96, 96)
    # a picture smaller than the crop: all of it along the short side
    bx, by, bw, bh = pick_crop(_fake_panels(50, 300, (250, 10, 20, 20), rng), 96)
    assert (by, bw, bh) == (0, 96, 50) and bx <= 250 and 270 <= bx + bw
    assert pick_crop(_fake_panels(40, 30, None, rng), 96) == (0, 0, 30, 40)


def test_panels_match_ours_in_bytes(shown):
    with Image.open(RGB_256) as im:
        assert shown[0].label == "original" and shown[0].image.tobytes() == im.convert("RGB").tobytes()
    assert [p.label for p in shown] == ["original", "leechcodec", "JPEG2000", "WebP", "JPEG"]
    ours = shown[1]
    assert ours.setting == "(ar coder)" and ours.bpp == pytest.approx(8 * ours.nbytes / 256**2)
    for p in shown[1:]:
        assert p.image.size == (256, 256) and p.image.mode == "RGB" and 10 < p.psnr < 60
    # JPEG2000: a free ratio, but OpenJPEG's sizes move in steps of a few % on a picture this small (~700 bytes)
    assert abs(shown[2].nbytes - ours.nbytes) <= 0.05 * ours.nbytes
    assert panel_lines(shown[2])[1] == f"{shown[2].nbytes:,} bytes" and panel_lines(shown[2])[3].endswith(" dB")
    off = 100 * (shown[3].nbytes - ours.nbytes) / ours.nbytes
    assert panel_lines(shown[3], ours.nbytes)[1] == f"{shown[3].nbytes:,} bytes ({off:+.1f} %)"


def test_figure_pastes_crops_unscaled(shown, tmp_path):
    rows = [Row("a.png", shown, pick_crop(shown, 192)), Row("b.png", shown[:3], (10, 20, 100, 60))]
    out = tmp_path / "f.png"
    boxes = crops_figure(rows, out)
    with Image.open(out) as im:
        assert im.format == "PNG"
        fig = im.convert("RGB")
    n = len(shown)
    assert fig.width == 2 * MARGIN + n * 192 + (n - 1) * GAP  # the labels fit in 192 px
    assert fig.height == boxes[-1][-1][3] + MARGIN and boxes[1][0][1] > boxes[0][0][3]
    for row, placed in zip(rows, boxes):
        x, y, w, h = row.box
        assert len(placed) == len(row.panels)
        for p, (left, top, right, bottom) in zip(row.panels, placed):
            assert (right - left, bottom - top) == (w, h)
            assert fig.crop((left, top, right, bottom)).tobytes() == p.image.crop((x, y, x + w, y + h)).tobytes()


def test_cli_compare_writes_the_figure(tmp_path):
    out = tmp_path / "cmp.png"
    args = ["compare", str(RGB_256), "-o", str(out), "--codecs", "webp,jpeg", "--crop", "10,20,64,48"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{out}: rgb-256x256.png: leechcodec ") and "WebP" in line and "JPEG" in line, r.stderr
    with Image.open(out) as im, Image.open(RGB_256) as src:
        fig, crop = np.asarray(im.convert("RGB")), np.asarray(src.convert("RGB"))[20:68, 10:74]
    # the original's crop, unscaled, in the first column
    assert any(np.array_equal(fig[t : t + 48, MARGIN : MARGIN + 64], crop) for t in range(fig.shape[0] - 47))
    before = out.read_bytes()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == OutputError.exit_code and "exists (use --force" in r.stderr and out.read_bytes() == before
    r = CliRunner().invoke(cli, [*args, "--force", "--quiet", "--codecs", "jpeg"])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert out.read_bytes() != before


@pytest.mark.parametrize("crop", ["1,2,3", "a,b,c,d", "0,0,0,10", "-1,0,10,10", "200,0,57,10", "0,250,10,7"])
def test_cli_bad_crop_exits_2(tmp_path, crop):
    out = tmp_path / "x.png"
    r = CliRunner().invoke(cli, ["compare", str(RGB_256), "-o", str(out), "--crop", crop])
    assert r.exit_code == 2 and "--crop" in r.output, r.output
    assert not out.exists()


def test_cli_usage_and_input_errors(tmp_path):
    out = str(tmp_path / "x.png")
    r = CliRunner().invoke(cli, ["compare", str(RGB_256), "-o", out, "--codecs", "jpeg,gif"])
    assert r.exit_code == 2 and "gif" in r.output
    (tmp_path / "bad.png").write_bytes(b"not an image")
    for src in (tmp_path / "bad.png", tmp_path / "none.png", REPO / "tests" / "data" / "rgb-256x256.ar.lq"):
        r = CliRunner().invoke(cli, ["compare", str(src), "-o", out])
        assert r.exit_code == 3 and r.stderr.startswith("leechcodec: error:"), r.output
    assert not Path(out).exists()


def test_cli_help_teaches_and_stays_light():
    """`compare --help` shows an example and does not import torch (as tests/test_cli.py checks the others)."""
    import subprocess
    import sys

    r = CliRunner().invoke(cli, ["compare", "--help"])
    assert r.exit_code == 0 and "leechcodec compare kodim23.png -o compare.png" in r.output
    code = (
        "import sys, runpy\nsys.argv = ['leechcodec', 'compare', '--help']\n"
        "try:\n    runpy.run_module('leechcodec.cli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
        "print('exit', code, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO)
    assert r.stderr.splitlines()[-1] == "exit 0 False", r.stderr


def test_cli_compare_with_the_rate_knob(tmp_path):
    """--lambda: leechcodec's smaller file, and the classical codecs matched to it."""
    sizes = {}
    for lam in ("0", "0.05"):
        out = tmp_path / f"cmp-{lam}.png"
        r = CliRunner().invoke(cli, ["compare", str(RGB_256), "-o", str(out), "--codecs", "jpeg2000", "--lambda", lam])
        assert r.exit_code == 0, r.output
        line = r.stderr.strip().splitlines()[-1]
        sizes[lam] = int(line.split("leechcodec ")[1].split(" B")[0].replace(",", ""))
    assert sizes["0.05"] < sizes["0"]
    r = CliRunner().invoke(cli, ["compare", str(RGB_256), "-o", str(tmp_path / "x.png"), "--lambda", "0.1",
                                 "--coder", "fixed"])
    assert r.exit_code == 2 and "ar coder" in r.output
