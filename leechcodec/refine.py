"""Encoder effort: refine the tokens of each tile against the fixed decoder (``encode --effort N``).

The encoder's nearest codewords are a good start, not the best tokens for its decoder. Each
effort round (one decoder pass forward and back), for each tile:

1. the tile's tokens are the nearest codewords of continuous latents u (at first the
   encoder's own), decoded as ``decode`` will decode them: the padding tokens a stream does
   not store replaced by the copies the decoder makes (``coders.fill_padding``), and inside
   the tile's halo window, the neighbours' tokens as refined so far, for a model with a
   decoder halo; the squared error on the tile's real pixels, after 8-bit rounding, is measured;
2. **a round that lowered the tile's error is kept** (its tokens become the tile's best) and
   the tile's step grows by 1.2×; one that did not is undone (u back to the best round's) and
   the step halves;
3. the error's gradient reaches u through the straight-through quantizer (a padding token's
   share goes to the stored token it copies), and u takes an Adam step with the tile's own
   step size.

So a tile's error never rises and more rounds never undo fewer. Decoding is unchanged: the
stream holds ordinary codeword indices. The codec also checks the whole picture at the end,
decoded as ``decode`` will decode the stream (``codec._refined``), since a tile's tokens paint
its neighbours' borders too: effort never lowers the PSNR of what the decoder outputs. Why this method
(docs/training-log.md, "`encode --effort N`"): Adam with a fixed step and the best iterate kept gained less, and moving
single tokens to the lattice neighbour the gradient prefers gained almost nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from . import coders, container, lattice
from .quantizer import normalize
from .tiling import halo_window, token_grid
from .tokenizer import grid_of, halo_of

START_LR = 0.005
MAX_LR = 0.05
BETAS = (0.9, 0.999)


def _tile_error(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error per tile on the 8-bit rounded output, real pixels only: (T,)."""
    yq = (y.clamp(0, 1) * 255).round()
    return (((yq - x * 255) ** 2) * mask).flatten(1).sum(1)


def refine_tiles(model, x: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor, rounds: int, on_round=None,
                 synthesis=None, latents: list | None = None, sources: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Refine one batch of tiles.

    Args:
        model: a tokenizer with differentiable ``analysis`` and ``synthesis``.
        x: (T, 3, S, S) float tiles in [0, 1].
        indices: (T, N) int64 codeword indices of ``x`` (the encoder's nearest codewords).
        mask: (T, 1, S, S) float, 1 on real pixels, 0 on padding.
        rounds: effort rounds.
        on_round: called as ``on_round(r, best)`` after round r = 0 (the start) … ``rounds``
            with the best (T, N) indices so far (for benchmarks).
        synthesis: codeword vectors (T, g, g, 24) → the tiles' pixels (T, 3, S, S), as the
            decoder will make them; default ``model.synthesis`` (each tile decoded alone).
        latents: a list to append the (T, N, 24) unit latents of the returned indices to (their
            nearest codewords are those indices at the stored positions): what the rate knob
            moves away from.
        sources: (T, N) int64, the position whose token the decoder puts at each position
            (``coders.padding_sources``: a padding token copies a stored one); default: each
            its own (every token stored).

    Returns:
        (T, N) indices, padding positions filled from their sources; each tile's rounded error,
        decoded so, is never above that of ``indices`` decoded so.
    """
    T, N = indices.shape
    synthesis = synthesis or model.synthesis
    if sources is None:
        sources = torch.arange(N, device=indices.device).expand(T, N)
    with torch.no_grad():
        u = normalize(model.analysis(x).float())  # (T, g, g, 24)
    shape = u.shape
    D = shape[-1]
    best = indices.gather(1, sources)
    best_err = torch.full((T,), float("inf"), device=x.device)
    best_u = u.clone()
    lr = torch.full((T,), START_LR, device=x.device)
    m1, m2 = torch.zeros_like(u), torch.zeros_like(u)
    for step in range(1, rounds + 2):  # round 0 measures the start
        un = normalize(u).requires_grad_(True)
        raw = best if step == 1 else lattice.nearest(un.detach().reshape(-1, D)).view(T, N)
        idx = raw.gather(1, sources)  # the tokens the decoder will see
        qv = lattice.vectors(raw).view(shape)
        with torch.enable_grad():
            st = (qv + (un - un.detach())).view(T, N, D)  # straight-through: exactly the codewords, u's gradient
            q = st.gather(1, sources[..., None].expand(T, N, D)).view(shape)  # (T, g, g, 24) as decoded
            y = synthesis(q).float()
            err_t = _tile_error(y.detach(), x, mask)
            if step == rounds + 1:
                grad = None
            else:
                (grad,) = torch.autograd.grad((((y.clamp(0, 1) - x) ** 2) * mask).sum(), un)
        better = err_t < best_err
        best = torch.where(better[:, None], idx, best)
        best_err = torch.where(better, err_t, best_err)
        if on_round is not None:
            on_round(step - 1, best)
        keep = better.view(T, 1, 1, 1)
        best_u = torch.where(keep, u, best_u)  # the latents whose nearest codewords are ``best``
        if grad is None:
            break
        u = torch.where(keep, u, best_u)
        lr = torch.where(better, (lr * 1.2).clamp(max=MAX_LR), lr * 0.5)
        m1.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        m2.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        mh, vh = m1 / (1 - BETAS[0] ** step), m2 / (1 - BETAS[1] ** step)
        u = u - lr.view(T, 1, 1, 1) * mh / (vh.sqrt() + 1e-8)
    if latents is not None:
        latents.append(normalize(best_u).reshape(T, N, D).detach())
    return best


def refine_indices(model, tiles: np.ndarray, indices: np.ndarray, width: int, height: int, rounds: int,
                   device: str = "cpu", batch: int = 6, progress: bool = False,
                   latents: list | None = None) -> np.ndarray:  # fmt: skip
    """Refine the (T, N) ``indices`` of the (T, 3, S, S) uint8 ``tiles`` of a ``width`` × ``height``
    image (row-major tiles, edge padding beyond the image) by ``rounds`` effort rounds, measured
    on what a version-2 stream decodes to: the padding tokens it does not store are the copies
    the decoder makes (``coders.fill_padding``), in the returned indices too.

    With a decoder halo (``model.decode_halo`` > 0) and several tiles, each tile is refined in
    turn inside its decoding window, its neighbours' tokens as refined so far around it, so
    the error refined is the one ``decode`` will make; otherwise ``batch`` tiles at a time,
    each alone. ``latents``: a list to append the (T, N, 24) float32 unit latents of the
    refined indices to (``refine_tiles``).
    """
    if rounds <= 0 or len(tiles) == 0:
        return indices
    S = tiles.shape[-1]
    tx = -(-width // S)
    ty = len(tiles) // tx
    halo = halo_of(model)
    x_all = torch.from_numpy(tiles).to(device).float().div_(255.0)
    mask = torch.zeros(len(tiles), 1, S, S, device=device)
    for t in range(len(tiles)):
        r, c = divmod(t, tx)
        mask[t, :, : max(0, min(S, height - r * S)), : max(0, min(S, width - c * S))] = 1.0
    g = grid_of(model)
    sources = torch.from_numpy(coders.padding_sources(container.token_extents(width, height, S, model.patch), g)).to(device)
    idx = torch.from_numpy(indices).to(device).gather(1, sources)  # a copy: the caller's array stays as it was
    windowed = halo > 0 and len(tiles) > 1
    groups = [slice(t, t + 1) for t in range(len(tiles))] if windowed else [slice(s, s + batch) for s in range(0, len(tiles), batch)]
    found: list = [] if latents is not None else None
    # one step per effort round of each group: a long effort shows progress even on one tile
    bar = tqdm(total=len(groups) * rounds, desc="effort", unit="round", disable=not progress, leave=False)

    def tick(r: int, best) -> None:
        if r > 0:
            bar.update(1)

    for sl in groups:
        synthesis = _window_synthesis(model, idx, sl.start, tx, ty, halo) if windowed else None
        idx[sl] = refine_tiles(model, x_all[sl], idx[sl], mask[sl], rounds, on_round=tick, synthesis=synthesis,
                               latents=found, sources=sources[sl])  # fmt: skip
    bar.close()
    if latents is not None:
        latents.append(torch.cat(found).float().cpu().numpy())
    return idx.cpu().numpy()


def _window_synthesis(model, idx: torch.Tensor, t: int, tx: int, ty: int, halo: int):
    """Tile ``t``'s pixels as decoded in its halo window, as a function of its own codeword vectors
    (the neighbours' tokens fixed at ``idx``); the window is the one ``codec.indices_to_image`` uses."""
    g, p, S = grid_of(model), model.patch, model.tile
    grid = token_grid(idx, tx, ty)
    r, c = divmod(t, tx)
    r0, r1, c0, c1 = halo_window(r, c, tx, ty, g, halo)
    window = lattice.vectors(grid[r0:r1, c0:c1])[None]  # (1, h, w, 24)
    a, b = r * g - r0, c * g - c0

    def synthesis(q: torch.Tensor) -> torch.Tensor:  # (1, g, g, 24) → (1, 3, S, S)
        w = window.clone()
        w[:, a : a + g, b : b + g] = q
        return model.synthesis(w)[:, :, a * p : a * p + S, b * p : b * p + S]

    return synthesis
