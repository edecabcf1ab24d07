"""LeechQuantizer, the public Λ24-SQ module (issue 38): the nearest codeword by the float64
referee, the straight-through gradient, residual stages, quantizer dropout, layouts."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from leechcodec import LeechQuantizer, lattice, stages as staging
from leechcodec.codec import tiles_to_indices
from leechcodec.quantizer import normalize
from leechcodec.tiling import tile_image

from conftest import REPO


@pytest.fixture(scope="module")
def real_latents() -> np.ndarray:
    """The bundled model's unit latents of docs/kodim23.png (6 tiles × 1024 tokens), ONNX Runtime."""
    import leechcodec

    model = leechcodec.load_model(prior=None)
    rgb = np.asarray(Image.open(REPO / "docs" / "kodim23.png").convert("RGB"))
    found = []
    tiles_to_indices(model, tile_image(rgb, model.tile), latents=found)
    return np.concatenate(found).reshape(-1, 24)


def referee(z) -> np.ndarray:
    """The float64 argmax of <z, c> over all 196,560 codewords (first index on ties)."""
    return lattice.nearest_brute(np.asarray(z, dtype=np.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_indices_are_the_float64_nearest_in_any_precision(dtype, real_latents):
    rng = np.random.default_rng(0)
    random = rng.standard_normal((1500, 24)) * rng.uniform(1e-3, 1e3, (1500, 1))  # any norm
    q = LeechQuantizer()
    for z in (random, real_latents[:3000]):
        x = torch.from_numpy(z).to(dtype)
        quantized, idx = q(x)
        assert idx.dtype == torch.int64 and idx.shape == (len(z),)
        assert np.array_equal(idx.numpy(), referee(x.double().numpy()))  # the referee sees the input as given
        assert quantized.dtype == dtype
        assert torch.equal(quantized, lattice.vectors(idx).to(dtype))  # unit codewords
        assert torch.equal(lattice.index_of(quantized), idx)  # read back, rounded to the dtype as they are
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(q(x)[1], idx)  # autocast lowers nothing in the search


def test_every_search_method_agrees(real_latents):
    x = torch.from_numpy(real_latents[:1024])
    want = referee(real_latents[:1024])
    for method in ("structured", "tiled", "tiled16", "brute"):
        assert np.array_equal(LeechQuantizer(method=method)(x)[1].numpy(), want), method


def test_straight_through_gradient():
    q = LeechQuantizer()
    assert list(q.parameters()) == []  # fixed codebook: nothing to learn
    x = torch.randn(2, 4, 4, 24, dtype=torch.float64, requires_grad=True)
    quantized, _ = q(x)
    w = torch.randn_like(quantized)
    (quantized * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (normalize(x2) * w).sum().backward()  # the quantizer's Jacobian is the identity
    assert float(x.grad.abs().sum()) > 0
    torch.testing.assert_close(x.grad, x2.grad)


def test_straight_through_gradient_reaches_the_projection():
    torch.manual_seed(0)
    q = LeechQuantizer(dim=64, channel_first=True)
    x = torch.randn(2, 64, 5, 7, requires_grad=True)
    quantized, idx = q(x)
    assert quantized.shape == x.shape and idx.shape == (2, 5, 7)
    w = torch.randn_like(quantized)
    (quantized * w).sum().backward()
    # the same network with the quantizer taken out: equal gradients before it (the loss is linear)
    x2 = x.detach().clone().requires_grad_(True)
    u = normalize(q.project_in(x2.movedim(1, -1)))
    weight = q.project_in.weight
    grads = torch.autograd.grad((q.project_out(u).movedim(-1, 1) * w).sum(), [x2, weight])
    torch.testing.assert_close(x.grad, grads[0])
    torch.testing.assert_close(weight.grad, grads[1])


@pytest.mark.parametrize("stages", [2, 3, 5])
def test_residual_stages_follow_the_float64_recursion(stages):
    rng = np.random.default_rng(stages)
    z = rng.standard_normal((800, 24))
    q = LeechQuantizer(num_quantizers=stages)
    quantized, idx = q(torch.from_numpy(z))
    assert idx.shape == (800, stages)
    # referee: stage 1 the nearest to z, stage k the nearest to the direction of z/|z| − ẑ
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    rec = np.zeros_like(u)
    for k, g in enumerate(q.stage_gains):
        want = referee(z if k == 0 else u - rec)
        assert np.array_equal(idx[:, k].numpy(), want), f"stage {k + 1}"
        rec += g * lattice.vectors(want).astype(np.float64)
    np.testing.assert_allclose(quantized.numpy(), rec, atol=1e-6)
    torch.testing.assert_close(q.indices_to_codes(idx), quantized.float())  # float32 codes of float64 sums
    z32 = torch.from_numpy(z).float()
    assert torch.equal(q.indices_to_codes(q(z32)[1]), q(z32)[0])  # float32: bit for bit


def test_each_stage_lowers_the_error_and_they_are_the_codecs(real_latents):
    z = torch.from_numpy(real_latents)
    errors = []
    for k in (1, 2, 3, 4):
        quantized, idx = LeechQuantizer(num_quantizers=k)(z)
        errors.append(float(((quantized - z) ** 2).sum(-1).mean()))
        if k > 1:  # the codec's stage tokens (the fixed coder's: every position holds one)
            first = idx[:, 0].numpy()
            later = staging.later_tokens(z.numpy(), first, staging.gains({}, k), every=True)
            assert np.array_equal(idx[:, 1:].numpy().T, later)
    assert all(b < 0.8 * a for a, b in zip(errors, errors[1:])), errors


def test_quantizer_dropout():
    q = LeechQuantizer(num_quantizers=4, quantize_dropout=True, quantize_dropout_cutoff_index=1).train()
    x = torch.randn(64, 10, 24)
    quantized, idx = q(x, generator=torch.Generator().manual_seed(0))
    kept = (idx != -1).sum(-1)  # (64, 10)
    assert (kept == kept[:, :1]).all()  # one draw per sample
    assert set(kept[:, 0].tolist()) == {2, 3, 4}  # cutoff index 1: stages 1 and 2 always stay
    assert ((idx != -1).cummin(-1).values == (idx != -1)).all()  # a prefix of the stages
    assert torch.equal(q.indices_to_codes(idx), quantized)
    empty, none = q(torch.randn(0, 10, 24))  # an empty batch draws nothing
    assert empty.shape == (0, 10, 24) and none.shape == (0, 10, 4)
    full = q.eval()(x)[1]
    assert (full != -1).all()
    assert torch.equal(torch.where(idx == -1, full, idx), full)  # kept stages: the same tokens


def test_layout_dtype_and_errors():
    q = LeechQuantizer()
    with pytest.raises(ValueError, match=r"\(2, 24, 4, 4\) \(features in dimension 1\? pass channel_first=True\)"):
        q(torch.randn(2, 24, 4, 4))
    with pytest.raises(ValueError, match=r"dimension 1, got shape \(2, 32, 4, 4\)"):
        LeechQuantizer(channel_first=True)(torch.randn(2, 32, 4, 4))
    with pytest.raises(ValueError, match="dim=<width>"):
        q(torch.randn(5, 32))
    with pytest.raises(ValueError, match="num_quantizers"):
        LeechQuantizer(num_quantizers=0)
    with pytest.raises(ValueError, match="stage_gains"):
        LeechQuantizer(num_quantizers=2, stage_gains=[1.0])
    with pytest.raises(ValueError, match="out of range"):
        q.indices_to_codes(torch.tensor([196_560]))
    cf = LeechQuantizer(channel_first=True)
    x = torch.randn(3, 24, 6)
    quantized, idx = cf(x)
    assert quantized.shape == x.shape and idx.shape == (3, 6)
    assert torch.equal(quantized, cf.indices_to_codes(idx))
    p = LeechQuantizer(dim=16, num_quantizers=2)
    assert sum(t.numel() for t in p.parameters()) == 16 * 24 + 24 + 24 * 16 + 16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = p(torch.randn(4, 16))
    assert out.dtype == torch.bfloat16


def test_bounded_memory_on_a_large_batch():
    """200,000 vectors at once: a batch × 196,560 score matrix would be 157 GB of float32, more
    than this machine has; the search goes in chunks of 2,048 rows (benchmarks/quantizer_search.py
    measures the peak memory)."""
    x = torch.randn(200_000, 24)
    _, idx = LeechQuantizer()(x)
    sample = np.random.default_rng(1).choice(len(x), 500, replace=False)
    assert np.array_equal(idx[sample].numpy(), referee(x[sample].numpy()))


def test_without_torch_the_import_is_a_one_line_error():
    code = textwrap.dedent("""
        import sys
        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, _NoTorch())
        from leechcodec import *  # the torch-free names only
        print(sorted(n for n in dir() if n in ("LeechQuantizer", "tokenize", "encode")))
        try:
            from leechcodec import LeechQuantizer
        except ImportError as e:
            print(e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines() == [
        "['encode', 'tokenize']",
        "LeechQuantizer needs torch, which is not installed: pip install 'leechcodec[train]'"]
