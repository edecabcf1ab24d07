"""The first shell of the Leech lattice Λ24: its 196,560 codewords in their canonical index order.

Coordinates are the standard integer ones (scaled by √8), so every minimal vector has
squared norm 32; divided by √32 they are unit vectors whose closest pairs are at distance 1.

Canonical index order (part of the .lq format, docs/FORMAT.md; never change it)
-------------------------------------------------------------------------------
The extended Golay code C is generated from the cyclic [23,12] code with generator
polynomial g(x) = 1 + x^2 + x^4 + x^5 + x^6 + x^10 + x^11 (coefficient of x^i at
coordinate i), extended by an overall parity bit at coordinate 23. A codeword is read as
the integer ``sum(c_i << i)`` and the 4,096 codewords are sorted by that integer; the 759
octads (weight-8 codewords) keep that order.

==========  ==================  ===============================================================
index       count               vector
==========  ==================  ===============================================================
0           759 × 128 = 97,152  ``128*o + p``: ±2 on octad ``o`` (its positions q0<…<q7). Bit k
                                of ``p`` (k < 7) makes the sign at q_k negative; the sign at q7
                                is negative iff popcount(p) is odd (even number of minus signs).
97,152      4,096 × 24 = 98,304 ``97152 + 24*c + j``: s_i = (-1)^{c_i} for Golay word ``c``, then
                                v = s with v_j replaced by -3·s_j (shape ∓3 ±1^23).
195,456     276 × 4 = 1,104     ``195456 + 4*r + t``: ±4 at the pair (a, b), a < b, of rank ``r``
                                in lexicographic order; bit 0 of ``t`` negates a, bit 1 negates b.
==========  ==================  ===============================================================

Each block is (support × detail): a codeword is (class, support, detail) with index
``BASES[class] + support · DETAIL[class] + detail``; the AR prior codes it in that order.

This module builds the codewords, the tables of their structure and the index arithmetic, in
numpy; ``lattice`` (numpy searches, and the public face) and ``lattice_torch`` (torch searches)
both import it, and the coders read the codebook from it.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

N_CODEWORDS = 196_560
DIM = 24
SQ_NORM = 32
N_OCTAD_VECS = 759 * 128
N_GOLAY_VECS = 4096 * 24
OCTAD_BASE = 0
GOLAY_BASE = N_OCTAD_VECS
PAIR_BASE = N_OCTAD_VECS + N_GOLAY_VECS
BITS_PER_INDEX = float(np.log2(N_CODEWORDS))

BASES = (OCTAD_BASE, GOLAY_BASE, PAIR_BASE)
SUPPORT = (759, 4096, 276)  # octads / Golay words / pairs
DETAIL = (128, 24, 4)  # sign patterns / place of the ∓3 / signs

_GOLAY_GENERATOR = (0, 2, 4, 5, 6, 10, 11)  # exponents of g(x)

# shared by the searches of ``lattice`` and ``lattice_torch``
PRUNE_SLACK = 1e-4  # float32 slack on the structured search's bounds; survivors are scored exactly in float64
TILED_STATS = {"rows": 0, "uncertified": 0}  # rows of the tiled search since import, for profiles


def check_shape(z) -> None:
    """ValueError unless ``z`` (numpy or torch) is an (N, 24) array."""
    if z.ndim != 2 or z.shape[1] != DIM:
        raise ValueError(f"expected an (N, {DIM}) array, got shape {tuple(z.shape)}")


@functools.lru_cache(maxsize=None)
def golay_codewords() -> np.ndarray:
    """The 4,096 extended Golay codewords as a (4096, 24) uint8 0/1 array, in index order."""
    basis = []
    for shift in range(12):
        word = np.zeros(24, dtype=np.uint8)
        for e in _GOLAY_GENERATOR:
            word[e + shift] = 1
        word[23] = word[:23].sum() % 2
        basis.append(word)
    basis = np.array(basis)  # (12, 24)
    msgs = (np.arange(4096)[:, None] >> np.arange(12)[None, :]) & 1  # (4096, 12)
    words = (msgs @ basis) % 2  # (4096, 24)
    keys = (words.astype(np.int64) << np.arange(24)).sum(1)
    words = words[np.argsort(keys)]
    words.setflags(write=False)
    return words.astype(np.uint8)


@functools.lru_cache(maxsize=None)
def tables() -> dict:
    """The structure of the index order: Golay ``words`` (4096, 24), ``octad_mask`` (759, 24),
    ``octpos`` (759, 8) each octad's places ascending, ``octad_neg`` (128, 8) the minus signs
    of each sign pattern, ``pairs`` (276, 2) and ``pair_rank`` (24, 24) (−1 off a < b)."""
    words = golay_codewords()
    weights = words.sum(1)
    octad_mask = words[weights == 8]  # (759, 8 ones)
    octpos = np.stack([np.flatnonzero(w) for w in octad_mask])  # (759, 8) ascending
    p = np.arange(128)
    bits7 = (p[:, None] >> np.arange(7)[None, :]) & 1  # (128, 7)
    last = bits7.sum(1) % 2
    octad_neg = np.concatenate([bits7, last[:, None]], 1)  # (128, 8) 1 = minus
    pairs = np.array(list(itertools.combinations(range(24), 2)))  # (276, 2)
    pair_rank = np.full((24, 24), -1, dtype=np.int64)
    pair_rank[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    return dict(
        words=words,
        octad_mask=octad_mask,
        octpos=octpos,
        octad_neg=octad_neg,
        pairs=pairs,
        pair_rank=pair_rank,
    )


@functools.lru_cache(maxsize=None)
def codebook_int8() -> np.ndarray:
    """All 196,560 integer codewords (entries −4…4) as a read-only (196560, 24) int8 array, in
    index order: the one copy every user shares (4.7 MB)."""
    t = tables()
    # octads: (759, 128, 24)
    oct_vecs = np.zeros((759, 128, 24), dtype=np.int8)
    signs = (2 * (1 - 2 * t["octad_neg"].astype(np.int8)))  # (128, 8) values ±2
    rows = np.arange(759)[:, None, None]
    cols = t["octpos"][:, None, :]  # (759, 1, 8)
    oct_vecs[rows, np.arange(128)[None, :, None], cols] = signs[None]
    # Golay: (4096, 24 j, 24 i)
    s = (1 - 2 * t["words"].astype(np.int8))  # (4096, 24) ±1
    mult = (1 - 4 * np.eye(24, dtype=np.int8))  # (24 j, 24 i): -3 on the diagonal
    gol_vecs = s[:, None, :] * mult[None]
    # pairs: (276, 4, 24)
    pair_vecs = np.zeros((276, 4, 24), dtype=np.int8)
    tt = np.arange(4)
    sa = 4 * (1 - 2 * (tt & 1))
    sb = 4 * (1 - 2 * ((tt >> 1) & 1))
    r = np.arange(276)[:, None]
    pair_vecs[r, tt[None, :], t["pairs"][:, 0:1]] = sa[None, :]
    pair_vecs[r, tt[None, :], t["pairs"][:, 1:2]] = sb[None, :]
    book = np.concatenate(
        [oct_vecs.reshape(-1, 24), gol_vecs.reshape(-1, 24), pair_vecs.reshape(-1, 24)]
    )
    book.setflags(write=False)
    return book


def detail_vectors(cls: int) -> np.ndarray:
    """(SUPPORT[cls], DETAIL[cls], 24) int8 codewords of class ``cls``, by support and detail: a
    view of ``codebook_int8`` (callers widen the rows they take; the whole codebook in float64
    would be 38 MB)."""
    lo = BASES[cls]
    return codebook_int8()[lo : lo + SUPPORT[cls] * DETAIL[cls]].reshape(SUPPORT[cls], DETAIL[cls], DIM)


def split_index(idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codeword indices (any shape) → int64 (class, support, detail); inverse of ``join_index``."""
    idx = np.asarray(idx, dtype=np.int64)
    cls = (idx >= GOLAY_BASE).astype(np.int64) + (idx >= PAIR_BASE)
    off = idx - np.asarray(BASES, dtype=np.int64)[cls]
    m = np.asarray(DETAIL, dtype=np.int64)[cls]
    return cls, off // m, off % m


def join_index(cls, support, detail) -> np.ndarray:
    """(class, support, detail) → int64 codeword indices."""
    cls, support, detail = (np.asarray(x, dtype=np.int64) for x in (cls, support, detail))
    return np.asarray(BASES, dtype=np.int64)[cls] + support * np.asarray(DETAIL, dtype=np.int64)[cls] + detail
