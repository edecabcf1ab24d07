"""Rate–distortion optimised token choice for the ar coder (``encode --lambda``).

The encoder may write, for a token, a codeword a little farther from its latent when the
prior makes it much cheaper: for each stored position, in the coder's wavefront order (so the
context it sees is the one the decoder will see), it takes the codeword minimising

    D + λ · bits,   D = |y − v/√32|²  (y: the encoder's unit latent, v: the codeword),
                    bits = −log2 p(class) − log2 p(support | class) − log2 p(detail | class, support)

with p from the exact integer prior (``coders.frequencies``, the probabilities the range coder
uses). Candidates are a few codeword *supports* (octads, Golay words, pairs of coordinates)
near the latent — found with the bounds of the exact nearest search (``lattice``) — and the
supports the prior finds most likely in each class; for every candidate support all its
details (sign patterns, place of the ∓3, signs) are scored, so the best detail of a support is
found exactly. λ = 0 is not searched at all: the encoder writes its nearest codewords, today's
stream. D is the latent-space squared distance: cheap, and measured against the decoder's own
pixel error in MODEL_CARD.md ("Rate knob").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import lattice

GEOMETRIC = 4  # nearest supports per class by the search's bounds (octads, Golay words)
SUPPORT_BATCH = 4096  # latents per geometric_supports call: its (n, 4096) float32 scores stay at 64 MB
CHOOSE_BATCH = 64  # positions per pass of ``choose``: their (M, 128, 24) float64 candidate codewords stay at ~15 MB
LIKELY = 4  # most likely supports per class under the prior (2 and 8 measured worse, MODEL_CARD.md)
MAX_DIST = 1.0  # candidates farther than this squared distance from the latent are never chosen
_SQRT32 = math.sqrt(lattice.SQ_NORM)


def bits_of(freq: torch.Tensor) -> torch.Tensor:
    """(N, n) integer frequencies → (N, n) bits of each symbol, −log2(f / Σf), on their device."""
    f = torch.as_tensor(freq, dtype=torch.float64)
    return torch.log2(f.sum(1, keepdim=True)) - torch.log2(f)


def _bits(logits: torch.Tensor) -> torch.Tensor:
    """(N, n) integer logits → (N, n) bits under the range coder's frequencies, on the logits' device."""
    from .coders import frequency_tensor  # coders imports constriction lazily; no cycle at import

    return bits_of(frequency_tensor(logits))


def geometric_supports(y: torch.Tensor, nearest: torch.Tensor, m: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Supports near each latent: (N, C) classes and (N, C) supports, the nearest codeword's first.

    The octads with the largest Σ|y| over their 8 places, the Golay words whose signs agree
    best with y, and the three pairs of the largest |y|: the candidates the exact nearest search
    bounds from above (``lattice._nearest_structured``), so the best codeword of each is close.
    """
    m = GEOMETRIC if m is None else m  # read at call time: benchmarks/knob_sweep.py sets it
    T = lattice._torch_tables(str(y.device))
    yf = y.float()
    ax = yf.abs()
    ncls, nsup, _ = lattice.split_index(nearest.to(y.device))
    octads = (ax @ T["octad_mask"].T).topk(min(m, 759), dim=1).indices
    words = (yf @ T["signs"].T).topk(min(m, 4096), dim=1).indices
    top3 = ax.topk(3, dim=1).indices
    pairs = []
    for u, v in ((0, 1), (0, 2), (1, 2)):
        a, b = torch.minimum(top3[:, u], top3[:, v]), torch.maximum(top3[:, u], top3[:, v])
        pairs.append(T["pair_rank"][a, b].long())
    pairs = torch.stack(pairs, 1)
    cls = torch.cat([ncls[:, None], torch.zeros_like(octads), torch.ones_like(words), torch.full_like(pairs, 2)], 1)
    sup = torch.cat([nsup[:, None], octads, words, pairs], 1)
    return cls, sup


def candidate_supports(y: torch.Tensor, nearest: torch.Tensor, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``geometric_supports`` of every latent, ``batch`` (``SUPPORT_BATCH``) at a time: memory
    bounded by the batch whatever the picture's size, the same candidates as one call (each
    row's scores and top-k depend on that row alone). (N, C) int8 classes and int16 supports
    (36 bytes a token, not 192) on ``y``'s device; ``choose`` widens each chunk's."""
    batch = SUPPORT_BATCH if batch is None else batch  # read at call time: tests set it
    n = y.shape[0]
    cls = sup = None
    for i in range(0, n, batch):
        c, s = geometric_supports(y[i : i + batch], nearest[i : i + batch])
        if cls is None:
            cls = torch.empty(n, c.shape[1], dtype=torch.int8, device=y.device)
            sup = torch.empty(n, c.shape[1], dtype=torch.int16, device=y.device)  # supports < 4096
        cls[i : i + batch], sup[i : i + batch] = c, s
    if cls is None:
        return torch.empty(0, 0, dtype=torch.int8, device=y.device), torch.empty(0, 0, dtype=torch.int16, device=y.device)
    return cls, sup


def choose(prior, h: torch.Tensor, y: torch.Tensor, nearest: torch.Tensor, cls0: torch.Tensor, sup0: torch.Tensor,
           lam: float, likely: int | None = None) -> torch.Tensor:
    """The codeword minimising D + λ·bits at each of N positions.

    Args:
        prior: an exact prior (``models.prior.ExactPrior``).
        h: (N, hidden) the prior's features of the positions (their causal contexts).
        y: (N, 24) unit latents.
        nearest: (N,) their nearest codewords: kept where no candidate is within ``MAX_DIST``.
        cls0, sup0: (N, C) candidate supports (``geometric_supports``); the prior's ``likely``
            most probable supports of each class are added.
        lam: λ, in units of D per bit.

    Returns:
        (N,) codeword indices on ``h``'s device.

    Every tensor is used on ``h``'s device (the prior's), whatever device the others come on.
    Positions are independent: they are chosen ``CHOOSE_BATCH`` at a time, so the candidates'
    codewords and their detail logits never take more than a few tens of MB.
    """
    b = CHOOSE_BATCH
    parts = [_choose(prior, h[i : i + b], y[i : i + b], nearest[i : i + b], cls0[i : i + b], sup0[i : i + b], lam,
                     likely) for i in range(0, h.shape[0], b)]  # fmt: skip
    return torch.cat(parts) if parts else nearest.to(h.device, torch.long, copy=True)


def _choose(prior, h: torch.Tensor, y: torch.Tensor, nearest: torch.Tensor, cls0: torch.Tensor, sup0: torch.Tensor,
            lam: float, likely: int | None) -> torch.Tensor:
    """``choose`` for one batch of positions."""
    likely = LIKELY if likely is None else likely  # read at call time, as MAX_DIST
    n = h.shape[0]
    dev = h.device
    yd = y.to(dev, torch.float64)
    cls0, sup0 = cls0.to(dev, torch.long), sup0.to(dev, torch.long)
    bits_c = _bits(prior.class_logits(h))  # (N, 3)
    best_cost = torch.full((n,), math.inf, dtype=torch.float64, device=dev)
    best_idx = nearest.to(dev, torch.long, copy=True)
    for k in range(len(lattice.BASES)):
        bits_s = _bits(prior.support_logits(h, k))  # (N, SUPPORT[k])
        mine = torch.where(cls0 == k, sup0, -1)  # (N, C): this class's candidates, -1 elsewhere
        cand = torch.cat([mine, bits_s.topk(likely, dim=1, largest=False).indices], 1)  # (N, C')
        r, j = torch.nonzero(cand >= 0, as_tuple=True)
        if len(r) == 0:
            continue
        a = cand[r, j]
        bits_d = _bits(prior.detail_logits(h[r], k, a))  # (M, DETAIL[k])
        vecs = _detail_vectors(prior, k, dev)[a].double()  # (M, DETAIL[k], 24) integer codewords
        dist = 2.0 - 2.0 * torch.einsum("mdk,mk->md", vecs, yd[r]) / _SQRT32
        cost = dist + lam * (bits_d + (bits_c[r, k] + bits_s[r, a])[:, None])
        cost = torch.where(dist <= MAX_DIST, cost, math.inf)  # far codewords: the decoder's error is not |y - v|²
        c_min, d_arg = cost.min(1)  # first detail on ties
        idx = lattice.BASES[k] + a * lattice.DETAIL[k] + d_arg
        # per position, the cheapest candidate (the earliest on ties: the nearest codeword's support first)
        pos_best = torch.full((n,), math.inf, dtype=torch.float64, device=dev).scatter_reduce(0, r, c_min, "amin")
        win = c_min == pos_best[r]
        first = torch.full((n,), len(r), dtype=torch.long, device=dev).scatter_reduce(
            0, r[win], torch.arange(len(r), device=dev)[win], "amin")
        has = first < len(r)
        better = has & (pos_best < best_cost)
        best_cost = torch.where(better, pos_best, best_cost)
        best_idx[better] = idx[first[better]]
    return best_idx


def _detail_vectors(prior, k: int, dev) -> torch.Tensor:
    """(SUPPORT[k], DETAIL[k], 24) int8 integer codewords of class k on ``dev``, cached on the prior
    (4.7 MB for all three classes; float64 would hold 38 MB for the whole encode)."""
    cache = prior.__dict__.setdefault("_rdo_vectors", {})
    key = (k, str(torch.device(dev)))
    if key not in cache:
        start = lattice.BASES[k]
        rows = torch.from_numpy(lattice.codebook()[start : start + lattice.SUPPORT[k] * lattice.DETAIL[k]])
        cache[key] = rows.to(dev, torch.int8).reshape(lattice.SUPPORT[k], lattice.DETAIL[k], lattice.DIM)
    return cache[key]


def as_latents(latents: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(…, 24) latents as (N, 24) float32 unit vectors (``choose`` widens each chunk to float64:
    a 64-megapixel picture's latents stay at 100 MB)."""
    y = torch.as_tensor(np.asarray(latents), dtype=torch.float32).reshape(-1, lattice.DIM)
    return y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
