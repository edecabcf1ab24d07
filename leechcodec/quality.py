"""``--quality``: plain Python (the CLI's help quotes the table).

``QUALITY`` rows are (quality, scale, stages, λ), highest first: the coded size
(``encode --scale``), the residual stages and the rate knob λ of ``codec.encode``, and
``quality_setting`` says what a quality between two rows takes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

# --quality: rows (quality, scale, stages, lambda), highest first (quality_setting). Every row is a point of the
# bench's curve (kodak_eval/run.py: SCALES), so README.md's quality table quotes its Kodak size and PSNR;
# tests/test_stages.py checks that the rows rise in rate and PSNR on the bench and, on Kodak, a row's size
QUALITY = (
    (100, 2.0, 2, 0.0),
    (90, 1.5, 2, 0.0),
    (80, 1.25, 2, 0.0),
    (70, 2.0, 1, 0.0),
    (60, 1.5, 1, 0.0),
    (50, 1.0, 1, 0.0),
    (40, 0.875, 1, 0.0),
    (30, 0.75, 1, 0.0),
    (20, 0.625, 1, 0.0),
    (10, 0.5, 1, 0.0),
    (5, 0.4, 1, 0.0),
    (0, 0.3, 1, 0.0),
)
LAMBDA_FLOOR = 1e-4  # lambda 0 in the log interpolation: a row of lambda 0 is met only at its own quality


class Setting(NamedTuple):
    """What a quality encodes with: the coded size's factor, the stages (at most) and λ."""

    scale: float
    stages: int
    lam: float


def quality_setting(quality: float) -> Setting:
    """``--quality`` 0 … 100 → (scale, stages, λ) by the ``QUALITY`` table.

    Between two rows of the same number of stages the scale is interpolated geometrically and
    λ in log (λ 0 counting as ``LAMBDA_FLOOR``); between rows of different stages the lower row
    holds up to the higher row's quality. So a higher quality never has fewer stages, nor, with
    as many, a smaller scale or a larger λ.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be a number from 0 to 100, got {quality!r}")
    for (q_hi, s_hi, k_hi, l_hi), (q_lo, s_lo, k_lo, l_lo) in zip(QUALITY, QUALITY[1:]):
        if q_lo <= quality <= q_hi:
            if quality == q_hi:
                return Setting(s_hi, k_hi, l_hi)
            if k_hi != k_lo or quality == q_lo:
                return Setting(s_lo, k_lo, l_lo)
            t = (q_hi - quality) / (q_hi - q_lo)  # 0 at q_hi, 1 at q_lo
            lo, hi = max(l_hi, LAMBDA_FLOOR), max(l_lo, LAMBDA_FLOOR)
            lam = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))) if l_hi or l_lo else 0.0
            return Setting(s_hi * (s_lo / s_hi) ** t, k_hi, lam)
    raise AssertionError("QUALITY covers 0 … 100")


def table_text() -> str:
    """The table as the help and the README print it: "100: scale 2, 2 stages, lambda 0; …"."""
    return "; ".join(f"{q}: scale {s:g}, {k} stage{'s' * (k > 1)}" + (f", lambda {lam:g}" if lam else "")
                     for q, s, k, lam in QUALITY)
