"""kodak_eval: loopback downloader, metrics and BD-rate by hand, and a real small benchmark run."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leechcodec.kodak_eval.codecs import CLASSICAL
from leechcodec.kodak_eval.dataset import (
    KODAK_NAMES,
    ChecksumError,
    DownloadError,
    download_file,
    fetch_kodak,
    holdout_images,
    kodak_base_url,
    load_checksums,
    local_kodak,
)
from leechcodec.kodak_eval.metrics import bd_range, bd_rate, bpp_at_quality, interp_log_bpp, ms_ssim_rgb, pchip_slopes, psnr_rgb
from leechcodec.kodak_eval.report import RESULT_KEYS, markdown_table
from leechcodec.kodak_eval.run import evaluate, write_report
from leechcodec.errors import InputImageError, LeechError

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
needs_kodak = pytest.mark.skipif(not (KODAK / "kodim02.png").is_file(), reason=f"no Kodak copy at {KODAK}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- loopback server


class _Handler(SimpleHTTPRequestHandler):
    """Static files; honours ``Range: bytes=N-`` when ``ranges`` is set; logs (path, Range, status)."""

    ranges = True
    log: list

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        if self.ranges and rng and rng.startswith("bytes=") and path.is_file():
            data = path.read_bytes()
            start = int(rng[len("bytes="):].split("-")[0])
            if start >= len(data):
                self.log.append((self.path, rng, 416))
                self.send_error(416)
                return
            self.log.append((self.path, rng, 206))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])
            return
        self.log.append((self.path, rng, 200 if path.is_file() else 404))
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Start a loopback server over a fresh folder; returns (start(ranges=True) -> (url, log), folder)."""
    root = tmp_path / "www"
    root.mkdir()
    servers = []

    def start(ranges: bool = True):
        log = []
        handler = type("H", (_Handler,), {"ranges": ranges, "log": log})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/", log

    yield start, root
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _publish(root: Path, names=("kodim01.png", "kodim02.png")):
    for name in names:
        shutil.copy(KODAK / name, root / name)


# ---------------------------------------------------------------- dataset


def test_shipped_checksums_match_shared_copy():
    sums = load_checksums()
    assert sorted(sums) == list(KODAK_NAMES)
    if (KODAK / "SHA256SUMS").is_file():
        assert sums == load_checksums(KODAK / "SHA256SUMS")


def test_base_url_from_argument_env_or_default(monkeypatch):
    monkeypatch.delenv("LEECHCODEC_KODAK_URL", raising=False)
    assert kodak_base_url() == "http://r0k.us/graphics/kodak/kodak/"
    monkeypatch.setenv("LEECHCODEC_KODAK_URL", "http://127.0.0.1:9/k")
    assert kodak_base_url() == "http://127.0.0.1:9/k/"
    assert kodak_base_url("http://x/y/") == "http://x/y/"


@needs_kodak
def test_download_good_then_cached(serve, tmp_path):
    start, root = serve
    _publish(root)
    url, log = start()
    cache = tmp_path / "cache"
    paths = fetch_kodak(cache, base_url=url, count=2, backoff=0)
    assert [p.name for p in paths] == ["kodim01.png", "kodim02.png"]
    for p in paths:
        assert _sha(p) == _sha(KODAK / p.name)
    assert not list(cache.glob("*.part"))
    assert len(log) == 2
    fetch_kodak(cache, base_url=url, count=2, backoff=0)  # verified cache: no new request
    assert len(log) == 2


@needs_kodak
def test_download_corrupted_raises_and_leaves_nothing(serve, tmp_path):
    start, root = serve
    _publish(root)
    data = bytearray((root / "kodim02.png").read_bytes())
    data[5000] ^= 0xFF
    (root / "kodim02.png").write_bytes(bytes(data))
    url, _ = start()
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="kodim02.png") as exc:
        fetch_kodak(cache, base_url=url, count=2, backoff=0)
    assert exc.value.exit_code == 10 and "\n" not in str(exc.value)
    assert sorted(p.name for p in cache.iterdir()) == ["kodim01.png"]


@needs_kodak
def test_download_missing_file_is_a_download_error(serve, tmp_path):
    start, root = serve
    _publish(root, ["kodim01.png"])
    url, log = start()
    with pytest.raises(DownloadError, match="404") as exc:
        fetch_kodak(tmp_path / "cache", base_url=url, count=2, backoff=0)
    assert exc.value.exit_code == 9 and "\n" not in str(exc.value)
    assert [entry[2] for entry in log] == [200, 404]  # a 404 is not retried


def test_offline_is_a_one_line_download_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="offline") as exc:
        fetch_kodak(tmp_path / "cache", base_url=f"http://127.0.0.1:{port}/", count=1, retries=1, backoff=0, timeout=2)
    assert "\n" not in str(exc.value) and isinstance(exc.value, LeechError)
    assert not any((tmp_path / "cache").glob("*"))


@needs_kodak
def test_partial_download_resumes_with_range(serve, tmp_path):
    start, root = serve
    _publish(root, ["kodim01.png"])
    url, log = start()
    full = (KODAK / "kodim01.png").read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kodim01.png.part").write_bytes(full[:300_000])
    out = download_file(url + "kodim01.png", cache / "kodim01.png", sha256=_sha(KODAK / "kodim01.png"))
    assert out.read_bytes() == full
    assert log == [("/kodim01.png", "bytes=300000-", 206)]
    assert not (cache / "kodim01.png.part").exists()


@needs_kodak
def test_partial_download_restarts_when_range_is_ignored(serve, tmp_path):
    start, root = serve
    _publish(root, ["kodim01.png"])
    url, log = start(ranges=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kodim01.png.part").write_bytes(b"garbage" * 1000)
    out = download_file(url + "kodim01.png", cache / "kodim01.png", sha256=_sha(KODAK / "kodim01.png"))
    assert _sha(out) == _sha(KODAK / "kodim01.png")
    assert [entry[2] for entry in log] == [200]


@needs_kodak
def test_stale_partial_file_is_replaced_by_a_clean_download(serve, tmp_path):
    start, root = serve
    _publish(root, ["kodim01.png"])
    url, log = start()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kodim01.png.part").write_bytes(b"\0" * 1000)  # not a prefix of the real file
    out = download_file(url + "kodim01.png", cache / "kodim01.png", sha256=_sha(KODAK / "kodim01.png"))
    assert _sha(out) == _sha(KODAK / "kodim01.png")
    assert [entry[1:] for entry in log] == [("bytes=1000-", 206), (None, 200)]


@needs_kodak
def test_local_kodak_verifies(tmp_path):
    for name in ("kodim01.png", "kodim02.png"):
        shutil.copy(KODAK / name, tmp_path / name)
    assert [p.name for p in local_kodak(tmp_path, count=2)] == ["kodim01.png", "kodim02.png"]
    with (tmp_path / "kodim02.png").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ChecksumError, match="--no-verify"):
        local_kodak(tmp_path, count=2)
    assert len(local_kodak(tmp_path, count=2, verify=False)) == 2
    assert (tmp_path / "kodim02.png").exists()  # a user's file is never deleted
    with pytest.raises(InputImageError, match="kodim03.png"):
        local_kodak(tmp_path, count=3, verify=False)


def test_holdout_lists_pngs(tmp_path):
    with pytest.raises(InputImageError):
        holdout_images(tmp_path)
    for name in ("b.png", "a.PNG", "c.jpg"):
        Image.new("RGB", (4, 4)).save(tmp_path / name, "PNG")
    assert [p.name for p in holdout_images(tmp_path)] == ["a.PNG", "b.png"]
    assert [p.name for p in holdout_images(tmp_path, count=1)] == ["a.PNG"]


# ---------------------------------------------------------------- metrics


def test_psnr_by_hand():
    ref = np.zeros((4, 4, 3), np.uint8)
    assert psnr_rgb(ref, ref) == math.inf
    one = ref + 1  # MSE 1 → 20·log10(255)
    assert psnr_rgb(ref, one) == pytest.approx(48.1308036, abs=1e-6)
    half = ref.copy()
    half[:2] = 10  # MSE = 100 / 2 = 50
    assert psnr_rgb(ref, half) == pytest.approx(10 * math.log10(255**2 / 50))
    with pytest.raises(ValueError):
        psnr_rgb(ref, np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_identity_noise_and_small_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (192, 200, 3), dtype=np.uint8)
    assert ms_ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim_rgb(a, noisy) < 0.99
    assert math.isnan(ms_ssim_rgb(a[:100], a[:100]))


def test_interp_in_log_bpp_by_hand():
    bpp, psnr = [0.4, 0.2], [31.0, 28.0]  # order does not matter
    assert interp_log_bpp(bpp, psnr, math.sqrt(0.2 * 0.4)) == pytest.approx(29.5)  # geometric midpoint
    assert interp_log_bpp(bpp, psnr, 0.2 * 2**0.25) == pytest.approx(28.75)
    assert interp_log_bpp(bpp, psnr, 0.2) == pytest.approx(28.0)
    assert interp_log_bpp(bpp, psnr, 0.5) is None and interp_log_bpp(bpp, psnr, 0.1) is None
    assert bpp_at_quality(bpp, psnr, 29.5) == pytest.approx(math.sqrt(0.08))
    assert bpp_at_quality(bpp, psnr, 32.0) is None


def test_bd_rate_of_rates_scaled_by_0_9_is_minus_10_percent():
    bpp = [0.1, 0.17, 0.3, 0.55]
    psnr = [26.0, 27.9, 29.4, 31.6]
    scaled = [0.9 * b for b in bpp]
    assert bd_rate(bpp, psnr, scaled, psnr) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(scaled, psnr, bpp, psnr) == pytest.approx(100 / 9, abs=1e-9)
    assert bd_rate(bpp, psnr, bpp, psnr) == pytest.approx(0.0, abs=1e-12)


def test_bd_rate_partial_overlap_by_hand():
    # anchor: log r linear in PSNR from (30, ln .2) to (32, ln .4)
    # test on [31, 33]: log r = anchor's line - 0.1 - 0.1·(p - 31); overlap [31, 32] → mean Δ = -0.15
    anchor_bpp, anchor_psnr = [0.2, 0.4], [30.0, 32.0]
    test_bpp = [0.2 * 2**0.5 * math.exp(-0.1), 0.2 * 2**1.5 * math.exp(-0.3)]
    assert bd_rate(anchor_bpp, anchor_psnr, test_bpp, [31.0, 33.0]) == pytest.approx(
        100 * (math.exp(-0.15) - 1), abs=1e-9
    )


def test_bd_rate_uses_the_efficient_points_and_says_its_range():
    """A setting that another beats (lower PSNR for more bits: a stage the decoder cannot use)
    is left out of the BD-rate; bd_range is the PSNR interval compared."""
    anchor_bpp, anchor_psnr = [0.2, 0.4], [30.0, 32.0]
    test_bpp = [0.2 * 2**0.5 * math.exp(-0.1), 0.2 * 2**1.5 * math.exp(-0.3)]
    clean = bd_rate(anchor_bpp, anchor_psnr, test_bpp, [31.0, 33.0])
    beaten = (test_bpp + [test_bpp[1] * 1.5], [31.0, 33.0, 32.5])  # more bits, less PSNR than the second
    assert bd_rate(anchor_bpp, anchor_psnr, *beaten) == pytest.approx(clean, abs=1e-12)
    assert bd_range(anchor_bpp, anchor_psnr, *beaten) == (31.0, 32.0)
    assert bd_range([0.1, 0.2], [28, 30], [0.3, 0.5], [31, 33]) is None


def test_bd_rate_undefined_cases():
    assert bd_rate([0.1, 0.2], [28, 30], [0.15], [29]) is None  # one point
    assert bd_rate([0.1, 0.2], [28, 30], [0.3, 0.5], [31, 33]) is None  # no PSNR overlap


def test_pchip_reproduces_lines_and_keeps_extrema_flat():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    assert np.allclose(pchip_slopes(x, 2 * x + 1), 2.0)
    assert pchip_slopes(x, np.array([0.0, 1.0, 0.5, 2.0]))[1] == 0.0  # local maximum: flat


# ---------------------------------------------------------------- real small run


@pytest.fixture
def small_pngs(kodak_crops):
    return kodak_crops


SWEEPS = {"jpeg2000": (120, 60), "webp": (2, 10), "avif": (20, 35), "jpeg": (5, 15)}


def test_small_classical_run_writes_compressai_schema(small_pngs, tmp_path):
    paths = holdout_images(small_pngs)
    entries, notes = evaluate(paths, codecs=tuple(SWEEPS), sweeps=SWEEPS, progress=False, set_name="crops")
    json_path, png_path, table = write_report(entries, tmp_path / "out", "holdout", "crops (2 images)")
    data = json.loads(json_path.read_text())
    assert isinstance(data, list) and len(data) + len(notes) == 4
    for entry in data:
        assert set(entry) == {"name", "description", "results"}
        assert "PSNR on 8-bit RGB per image, then averaged" in entry["description"]
        results = entry["results"]
        assert set(results) == set(RESULT_KEYS)
        assert all(len(v) == 2 for v in results.values())
        assert results["bpp"][0] < results["bpp"][1] and results["psnr-rgb"][0] < results["psnr-rgb"][1]
        assert all(20 < p < 45 for p in results["psnr-rgb"])
        assert all(0.5 < m < 1 for m in results["ms-ssim-rgb"])
        assert all(t > 0 for t in results["encoding_time"] + results["decoding_time"])
    # bpp is real bytes: redo JPEG at quality 5 by hand
    jpeg = next(e for e in data if e["name"].startswith("JPEG (")) if CLASSICAL["jpeg"].available() else None
    if jpeg:
        sizes = []
        for p in paths:
            with Image.open(p) as im:
                sizes.append(8 * len(CLASSICAL["jpeg"].encode(im.convert("RGB"), 5)) / (256 * 256))
        assert jpeg["results"]["bpp"][0] == pytest.approx(sum(sizes) / 2)
    with Image.open(png_path) as im:
        assert im.format == "PNG" and im.width > im.height
    assert "paper reference: 0.2747 bpp" in table and "| JPEG2000 (OpenJPEG) |" in table


def test_table_reads_codecs_at_our_rate():
    entries = [
        {"name": "A", "description": "", "results": {"bpp": [0.2, 0.4], "psnr-rgb": [28.0, 31.0], "ms-ssim-rgb": [0.9, 0.95]}},
        {"name": "leechcodec (x, fixed)", "description": "", "results": {"bpp": [math.sqrt(0.08)], "psnr-rgb": [30.0], "ms-ssim-rgb": [0.93]}},
    ]
    table = markdown_table(entries, "t")
    row = next(line for line in table.splitlines() if line.startswith("| A |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["29.50 dB", "+0.50 dB"]
    assert cells[3] == "0.9250" and len(cells) == 5 and "BD-rate" not in table  # one point: no BD column
    entries[1]["results"] = {"bpp": [0.18, 0.36], "psnr-rgb": [28.0, 31.0], "ms-ssim-rgb": [0.9, 0.95]}
    table = markdown_table(entries, "t")
    row = next(line for line in table.splitlines() if line.startswith("| A |"))
    assert "BD-rate (ours vs codec)" in table and row.endswith("| -10.0 % | 28.00 – 31.00 dB |")


def test_leechcodec_through_the_public_codec_api(small_pngs, tiny_model):
    import leechcodec

    paths = holdout_images(small_pngs)
    entries, _ = evaluate(paths, codecs=("leechcodec",), model=tiny_model, progress=False)
    (entry,) = entries
    assert entry["name"] == "leechcodec (tiny, fixed)" and tiny_model.model_id.hex() in entry["description"]
    results = entry["results"]
    assert results["stages"] == [1, 2, 3] and all(len(v) == 3 for v in results.values())  # the fixed coder's stages
    b1, b2, b3 = results["bpp"]
    assert b3 - b2 == pytest.approx(0.2748, abs=1e-3) and b2 - b1 == pytest.approx(0.2748, abs=2e-3)  # a stage: 0.2748 bpp
    sizes = []
    for p in paths:  # bpp is the real .lq byte count
        with Image.open(p) as im:
            sizes.append(8 * len(leechcodec.encode(im.convert("RGB"), tiny_model)) / (256 * 256))
    assert results["bpp"][0] == pytest.approx(sum(sizes) / 2)
    assert math.isfinite(results["psnr-rgb"][0]) and results["encoding_time"][0] > 0


def test_parallel_jobs_give_the_same_figures(small_pngs):
    paths = holdout_images(small_pngs)
    kwargs = dict(codecs=("jpeg",), sweeps={"jpeg": (5, 15)}, progress=False)
    (serial,), _ = evaluate(paths, jobs=1, **kwargs)
    (parallel,), _ = evaluate(paths, jobs=2, **kwargs)
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
        assert parallel["results"][key] == serial["results"][key]
    assert "2 worker processes" in parallel["description"]


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    from leechcodec.kodak_eval.report import README_END, README_START, provenance, update_readme
    from leechcodec.errors import LeechError

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n{README_START}\nold table\n{README_END}\n## after\n")
    update_readme(readme, "| new | table |")
    assert readme.read_text() == f"# title\n\nintro\n{README_START}\n| new | table |\n{README_END}\n## after\n"
    update_readme(readme, "second")  # idempotent markers: can be regenerated again
    assert "second" in readme.read_text() and "| new |" not in readme.read_text()
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(LeechError, match="markers"):
        update_readme(tmp_path / "plain.md", "x")
    assert "Pillow" in provenance() and "onnxruntime" in provenance()
    assert "torch 2.13" in provenance("torch 2.13.0+cpu")


def test_grid_ratios_by_construction():
    from leechcodec.kodak_eval.metrics import grid_ratios

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (512, 520, 3), dtype=np.uint8)
    noise = np.clip(ref.astype(int) + rng.integers(-3, 4, ref.shape), 0, 255).astype(np.uint8)
    g8, gt = grid_ratios(ref, noise)
    assert g8 == pytest.approx(1.0, abs=0.05) and gt == pytest.approx(1.0, abs=0.1)
    # a constant offset per 8×8 block: error only on 8-px lines
    blocks = ref.astype(int) + np.kron(rng.integers(-6, 7, (64, 65)), np.ones((8, 8), int))[..., None]
    g8, gt = grid_ratios(ref, np.clip(blocks, 0, 255).astype(np.uint8))
    assert g8 > 5 and gt > 5
    # an offset per 256-px tile: only the tile lines stand out
    tiles = ref.astype(int) + np.kron(np.array([[0, 9, 0], [9, 0, 9]]), np.ones((256, 256), int))[:512, :520, None]
    g8, gt = grid_ratios(ref, np.clip(noise.astype(int) + tiles - ref, 0, 255).astype(np.uint8))
    assert g8 == pytest.approx(1.0, abs=0.1) and gt > 2
    assert math.isnan(grid_ratios(ref[:200, :200], noise[:200, :200])[1])  # no tile line


# ---------------------------------------------------------------- results people can overlay


def compressai_style_read(path: Path, metric: str) -> dict:
    """What CompressAI's plotting tool (compressai.utils.plot) does with one ``-f`` file, restated:
    the dict's ``results`` (or the dict itself), the metric must be there, MS-SSIM goes to dB as
    -10·log10(1 - v), the name is the file's ``name`` or its stem; x = bpp, y = the metric."""
    data = json.loads(path.read_text())
    results = data["results"] if "results" in data else data
    if metric not in results:
        raise ValueError(f"{path}: no {metric}")
    ys = np.array(results[metric], dtype=np.float64)
    if metric.startswith("ms-ssim"):
        ys = -10 * np.log10(1 - ys)
    return {"name": data.get("name", path.name.split(".")[0]), "xs": np.array(results["bpp"], dtype=np.float64), "ys": ys}


def test_one_file_per_codec_reads_like_compressai(small_pngs, tmp_path):
    paths = holdout_images(small_pngs)
    sweeps = {"jpeg": (5, 15), "webp": (2, 10)}
    entries, _ = evaluate(paths, codecs=tuple(sweeps), sweeps=sweeps, progress=False, set_name="crops")
    write_report(entries, tmp_path, "holdout", "crops", reference=None)
    files = sorted((tmp_path / "holdout").glob("*.json"))
    assert [f.name for f in files] == ["jpeg-libjpeg.json", "webp-libwebp.json"]
    for f, e in zip(files, entries):
        data = json.loads(f.read_text())
        assert isinstance(data, dict) and set(data) == {"name", "description", "results"}
        assert set(data["results"]) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
        for metric in ("psnr-rgb", "ms-ssim-rgb"):
            curve = compressai_style_read(f, metric)
            assert curve["name"] == e["name"] and len(curve["xs"]) == len(curve["ys"]) == 2
            assert np.all(np.isfinite(curve["ys"])) and np.all(np.diff(curve["xs"]) > 0)
        assert curve["ys"][1] > curve["ys"][0] > 5  # MS-SSIM in dB rises with rate
        assert data["results"]["psnr-rgb"] == e["results"]["psnr-rgb"]


def test_published_curves_are_drawn_dashed_and_compared_at_our_rate(tmp_path):
    from leechcodec.kodak_eval.report import PUBLISHED_DIR, load_published, rd_figure

    published = load_published()
    names = [e["name"] for e in published]
    assert len(names) == len(list(PUBLISHED_DIR.glob("*.json"))) >= 10 and all(n.endswith(" (published)") for n in names)
    assert "VTM (published)" in names and not any(n.startswith(("JPEG", "WebP")) for n in names)
    assert (PUBLISHED_DIR / "LICENSE.CompressAI").read_text().startswith("Copyright (c) 2021-2024, InterDigital")
    vtm = next(e for e in published if e["name"] == "VTM (published)")["results"]
    ours = {"name": "leechcodec (x, ar)", "description": "", "results": {"bpp": [0.15], "psnr-rgb": [27.0], "ms-ssim-rgb": [0.9]}}
    table = markdown_table([ours], "Kodak", published=published)
    row = next(line for line in table.splitlines() if line.startswith("| VTM (published) |"))
    at_ours = interp_log_bpp(vtm["bpp"], vtm["psnr-rgb"], 0.15)
    assert f"| {at_ours:.2f} dB | {27.0 - at_ours:+.2f} dB |" in row
    assert "not measured here" in table
    fig = rd_figure([ours], "Kodak", published=published)
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "VTM (published)"]
    assert len(lines) == 2 and all(line.get_linestyle() == "--" for line in lines)
    assert fig.axes[0].get_xlim()[1] == pytest.approx(1.1 * 0.2747)  # our range (and the paper point) decides
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("paper:") for label in labels)
    held = rd_figure([ours], "holdout", reference=None)  # the paper's Kodak point is for Kodak plots only
    assert not any(line.get_label().startswith("paper") for line in held.axes[0].get_lines())
    (tmp_path / "bad.json").write_text('{"results": {"bpp": [0.1]}}')
    with pytest.raises(LeechError, match="bad.json is not a CompressAI result file"):
        load_published(tmp_path)
    with pytest.raises(LeechError, match="no .json"):
        load_published(tmp_path / "bad.json")
