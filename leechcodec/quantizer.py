"""Spherical Leech quantization (Λ24-SQ) as a torch module: ``LeechQuantizer``, for your own
models, and ``quantize_ste``, the straight-through step our ViT's training calls.

    from leechcodec import LeechQuantizer
    quantizer = LeechQuantizer()                 # (..., 24) in
    quantized, indices = quantizer(z)            # unit codewords, int64 indices in [0, 196560)
    assert torch.equal(quantized, quantizer.indices_to_codes(indices))

The shape of vector-quantize-pytorch's FSQ and LFQ: no codebook to learn, no auxiliary loss,
a straight-through gradient. The codebook is the first shell of the Leech lattice Λ24
(``leechcodec.lattice``, docs/LATTICE.md), and every search is exact: each index is the
float64 argmax of the cosine over all 196,560 codewords, whatever the input's dtype, the device
or the autocast around it, and memory stays bounded whatever the batch: on a CPU the structured
search goes 2,048 rows at a time (no score matrix at all), on CUDA a certified matmul 4,096
rows at a time (a 3.2 GB float32 score block, 6.4 GB for rows searched again in float64;
docs/LATTICE.md). Needs torch (the ``train`` extra); the codec itself does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import lattice
from .stages import gain_series

ABSENT = -1  # the index of a stage that quantizer dropout left out (as vector-quantize-pytorch writes it)


class LeechQuantizer(nn.Module):
    """Snap each 24-d vector's direction to the nearest Λ24 codeword (unit length), with a
    straight-through gradient; ``num_quantizers`` > 1 adds residual stages.

    Args:
        dim: the feature width of the input. None (or 24): the input's last dimension is the
            24-d latent and the module has no parameters. Anything else: a ``Linear(dim, 24)``
            before the quantizer and a ``Linear(24, dim)`` after it (the only learned
            parameters), as vector-quantize-pytorch's ``dim=`` does.
        num_quantizers: residual stages K. Stage 1 quantizes z/|z|; stage k ≥ 2 quantizes the
            direction of what the stages before it left, r_k = z/|z| − ẑ_{k−1}, and adds
            ``stage_gains[k−1]`` times its unit codeword: ẑ = Σ gain_k · c_k. ``indices`` then
            gain a last dimension of size K.
        stage_gains: the K gains (stage 1's is 1 unless you say otherwise). Default: the codec's,
            1, 0.52, 0.325, … (``leechcodec.stages``: they fit a trained tokenizer's residuals).
        quantize_dropout: while ``training``, each sample (the first dimension) keeps the first
            j stages only, j drawn uniformly from ``quantize_dropout_cutoff_index`` + 1 … K; the
            stages it drops get index −1 and add nothing. One model then serves every rate
            (SoundStream's quantizer dropout).
        quantize_dropout_cutoff_index: stages 0 … this index (0-based) are never dropped.
        channel_first: the features are dimension 1 (``(B, C, H, W)``, ``(B, C, T)``…) rather than
            the last; ``quantized`` comes back in the same layout and ``indices`` without it.
            (vector-quantize-pytorch guesses this from the number of dimensions; here you say it.)
        method: the search, ``lattice.nearest``: "auto" (structured on CPU, certified matmul on
            CUDA), "structured", "tiled", "tiled16" or "brute". All are exact.
        projection_has_bias: whether the projections have a bias.

    ``forward(z)`` → ``(quantized, indices)``: ``quantized`` in ``z``'s layout and dtype (the
    projection's dtype under autocast), equal to ``indices_to_codes(indices)`` bit for bit
    (float32 input; other dtypes to their rounding);
    ``indices`` int64, ``z``'s shape without the feature dimension (plus K for K > 1 stages).
    Gradients flow straight through the quantizer to z/|z| (and so to ``z`` and the projection).
    """

    codebook_size = lattice.N_CODEWORDS  # 196,560
    codebook_dim = lattice.DIM  # 24
    bits_per_index = lattice.BITS_PER_INDEX  # log2(196,560) = 17.585

    def __init__(
        self,
        dim: int | None = None,
        *,
        num_quantizers: int = 1,
        stage_gains: Sequence[float] | None = None,
        quantize_dropout: bool = False,
        quantize_dropout_cutoff_index: int = 0,
        channel_first: bool = False,
        method: str = "auto",
        projection_has_bias: bool = True,
    ):
        super().__init__()
        if isinstance(num_quantizers, bool) or not isinstance(num_quantizers, int) or num_quantizers < 1:
            raise ValueError(f"num_quantizers must be an integer >= 1, got {num_quantizers!r}")
        if not 0 <= quantize_dropout_cutoff_index < num_quantizers:
            raise ValueError(f"quantize_dropout_cutoff_index must be in 0 … {num_quantizers - 1}, "
                             f"got {quantize_dropout_cutoff_index}")
        if method not in lattice._METHODS:
            raise ValueError(f"unknown search method {method!r}; choose from {', '.join(lattice._METHODS)}")
        if stage_gains is None:
            stage_gains = gain_series(num_quantizers)
        gains = [float(g) for g in stage_gains]
        if len(gains) != num_quantizers or not all(g > 0 for g in gains):
            raise ValueError(f"stage_gains must be {num_quantizers} numbers > 0, got {list(stage_gains)}")
        self.dim = self.codebook_dim if dim is None else int(dim)
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim!r}")
        self.num_quantizers = num_quantizers
        self.stage_gains = tuple(gains)
        self.quantize_dropout = quantize_dropout
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.channel_first = channel_first
        self.method = method
        project = self.dim != self.codebook_dim
        self.project_in = nn.Linear(self.dim, self.codebook_dim, bias=projection_has_bias) if project else nn.Identity()
        self.project_out = (nn.Linear(self.codebook_dim, self.dim, bias=projection_has_bias) if project
                            else nn.Identity())

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_quantizers={self.num_quantizers}, codebook_size={self.codebook_size}, "
                f"quantize_dropout={self.quantize_dropout}, channel_first={self.channel_first}")

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` → ``(quantized, indices)`` (class docstring). ``generator`` draws the dropout."""
        x = self._features_last(z)
        h = self.project_in(x)
        dtype = torch.promote_types(h.dtype, torch.float32)  # the search and the sums: float32 at least
        u = normalize(h.to(dtype))
        flat = u.detach().reshape(-1, self.codebook_dim)
        kept = self._stages_kept(x, generator)
        idx, rec = [], torch.zeros_like(flat)
        for k in range(self.num_quantizers):
            # stage 1 searches h itself (its direction, exactly as given); later stages the residual
            target = h.detach().reshape(-1, self.codebook_dim).to(dtype) if k == 0 else flat - rec
            i = lattice.nearest(target, self.method)
            if kept is not None:
                i = torch.where(kept > k, i, torch.full_like(i, ABSENT))
            idx.append(i)
            rec = self._add_stage(rec, i, k)
        # forward value: exactly the codes (rec + 0); gradient: the identity to u
        quantized = rec.view(u.shape).detach() + (u - u.detach())
        out = self.project_out(quantized.to(h.dtype))
        indices = idx[0] if self.num_quantizers == 1 else torch.stack(idx, -1)
        return self._features_back(out), indices.view(*x.shape[:-1], *indices.shape[1:])

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices as ``forward`` returns them → the codes: ``forward``'s ``quantized`` value,
        bit for bit (in float32, or the projection's dtype), in the input's layout. −1 (a
        dropped stage) adds nothing."""
        p = next(self.parameters(), None)  # the projection's, if any: its device and dtype
        indices = torch.as_tensor(indices, device=None if p is None else p.device)
        out_dtype = torch.float32 if p is None else p.dtype
        k = self.num_quantizers
        if k > 1 and indices.shape[-1:] != (k,):
            raise ValueError(f"indices of {k} stages end in a dimension of size {k}, got shape {tuple(indices.shape)}")
        stacked = indices.reshape(-1, k).long()
        dtype = torch.promote_types(out_dtype, torch.float32)
        rec = torch.zeros(len(stacked), self.codebook_dim, dtype=dtype, device=indices.device)
        for s in range(k):
            rec = self._add_stage(rec, stacked[:, s], s, check=True)
        shape = indices.shape if k == 1 else indices.shape[:-1]
        out = self.project_out(rec.view(*shape, self.codebook_dim).to(out_dtype))
        return self._features_back(out)

    # -------------------------------------------------------------------------------- helpers
    def _add_stage(self, rec: torch.Tensor, idx: torch.Tensor, k: int, check: bool = False) -> torch.Tensor:
        """``rec`` plus stage k's gain times the codewords of ``idx`` (nothing where −1): the one
        sum that ``forward`` and ``indices_to_codes`` share, so that they agree bit for bit.
        ``check``: refuse indices out of range (it waits for a GPU: not for the search's own)."""
        if check and ((idx < ABSENT).any() or (idx >= self.codebook_size).any()):
            raise ValueError(f"codeword index out of range [0, {self.codebook_size}) (−1: a dropped stage)")
        present = idx != ABSENT
        v = lattice.vectors(torch.where(present, idx, torch.zeros_like(idx)), check=False).to(rec.dtype)
        step = v if self.stage_gains[k] == 1.0 else v * self.stage_gains[k]
        return rec + torch.where(present[:, None], step, torch.zeros_like(step))

    def _stages_kept(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """Per row of the flattened input, how many stages it keeps (quantizer dropout), or None."""
        if not (self.training and self.quantize_dropout and self.num_quantizers > 1):
            return None
        samples = x.shape[0] if x.dim() > 1 else 1
        if x.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=x.device)
        dev = generator.device if generator is not None else x.device
        lo = self.quantize_dropout_cutoff_index + 1
        j = torch.randint(lo, self.num_quantizers + 1, (samples,), generator=generator, device=dev).to(x.device)
        per_sample = x[..., 0].numel() // samples
        return j.repeat_interleave(per_sample)

    def _features_last(self, z: torch.Tensor) -> torch.Tensor:
        shape = tuple(z.shape)
        if self.channel_first:
            if z.dim() < 2:
                raise ValueError(f"channel_first input needs a batch and a channel dimension, got shape {shape}")
            z = z.movedim(1, -1)
        if z.dim() < 1 or z.shape[-1] != self.dim:
            where = "dimension 1" if self.channel_first else "the last dimension"
            hint = ""
            if not self.channel_first and len(shape) >= 3 and shape[1] == self.dim:
                hint = " (features in dimension 1? pass channel_first=True)"
            elif self.dim == self.codebook_dim:
                hint = " (other widths: pass dim=<width> for a projection to 24)"
            raise ValueError(f"expected {self.dim} features in {where}, got shape {shape}{hint}")
        return z

    def _features_back(self, x: torch.Tensor) -> torch.Tensor:
        return x.movedim(-1, 1) if self.channel_first else x


def quantize_ste(z: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Unit vectors (..., 24) → their nearest codewords, with a straight-through gradient (the
    training path of ``models.vit.LeechTokenizer.forward``).

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
