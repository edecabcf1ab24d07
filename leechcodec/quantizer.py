"""Spherical Leech quantization (Λ24-SQ) as an ``nn.Module``.

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
        lead = x.shape[:-1]
        z = normalize(x)
        idx = lattice.nearest(z.detach().reshape(-1, self.dim)).reshape(lead)
        if mode == "indices":
            return idx
        if mode == "ste":
            q = lattice.vectors(idx, check=False).to(z.dtype)  # from nearest: in range, no device wait
            return z + (q - z).detach()
        raise ValueError(f"unknown quantizer mode {mode!r} (use 'ste', 'indices' or 'dequantize')")


def normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Project onto the unit sphere (a zero vector stays finite)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
