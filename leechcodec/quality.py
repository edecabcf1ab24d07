"""``--quality`` and the stages a ``--bpp`` target uses: plain Python (the CLI's help quotes the table).

``QUALITY`` rows are (quality, stages, λ), highest first; λ is the rate knob of
``codec.encode`` (``rdo``, ``stages.later_tokens``), and ``quality_setting`` says what a
quality between two rows takes.
"""

from __future__ import annotations

import math

from .container import MAX_STAGES

# --quality: rows (quality, stages, lambda), highest first (quality_setting). Every row is a point of the
# bench's curve (kodak_eval/run.py: LAMBDAS at one stage, STAGED), so README.md's quality table quotes
# its Kodak size and PSNR; tests/test_stages.py checks the order and, on Kodak, a row's size
QUALITY = (
    (100, 4, 0.0),
    (90, 3, 0.0),
    (85, 3, 0.003),
    (75, 2, 0.0),
    (70, 2, 0.005),
    (60, 2, 0.01),
    (50, 1, 0.0),
    (40, 1, 0.01),
    (30, 1, 0.03),
    (0, 1, 0.1),
)
LAMBDA_FLOOR = 1e-4  # lambda 0 in the log interpolation: a row of lambda 0 is met only at its own quality
FIXED_BPP = 8 * 2251 / (256 * 256)  # 0.2748: one stage of the fixed coder (2,251 bytes per 256x256 tile)


def quality_setting(quality: float) -> tuple[int, float]:
    """``--quality`` 0 … 100 → (stages, λ) by the ``QUALITY`` table.

    Between two rows of the same number of stages λ is interpolated in log (λ 0 counting as
    ``LAMBDA_FLOOR``); between rows of different stages the lower row holds up to the higher
    row's quality. So a higher quality never has fewer stages, nor, with as many, a larger λ.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be a number from 0 to 100, got {quality!r}")
    for (q_hi, k_hi, l_hi), (q_lo, k_lo, l_lo) in zip(QUALITY, QUALITY[1:]):
        if q_lo <= quality <= q_hi:
            if quality == q_hi:
                return k_hi, l_hi
            if k_hi != k_lo or quality == q_lo:
                return k_lo, l_lo
            t = (q_hi - quality) / (q_hi - q_lo)  # 0 at q_hi, 1 at q_lo
            lo, hi = max(l_hi, LAMBDA_FLOOR), max(l_lo, LAMBDA_FLOOR)
            return k_hi, math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
    raise AssertionError("QUALITY covers 0 … 100")


def stages_for_bpp(bpp: float) -> int:
    """The most stages a ``bpp`` target is given: one more than the whole fixed stages it could pay
    for, rounded up (0.28 bpp: 3); the rate knob leaves out what does not fit."""
    if not (math.isfinite(bpp) and bpp > 0):
        return 1
    return min(MAX_STAGES, 1 + math.ceil(bpp / FIXED_BPP))




def table_text() -> str:
    """The table as the help and the README print it: "100: 4 stages, lambda 0; 90: …"."""
    return "; ".join(f"{q}: {k} stage{'s' * (k > 1)}, lambda {lam:g}" for q, k, lam in QUALITY)
