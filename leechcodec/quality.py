"""``--quality`` and the stages a ``--bpp`` target uses: plain Python (the CLI's help quotes the table).

``QUALITY`` rows are (quality, stages, λ), highest first. A quality between two rows takes the
λ interpolated in log between them, and the stages of the nearer row; λ is the rate knob of
``codec.encode`` (``rdo``, ``stages.later_tokens``). The rows were chosen on Kodak with the
shipped model so that size and PSNR rise with the quality (docs/training-log.md, "Stages").
"""

from __future__ import annotations

import math

from .container import MAX_STAGES

# --quality: (quality at least, stages, lambda), highest first; a quality between two rows takes
# the lambda interpolated in log between them (``quality_setting``). Chosen on Kodak with the
# shipped model so that the rate rises evenly with the quality (docs/training-log.md, "Stages").
QUALITY = (
    (100, 4, 0.0),
    (90, 4, 0.002),
    (75, 3, 0.006),
    (60, 2, 0.012),
    (45, 1, 0.0),
    (30, 1, 0.01),
    (15, 1, 0.05),
    (0, 1, 0.3),
)
FIXED_BPP = 8 * 2251 / (256 * 256)  # 0.2748: one stage of the fixed coder (2,251 bytes per 256x256 tile)


def quality_setting(quality: float) -> tuple[int, float]:
    """``--quality`` 0 … 100 → (stages, λ) by the ``QUALITY`` table (log-linear in λ between rows)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be a number from 0 to 100, got {quality!r}")
    for (q_hi, k_hi, l_hi), (q_lo, k_lo, l_lo) in zip(QUALITY, QUALITY[1:]):
        if q_lo <= quality <= q_hi:
            if quality == q_hi:
                return k_hi, l_hi
            t = (q_hi - quality) / (q_hi - q_lo)  # 0 at q_hi, 1 at q_lo
            lo, hi = max(l_hi, 1e-4), max(l_lo, 1e-4)
            lam = math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
            return (k_hi if t < 0.5 else k_lo), (0.0 if lam <= 1e-4 else lam)
    raise AssertionError("QUALITY covers 0 … 100")


def stages_for_bpp(bpp: float) -> int:
    """The stages a ``bpp`` target can use: one more than the fixed stages it would pay for."""
    if not (math.isfinite(bpp) and bpp > 0):
        return 1
    return min(MAX_STAGES, 1 + math.ceil(bpp / FIXED_BPP))




def table_text() -> str:
    """The table as the help and the README print it: "100: 4 stages, lambda 0; 90: …"."""
    return "; ".join(f"{q}: {k} stage{'s' * (k > 1)}, lambda {lam:g}" for q, k, lam in QUALITY)
