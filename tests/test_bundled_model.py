"""The shipped model and prior: safetensors, ≤ 30 MB, documented in MODEL_CARD.md, and they work."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import leechcodec
from leechcodec.models.config import DEFAULT_WEIGHTS
from leechcodec.models.io import load_weights
from leechcodec.models.prior import prior_path_for

REPO = Path(__file__).resolve().parents[1]
DEMO_IMAGE = REPO / "docs" / "kodim23.png"

# measured PSNR of the demo image (kodim23) with the shipped weights, minus a small margin;
# re-measure with benchmarks/kodak_roundtrip.py when the weights change
DEMO_PSNR_FLOOR = 28.7  # measured 28.91 dB (MODEL_CARD.md, docs/training-log.md)
AR_RATIO_CEILING = 0.41  # ar bytes / fixed bytes on the demo image: a regression floor, measured 0.387 (bench_ar.py, prior c1845661)


def test_weights_file_is_fp16_safetensors_under_30mb():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size + prior_path_for(DEFAULT_WEIGHTS).stat().st_size <= 30 * 2**20
    tensors = load_file(str(DEFAULT_WEIGHTS))
    assert tensors and all(t.dtype == torch.float16 for t in tensors.values())
    prior = load_file(str(prior_path_for(DEFAULT_WEIGHTS)))
    assert prior and all(t.dtype in (torch.int32, torch.int64) for t in prior.values())


def test_model_card_names_the_shipped_model():
    model = load_weights()
    card = (REPO / "MODEL_CARD.md").read_text()
    assert model.model_id.hex() in card
    assert model.cfg.name in card
    assert model.prior is not None and model.prior.prior_id.hex() in card


def test_demo_image_round_trip():
    model = load_weights()
    img = Image.open(DEMO_IMAGE).convert("RGB")
    data = leechcodec.encode(img, model, coder="fixed")
    assert 8 * len(data) / (img.width * img.height) <= 0.2760
    out = leechcodec.decode(data, model)
    assert out.size == img.size
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(out, dtype=np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert psnr >= DEMO_PSNR_FLOOR, psnr


def test_demo_image_ar_is_smaller_and_lossless():
    model = load_weights()
    img = Image.open(DEMO_IMAGE).convert("RGB")
    fixed = leechcodec.encode(img, model, coder="fixed")
    ar = leechcodec.encode(img, model)  # the default coder with the bundled prior
    assert leechcodec.read_header(ar).coder == "ar"
    assert len(ar) <= AR_RATIO_CEILING * len(fixed), len(ar) / len(fixed)
    assert np.array_equal(np.asarray(leechcodec.decode(ar, model)), np.asarray(leechcodec.decode(fixed, model)))


def test_bf16_decoding_stays_within_a_few_levels_of_the_reference():
    """--precision: bf16 decoding (the default where the hardware has it) is a speed-up that
    leaves the picture within a few levels of the float32 reference, never a different picture."""
    from leechcodec.torch_nets import native_bf16

    model = load_weights(prior=None)
    img = Image.open(DEMO_IMAGE).convert("RGB").crop((200, 100, 712, 356))  # 2 × 1 tiles: a halo between them
    data = leechcodec.encode(img, model, coder="fixed")
    ref = np.asarray(leechcodec.decode(data, model, precision="fp32"), dtype=np.int16)
    bf = np.asarray(leechcodec.decode(data, model, precision="bf16"), dtype=np.int16)
    assert not np.array_equal(ref, bf)  # the option does something
    assert np.abs(ref - bf).max() <= 8 and np.abs(ref - bf).mean() < 0.6  # measured 3 and 0.29
    src = np.asarray(img, dtype=np.float64)
    psnr = [10 * np.log10(255**2 / np.mean((src - x) ** 2)) for x in (ref, bf)]
    assert abs(psnr[0] - psnr[1]) < 0.05, psnr  # measured 0.008 dB
    auto = np.asarray(leechcodec.decode(data, model), dtype=np.int16)
    np.testing.assert_array_equal(auto, bf if native_bf16("cpu") else ref)
    with pytest.raises(ValueError, match="precision"):
        leechcodec.decode(data, model, precision="fp8")
