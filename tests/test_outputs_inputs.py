"""Outputs that are not ours to replace (devices, FIFOs, symlinks, modes) and inputs as people
have them (EXIF orientation, several frames, ICC profiles)."""

import io
import os
import socket
import stat
import struct
import tempfile
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from leechcodec.cli.main import cli
from leechcodec import image_io


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def lq(tmp_path, tiny_model_path, runner):
    src = tmp_path / "src.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "a.lq"
    assert runner.invoke(cli, ["encode", str(src), "-o", str(out), "--model", str(tiny_model_path), "--quiet"]).exit_code == 0
    return out


def _decode(runner, lq, out, model, *extra):
    return runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--model", str(model), "--quiet", *extra])


# ----------------------------------------------------------------------------- outputs
def test_fifo_is_written_into_and_stays_a_fifo(runner, lq, tmp_path, tiny_model_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.update(data=fifo.read_bytes()))
    reader.start()
    r = _decode(runner, lq, fifo, tiny_model_path)  # no --force needed for a FIFO
    reader.join(60)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert Image.open(io.BytesIO(got["data"])).size == (56, 40)


def test_fifo_input_is_read_once(runner, tmp_path, tiny_model_path):
    """A regular file is handed to Pillow by name (not read whole into memory); a FIFO, like
    `encode <(curl …)`, can be read only once, so it is read whole first."""
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 70, 3), dtype=np.uint8)).save(png, format="PNG")
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(png.getvalue()))
    writer.start()
    out = tmp_path / "a.lq"
    r = runner.invoke(cli, ["encode", str(fifo), "-o", str(out), "--model", str(tiny_model_path), "--quiet"])
    writer.join(60)
    assert r.exit_code == 0, r.output
    regular = tmp_path / "same.png"
    regular.write_bytes(png.getvalue())
    r = runner.invoke(cli, ["encode", str(regular), "-o", str(tmp_path / "b.lq"), "--model", str(tiny_model_path), "--quiet"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == (tmp_path / "b.lq").read_bytes()


def test_device_node_stays_a_device(runner, lq, tmp_path, tiny_model_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here (needs root): {e}")
    r = _decode(runner, lq, node, tiny_model_path)
    assert r.exit_code == 8 and "--format" in r.stderr  # the name says no format
    r = _decode(runner, lq, node, tiny_model_path, "--format", "png")
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(node).st_mode)
    r = runner.invoke(cli, ["encode", str(tmp_path / "src.png"), "-o", str(node), "--model", str(tiny_model_path), "--quiet"])
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_socket_is_refused(runner, lq, tiny_model_path):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # short path: unix socket names are limited
        path = os.path.join(d, "s.png")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(path)
        except OSError as e:
            pytest.skip(f"cannot bind a unix socket here: {e}")
        try:
            r = _decode(runner, lq, path, tiny_model_path)
            assert r.exit_code == 8 and "socket" in r.stderr
            assert stat.S_ISSOCK(os.stat(path).st_mode)
        finally:
            s.close()


def test_symlink_is_followed_and_modes_are_kept(runner, lq, tmp_path, tiny_model_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.png"
    link.symlink_to(real)
    assert _decode(runner, lq, link, tiny_model_path).exit_code == 8  # replacing content needs --force
    r = _decode(runner, lq, link, tiny_model_path, "--force")
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert Image.open(real).size == (56, 40)
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.lq", "link.png", "real.png", "src.png"])  # no temp left


def test_existing_file_keeps_its_mode(runner, lq, tmp_path, tiny_model_path):
    out = tmp_path / "keep.png"
    out.write_bytes(b"x")
    os.chmod(out, 0o600)
    assert _decode(runner, lq, out, tiny_model_path, "-f").exit_code == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert Image.open(out).size == (56, 40)


def test_format_option(runner, lq, tmp_path, tiny_model_path):
    out = tmp_path / "noext"
    assert _decode(runner, lq, out, tiny_model_path).exit_code == 8
    assert _decode(runner, lq, out, tiny_model_path, "--format", "bmp").exit_code == 0
    assert Image.open(out).format == "BMP"
    r = _decode(runner, lq, tmp_path / "x.png", tiny_model_path, "--format", "nosuch")
    assert r.exit_code == 8 and not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- inputs
def test_exif_orientation_is_applied(runner, tmp_path, tiny_model_path):
    stored = np.zeros((32, 64, 3), np.uint8)  # stored 64 wide, 32 high
    stored[:, :8] = 255  # a white band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate it 90° clockwise: 32 wide, 64 high
    src = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(src, quality=95, exif=exif)
    for extra, size in (((), (32, 64)), (("--keep-orientation",), (64, 32))):
        lq, out = tmp_path / "o.lq", tmp_path / "o.png"
        r = runner.invoke(cli, ["encode", str(src), "-o", str(lq), "--model", str(tiny_model_path), "--quiet", "-f", *extra])
        assert r.exit_code == 0, r.output
        assert ("orientation 6" in r.stderr) == (not extra)
        assert _decode(runner, lq, out, tiny_model_path, "-f").exit_code == 0
        assert Image.open(out).size == size
    im = image_io.prepare(image_io.read_image(src))
    assert np.asarray(im)[:8].mean() > 200 and np.asarray(im)[-8:].mean() < 50  # the band is now on top


def test_several_frames_need_first_frame(runner, tmp_path, tiny_model_path):
    frames = [Image.new("RGB", (24, 16), c) for c in ("red", "green", "blue")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "a.lq"
    r = runner.invoke(cli, ["encode", str(gif), "-o", str(out), "--model", str(tiny_model_path)])
    assert r.exit_code == 3 and "3 frames" in r.stderr and "--first-frame" in r.stderr and not out.exists()
    r = runner.invoke(cli, ["encode", str(gif), "-o", str(out), "--model", str(tiny_model_path), "--first-frame", "--quiet"])
    assert r.exit_code == 0 and "first of 3 frames" in r.stderr


# Display P3's colorants (D50-adapted, as Apple's profile has them) and the sRGB transfer curve
P3_XYZ = {b"rXYZ": (0.5151, 0.2412, -0.0011), b"gXYZ": (0.2920, 0.6922, 0.0419), b"bXYZ": (0.1571, 0.0666, 0.7841)}


def _p3_profile() -> bytes:
    """lcms's built-in sRGB profile with Display P3's primaries patched in and renamed."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    for k in range(count):
        sig, off, _ = struct.unpack(">4sII", data[132 + 12 * k : 144 + 12 * k])
        if sig in P3_XYZ:
            data[off + 8 : off + 20] = struct.pack(">3i", *(round(v * 65536) for v in P3_XYZ[sig]))
    old = "sRGB built-in".encode("utf-16-be")
    assert old in data
    data = data.replace(old, "P3 for tests!".encode("utf-16-be"))
    data[84:100] = bytes(16)  # no profile id
    return bytes(data)


def _p3_to_srgb(rgb) -> np.ndarray:
    """The reference by hand: sRGB curve → linear P3 → XYZ (D65) → linear sRGB → sRGB curve."""
    c = np.asarray(rgb, np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    p3_to_xyz = np.array([[0.4866, 0.2657, 0.1982], [0.2290, 0.6917, 0.0793], [0.0, 0.0451, 1.0439]])
    xyz_to_srgb = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    s = np.clip(xyz_to_srgb @ p3_to_xyz @ lin, 0, 1)
    return 255 * np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)


def test_icc_profile_is_converted_to_srgb(recwarn):
    colour = (200, 100, 80)
    im = Image.new("RGB", (32, 32), colour)
    buf = io.BytesIO()
    im.save(buf, "PNG", icc_profile=_p3_profile())
    out = image_io.prepare(image_io.read_image(buf.getvalue()))
    got = np.asarray(out)[0, 0].astype(float)
    want = _p3_to_srgb(colour)
    assert np.abs(got - want).max() <= 3, (got, want)
    assert np.abs(got - np.array(colour)).max() >= 10  # it did change the numbers
    assert any("P3 for tests!" in str(w.message) for w in recwarn)


def test_srgb_and_untagged_inputs_are_unchanged():
    for icc in (None, ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()):
        im = Image.new("RGB", (8, 8), (200, 100, 80))
        buf = io.BytesIO()
        im.save(buf, "PNG", **({"icc_profile": icc} if icc else {}))
        out = image_io.prepare(image_io.read_image(buf.getvalue()))
        assert np.asarray(out)[0, 0].tolist() == [200, 100, 80]


def test_p3_photo_decodes_closer_to_its_srgb_rendering(tmp_path):
    """Through the bundled model: a flat P3-tagged colour comes back near its sRGB rendering."""
    import leechcodec
    from leechcodec.models.io import load_weights

    model = load_weights(prior=None)
    colour = (60, 160, 90)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, "PNG", icc_profile=_p3_profile())
    out = np.asarray(leechcodec.decode(leechcodec.encode(buf.getvalue(), model, coder="fixed"), model), np.float64)
    mean = out[8:-8, 8:-8].reshape(-1, 3).mean(0)
    want = _p3_to_srgb(colour)
    assert np.abs(mean - want).sum() < np.abs(mean - np.array(colour)).sum()
