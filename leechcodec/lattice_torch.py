"""The torch half of ``leechcodec.lattice``: the searches on torch tensors (CPU, CUDA, under
autocast), for training.

``lattice`` imports this module only when it is given a torch tensor (or asked for a tiled
search), so that encoding and decoding with numpy and ONNX Runtime never import torch. Read
the searches' description in ``lattice``'s docstring; the codewords and their tables come from
``codewords``, as ``lattice``'s do.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from .codewords import (
    BASES,
    DETAIL,
    GOLAY_BASE,
    N_CODEWORDS,
    OCTAD_BASE,
    PAIR_BASE,
    PRUNE_SLACK,
    SQ_NORM,
    TILED_STATS,
    check_shape,
    codebook_int8,
    tables,
)

TILED_CANDIDATES = 8  # approximate best of the tiled search rescored in float64


@functools.lru_cache(maxsize=None)
def _torch_tables(device: str) -> dict:
    t = tables()
    dev = torch.device(device)
    return dict(
        octad_mask=torch.tensor(t["octad_mask"], dtype=torch.float32, device=dev),  # (759, 24)
        octpos=torch.tensor(t["octpos"], dtype=torch.long, device=dev),  # (759, 8)
        signs=torch.tensor(1 - 2 * t["words"].astype(np.float32), device=dev),  # (4096, 24)
        pair_rank=torch.tensor(t["pair_rank"], device=dev),
        book=torch.tensor(codebook_int8(), device=dev),  # (196560, 24) int8
        pow7=torch.tensor([1 << k for k in range(7)], dtype=torch.long, device=dev),
        pow8=torch.tensor([1 << k for k in range(7)] + [0], dtype=torch.long, device=dev),
    )


def _as_torch(z) -> tuple[torch.Tensor, bool]:
    if isinstance(z, torch.Tensor):
        return z, True
    return torch.as_tensor(np.asarray(z)), False


_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")


def _full_precision(device: torch.device):
    """A context in which no autocast lowers the search's arithmetic, whatever the caller runs
    under: inside ``torch.autocast(..., dtype=torch.bfloat16)`` a float32 matmul runs in bf16,
    and about one token in five got a codeword that is not the nearest (issue 26)."""
    if device.type in _AUTOCAST_DEVICES:
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _scan(z, dtype: torch.dtype, chunk: int):
    """argmax of <z, c> over all codewords in ``dtype``, ``chunk`` rows at a time (first index on ties)."""
    zt, was_torch = _as_torch(z)
    check_shape(zt)
    with torch.no_grad(), _full_precision(zt.device):
        book = _torch_tables(str(zt.device))["book"].to(dtype)
        out = torch.empty(zt.shape[0], dtype=torch.long, device=zt.device)
        zc = zt.detach().to(dtype)
        for i in range(0, zt.shape[0], chunk):
            out[i : i + chunk] = (zc[i : i + chunk] @ book.T).argmax(1)  # (chunk, 196560) scores
    return out if was_torch else out.cpu().numpy()


def vectors(indices: torch.Tensor, check: bool = True) -> torch.Tensor:
    """``lattice.vectors`` on a torch tensor: float32 unit vectors on its device."""
    idx = indices.long()
    if check and idx.numel() and (idx.min() < 0 or idx.max() >= N_CODEWORDS):
        raise ValueError(f"codeword index out of range [0, {N_CODEWORDS})")
    return _torch_tables(str(indices.device))["book"][idx].float() / np.sqrt(SQ_NORM)


def nearest_brute(z, chunk: int = 256):
    """``lattice.nearest_brute`` on a torch tensor: the float64 ``_scan`` on its device."""
    return _scan(z, torch.float64, chunk)


# Relative error bound of one score <z, c> computed from z rounded to ``dtype`` (c is exact in
# both: integers of magnitude ≤ 4), with float32 accumulation (the fp16 reduced-precision
# reduction is switched off around the matmul) and the score itself rounded to ``dtype``:
# each rounding moves a score by at most 2^-11 · 4·Σ|z_i| in fp16 (|s| ≤ Σ|c_i z_i| ≤ 4·Σ|z_i|),
# two of them stay under 2^-9 · 4·Σ|z_i| with room for the float32 sums and fp16 subnormals
# (z is scaled into [-1, 1] first, so no overflow). TF32 (10-bit mantissa, rounding 2^-11) is
# covered for float32 in case a caller allowed it. |score error| ≤ REL · 4·Σ|z_i|. (bf16 was
# tried: its 2^-8 rounding left 15 % of rows uncertified on Kodak latents, so it is not offered.)
_REL_ERR = {torch.float32: 2.0**-10, torch.float16: 2.0**-9}


@contextlib.contextmanager
def _fp32_reductions():
    """fp16 matmuls with float32 accumulation throughout (the bound above assumes it)."""
    m = torch.backends.cuda.matmul
    old = m.allow_fp16_reduced_precision_reduction
    m.allow_fp16_reduced_precision_reduction = False
    try:
        yield
    finally:
        m.allow_fp16_reduced_precision_reduction = old


def nearest_tiled(z, chunk: int | None = None, dtype: torch.dtype | None = None):
    """Exact nearest search by a brute-force matmul in ``dtype`` (float32 if None; fastest on a GPU).

    Proof of exactness: each approximate score ŝ differs from the true score s by at most
    δ = REL·4·Σ|z_i| (``_REL_ERR``; |c_i| ≤ 4 and c is exact in ``dtype``). The
    ``TILED_CANDIDATES`` best approximate scores of each row are rescored in float64 and the
    best wins (smallest index on ties). Any codeword left out has ŝ ≤ ŝ_k (the k-th best), so
    s ≤ ŝ_k + δ; if ŝ_k + δ < ŝ_1 − δ ≤ s_1, no left-out codeword can beat or tie the top
    candidate and the answer equals the float64 argmax over all 196,560 (``nearest_brute``).
    Rows where that certificate fails (many codewords within 2δ) are searched again in
    float64 in full: rare (``TILED_STATS`` counts them).
    """
    dtype = torch.float32 if dtype is None else dtype
    zt, was_torch = _as_torch(z)
    check_shape(zt)
    if dtype not in _REL_ERR:
        raise ValueError(f"nearest_tiled: dtype must be one of {list(_REL_ERR)}, got {dtype}")
    n = zt.shape[0]
    chunk = chunk or (4096 if zt.device.type == "cuda" else 512)  # scores: 3.2 GB on a GPU, 0.4 GB here
    out = torch.empty(n, dtype=torch.long, device=zt.device)
    bad = torch.empty(n, dtype=torch.bool, device=zt.device)
    with torch.no_grad(), _full_precision(zt.device), _fp32_reductions():
        T = _torch_tables(str(zt.device))
        book = T["book"].to(dtype)
        bookd = T["book"].double()
        zd_all = zt.detach().double()
        for i in range(0, n, chunk):
            zd = zd_all[i : i + chunk]
            # scaled into [-1, 1] (the argmax does not change): no overflow in fp16
            zs = zd / zd.abs().amax(1, keepdim=True).clamp_min(1e-300)
            approx = zs.to(dtype) @ book.T  # (c, 196560) in dtype: half the memory traffic in fp16
            top, cand = approx.topk(TILED_CANDIDATES, dim=1)  # (c, k) descending
            top = top.float()
            delta = (_REL_ERR[dtype] * 4.0) * zs.abs().sum(1).float()
            exact = (bookd[cand] * zd[:, None, :]).sum(-1)  # (c, k) float64 scores
            best = exact.amax(1, keepdim=True)
            # smallest index among the exact maxima
            out[i : i + chunk] = torch.where(exact == best, cand, torch.full_like(cand, N_CODEWORDS)).amin(1)
            bad[i : i + chunk] = top[:, -1] + delta >= top[:, 0] - delta
        rows = bad.nonzero().squeeze(1)  # the one wait for the device
        TILED_STATS["rows"] += n
        TILED_STATS["uncertified"] += len(rows)
        for i in range(0, len(rows), chunk):
            r = rows[i : i + chunk]
            out[r] = (zd_all[r] @ bookd.T).argmax(1)
    return out if was_torch else out.cpu().numpy()


def nearest(z, method: str = "auto"):
    """``lattice.nearest`` for torch tensors (and numpy input to the tiled searches)."""
    zt, was_torch = _as_torch(z)
    check_shape(zt)
    if method == "auto":
        method = "tiled" if zt.device.type == "cuda" else "structured"
    if method == "brute":
        return nearest_brute(z)
    if method == "tiled":
        return nearest_tiled(z)
    if method == "tiled16":
        return nearest_tiled(z, dtype=torch.float16)
    if method != "structured":
        raise ValueError(f"unknown method {method!r}")
    with torch.no_grad(), _full_precision(zt.device):
        out = _nearest_structured(zt.detach())
    return out if was_torch else out.cpu().numpy()


def _pow2_unit(zd: torch.Tensor) -> torch.Tensor:
    """Rows times a power of two that brings max|z| into [0.5, 1) (zero rows unchanged): exact,
    as ``lattice._pow2_unit_np`` (which says why the search needs it)."""
    e = torch.frexp(zd.abs().amax(1)).exponent.long().clamp(-1022, 1022)
    return zd * ((1023 - e) << 52).view(torch.float64)[:, None]  # 2^-e built from its bits


def _nearest_structured(zt: torch.Tensor, chunk: int = 2048) -> torch.Tensor:  # fastest of 1k-8k rows, and bounded memory
    if zt.shape[0] > chunk:
        return torch.cat([_nearest_structured(zt[i : i + chunk]) for i in range(0, zt.shape[0], chunk)])
    T = _torch_tables(str(zt.device))
    n = zt.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=zt.device)
    zd = _pow2_unit(zt.double())  # (N, 24) for the exact scores
    zf = zd.float()  # (N, 24) for the cheap bounds
    ax = zf.abs()
    axd = zd.abs()
    neg = zd < 0
    rows = torch.arange(n, device=zt.device)

    # --- pairs: the top three |z| (stable: equal values keep index order) give the best
    # pair, its near-ties, and the smallest index among exact ties
    top3 = axd.sort(dim=1, descending=True, stable=True).indices[:, :3]  # (N, 3)
    p_rows, p_idx, p_score = [], [], []
    for u, v in ((0, 1), (0, 2), (1, 2)):
        a = torch.minimum(top3[:, u], top3[:, v])
        b = torch.maximum(top3[:, u], top3[:, v])
        t = neg[rows, a].long() + 2 * neg[rows, b].long()
        p_rows.append(rows)
        p_idx.append(PAIR_BASE + 4 * T["pair_rank"][a, b] + t)
        p_score.append(4.0 * (axd[rows, a] + axd[rows, b]))

    # --- cheap upper bounds for every octad (N, 759) and Golay word (N, 4096)
    osum = 2.0 * (ax @ T["octad_mask"].T)
    S = T["signs"]  # (4096, 24) ±1
    base = zf @ S.T
    amax = ax.amax(1)

    def octad_exact(r, o):
        """Exact octad scores and indices for (row, octad) pairs."""
        pos = T["octpos"][o]  # (C, 8)
        a8 = axd[r[:, None], pos]  # (C, 8)
        n8 = neg[r[:, None], pos]
        odd = (n8.sum(-1) % 2).bool()
        mins = a8.amin(-1)
        # odd: flip the sign at a smallest |z|; of equal ones, the flip giving the smallest
        # index (clearing bit k < 7 lowers it by 2^k, flipping q7 keeps it, setting raises it)
        step = torch.where(n8, -T["pow8"], T["pow8"])
        am = torch.where(a8 == mins[:, None], step, 256).argmin(-1)
        c = torch.arange(len(r), device=zt.device)
        n8[c, am] = n8[c, am] ^ odd
        pidx = (n8[:, :7].long() * T["pow7"]).sum(1)
        return OCTAD_BASE + 128 * o + pidx, 2.0 * a8.sum(-1) - 4.0 * odd.double() * mins

    def golay_exact(r, w):
        """Exact Golay-block scores and indices for (row, word) pairs."""
        sz = -S[w].double() * zd[r]  # (C, 24): -s_j z_j
        m, j = sz.max(-1)  # first j on ties
        return GOLAY_BASE + 24 * w + j, -sz.sum(-1) + 4.0 * m

    # --- a lower bound from one exact candidate of each block, then keep everything above it
    _, o1 = octad_exact(rows, osum.argmax(1))
    _, g1 = golay_exact(rows, base.argmax(1))
    lb = torch.maximum(torch.maximum(o1, g1), p_score[0]).float()
    o_r, o_o = torch.nonzero(osum > (lb - PRUNE_SLACK)[:, None], as_tuple=True)
    g_r, g_w = torch.nonzero(base > (lb - 4.0 * amax - PRUNE_SLACK)[:, None], as_tuple=True)
    # tighter: max_j(-s_j z_j) is |z| at the first of the largest |z| where s disagrees with z's
    # sign (a1 if it disagrees at the largest, else a2 at the second, else at most a3)
    a_top = ax[rows[:, None], top3]  # (N, 3) float32, descending
    s_neg = S < 0  # (4096, 24)
    m_bound = a_top[g_r, 2]
    for k in (1, 0):
        j = top3[g_r, k]
        m_bound = torch.where(s_neg[g_w, j] != neg[g_r, j], a_top[g_r, k], m_bound)
    keep = base[g_r, g_w] + 4.0 * m_bound > lb[g_r] - PRUNE_SLACK
    g_r, g_w = g_r[keep], g_w[keep]
    o_idx, o_score = octad_exact(o_r, o_o)
    g_idx, g_score = golay_exact(g_r, g_w)

    # --- the best exact float64 score per row; ties → smallest index
    r_all = torch.cat(p_rows + [o_r, g_r])
    i_all = torch.cat(p_idx + [o_idx, g_idx])
    s_all = torch.cat(p_score + [o_score, g_score])
    best = torch.full((n,), -torch.inf, dtype=torch.float64, device=zt.device)
    best = best.scatter_reduce(0, r_all, s_all, "amax")
    keep = s_all == best[r_all]
    out = torch.full((n,), N_CODEWORDS, dtype=torch.long, device=zt.device)
    return out.scatter_reduce(0, r_all[keep], i_all[keep], "amin")


def split_index(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``lattice.split_index`` on a torch tensor: long tensors on its device."""
    idx = idx.long()
    cls = (idx >= GOLAY_BASE).long() + (idx >= PAIR_BASE).long()
    off = idx - torch.tensor(BASES, device=idx.device)[cls]
    m = torch.tensor(DETAIL, device=idx.device)[cls]
    return cls, torch.div(off, m, rounding_mode="floor"), off % m


def join_index(cls: torch.Tensor, support, detail) -> torch.Tensor:
    """``lattice.join_index`` on torch tensors."""
    cls = cls.long()
    support, detail = (torch.as_tensor(x, device=cls.device).long() for x in (support, detail))
    return torch.tensor(BASES, device=cls.device)[cls] + support * torch.tensor(DETAIL, device=cls.device)[cls] + detail

