import numpy as np
import pytest
import torch

from leechcodec import lattice
from leechcodec.quantizer import LeechQuantizer, normalize


def test_modes_round_trip_and_ste_gradient():
    q = LeechQuantizer()
    assert list(q.parameters()) == []  # fixed codebook: nothing to learn
    x = torch.randn(2, 4, 4, 24, requires_grad=True)
    idx = q(x, mode="indices")
    assert idx.shape == (2, 4, 4) and idx.dtype == torch.int64
    vec = q(idx, mode="dequantize")
    assert torch.equal(q(vec, mode="indices"), idx)  # exact inverse on codewords
    y = q(x, mode="ste")
    torch.testing.assert_close(y, vec)  # forward value is the codeword
    # straight-through: the gradient is that of the normalisation alone
    w = torch.randn_like(y)
    (y * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (normalize(x2) * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_scale_invariance_and_errors():
    q = LeechQuantizer()
    x = torch.randn(50, 24)
    assert torch.equal(q(x, "indices"), q(7.5 * x, "indices"))
    with pytest.raises(ValueError):
        q(torch.randn(3, 23), "indices")
    with pytest.raises(ValueError):
        q(x, "bogus")


def test_quantization_error_is_bounded():
    # the covering radius of the unit shell is well below 1; every point snaps within it
    x = normalize(torch.randn(2000, 24))
    err = (LeechQuantizer()(x, "ste") - x).norm(dim=-1)
    assert float(err.max()) < 1.0
    idx = np.arange(0, lattice.N_CODEWORDS, 997)
    v = torch.from_numpy(lattice.vectors(idx))
    assert float((LeechQuantizer()(v, "ste") - v).abs().max()) == 0.0
