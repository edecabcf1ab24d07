"""The shipped model: fp16 safetensors, ≤ 30 MB, documented in MODEL_CARD.md, and it works."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import leechcodec
from models.io import DEFAULT_WEIGHTS, load_weights

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGE = REPO / "docs" / "kodim23.png"

# measured PSNR of the demo image (kodim23) with the shipped weights, minus a small margin;
# re-measure with benchmarks/kodak_roundtrip.py when the weights change
DEMO_PSNR_FLOOR = 17.2  # measured 17.72 dB (MODEL_CARD.md)


def test_weights_file_is_fp16_safetensors_under_30mb():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size <= 30 * 2**20
    tensors = load_file(str(DEFAULT_WEIGHTS))
    assert tensors and all(t.dtype == torch.float16 for t in tensors.values())


def test_model_card_names_the_shipped_model():
    model = load_weights()
    card = (REPO / "MODEL_CARD.md").read_text()
    assert model.model_id.hex() in card
    assert model.cfg.name in card


def test_demo_image_round_trip():
    model = load_weights()
    img = Image.open(DEMO_IMAGE).convert("RGB")
    data = leechcodec.encode(img, model)
    assert 8 * len(data) / (img.width * img.height) <= 0.2760
    out = leechcodec.decode(data, model)
    assert out.size == img.size
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(out, dtype=np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert psnr >= DEMO_PSNR_FLOOR, psnr
