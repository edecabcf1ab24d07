"""The codec on ONNX Runtime (issue 30): the same streams as the torch path, and no torch at all.

* Encode, decode, info, compare and the Pillow plugin run in a process where ``import torch``
  fails (as on an install without the ``train`` extra), and none of them imports it.
* On the 24 Kodak images the ONNX encoder picks the torch encoder's tokens (near-ties may
  flip; counted), equal tokens give byte-identical ar streams, and the ONNX decoder's pixels
  are within 1 level of torch's.
* The golden streams decode to their tokens with the ONNX model too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import leechcodec
from leechcodec import codec, tiling
from leechcodec.cli.main import cli
from leechcodec.models.load import load
from leechcodec.models.runtime import load_onnx

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "docs" / "kodim23.png"

# run first in a child: any later `import torch` (or of a torch submodule) fails as if torch
# were not installed
NO_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name == "pytorch_msssim":
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


def _run_without_torch(body: str, tmp_path: Path) -> dict:
    """Run ``body`` in a fresh interpreter without torch; it leaves ``out`` (a dict) as JSON on stdout."""
    code = NO_TORCH + textwrap.dedent(body) + "\nout['torch_imported'] = 'torch' in sys.modules\nprint(json.dumps(out))\n"
    r = subprocess.run([sys.executable, "-c", "import json\nout = {}\n" + code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def onnx_model():
    return load_onnx()


@pytest.fixture(scope="module")
def torch_model():
    from leechcodec.models.io import load_weights

    return load_weights()


def test_the_cli_encodes_decodes_and_compares_without_torch(tmp_path):
    Image.open(DEMO).crop((100, 60, 400, 300)).save(tmp_path / "in.png")
    out = _run_without_torch(f"""
        from leechcodec.cli.main import main
        def cli(*args):
            sys.argv = ["leechcodec", *args]
            try:
                main()
            except SystemExit as e:
                return e.code
            return 0
        out["encode"] = cli("encode", "in.png", "-o", "a.lq", "--quiet")
        out["encode_fixed"] = cli("encode", "in.png", "-o", "f.lq", "--coder", "fixed", "--quiet", "--threads", "1")
        out["encode_bpp"] = cli("encode", "in.png", "-o", "b.lq", "--bpp", "0.08", "--quiet")
        out["decode"] = cli("decode", "a.lq", "-o", "a.png", "--quiet")
        out["info"] = cli("info", "a.lq")
        out["compare"] = cli("compare", "in.png", "-o", "c.png", "--codecs", "webp", "--size", "96", "--quiet")
        out["effort"] = cli("encode", "in.png", "-o", "e.lq", "--effort", "1", "--quiet")
        out["cuda"] = cli("encode", "in.png", "-o", "g.lq", "--device", "cuda", "--quiet")
        out["train"] = cli("train", "in.png", "--out", "run")
        out["export"] = cli("export", "in.png", "-o", "x.safetensors")
    """, tmp_path)
    assert out["torch_imported"] is False
    for name in ("encode", "encode_fixed", "encode_bpp", "decode", "info", "compare"):
        assert out[name] == 0, (name, out)
    for name in ("effort", "cuda", "train", "export"):  # the torch features: one-line errors that say what to install
        assert out[name] == 1, (name, out)
    assert not (tmp_path / "run").exists() and not (tmp_path / "x.safetensors").exists()
    assert Image.open(tmp_path / "a.png").size == (300, 240)
    assert 8 * (tmp_path / "b.lq").stat().st_size / (300 * 240) <= 0.08


def test_the_missing_torch_is_named_in_one_line(tmp_path):
    Image.open(DEMO).crop((0, 0, 64, 64)).save(tmp_path / "in.png")
    code = NO_TORCH + textwrap.dedent("""
        from leechcodec.cli.main import main
        sys.argv = ["leechcodec", "encode", "in.png", "-o", "e.lq", "--effort", "1"]
        main()
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "leechcodec: error: --effort needs torch, which is not installed: pip install 'leechcodec[train]' "
        "(it refines the tokens with the decoder's gradients)"]
    assert not (tmp_path / "e.lq").exists()


def test_the_library_and_pillow_plugin_need_no_torch(tmp_path):
    Image.open(DEMO).crop((0, 0, 300, 200)).save(tmp_path / "in.png")
    out = _run_without_torch("""
        import leechcodec, leechcodec.pillow
        from PIL import Image
        model = leechcodec.load_model()
        data = leechcodec.encode(Image.open("in.png"), model)
        out["size"] = list(leechcodec.decode(data, model).size)
        leechcodec.pillow.save(Image.open("in.png"), "p.lq")
        with Image.open("p.lq") as im:
            im.load()
            out["plugin"] = list(im.size)
        out["same"] = open("p.lq", "rb").read() == data
        tokens = leechcodec.tokenize("in.png", model)
        out["tokens"] = list(tokens.shape)
        out["pictures"] = list(leechcodec.detokenize(tokens, model).shape)
    """, tmp_path)
    assert out == {"size": [300, 200], "plugin": [300, 200], "same": True, "tokens": [1, 25, 38],
                   "pictures": [1, 200, 304, 3], "torch_imported": False}


def test_onnx_is_the_default_on_a_cpu_and_torch_where_asked():
    assert load(prior=None).runtime == "onnxruntime"
    assert load(prior=None, backend="torch").runtime == "torch"
    assert load(prior=None, precision="bf16").runtime == "torch"  # bf16 blocks are torch's
    with pytest.raises(ValueError, match="backend"):
        load(backend="tensorflow")


def test_bf16_or_cuda_with_the_onnx_model_is_an_error(onnx_model):
    img = Image.open(DEMO).crop((0, 0, 64, 64))
    with pytest.raises(ValueError, match="torch backend"):
        leechcodec.encode(img, onnx_model, precision="bf16")
    with pytest.raises(ValueError, match="torch backend"):
        leechcodec.encode(img, onnx_model, device="cuda")


def test_threads_is_an_option_of_every_command_that_computes():
    runner = CliRunner()
    for command in ("encode", "decode", "compare", "bench"):
        r = runner.invoke(cli, [command, "--help"])
        assert "--threads N" in r.output, command
    r = runner.invoke(cli, ["encode", str(DEMO), "-o", "-", "--threads", "0"])
    assert r.exit_code == 2


def test_effort_with_the_onnx_model_refines_with_its_torch_twin(onnx_model):
    img = Image.open(DEMO).crop((100, 100, 300, 260))  # measured: MSE 226.0 → 215.5
    plain = leechcodec.encode(img, onnx_model, coder="fixed")
    refined = leechcodec.encode(img, onnx_model, coder="fixed", effort=2)
    src = np.asarray(img, dtype=np.float64)

    def err(data: bytes) -> float:
        return float(((np.asarray(leechcodec.decode(data, onnx_model), dtype=np.float64) - src) ** 2).mean())

    assert refined != plain and err(refined) < err(plain)


# ----------------------------------------------------------------------------- the two paths agree
@pytest.mark.slow
def test_onnx_and_torch_agree_on_the_kodak_images(kodak_dir, onnx_model, torch_model):
    """Point 3 of issue 30 on all 24 images: tokens ≥ 99.9 % equal (near-ties may flip, counted),
    byte-identical ar streams for equal tokens, decoded pixels within 1 level."""
    files = sorted(kodak_dir.glob("kodim*.png"))
    assert len(files) == 24
    tokens = differ = worst = 0
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        tiles = tiling.tile_image(rgb, 256)
        a = codec.tiles_to_indices(onnx_model, tiles)
        b = codec.tiles_to_indices(torch_model, tiles, precision="fp32")
        tokens += a.size
        differ += int((a != b).sum())
        if f.name in ("kodim01.png", "kodim23.png"):  # the streams: same tokens → same bytes
            ours, theirs = leechcodec.encode(rgb_image := Image.fromarray(rgb), onnx_model), None
            if np.array_equal(a, b):
                theirs = leechcodec.encode(rgb_image, torch_model, precision="fp32")
                assert ours == theirs, f.name
        h, w, _ = rgb.shape
        tx, ty = 3 if w > h else 2, 2 if w > h else 3
        x = codec.indices_to_image(onnx_model, b, tx, ty, size=(w, h)).astype(np.int16)
        y = codec.indices_to_image(torch_model, b, tx, ty, precision="fp32", size=(w, h)).astype(np.int16)
        worst = max(worst, int(np.abs(x - y).max()))
    print(f"\n{differ} of {tokens} tokens differ ({100 * differ / tokens:.4f} %), pixels at most {worst} level(s) apart")
    assert differ <= 0.001 * tokens
    assert worst <= 1


def test_golden_streams_decode_to_their_tokens_on_onnx(tmp_path):
    """The frozen tiny model of the golden streams, exported to ONNX: every stream gives the tokens
    golden.json pins, and pixels within 1 level of the torch decoder's."""
    import hashlib
    import importlib.util
    import shutil

    from leechcodec.models.export_onnx import export
    from leechcodec.models.io import load_weights

    data = REPO / "tests" / "data"
    manifest = json.loads((data / "golden.json").read_text())
    name = manifest["tokenizer"]["file"]
    shutil.copy(data / name, tmp_path / name)
    prior = name.removesuffix(".safetensors") + ".prior.safetensors"
    shutil.copy(data / prior, tmp_path / prior)
    export(tmp_path / name)
    ours, ref = load_onnx(tmp_path / name), load_weights(data / name)
    assert ours.model_id == ref.model_id
    spec = importlib.util.spec_from_file_location("make_golden", data / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)  # its stream → tokens step is the one the hashes were made with
    for s in manifest["streams"]:
        stream = (data / s["file"]).read_bytes()
        tokens = np.ascontiguousarray(make_golden.tokens(stream, ours), ">u4")
        assert hashlib.sha256(tokens.tobytes()).hexdigest() == s["tokens_sha256"], s["file"]
        a = np.asarray(leechcodec.decode(stream, ours), dtype=np.int16)
        b = np.asarray(leechcodec.decode(stream, ref, precision="fp32"), dtype=np.int16)
        assert np.abs(a - b).max() <= 1, s["file"]
