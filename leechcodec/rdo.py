"""Rate–distortion optimised token choice for the ar coder (``encode --lambda``).

The encoder may write, for a token, a codeword a little farther from its latent when the
prior makes it much cheaper: for each stored position, in the coder's wavefront order (so the
context it sees is the one the decoder will see), it takes the codeword minimising

    D + λ · bits,   D = |y − v/√32|²  (y: the encoder's unit latent, v: the codeword),
                    bits = −log2 p(class) − log2 p(support | class) − log2 p(detail | class, support)

with p from the exact integer prior (``probability.bits``, the probabilities the range coder
uses). Candidates are a few codeword *supports* (octads, Golay words, pairs of coordinates)
near the latent — found with the bounds of the exact nearest search (``lattice``) — and the
supports the prior finds most likely in each class; for every candidate support all its
details (sign patterns, place of the ∓3, signs) are scored, so the best detail of a support is
found exactly. λ = 0 is not searched at all: the encoder writes its nearest codewords, today's
stream. D is the latent-space squared distance: cheap, and measured against the decoder's own
pixel error in docs/training-log.md ("Rate knob").

numpy only, like the coder. The bits are exact functions of the prior's integer frequencies;
D and the costs are float64 sums, so only candidates whose costs tie within rounding could be
ordered differently by another BLAS or by the earlier torch implementation (on kodim23 at
λ 0.01 and 0.05 the streams are byte-identical to that implementation's). Ties go to the
first: the first detail of a support, the first candidate support (the nearest codeword's
first), the first class; top-k selections take the first column among equal scores (``_top``).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .codewords import BASES, DETAIL, DIM, SQ_NORM, detail_vectors, split_index, tables
from .probability import bits

GEOMETRIC = 4  # nearest supports per class by the search's bounds (octads, Golay words)
SUPPORT_BATCH = 2048  # latents per geometric_supports call: its (n, 4096) float64 scores stay at 64 MB
CHOOSE_BATCH = 64  # positions per pass of ``choose``: their (M, 128, 24) float64 candidate codewords stay at ~15 MB
LIKELY = 4  # most likely supports per class under the prior (2 and 8 measured worse, docs/training-log.md)
MAX_DIST = 1.0  # candidates farther than this squared distance from the latent are never chosen
_SQRT32 = math.sqrt(SQ_NORM)


def _top(scores: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """(N, n) → (N, k) column indices of each row's k largest (``largest=False``: smallest)
    scores, best first, the smaller column first among equal scores: a deterministic top-k
    (a partition would leave any of the equal scores at the k-th place).

    For the few k the search takes, k passes of argmax (which returns the first of equal
    maxima) over a copy whose chosen entries are struck out: faster than a partition of rows
    of 4,096 scores, and the order is exactly (score, then column).
    """
    n_rows, n = scores.shape
    k = min(k, n)
    if k > 16:
        return np.argsort(-scores if largest else scores, axis=1, kind="stable")[:, :k]
    out = np.empty((n_rows, k), dtype=np.int64)
    if k == 0:
        return out
    work = np.array(scores, dtype=np.float64)
    rows = np.arange(n_rows)
    for i in range(k):
        out[:, i] = col = work.argmax(1) if largest else work.argmin(1)
        work[rows, col] = -np.inf if largest else np.inf
    return out


@functools.lru_cache(maxsize=None)
def _score_tables() -> tuple[np.ndarray, np.ndarray]:
    """(24, 759) octad masks and (24, 4096) Golay signs (−1)^c, float64, for ``geometric_supports``."""
    T = tables()
    return (np.ascontiguousarray(T["octad_mask"].T, dtype=np.float64),
            np.ascontiguousarray(1.0 - 2.0 * T["words"].T.astype(np.float64)))  # fmt: skip


def geometric_supports(y, nearest, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Supports near each latent: (N, C) classes and (N, C) supports, the nearest codeword's first.

    The octads with the largest Σ|y| over their 8 places, the Golay words whose signs agree
    best with y, and the three pairs of the largest |y|: the candidates the exact nearest search
    bounds from above (``lattice``'s structured search), so the best codeword of each is close.
    Scores are float64 sums of the float32 latents' entries, exact (so in any order) unless a
    row's entries span more than 2^25 in magnitude: the candidates depend neither on the BLAS
    nor on the batch; equal scores go to the first support (``_top``).
    """
    m = GEOMETRIC if m is None else m  # read at call time: benchmarks/knob_sweep.py sets it
    octad_mask, signs = _score_tables()
    yf = np.asarray(y, dtype=np.float32).astype(np.float64)
    ax = np.abs(yf)
    ncls, nsup, _ = split_index(np.asarray(nearest))
    octads = _top(ax @ octad_mask, m)
    words = _top(yf @ signs, m)
    top3 = _top(ax, 3)
    pair_rank = tables()["pair_rank"]
    pairs = []
    for u, v in ((0, 1), (0, 2), (1, 2)):
        a, b = np.minimum(top3[:, u], top3[:, v]), np.maximum(top3[:, u], top3[:, v])
        pairs.append(pair_rank[a, b])
    pairs = np.stack(pairs, 1)
    cls = np.concatenate([ncls[:, None], np.zeros_like(octads), np.ones_like(words), np.full_like(pairs, 2)], 1)
    sup = np.concatenate([nsup[:, None], octads, words, pairs], 1)
    return cls, sup


def candidate_supports(y, nearest, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``geometric_supports`` of every latent, ``batch`` (``SUPPORT_BATCH``) at a time: memory
    bounded by the batch whatever the picture's size, the same candidates as one call (each
    row's scores and top-k depend on that row alone). (N, C) int8 classes and int16 supports
    (36 bytes a token, not 192); ``choose`` widens each chunk's."""
    batch = SUPPORT_BATCH if batch is None else batch  # read at call time: tests set it
    n = len(y)
    cls = sup = None
    for i in range(0, n, batch):
        c, s = geometric_supports(y[i : i + batch], nearest[i : i + batch])
        if cls is None:
            cls = np.empty((n, c.shape[1]), dtype=np.int8)
            sup = np.empty((n, c.shape[1]), dtype=np.int16)  # supports < 4096
        cls[i : i + batch], sup[i : i + batch] = c, s
    if cls is None:
        return np.empty((0, 0), dtype=np.int8), np.empty((0, 0), dtype=np.int16)
    return cls, sup


def choose(prior, h, y, nearest, cls0, sup0, lam: float, likely: int | None = None) -> np.ndarray:
    """The codeword minimising D + λ·bits at each of N positions.

    Args:
        prior: an exact prior (``exact_prior.ExactPrior``).
        h: (N, hidden) the prior's features of the positions (their causal contexts).
        y: (N, 24) unit latents.
        nearest: (N,) their nearest codewords: kept where no candidate is within ``MAX_DIST``.
        cls0, sup0: (N, C) candidate supports (``geometric_supports``); the prior's ``likely``
            most probable supports of each class are added.
        lam: λ, in units of D per bit.

    Returns:
        (N,) int64 codeword indices.

    Positions are independent: they are chosen ``CHOOSE_BATCH`` at a time, so the candidates'
    codewords and their detail logits never take more than a few tens of MB.
    """
    b = CHOOSE_BATCH
    parts = [_choose(prior, h[i : i + b], y[i : i + b], nearest[i : i + b], cls0[i : i + b], sup0[i : i + b], lam,
                     likely) for i in range(0, len(h), b)]  # fmt: skip
    return np.concatenate(parts) if parts else np.array(nearest, dtype=np.int64)


def _choose(prior, h, y, nearest, cls0, sup0, lam: float, likely: int | None) -> np.ndarray:
    """``choose`` for one batch of positions."""
    likely = LIKELY if likely is None else likely  # read at call time, as MAX_DIST
    n = len(h)
    yd = np.asarray(y, dtype=np.float64)
    cls0, sup0 = np.asarray(cls0, dtype=np.int64), np.asarray(sup0, dtype=np.int64)
    bits_c = bits(prior.class_logits(h))  # (N, 3)
    best_cost = np.full(n, math.inf)
    best_idx = np.array(nearest, dtype=np.int64)
    rows = np.arange(n)
    for k in range(len(BASES)):
        bits_s = bits(prior.support_logits(h, k))  # (N, SUPPORT[k])
        mine = np.where(cls0 == k, sup0, -1)  # (N, C): this class's candidates, -1 elsewhere
        cand = np.concatenate([mine, _top(bits_s, likely, largest=False)], 1)  # (N, C')
        r, j = np.nonzero(cand >= 0)  # row-major: each position's candidates in their order
        if len(r) == 0:
            continue
        a = cand[r, j]
        bits_d = bits(prior.detail_logits(h[r], k, a))  # (M, DETAIL[k])
        vecs = detail_vectors(k)[a].astype(np.float64)  # (M, DETAIL[k], 24) integer codewords
        dist = 2.0 - 2.0 * np.matmul(vecs, yd[r][:, :, None])[:, :, 0] / _SQRT32
        cost = dist + lam * (bits_d + (bits_c[r, k] + bits_s[r, a])[:, None])
        cost = np.where(dist <= MAX_DIST, cost, math.inf)  # far codewords: the decoder's error is not |y - v|²
        d_arg = cost.argmin(1)  # first detail on ties
        c_min = cost[np.arange(len(r)), d_arg]
        idx = BASES[k] + a * DETAIL[k] + d_arg
        # per position, the cheapest candidate (the earliest on ties: the nearest codeword's support first)
        table = np.full(cand.shape, math.inf)
        table[r, j] = c_min
        first = table.argmin(1)
        pos_best = table[rows, first]
        better = pos_best < best_cost  # a position without candidates here has pos_best = inf
        best_cost = np.where(better, pos_best, best_cost)
        at = np.full(cand.shape, -1, dtype=np.int64)
        at[r, j] = idx
        best_idx[better] = at[rows, first][better]
    return best_idx


def as_latents(latents) -> np.ndarray:
    """(…, 24) latents as (N, 24) float32 unit vectors (``choose`` widens each chunk to float64:
    a 64-megapixel picture's latents stay at 100 MB). The norm is taken in float64."""
    y = np.asarray(latents, dtype=np.float32).reshape(-1, DIM)
    norm = np.sqrt(np.square(y, dtype=np.float64).sum(1, keepdims=True))
    return (y / np.maximum(norm, 1e-12)).astype(np.float32)
