"""Spherical Leech quantization (Λ24-SQ): ``LeechQuantizer``, an ``nn.Module``, and
``quantize_ste``, its straight-through step, which training calls with a chosen search.

No parameters, no auxiliary loss: the codebook is the fixed first shell of Λ24.
"""

from __future__ import annotations

import torch
from torch import nn

from . import lattice


class LeechQuantizer(nn.Module):
    """Normalise 24-d vectors to the unit sphere and snap them to the nearest Λ24 codeword.

    Modes (named, chosen per call):
        ``"ste"``: returns the unit codeword vectors with a straight-through gradient
            (forward value = codeword, gradient flows to the normalised input), for training;
        ``"indices"``: returns int64 codeword indices, for coding;
        ``"dequantize"``: maps indices back to unit vectors (the exact inverse of ``"indices"``).

    Shapes: (..., 24) → (..., 24) for ``ste``, (..., 24) → (...) for ``indices``,
    (...) → (..., 24) for ``dequantize``.
    """

    dim = lattice.DIM

    def forward(self, x: torch.Tensor, mode: str = "ste") -> torch.Tensor:
        if mode == "dequantize":
            return lattice.vectors(x)
        if x.shape[-1] != self.dim:
            raise ValueError(f"last dimension must be {self.dim}, got {x.shape[-1]}")
        z = normalize(x)
        if mode == "indices":
            return lattice.nearest(z.detach().reshape(-1, self.dim)).reshape(x.shape[:-1])
        if mode == "ste":
            return quantize_ste(z)
        raise ValueError(f"unknown quantizer mode {mode!r} (use 'ste', 'indices' or 'dequantize')")


def quantize_ste(z: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Unit vectors (..., 24) → their nearest codewords, with a straight-through gradient (the
    training path: ``LeechQuantizer`` mode ``"ste"``, ``models.vit.LeechTokenizer.forward``).

    ``method``: the search (``lattice.nearest``; every one exact). The search sees ``z`` in at
    least float32 (a bf16 value converts exactly) and returns the float64 nearest whatever
    autocast runs; the codewords come back in ``z``'s dtype, without waiting for a GPU.
    """
    with torch.no_grad():
        flat = z.detach().reshape(-1, lattice.DIM)
        idx = lattice.nearest(flat.to(torch.promote_types(flat.dtype, torch.float32)), method)
        q = lattice.vectors(idx, check=False).view(z.shape).to(z.dtype)  # in range by construction
    return z + (q - z).detach()


def normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Project onto the unit sphere (a zero vector stays finite)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
