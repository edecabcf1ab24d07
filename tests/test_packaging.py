"""The installed import names cannot clash: models/, cli/ and kodak_eval/ install as
``leechcodec.models``, ``leechcodec.cli`` and ``leechcodec.kodak_eval`` (issue 28)."""

import subprocess
import sys
import zipfile

import pytest

from conftest import DEMO_IMAGE, REPO

DECOYS = {
    "models/__init__.py": "raise ImportError('the user\\'s own models package was imported')\n",
    "cli.py": "raise ImportError('the user\\'s own cli.py was imported')\n",
    "kodak_eval.py": "raise ImportError('the user\\'s own kodak_eval.py was imported')\n",
}


@pytest.fixture
def crowded(tmp_path):
    """A working folder with its own ``models`` package, ``cli.py`` and ``kodak_eval.py``."""
    for name, text in DECOYS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    from PIL import Image

    with Image.open(DEMO_IMAGE) as im:
        im.crop((0, 0, 40, 24)).save(tmp_path / "small.png")
    return tmp_path


def test_python_m_leechcodec_beside_a_users_models_and_cli(crowded):
    for args in (["encode", "small.png", "-o", "small.lq"], ["decode", "small.lq", "-o", "back.png"], ["info", "small.lq"]):
        r = subprocess.run([sys.executable, "-m", "leechcodec", *args], cwd=crowded, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
    assert (crowded / "back.png").is_file()


def test_python_api_beside_a_users_models_and_cli(crowded):
    code = (
        "import sys, leechcodec\n"
        "from leechcodec.models.io import load_weights\n"
        "from PIL import Image\n"
        "model = load_weights()\n"
        "data = leechcodec.encode(Image.open('small.png'), model)\n"
        "print(leechcodec.decode(data, model).size)\n"
        "assert 'models' not in sys.modules and 'cli' not in sys.modules, sorted(sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=crowded, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(40, 24)"


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("leechcodec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"leechcodec"}
    for needed in ("leechcodec/models/weights/leech.safetensors", "leechcodec/models/weights/leech.prior.safetensors",
                   "leechcodec/models/weights/NOTICE.md",
                   "leechcodec/models/weights/leech.encoder.onnx", "leechcodec/models/weights/leech.decoder.onnx",
                   "leechcodec/models/vit.py", "leechcodec/cli/main.py", "leechcodec/kodak_eval/SHA256SUMS"):  # fmt: skip
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "leechcodec = leechcodec.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [ln.split(":", 1)[1].strip() for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    # encode and decode install no torch (issue 30); training, GPU use and bench bring it as extras
    assert any(r.startswith("onnxruntime") for r in core) and not any(r.startswith("torch") for r in core), core
    assert any(r.startswith("torch") and 'extra == "train"' in r for r in requires), requires
