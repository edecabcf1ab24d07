"""Shared fixtures: a tiny (untrained) tokenizer saved as safetensors, and the data paths."""

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
KODAK = SHARED / "kodak"
DEMO_IMAGE = REPO / "docs" / "kodim23.png"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    from models.io import save_weights
    from models.vit import build

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(build("tiny"), path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from models.io import load_weights

    return load_weights(tiny_model_path)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: much faster on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def kodak_crops(kodak_dir, tmp_path):
    """A folder of two 256x256 RGB crops of Kodak images (c0.png, c1.png)."""
    from PIL import Image

    folder = tmp_path / "crops"
    folder.mkdir()
    for i, name in enumerate(("kodim01.png", "kodim02.png")):
        with Image.open(kodak_dir / name) as im:
            im.convert("RGB").crop((256, 128, 512, 384)).save(folder / f"c{i}.png")
    return folder


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def kodak_dir():
    if not (KODAK / "kodim01.png").is_file():
        pytest.skip(f"Kodak images not found at {KODAK}")
    return KODAK
