"""Distortion metrics (PSNR, MS-SSIM on 8-bit RGB), curve interpolation and Bjøntegaard delta rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim: 4 downsamplings of an 11-tap window need > (11 - 1) * 2**4 pixels


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape or ref.ndim != 3 or ref.shape[2] != 3:
        raise ValueError(f"need two (H, W, 3) images of the same shape, got {ref.shape} and {test.shape}")
    if ref.dtype != np.uint8 or test.dtype != np.uint8:
        raise ValueError(f"need uint8 images, got {ref.dtype} and {test.dtype}")
    return ref, test


def psnr_rgb(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB over all pixels and the 3 channels of two 8-bit RGB images (peak 255).

    Args:
        ref, test: (H, W, 3) uint8 arrays.

    Returns:
        ``10·log10(255² / MSE)``; ``inf`` for identical images.
    """
    ref, test = _pair(ref, test)
    mse = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ms_ssim_rgb(ref: np.ndarray, test: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data_range=255) of two 8-bit RGB images as float tensors.

    Args:
        ref, test: (H, W, 3) uint8 arrays.

    Returns:
        MS-SSIM in [0, 1]; NaN when the smaller side is under ``MS_SSIM_MIN_SIDE`` pixels.
    """
    ref, test = _pair(ref, test)
    if min(ref.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch  # lazy: an optional dependency (the bench extra); psnr_rgb (compare) needs no torch
    from pytorch_msssim import ms_ssim  # lazy: an optional dependency (the bench extra), as torch

    x = torch.tensor(ref).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    y = torch.tensor(test).permute(2, 0, 1)[None].float()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # its small grouped convs run many times faster on one thread than on a busy pool
    try:
        with torch.no_grad():
            return float(ms_ssim(x, y, data_range=255))
    finally:
        torch.set_num_threads(threads)


def grid_ratios(ref: np.ndarray, test: np.ndarray, tile: int = 256, block: int = 8) -> tuple[float, float]:
    """How much a decoded image's error concentrates on a block grid: (block ratio, tile ratio).

    For every pair of neighbouring pixels, e = |gradient of ``test`` − gradient of ``ref``|
    (mean over RGB). The tile ratio is the mean e over pairs that straddle a ``tile``-px line
    divided by the mean e over pairs that straddle no ``block``-px line; the block ratio
    likewise for pairs on ``block``-px lines that are not tile lines. 1.0: no visible grid.

    Args:
        ref, test: (H, W, 3) uint8 arrays.

    Returns:
        The two ratios; NaN where the image has no such line (or no off-grid pair).
    """
    ref, test = _pair(ref, test)
    a, b = ref.astype(np.float64), test.astype(np.float64)
    eh = np.abs(np.diff(b, axis=1) - np.diff(a, axis=1)).mean(-1)  # (H, W-1): pair (x-1, x)
    ev = np.abs(np.diff(b, axis=0) - np.diff(a, axis=0)).mean(-1)  # (H-1, W): pair (y-1, y)
    xs = np.arange(1, ref.shape[1])  # the line each pair straddles
    ys = np.arange(1, ref.shape[0])

    def mean_on(sel_x: np.ndarray, sel_y: np.ndarray) -> float:
        n = eh[:, sel_x].size + ev[sel_y].size
        return (eh[:, sel_x].sum() + ev[sel_y].sum()) / n if n else math.nan

    off = mean_on(xs % block != 0, ys % block != 0)
    blk = mean_on((xs % block == 0) & (xs % tile != 0), (ys % block == 0) & (ys % tile != 0))
    til = mean_on(xs % tile == 0, ys % tile == 0)
    return (blk / off, til / off) if off > 0 else (math.nan, math.nan)


def interp_log_bpp(bpp: Sequence[float], values: Sequence[float], at: float) -> float | None:
    """A curve's value at rate ``at``, linear in log(bpp) between its two neighbouring points.

    Args:
        bpp: rates of the curve's points (any order).
        values: PSNR, MS-SSIM, … at those rates.
        at: the rate to read the curve at.

    Returns:
        The interpolated value, or None when ``at`` is outside the curve's rate range (no extrapolation).
    """
    x = np.log(np.asarray(bpp, dtype=np.float64))
    y = np.asarray(values, dtype=np.float64)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) == 0 or at <= 0 or not x[0] <= math.log(at) <= x[-1]:
        return None
    return float(np.interp(math.log(at), x, y))


def bpp_at_quality(bpp: Sequence[float], psnr: Sequence[float], at_psnr: float) -> float | None:
    """The rate at which a curve reaches ``at_psnr`` dB, with log(bpp) linear in PSNR between points.

    Returns:
        The rate, or None when ``at_psnr`` is outside the curve's PSNR range.
    """
    x, y = _monotone(bpp, psnr)
    if len(x) == 0 or not x[0] <= at_psnr <= x[-1]:
        return None
    return float(np.exp(np.interp(at_psnr, x, y)))


def _monotone(bpp: Sequence[float], psnr: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR, log bpp) of the curve's efficient points, sorted by PSNR: a point that another
    point beats (as high a PSNR for no more bits) is left out, as is a repeated PSNR at a higher
    rate; what a codec would choose, and what a monotone interpolation needs (leechcodec's
    settings need not rise in PSNR with the rate: more stages on a decoder that was not
    trained for them)."""
    points = sorted(zip((float(p) for p in psnr), (math.log(float(b)) for b in bpp)), key=lambda t: (-t[0], t[1]))
    xs, ys = [], []
    for p, r in points:  # from the highest PSNR down: keep a point only if it is cheaper than all above it
        if ys and r >= ys[-1]:
            continue
        xs.append(p)
        ys.append(r)
    return np.asarray(xs[::-1]), np.asarray(ys[::-1])


def bd_range(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float], test_bpp: Sequence[float],
             test_psnr: Sequence[float]) -> tuple[float, float] | None:
    """The PSNR interval (dB) over which ``bd_rate`` compares the two curves, or None."""
    xa, _ = _monotone(anchor_bpp, anchor_psnr)
    xt, _ = _monotone(test_bpp, test_psnr)
    if len(xa) < 2 or len(xt) < 2:
        return None
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    return (float(lo), float(hi)) if hi > lo else None


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives at the knots of the monotone piecewise cubic Hermite interpolant (Fritsch–Carlson, as SciPy).

    Args:
        x: strictly increasing knots (n ≥ 2).
        y: values at the knots.
    """
    h = np.diff(x)
    m = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = m[0]
        return d
    for k in range(1, n - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])

    def edge(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > 3 * abs(m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], m[0], m[1])
    d[-1] = edge(h[-1], h[-2], m[-1], m[-2])
    return d


def _hermite_antiderivative(x: np.ndarray, y: np.ndarray, d: np.ndarray, at: float) -> float:
    """∫ from x[0] to ``at`` of the cubic Hermite interpolant with knot values y and slopes d."""
    total = 0.0
    for k in range(len(x) - 1):
        h = x[k + 1] - x[k]
        t = min(max((at - x[k]) / h, 0.0), 1.0)
        if t == 0.0:
            break
        # antiderivatives of the Hermite basis h00, h10, h01, h11 on [0, t]
        a00 = t**4 / 2 - t**3 + t
        a10 = t**4 / 4 - 2 * t**3 / 3 + t**2 / 2
        a01 = -(t**4) / 2 + t**3
        a11 = t**4 / 4 - t**3 / 3
        total += h * (y[k] * a00 + h * d[k] * a10 + y[k + 1] * a01 + h * d[k + 1] * a11)
    return total


def bd_rate(
    anchor_bpp: Sequence[float],
    anchor_psnr: Sequence[float],
    test_bpp: Sequence[float],
    test_psnr: Sequence[float],
) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor``, in percent (negative: test needs fewer bits).

    Each curve is log(bpp) as a function of PSNR, interpolated with PCHIP; the mean difference over
    the overlapping PSNR interval gives ``100·(exp(mean Δlog bpp) − 1)``.

    Args:
        anchor_bpp, anchor_psnr: the reference curve (≥ 2 points).
        test_bpp, test_psnr: the curve being judged (≥ 2 points).

    Returns:
        The BD-rate in percent, or None when a curve has fewer than 2 distinct PSNRs or the
        curves' PSNR ranges do not overlap.
    """
    xa, ya = _monotone(anchor_bpp, anchor_psnr)
    xt, yt = _monotone(test_bpp, test_psnr)
    if len(xa) < 2 or len(xt) < 2:
        return None
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if hi <= lo:
        return None
    da, dt = pchip_slopes(xa, ya), pchip_slopes(xt, yt)
    area_a = _hermite_antiderivative(xa, ya, da, hi) - _hermite_antiderivative(xa, ya, da, lo)
    area_t = _hermite_antiderivative(xt, yt, dt, hi) - _hermite_antiderivative(xt, yt, dt, lo)
    return 100.0 * (math.exp((area_t - area_a) / (hi - lo)) - 1.0)
