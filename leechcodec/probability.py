"""The ar coder's integer probabilities: integer logits → integer frequencies, and their bits.

The prior (``exact_prior``) returns integer logits in 1/256 nat; ``frequencies`` maps them to
integers with an integer table (``exp_table``), so encoder and decoder hand the range coder
(``coders``) bit-identical inputs, and the rate–distortion choice (``rdo``) counts the bits
the coder spends (``bits``). docs/FORMAT.md specifies the table to the bit. numpy only.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np

EXP_FRAC = 8  # logits arrive in units of 2^-8 nat
EXP_ONE = 2**24  # frequency of the most likely symbol
EXP_SPAN = 17 * 2**EXP_FRAC  # logits more than 17 nats below the best get frequency 1


@functools.lru_cache(maxsize=None)
def exp_table() -> np.ndarray:
    """round(2^24 · exp(-d/256)) for d = 0 … EXP_SPAN (at least 1), from integers only, as a
    read-only float64 array (the type constriction takes; every entry is exact in it).

    exp(-1/256) is a Taylor sum in exact rationals, fixed to 64 fractional bits; its powers
    are taken by integer multiply-and-shift, so every platform builds the same table.
    """
    x, term, r = Fraction(-1, 2**EXP_FRAC), Fraction(1), Fraction(0)
    for k in range(1, 14):
        r += term
        term = term * x / k
    step = int(r * 2**64)
    acc, out = 2**64, []
    for _ in range(EXP_SPAN + 1):
        out.append(max(1, (acc * EXP_ONE + 2**63) >> 64))
        acc = (acc * step) >> 64
    table = np.array(out, dtype=np.float64)
    table.setflags(write=False)  # cached: shared by every caller
    return table


def frequencies(logits) -> np.ndarray:
    """(N, n) integer logits (1/256 nat, float64) → (N, n) integer frequencies (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    d = np.minimum(logits.max(1, keepdims=True) - logits, EXP_SPAN).astype(np.int64)
    return exp_table()[d]


def bits(logits) -> np.ndarray:
    """(N, n) integer logits → (N, n) bits of each symbol under the coder's frequencies,
    −log2(f / Σf)."""
    f = frequencies(logits)
    return np.log2(f.sum(1, keepdims=True)) - np.log2(f)
