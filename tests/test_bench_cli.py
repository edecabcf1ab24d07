"""`leechcodec bench` through click's CliRunner: help, a real holdout run, and error exit codes."""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from leechcodec.cli.bench import bench

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


@pytest.fixture
def kodak():
    if not (KODAK / "kodim02.png").is_file():
        pytest.skip(f"no Kodak copy at {KODAK}")
    return KODAK


@pytest.fixture
def crops(kodak_crops):
    return kodak_crops


def test_help_teaches_with_an_example():
    result = CliRunner().invoke(bench, ["--help"])
    assert result.exit_code == 0
    for text in ("leechcodec bench --kodak", "--holdout", "--kodak-dir", "--codecs", "--coder", "kodak.json"):
        assert text in result.output


def test_holdout_run_writes_json_plot_and_table(crops, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        bench, ["--no-kodak", "--holdout", str(crops), "--codecs", "jpeg,webp", "--output-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "holdout.json").read_text())
    assert [e["name"] for e in data] == ["JPEG (libjpeg)", "WebP (libwebp)"]
    assert all(len(e["results"]["bpp"]) > 2 for e in data)
    assert (out / "holdout.png").stat().st_size > 0
    assert "| JPEG (libjpeg) |" in result.stdout and not (out / "kodak.json").exists()


def test_corrupted_local_kodak_exits_10(kodak, tmp_path):
    shutil.copy(kodak / "kodim01.png", tmp_path / "kodim01.png")
    with (tmp_path / "kodim01.png").open("ab") as f:
        f.write(b"!")
    args = ["--kodak-dir", str(tmp_path), "--images", "1", "--codecs", "jpeg", "--output-dir", str(tmp_path / "o")]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 10
    assert result.stderr.startswith("leechcodec: error: kodim01.png: SHA-256") and result.stderr.count("\n") == 1
    result = CliRunner().invoke(bench, [*args, "--no-verify"])
    assert result.exit_code == 0, result.output


def test_download_404_exits_9(tmp_path):
    handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        result = CliRunner().invoke(
            bench,
            ["--kodak", "--cache-dir", str(tmp_path / "cache"), "--images", "1", "--codecs", "jpeg"],
            env={"LEECHCODEC_KODAK_URL": f"http://127.0.0.1:{httpd.server_address[1]}/"},
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 9
    assert "404" in result.stderr and result.stderr.count("\n") == 1


def test_bad_options_are_usage_errors(tmp_path):
    runner = CliRunner()
    assert runner.invoke(bench, ["--codecs", "jpeg,gif"]).exit_code == 2
    assert runner.invoke(bench, ["--coder", "nope", "--codecs", "jpeg"]).exit_code == 2
    assert runner.invoke(bench, ["--no-kodak"]).exit_code == 2


def test_leechcodec_in_the_cli_run(crops, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        bench,
        ["--no-kodak", "--holdout", str(crops), "--images", "1", "--codecs", "jpeg,leechcodec",
         "--model", str(tiny_model_path), "--coder", "fixed", "--output-dir", str(out), "--stages", "1"],
    )
    assert result.exit_code == 0, result.output
    names = [e["name"] for e in json.loads((out / "holdout.json").read_text())]
    assert names == ["JPEG (libjpeg)", "leechcodec (tiny, fixed)"]
    # one point of ours (--stages 1): no BD-rate column (a BD-rate needs a curve)
    assert "### leechcodec (tiny, fixed):" in result.stdout and "BD-rate" not in result.stdout


def test_missing_model_exits_6_before_any_download(tmp_path):
    result = CliRunner().invoke(
        bench,
        ["--kodak", "--cache-dir", str(tmp_path / "cache"), "--model", str(tmp_path / "none.safetensors")],
        env={"LEECHCODEC_KODAK_URL": "http://127.0.0.1:9/"},
    )
    assert result.exit_code == 6 and result.stderr.startswith("leechcodec: error: model file not found")
    assert not (tmp_path / "cache").exists()


def test_device_is_checked_and_results_are_not_overwritten_without_force(crops, tmp_path):
    """--device like the other commands (a choice; cuda without CUDA is exit 1, one line);
    existing results are kept without --force, refused before any work."""
    import torch

    runner = CliRunner()
    args = ["--no-kodak", "--holdout", str(crops), "--images", "1", "--codecs", "jpeg"]
    r = runner.invoke(bench, [*args, "--device", "gpu", "--output-dir", str(tmp_path / "a")])
    assert r.exit_code == 2 and "'gpu' is not one of 'cpu', 'cuda'" in r.output
    if not torch.cuda.is_available():
        r = runner.invoke(bench, [*args, "--device", "cuda", "--output-dir", str(tmp_path / "a")])
        assert r.exit_code == 1 and r.stderr == "leechcodec: error: --device cuda: no CUDA device is available\n"
    out = tmp_path / "out"
    assert runner.invoke(bench, [*args, "--output-dir", str(out)]).exit_code == 0
    files = lambda: {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}  # noqa: E731
    before = files()
    r = runner.invoke(bench, [*args, "--output-dir", str(out)])
    assert r.exit_code == 8 and "holdout.json" in r.stderr and "use --force" in r.stderr and "| JPEG" not in r.output
    assert files() == before
    (out / "holdout" / "webp-libwebp.json").write_text("{}")  # a codec not in the new run: not left behind
    r = runner.invoke(bench, [*args, "--output-dir", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert sorted(files()) == ["holdout.json", "holdout.png", "holdout/jpeg-libjpeg.json"]  # no temp files left


def test_progress_per_stage_on_stderr_and_silent_with_quiet(crops, tmp_path):
    args = ["--no-kodak", "--holdout", str(crops), "--codecs", "jpeg,webp", "--jobs", "2"]
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    for stage in ("JPEG (libjpeg), 10 settings", "WebP (libwebp), 10 settings"):
        # a bar per stage over the images, from 0/2 to 2/2, with tqdm's "elapsed<left, rate" estimate
        assert f"{stage}:   0%|          | 0/2 [00:00<?, ?image/s]" in r.stderr, r.stderr
        done = re.search(re.escape(stage) + r": 100%\|█{10}\| 2/2 \[(\d\d:\d\d)<00:00, +\d+\.\d\d(image/s|s/image)\]", r.stderr)
        assert done, r.stderr
    assert "| JPEG (libjpeg) |" in r.stdout and "%|" not in r.stdout  # the table on stdout, bars not
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(tmp_path / "b"), "--quiet"])
    assert r.exit_code == 0 and r.stderr == "" and "| JPEG (libjpeg) |" in r.stdout


def test_published_curves_only_for_kodak(crops, tmp_path):
    r = CliRunner().invoke(bench, ["--no-kodak", "--holdout", str(crops), "--published", str(tmp_path)])
    assert r.exit_code == 2 and "--published draws Kodak results" in r.output
    r = CliRunner().invoke(bench, ["--no-kodak", "--holdout", str(crops), "--codecs", "jpeg", "--quiet",
                                   "--output-dir", str(tmp_path / "o")])
    assert r.exit_code == 0 and "(published)" not in r.stdout and "paper" not in r.stdout


def test_kodak_run_writes_the_crops_figure(kodak, tmp_path, tiny_model_path):
    """kodak-crops.png: a row per image (here 1), leechcodec beside the classical codecs at its size."""
    from PIL import Image

    out = tmp_path / "out"
    args = ["--kodak-dir", str(kodak), "--images", "1", "--codecs", "jpeg,leechcodec", "--model", str(tiny_model_path),
            "--coder", "fixed", "--no-published"]
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(out)])
    assert r.exit_code == 0, r.output
    with Image.open(out / "kodak-crops.png") as im:
        assert im.format == "PNG" and im.width > 4 * 192 and im.height > 192
    assert "kodim01.png" in r.stderr and "JPEG2000" in r.stderr  # the bytes matched, said per image
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(out), "--no-crops"])
    assert r.exit_code == 8 and "kodak.json" in r.stderr  # results are kept (the figure among them)
    (out / "kodak.json").unlink()
    (out / "kodak.png").unlink()
    shutil.rmtree(out / "kodak")
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(out)])
    assert r.exit_code == 8 and "kodak-crops.png exists" in r.stderr
    r = CliRunner().invoke(bench, [*args, "--output-dir", str(tmp_path / "o2"), "--no-crops", "--quiet"])
    assert r.exit_code == 0 and not (tmp_path / "o2" / "kodak-crops.png").exists()


def test_ar_coder_is_a_curve_with_bd_rates(crops, tmp_path):
    """The ar coder is a curve over coded sizes, stages and --lambdas: the table lists its points
    (default first) and gives BD-rates against each codec."""
    from leechcodec.kodak_eval.run import CURVE

    frozen = Path(__file__).parent / "data" / "tiny.safetensors"  # with its AR prior beside it
    out = tmp_path / "out"
    r = CliRunner().invoke(bench, ["--no-kodak", "--holdout", str(crops), "--codecs", "jpeg,leechcodec", "--model",
                                   str(frozen), "--coder", "ar", "--lambdas", "0.05,0", "--quiet",
                                   "--output-dir", str(out), "--stages", "2"])
    assert r.exit_code == 0, r.output
    (ours,) = [e for e in json.loads((out / "holdout.json").read_text()) if e["name"].startswith("leechcodec")]
    points = [*CURVE, (1.0, 1, 0.05)]  # lambda 0 at scale 1 is the curve's first point already
    res = ours["results"]
    assert list(zip(res["scale"], res["stages"], res["lambda"])) == points and len(res["bpp"]) == len(points)
    bpp = dict(zip(points, res["bpp"]))
    assert bpp[(0.5, 1, 0.0)] < bpp[(1.0, 1, 0.0)] < bpp[(2.0, 1, 0.0)]  # the coded size sets the rate
    assert bpp[(1.0, 1, 0.05)] < bpp[(1.0, 1, 0.0)] < bpp[(1.0, 2, 0.0)]  # lambda takes bits off, a stage adds them
    assert "| --scale | --stages | --lambda | bpp |" in r.stdout and "BD-rate (ours vs codec) | over PSNR |" in r.stdout
    assert "at scale 1, lambda 0:" in r.stdout
    r = CliRunner().invoke(bench, ["--no-kodak", "--holdout", str(crops), "--lambdas", "x,-1"])
    assert r.exit_code == 2 and "comma-separated numbers" in r.output
