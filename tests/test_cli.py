"""The CLI through click's CliRunner: round trips and every error path (one line, exit code, no file)."""

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec.cli.main import cli


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def png(tmp_path, rng):
    p = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(p)
    return p


def _one_line_error(result, code):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("leechcodec: error:"), result.stderr
    assert "Traceback" not in result.output


def test_encode_decode_info_round_trip(runner, png, tmp_path, tiny_model_path):
    lq, out = tmp_path / "a.lq", tmp_path / "b.png"
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--model", str(tiny_model_path)])
    assert r.exit_code == 0, r.output
    assert "bpp" in r.stderr
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--model", str(tiny_model_path)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (90, 70)
    r = runner.invoke(cli, ["info", str(lq)])
    assert r.exit_code == 0 and "90x70" in r.output and "fixed" in r.output
    assert f"{8 * lq.stat().st_size / (90 * 70):.4f}" in r.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_stdin_stdout(runner, png, tiny_model_path):
    r = runner.invoke(cli, ["encode", "-", "-o", "-", "--model", str(tiny_model_path)], input=png.read_bytes())
    assert r.exit_code == 0
    lq = r.stdout_bytes
    assert lq[:4] == b"LQ24"
    r = runner.invoke(cli, ["decode", "-", "-o", "-", "--model", str(tiny_model_path)], input=lq)
    assert r.exit_code == 0
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_teaches(runner):
    for cmd in ([], ["encode"], ["decode"], ["info"], ["train"], ["export"], ["compare"]):
        r = runner.invoke(cli, cmd + ["--help"])
        assert r.exit_code == 0
    assert "Example" in runner.invoke(cli, ["encode", "--help"]).output


def test_help_lists_every_command(runner):
    """No command may vanish quietly (bench once did, behind an ImportError): the list is explicit."""
    expected = {"encode", "decode", "info", "bench", "train", "export", "compare"}
    assert set(cli.commands) == expected  # a new command: add it here
    r = runner.invoke(cli, ["--help"])
    assert r.exit_code == 0
    rows = r.output.split("Commands:")[1].splitlines()
    listed = {row.split()[0] for row in rows if row.startswith("  ") and not row.startswith("   ")}
    assert listed == expected, r.output


def test_error_missing_input(runner, tmp_path, tiny_model_path):
    out = tmp_path / "x.lq"
    r = runner.invoke(cli, ["encode", str(tmp_path / "nope.png"), "-o", str(out), "--model", str(tiny_model_path)])
    _one_line_error(r, 3)
    assert not out.exists()


def test_error_not_an_image_and_truncated(runner, tmp_path, png, tiny_model_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"hello world")
    out = tmp_path / "x.lq"
    _one_line_error(runner.invoke(cli, ["encode", str(bad), "-o", str(out), "--model", str(tiny_model_path)]), 3)
    bad.write_bytes(png.read_bytes()[:100])
    _one_line_error(runner.invoke(cli, ["encode", str(bad), "-o", str(out), "--model", str(tiny_model_path)]), 3)
    assert not out.exists()


def test_error_existing_output_is_not_clobbered(runner, png, tmp_path, tiny_model_path):
    out = tmp_path / "x.lq"
    out.write_bytes(b"precious")
    _one_line_error(runner.invoke(cli, ["encode", str(png), "-o", str(out), "--model", str(tiny_model_path)]), 8)
    assert out.read_bytes() == b"precious"
    r = runner.invoke(cli, ["encode", str(png), "-o", str(out), "--force", "--model", str(tiny_model_path)])
    assert r.exit_code == 0 and out.read_bytes()[:4] == b"LQ24"


def test_error_failed_run_keeps_existing_output(runner, tmp_path, tiny_model_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"precious")
    bad = tmp_path / "bad.lq"
    bad.write_bytes(b"LQ24" + b"\0" * 60)
    _one_line_error(runner.invoke(cli, ["decode", str(bad), "-o", str(out), "--force", "--model", str(tiny_model_path)]), 4)
    assert out.read_bytes() == b"precious"


def test_error_corrupted_and_truncated_stream(runner, png, tmp_path, tiny_model_path):
    lq = tmp_path / "a.lq"
    runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--model", str(tiny_model_path)])
    data = lq.read_bytes()
    out = tmp_path / "o.png"
    for bad in (data[:-1] + bytes([data[-1] ^ 0xFF]), data[:50], data[:10], b"GIF89a", b""):
        lq.write_bytes(bad)
        _one_line_error(runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--model", str(tiny_model_path)]), 4)
        assert not out.exists()


def test_error_size_limit(runner, png, tmp_path, tiny_model_path):
    out = tmp_path / "x.lq"
    r = runner.invoke(cli, ["encode", str(png), "-o", str(out), "--max-pixels", "100", "--model", str(tiny_model_path)])
    _one_line_error(r, 7)
    # a header claiming 1e9 pixels (valid CRC) is refused before any allocation
    body = b"LQ24" + bytes([1, 0, 0, 0]) + b"\0" * 8 + (40000).to_bytes(4, "big") * 2
    body += (256).to_bytes(2, "big") + (157).to_bytes(2, "big") * 2 + (0).to_bytes(4, "big")
    bomb = tmp_path / "bomb.lq"
    bomb.write_bytes(body + zlib.crc32(body).to_bytes(4, "big"))
    _one_line_error(runner.invoke(cli, ["decode", str(bomb), "-o", str(tmp_path / "b.png")]), 7)


def test_error_wrong_model(runner, png, tmp_path, tiny_model_path):
    from leechcodec.models.io import save_weights
    from leechcodec.models.vit import build

    other = tmp_path / "other.safetensors"
    save_weights(build("tiny"), other)  # different random init → different model id
    lq = tmp_path / "a.lq"
    runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--model", str(tiny_model_path)])
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "o.png"), "--model", str(other)])
    _one_line_error(r, 5)
    needed = lq.read_bytes()[8:16].hex()  # the header's model id (docs/FORMAT.md)
    assert f"this file needs model {needed}" in r.stderr and "MODEL_CARD.md, 'Released models'" in r.stderr
    assert "\n## Released models\n" in (Path(__file__).resolve().parents[1] / "MODEL_CARD.md").read_text()


def test_error_bad_model_files(runner, png, tmp_path):
    pickle_file = tmp_path / "evil.safetensors"
    pickle_file.write_bytes(b"\x80\x04\x95" + b"\0" * 64)  # a pickle header, not safetensors
    _one_line_error(runner.invoke(cli, ["encode", str(png), "-o", str(tmp_path / "x.lq"), "--model", str(pickle_file)]), 6)
    from safetensors.torch import save_file
    import torch

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign)
    _one_line_error(runner.invoke(cli, ["encode", str(png), "-o", str(tmp_path / "x.lq"), "--model", str(foreign)]), 6)
    _one_line_error(runner.invoke(cli, ["encode", str(png), "-o", str(tmp_path / "x.lq"), "--model", str(tmp_path / "none")]), 6)


def test_error_bad_output_place(runner, png, tmp_path, tiny_model_path):
    _one_line_error(runner.invoke(cli, ["encode", str(png), "-o", str(tmp_path / "no" / "x.lq"), "--model", str(tiny_model_path)]), 8)
    r = runner.invoke(cli, ["encode", str(png), "-o", str(tmp_path), "--model", str(tiny_model_path)])
    assert r.exit_code == 0 and (tmp_path / "in.lq").is_file(), r.output  # a directory: DIR/NAME.lq, like cp
    lq = tmp_path / "a.lq"
    runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--model", str(tiny_model_path)])
    _one_line_error(runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "x.weird"), "--model", str(tiny_model_path)]), 8)


def test_usage_errors_exit_2(runner):
    assert runner.invoke(cli, ["encode"]).exit_code == 2
    assert runner.invoke(cli, ["encode", "a.png", "-o", "b.lq", "--coder", "zip"]).exit_code == 2


KNOB_VALUES = [("--lambda", "nan", "'nan' is not a finite number"), ("--lambda", "inf", "'inf' is not a finite number"),
               ("--lambda", "-inf", "is not"), ("--lambda", "-1", "-1.0 is not in the range x>=0"),
               ("--lambda", "1e999", "is not a finite number"),
               ("--bpp", "nan", "'nan' is not a finite number"), ("--bpp", "inf", "'inf' is not a finite number"),
               ("--bpp", "0", "0.0 is not in the range x>0"), ("--bpp", "-0.1", "is not in the range x>0"),
               ("--effort", "-1", "-1 is not in the range 0<=x<=1000"),
               ("--effort", "1001", "1001 is not in the range 0<=x<=1000"),
               ("--effort", "99999999999999999999", "is not in the range 0<=x<=1000"),
               ("--effort", "nan", "'nan' is not a valid integer")]  # fmt: skip


@pytest.mark.parametrize("command, option, value, words",
                         [("encode", *k) for k in KNOB_VALUES] + [("compare", *k) for k in KNOB_VALUES if k[0] == "--lambda"],
                         ids=lambda v: str(v)[:12])  # fmt: skip
def test_bad_knob_values_are_usage_errors(runner, png, tmp_path, command, option, value, words):
    """nan, inf, negative and absurd values of the rate and effort knobs: exit 2 with click's
    message naming the option, before any work (not exit 70, an internal error)."""
    r = runner.invoke(cli, [command, str(png), "-o", str(tmp_path / "o"), option, value])
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert f"Error: Invalid value for '{option}': " in r.stderr and words in r.stderr, r.stderr
    assert "internal error" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_effort_maximum_is_documented(runner):
    from leechcodec.cli.main import MAX_EFFORT

    text = " ".join(runner.invoke(cli, ["encode", "--help"]).output.split())
    assert f"at most {MAX_EFFORT}" in text and f"0<=x<={MAX_EFFORT}" in text


LIGHT_COMMANDS = [["--help"], ["--version"], ["encode", "--help"], ["decode", "--help"], ["bench", "--help"],
                  ["train", "--help"], ["compare", "--help"], ["export", "--help"],
                  ["info", str(Path(__file__).parent / "data" / "rgb-301x77.ar.lq")],
                  ["info", str(Path(__file__).parent / "data" / "rgb-301x77.ar.v2.lq")]]  # fmt: skip


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=lambda a: " ".join(a[:2]).replace(str(Path(__file__).parent), ""))
def test_light_commands_do_not_import_torch(args):
    """Help texts and `info` start in a fraction of a second: torch (about 1 s to import) stays out."""
    import subprocess
    import sys

    code = (
        "import sys, runpy\n"
        f"sys.argv = ['leechcodec', *{args!r}]\n"
        "try:\n    runpy.run_module('leechcodec.cli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
        "print('exit', code, 'torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.stderr.splitlines()[-1] == "exit 0 False False", r.stderr


def test_batch_encode_decode_goes_past_bad_files(runner, tmp_path, tiny_model_path, rng):
    """Several inputs → -o DIR: one model load, a bad file reported by name, the rest written,
    the first failure's exit code, existing outputs kept unless --force."""
    src, out, back = tmp_path / "src", tmp_path / "out", tmp_path / "back"
    for d in (src, out, back):
        d.mkdir()
    sizes = {"a": (40, 30), "b": (300, 20), "c": (17, 260)}
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"{name}.png")
    (src / "bad.png").write_bytes(b"not an image")
    files = [str(src / n) for n in ("a.png", "bad.png", "b.png", "c.png")]
    model = ["--model", str(tiny_model_path)]
    r = runner.invoke(cli, ["encode", *files, "-o", str(out), "--coder", "fixed", *model])
    assert r.exit_code == 3, r.output  # InputImageError, from bad.png
    errors = [line for line in r.stderr.splitlines() if "leechcodec: error:" in line]
    assert len(errors) == 2 and str(src / "bad.png") in errors[0] and "1 of 4 files failed, 3 encoded" in errors[1]
    assert sorted(p.name for p in out.iterdir()) == ["a.lq", "b.lq", "c.lq"]
    before = (out / "a.lq").stat().st_mtime_ns
    r = runner.invoke(cli, ["encode", files[0], files[2], "-o", str(out), "--coder", "fixed", *model])
    assert r.exit_code == 8 and "exists (use --force" in r.stderr and "2 of 2 files failed" in r.stderr
    assert (out / "a.lq").stat().st_mtime_ns == before
    r = runner.invoke(cli, ["encode", files[0], files[2], "-o", str(out), "--force", "--quiet", "--coder", "fixed", *model])
    assert r.exit_code == 0 and r.stderr == "", r.output
    r = runner.invoke(cli, ["decode", *sorted(str(p) for p in out.iterdir()), "-o", str(back), *model])
    assert r.exit_code == 0, r.output
    assert "decoded 3 files" in r.stderr
    for name, size in sizes.items():
        assert Image.open(back / f"{name}.png").size == size
    r = runner.invoke(cli, ["decode", str(out / "a.lq"), "-o", str(back), "--format", "bmp", *model])
    assert r.exit_code == 0 and Image.open(back / "a.bmp").format == "BMP"


@pytest.mark.parametrize("case", ["no-dir", "stdin", "same-stem"])
def test_batch_usage_errors_before_any_work(runner, tmp_path, png, case):
    other = tmp_path / "sub"
    other.mkdir()
    (other / "in.jpg").write_bytes(b"")
    args = {
        "no-dir": [str(png), str(png), "-o", str(tmp_path / "x.lq")],
        "stdin": [str(png), "-", "-o", str(tmp_path)],
        "same-stem": [str(png), str(other / "in.jpg"), "-o", str(tmp_path / "sub")],
    }[case]
    r = runner.invoke(cli, ["encode", *args])
    assert r.exit_code == 2, r.output
    assert {"no-dir": "existing directory", "stdin": "single input", "same-stem": "would both be written"}[case] in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "sub"]


# ----------------------------------------------------------------------------- habits (issue 16)
def test_quiet_is_long_only_and_verbose_names_what_was_used(runner, png, tmp_path):
    """-q is the quality knob (as in cwebp, avifenc), not --quiet; --quiet silences the summary,
    -v adds the model, prior, coder, precision and the phases."""
    lq = tmp_path / "a.lq"
    model = ["--model", str(Path(__file__).parent / "data" / "tiny.safetensors")]  # it has a prior beside it
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "-q", *model])
    assert r.exit_code == 2 and "Invalid value for '-q' / '--quality'" in r.output
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "b.png"), "-q", *model])
    assert r.exit_code == 2 and "No such option '-q'" in r.output
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--quiet", *model])
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "-f", "-v", *model])
    assert r.exit_code == 0, r.output
    summary, detail = r.stderr.splitlines()
    assert summary.startswith(f"{lq}: 90x70, ") and f"{lq.stat().st_size:,} bytes" in summary and "ar coder" in summary
    tiny = leechcodec.read_header(lq.read_bytes())
    assert tiny.model_id.hex() in detail and "prior " in detail and "precision " in detail and "network " in detail
    out = tmp_path / "b.png"
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(out), "-v", *model])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0].startswith(f"{out}: 90x70 RGB PNG, from {lq.stat().st_size:,} bytes")
    assert "ar coder" in r.stderr and "network " in r.stderr.splitlines()[1]
    r = runner.invoke(cli, ["decode", str(lq), "-o", "-", *model])  # the summary is on stderr: stdout is the image
    assert r.exit_code == 0 and r.stdout_bytes.startswith(b"\x89PNG") and "stdout: 90x70" in r.stderr


@pytest.mark.parametrize("command", ["encode", "decode", "info", "bench", "train", "export", "compare"])
def test_version_on_every_command(runner, command):
    r = runner.invoke(cli, [command, "--version"])
    assert r.exit_code == 0 and r.output.strip() == f"leechcodec, version {leechcodec.__version__}"


def test_python_dash_m_leechcodec():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "leechcodec", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).parents[1])  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("Usage: leechcodec [OPTIONS] COMMAND")


def test_no_silent_changes(runner, png, tmp_path, tiny_model_path):
    """The coder's fallback is said; --prior where it cannot apply is a note, not a failure;
    a lossy output format is written at --quality or with a warning naming the default."""
    lq = tmp_path / "a.lq"
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "--model", str(tiny_model_path)])  # no prior beside it
    assert r.exit_code == 0 and "note: model " in r.stderr and "no AR prior: the fixed coder is used" in r.stderr
    assert leechcodec.read_header(lq.read_bytes()).coder == "fixed"
    r = runner.invoke(cli, ["encode", str(png), "-o", str(lq), "-f", "--coder", "fixed", "--prior", "nosuch.safetensors",
                            "--model", str(tiny_model_path)])  # fmt: skip
    assert r.exit_code == 0 and "note: --prior is not used by the fixed coder" in r.stderr, r.output
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "x.png"), "--prior", "nosuch.safetensors",
                            "--model", str(tiny_model_path)])  # fmt: skip
    assert r.exit_code == 0 and "note: --prior is not used" in r.stderr, r.output
    sizes = {}
    for q in (None, 20, 95):
        out = tmp_path / f"x{q}.jpg"
        r = runner.invoke(cli, ["decode", str(lq), "-o", str(out), "--model", str(tiny_model_path),
                                *(["--quality", str(q)] if q else [])])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert ("JPEG is lossy: written at Pillow's default quality 75" in r.stderr) == (q is None)
        sizes[q] = out.stat().st_size
    assert sizes[20] < sizes[None] < sizes[95]
    r = runner.invoke(cli, ["decode", str(lq), "-o", str(tmp_path / "y.png"), "--quality", "90",
                            "--model", str(tiny_model_path)])  # fmt: skip
    assert r.exit_code == 0 and "note: --quality is not used: PNG is written losslessly" in r.stderr


def test_info_describes_a_damaged_file_field_by_field(runner, tmp_path):
    """info: a valid file as before; a bit-flipped or truncated one field by field, the bad
    fields marked, one error line and exit 4; no torch needed (test_light_commands_...)."""
    good = (Path(__file__).parent / "data" / "rgb-301x77.ar.lq").read_bytes()
    ok = tmp_path / "ok.lq"
    ok.write_bytes(good)
    r = runner.invoke(cli, ["info", str(ok)])
    assert r.exit_code == 0 and "size:       301x77 (RGB)" in r.stdout and "coder:      ar" in r.stdout
    flipped = bytearray(good)
    flipped[17] ^= 0x01  # width 301 → 65837
    bad = tmp_path / "flip.lq"
    bad.write_bytes(bytes(flipped))
    r = runner.invoke(cli, ["info", str(bad)])
    assert r.exit_code == 4, r.output
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert lines["width"].split()[0] == str(301 ^ (1 << 16)) and "<-" not in lines["height"]
    assert "a 65837x77 image has 258" in lines["tiles_x"] and "corrupted" in lines["crc32"]
    assert "<-" not in lines["model id"] and "<-" not in lines["payload length"]
    errors = [line for line in r.stderr.splitlines() if line]
    assert errors == [f"leechcodec: error: {bad} is not a valid .lq stream: tiles_x: a 65837x77 image has 258 "
                      "(and 1 more, above)"]  # fmt: skip
    short = tmp_path / "short.lq"
    short.write_bytes(good[:21])
    r = runner.invoke(cli, ["info", str(short)])
    assert r.exit_code == 4 and "width:          301" in r.stdout
    assert "height:         (bytes 20-23 missing)   <- truncated: the file ends after 21 bytes" in r.stdout
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    for command in ("info", "decode"):  # an image is worded alike by both
        r = runner.invoke(cli, [command, str(png), *(["-o", str(tmp_path / "y.png")] if command == "decode" else [])])
        assert r.exit_code == 4 and r.stdout == ""
        assert r.stderr == f"leechcodec: error: {png} is an image, not a .lq stream (compress it: leechcodec encode)\n"
    junk = tmp_path / "junk.lq"
    junk.write_bytes(b"GARBAGE" * 10)
    r = runner.invoke(cli, ["info", str(junk)])
    assert r.exit_code == 4 and r.stdout.count("\n") == 1 and "not a .lq stream" in r.stderr


def test_readme_errors_table_is_made_from_the_exception_classes():
    """One errors table, in README.md, equal to what cli.errors_table builds from the classes
    (codes, names and docstrings): a new error class or code cannot be left out of it."""
    from leechcodec.cli import errors_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split(errors_table.START, 1)[1].split(errors_table.END, 1)[0].strip()
    assert block == errors_table.table()
    classes = errors_table.error_classes()
    assert {c.__name__ for c in classes} >= {"LeechError", "FormatError", "OutputError", "TrainError", "ChecksumError"}
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes) and not set(codes) & set(errors_table.OTHER_CODES)
    assert not (Path(__file__).parents[1] / "docs" / "ERRORS.md").exists()  # no second copy to drift


def test_pixel_limit_numbers_agree(runner):
    """The default --max-pixels, the format's side limit and Pillow's guard it replaces: the same
    numbers in the code, each command's help, the errors table and docs/FORMAT.md."""
    from PIL import Image

    import leechcodec
    from leechcodec import container
    from leechcodec.errors import LimitError

    n = leechcodec.DEFAULT_MAX_PIXELS
    assert n == 2**26
    root = Path(__file__).parents[1]
    said = f"2^26 = {n:,}"
    texts = {cmd: runner.invoke(cli, [cmd, "--help"]).output for cmd in ("encode", "decode")}
    texts |= {"FORMAT.md": (root / "docs" / "FORMAT.md").read_text(), "LimitError": LimitError.__doc__,
              "README.md": (root / "README.md").read_text()}  # fmt: skip
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert said in flat, name
        assert "64 megapixels" not in flat and "64 MP" not in flat.replace("64 MP (8192", ""), name
    for cmd in ("encode", "decode"):
        flat = " ".join(texts[cmd].split())
        assert f"({0xFFFF * container.TILE:,} px) per side" in flat and f"[default: {n}; x>=1]" in flat
        assert f"Pillow's guard ({Image.MAX_IMAGE_PIXELS:,})" in flat


def _exit_codes_in_help(text: str) -> dict[int, str]:
    """The 'Exit codes' paragraph of a --help text: {code: words}."""
    block = text.split("Exit codes (README.md, 'Exit codes', has the whole table):\n", 1)[1]
    codes = {}
    for line in block.splitlines():
        m = re.fullmatch(r"\s+(\d+)\s+(\S.*)", line)
        if not m:
            break
        codes[int(m[1])] = m[2]
    return codes


def test_every_commands_help_gives_its_exit_codes_from_the_table(runner):
    """cli/errors_table.py is the one source: each command's --help lists the codes it can end
    with, in the table's words, and any other 'exit N' its help mentions is one of them."""
    from leechcodec.cli import errors_table

    rows = errors_table.rows()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert set(cli.commands) == set(errors_table.COMMAND_CODES)
    for name in cli.commands:
        text = runner.invoke(cli, [name, "--help"]).output
        codes = _exit_codes_in_help(text)
        assert list(codes) == list(errors_table.COMMAND_CODES[name]), name
        assert {0, 2, 70, 130} <= set(codes), name
        for code, words in codes.items():
            assert words == rows[code][1] and f"| {code} | {rows[code][0]} |" in readme, (name, code)
        for m in re.finditer(r"\bexit (?:code )?(\d+)", " ".join(text.split())):
            assert int(m[1]) in codes, (name, m[0])
    bench_help = " ".join(runner.invoke(cli, ["bench", "--help"]).output.split())
    assert "OUTPUT" not in bench_help and "Replace the results of an earlier run" in bench_help  # -f: several files


def test_train_device_cuda_without_cuda_is_exit_1_as_the_table_says(runner, tmp_path, monkeypatch):
    import torch

    from leechcodec.cli import errors_table

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = runner.invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert r.exit_code == 1 and r.stderr == "leechcodec: error: --device cuda: no CUDA device is available\n"
    assert 1 in errors_table.COMMAND_CODES["train"] and not (tmp_path / "run").exists()
