"""Residual Λ24 stages: more tokens per patch for more quality, with one decoder.

Stage 1 is the codec's token: the codeword nearest the encoder's unit latent ``z``. Stage
``k ≥ 2`` quantizes what the stages before it left over, ``r_k = z − ẑ_{k−1}``: its token is
the codeword nearest the direction of ``r_k`` (the exact search of ``lattice``, which ignores
norms), and it adds ``gain_k`` times that unit codeword to the decoder's input::

    ẑ = c_1 + gain_2 · c_2 + gain_3 · c_3 + …,   gain_k = stage_gain · stage_decay^(k − 2)

The gains are fixed per stage by the model's config (``stage_gain``, ``stage_decay``;
``models/config.py``), so the decoder network runs once, on the sum, whatever the number of
stages. The defaults (``STAGE_GAIN``, ``STAGE_DECAY``) fit the shipped model's residuals on
Kodak (mean ``r_k · c_k`` 0.520, 0.325, 0.204 for k = 2, 3, 4; ``python benchmarks/stages.py``).

A later-stage position may hold no token (``ABSENT``): the ``ar`` coder spends a flag on it
instead of 17.585 bits, and the rate knob (``lam``) leaves out the tokens whose distortion
gain is not worth their bits. The fixed coder stores every token of every stage.

numpy only, like the rest of encode and decode.
"""

from __future__ import annotations

import numpy as np

from . import lattice
from .container import MAX_STAGES  # what a stream may hold (docs/FORMAT.md, version 3)

ABSENT = -1  # a later-stage position without a token
TOKEN_BITS = 18.0  # what the rate knob charges a later-stage token: 17.585 bits and about one for its flag
STAGE_GAIN = 0.52  # gain_2: a config's ``stage_gain`` unless it says otherwise
STAGE_DECAY = 0.625  # gain_(k+1) / gain_k: a config's ``stage_decay`` unless it says otherwise


def gains(model, stages: int) -> np.ndarray:
    """(stages,) float32: the factor of each stage's unit codeword in the decoder's input.
    ``model``: a model with a ``cfg``, or the config itself."""
    cfg = getattr(model, "cfg", model)
    g2, decay = getattr(cfg, "stage_gain", STAGE_GAIN), getattr(cfg, "stage_decay", STAGE_DECAY)
    return np.array(gain_series(stages, g2, decay), dtype=np.float32)


def gain_series(stages: int, g2: float = STAGE_GAIN, decay: float = STAGE_DECAY) -> list[float]:
    """1, g2, g2·decay, …: ``stages`` gains as Python floats (``gains`` rounds them to float32)."""
    return [1.0] + [g2 * decay**k for k in range(stages - 1)]


def check_stages(stages: int) -> int:
    """``stages`` if it is a number of stages a stream can hold, else ValueError."""
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or not 1 <= stages <= MAX_STAGES:
        raise ValueError(f"the number of stages must be 1 to {MAX_STAGES}, got {stages!r}")
    return int(stages)


def later_tokens(z: np.ndarray, first: np.ndarray, gain: np.ndarray, lam: float = 0.0,
                 every: bool = False) -> np.ndarray:
    """The tokens of stages 2 … len(gain) for unit latents ``z`` (n, 24) whose stage-1 tokens are
    ``first`` (n,): (len(gain) − 1, n) int64, ``ABSENT`` where a position has none.

    A token is kept where it lowers the squared distance to ``z`` by more than
    ``lam · TOKEN_BITS`` (so, at ``lam`` = 0, wherever it lowers it at all); ``every`` keeps
    every token (the fixed coder, which cannot leave one out).
    """
    z = np.asarray(z, dtype=np.float32).reshape(-1, lattice.DIM)
    first = np.asarray(first, dtype=np.int64).reshape(-1)
    rec = lattice.vectors(first).astype(np.float32)
    out = np.full((len(gain) - 1, len(z)), ABSENT, np.int64)
    for k in range(1, len(gain)):
        r = z - rec
        idx = lattice.nearest(r)
        step = np.float32(gain[k]) * lattice.vectors(idx).astype(np.float32)
        # |r|² − |r − step|² = 2 r·step − |step|²: what the token takes off the distortion
        gain_d = 2 * np.einsum("ij,ij->i", r, step, dtype=np.float64) - np.einsum("ij,ij->i", step, step, dtype=np.float64)
        keep = np.ones(len(z), bool) if every else gain_d > lam * TOKEN_BITS
        out[k - 1] = np.where(keep, idx, ABSENT)
        rec = rec + np.where(keep[:, None], step, np.float32(0))
    return out


def latent_sum(tokens: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Tokens (stages, …) → the decoder's input (…, 24) float32: Σ gain_k · codeword_k / √32,
    an ``ABSENT`` token adding nothing. One stage gives the unit codewords themselves."""
    tokens = np.asarray(tokens)
    q = lattice.vectors(tokens[0]).astype(np.float32)
    for k in range(1, len(tokens)):
        t = tokens[k]
        present = t != ABSENT
        v = lattice.vectors(np.where(present, t, 0)).astype(np.float32)
        q += np.float32(gain[k]) * np.where(present[..., None], v, np.float32(0))
    return q
