"""The examples of README's "Use Λ24-SQ in your own model" run, and the README's snippets too."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import leechcodec

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SECTION = README.split("## Use Λ24-SQ in your own model")[1].split("\n## ")[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """40 pictures of 160×140 cut from docs/kodim23.png (a test needs no training data)."""
    d = tmp_path_factory.mktemp("pictures")
    im = Image.open(REPO / "docs" / "kodim23.png").convert("RGB")
    for i in range(40):
        x, y = (i * 37) % (im.width - 160), (i * 53) % (im.height - 140)
        im.crop((x, y, x + 160, y + 140)).save(d / f"p{i:02d}.png")
    return d


def run(*args: str) -> str:
    p = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_the_readme_snippets_run(monkeypatch):
    monkeypatch.chdir(REPO)  # the snippets name docs/kodim23.png, as from a checkout's root
    blocks = re.findall(r"```python\n(.*?)```", SECTION, re.S)
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_train_example_learns(folder):
    out = run("examples/train_autoencoder.py", str(folder), "--pictures", "40", "--steps", "100")
    psnr = [float(x) for x in re.findall(r"held-out PSNR ([\d.]+) dB", out)]
    assert len(psnr) == 5 and psnr[-1] > psnr[0] + 1, out  # it learns (the gradient through the quantizer: test_quantizer.py)
    assert re.search(r"[\d,]+ distinct codewords of 196,560 in 2,048 tokens, index entropy [\d.]+ bits", out)
    assert len((REPO / "examples" / "train_autoencoder.py").read_text().splitlines()) <= 120


def test_tokenize_example_writes_the_codecs_tokens(folder, tmp_path):
    out = run("examples/tokenize_folder.py", str(folder), "-o", str(tmp_path / "t.npy"), "--size", "128", "--limit", "3")
    tokens = np.load(tmp_path / "t.npy")
    assert tokens.shape == (3, 16, 16) and tokens.dtype == np.int32
    names = (tmp_path / "t.txt").read_text().split()
    assert names == ["p00.png", "p01.png", "p02.png"]
    model = leechcodec.load_model(prior=None)
    square = np.asarray(Image.open(folder / "p01.png").resize((146, 128), Image.Resampling.LANCZOS).crop((9, 0, 137, 128)))
    assert np.array_equal(tokens[1], leechcodec.tokenize(square, model)[0])
    assert "dB PSNR" in out
