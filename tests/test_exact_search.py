"""The training quantizer is exact whatever the ambient precision (issue 26).

GPU training runs its forward pass under ``torch.autocast(dtype=torch.bfloat16)``; before the
fix the Λ24 search inside it ran its matmuls in bf16 and, on the bundled model's own latents
of kodim23, picked a codeword other than the nearest for 16 % (structured) and 5 % (tiled) of
the tokens. CPU autocast lowers the same matmuls, so the bug shows here without a GPU.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from leechcodec import lattice
from leechcodec.quantizer import LeechQuantizer, normalize, quantize_ste
from leechcodec.models import io as model_io

from conftest import REPO


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    """Unit latents (4096, 24) of the bundled model on the top-left 512×512 of docs/kodim23.png."""
    model = model_io.load_weights(prior=None)
    rgb = np.asarray(Image.open(REPO / "docs" / "kodim23.png").convert("RGB"))[:512, :512]
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        return normalize(model.analysis(x).float()).reshape(-1, lattice.DIM)


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize(
    "search, n",
    [
        (lambda z: lattice.nearest(z, "structured"), 4096),
        (lambda z: lattice.nearest(z, "tiled"), 1024),  # a full matmul per token: fewer on a CPU
        (lambda z: lattice.nearest_tiled(z, dtype=torch.float16), 512),
        (lambda z: lattice.nearest(z, "auto"), 4096),
    ],
    ids=["structured", "tiled", "tiled-fp16", "auto"],
)
def test_search_under_bf16_autocast_is_the_float64_nearest(latents, search, n):
    z = latents[:n]
    ref = lattice.nearest_brute(z.double())
    with _bf16():
        got = search(z)
    agree = float((got == ref).float().mean())
    assert agree >= 0.999, f"{agree:.4f} of tokens got the float64 nearest codeword"


def test_training_quantizers_under_bf16_equal_the_fp32_path(latents):
    z = latents.clone().requires_grad_(True)
    ref_idx = lattice.nearest_brute(latents.double())
    ref_q = lattice.vectors(ref_idx)
    quant = LeechQuantizer()
    for name, fn in [
        ("LeechQuantizer", lambda t: quant(t)[0]),
        ("quantize_ste structured", lambda t: quantize_ste(t, "structured")),
        ("quantize_ste tiled", lambda t: quantize_ste(t[:1024], "tiled")),
    ]:
        with _bf16():
            q = fn(z)
        fp32 = fn(z)
        n = len(q)
        assert torch.equal(q.detach().float(), fp32.detach().float()), name
        # z + (q - z) is q up to float32 rounding: within 1e-6 of the float64 nearest codeword
        agree = float(((q.detach().float() - ref_q[:n]).abs().amax(1) < 1e-6).float().mean())
        assert agree >= 0.999, f"{name}: {agree:.4f}"
        # and the straight-through gradient is the fp32 path's
        (g,) = torch.autograd.grad((q.float() * ref_q[:n]).sum(), z)
        (g32,) = torch.autograd.grad((fp32.float() * ref_q[:n]).sum(), z)
        assert torch.allclose(g, g32, atol=1e-6), name


def test_tiled_certificate_covers_exact_ties():
    """Rows with many exactly tied codewords fail the certificate and are searched in full:
    the smallest index wins, as in the float64 reference."""
    sparse = torch.eye(24)
    before = lattice.TILED_STATS["uncertified"]
    assert torch.equal(lattice.nearest_tiled(sparse), lattice.nearest_brute(sparse))
    assert lattice.TILED_STATS["uncertified"] - before == 24
    with pytest.raises(ValueError, match="dtype"):
        lattice.nearest_tiled(sparse, dtype=torch.bfloat16)
