"""Autoregressive prior over Λ24 token indices: the float model that is trained, and its export
to the exact integer prior that codes (``leechcodec.exact_prior``).

The model (class → support → detail, the 12-neighbour context, wavefront order) is described
once, in ``leechcodec.exact_prior``'s docstring.

Determinism
-----------
Training uses float32 (``ARPrior``, here). Coding uses ``ExactPrior``: the same network with
integer weights (``quantize_state``), integer activations and integer logits, in numpy float64
arithmetic that is exact on integers; it lives in ``leechcodec.exact_prior`` with the formats,
the prior id and ``load_prior`` (re-exported here), so that encoding and decoding never
import torch. See that module for the determinism argument.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as numpy_bytes
from safetensors.torch import load_file
from safetensors.torch import save as torch_bytes
from torch import nn
from tqdm import tqdm

from leechcodec import container, lattice
from leechcodec.codec import tiles_to_indices
from leechcodec.coders import fill_padding
from leechcodec.exact_prior import (  # noqa: F401 - re-exported: the coding side of the prior
    A_FRAC,
    A_MAX,
    B_MAX,
    BASES,
    CTX_DIM,
    DETAIL,
    FORMAT_TAG,
    LATER_FIELDS,
    LOGIT_FRAC,
    N_CLASSES,
    NEIGHBOURS,
    PAD,
    SUPPORT,
    W_FRAC,
    W_MAX,
    WAVE,
    ExactPrior,
    PriorConfig,
    load_prior,
    prior_id_of,
    prior_path_for,
    state_shapes,
)
from leechcodec.output import write_file
from leechcodec.tiling import tile_image
from leechcodec.tokenizer import grid_of

from .errors import TrainError
from .io import load_weights
from .loop import adamw

PRIOR_PRESETS = {
    "tiny": PriorConfig(name="tiny", hidden=32, layers=1),
    "small": PriorConfig(name="small", hidden=256, layers=2),
    "small-cb": PriorConfig(name="small-cb", hidden=256, layers=2, codeword_bias=True),
}


def _detail_rows(cls: int, a: torch.Tensor) -> torch.Tensor:
    """(N,) supports of class ``cls`` → (N, DETAIL[cls]) codeword indices sharing each support."""
    m = DETAIL[cls]
    return BASES[cls] + a.long()[:, None] * m + torch.arange(m, device=a.device)


@functools.lru_cache(maxsize=None)
def _book(device: str) -> torch.Tensor:
    """All 196,560 integer codewords as a float32 (196560, 24) tensor on ``device``."""
    return torch.from_numpy(lattice.codebook()).float().to(device)


def detail_vectors(cls: int, device) -> torch.Tensor:
    """(SUPPORT[cls], DETAIL[cls], 24) integer codewords of one class, as float32 (a view)."""
    lo = BASES[cls]
    return _book(str(device))[lo : lo + SUPPORT[cls] * DETAIL[cls]].view(SUPPORT[cls], DETAIL[cls], lattice.DIM)


def context(vec: torch.Tensor) -> torch.Tensor:
    """Integer codeword grids (B, G, G, 24) → causal contexts (B, G, G, 288)."""
    B, G, _, D = vec.shape
    padded = F.pad(vec, (0, 0, PAD, PAD, PAD, 0))  # (B, G+2, G+4, 24)
    parts = [padded[:, PAD + dr : PAD + dr + G, PAD + dc : PAD + dc + G] for dr, dc in NEIGHBOURS]
    return torch.cat(parts, -1)


class ARPrior(nn.Module):
    """Float model for training; ``bits`` is the training loss."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        dims = [CTX_DIM] + [cfg.hidden] * cfg.layers
        self.trunk = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))
        h = cfg.hidden
        self.cls_head = nn.Linear(h, N_CLASSES)
        self.support_heads = nn.ModuleList(nn.Linear(h, n) for n in SUPPORT)
        self.u_head = nn.Linear(h, lattice.DIM)  # scores codeword vectors for the detail level
        self.place_head = nn.Linear(h, DETAIL[1])  # extra bias for the place of the 3 (Golay)
        # detail | support without context, e.g. which sign patterns an octad favours
        self.codeword_bias = nn.Parameter(torch.zeros(lattice.N_CODEWORDS)) if cfg.codeword_bias else None
        for m in self.modules():
            if isinstance(m, nn.Linear) and not m.weight.is_meta:  # meta init imports torch._dynamo (0.9 s)
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)

    def features(self, ctx: torch.Tensor) -> torch.Tensor:
        h = ctx
        for lin in self.trunk:
            h = F.relu(lin(h))
        return h

    def detail_logits(self, h: torch.Tensor, cls: int, a: torch.Tensor) -> torch.Tensor:
        v = detail_vectors(cls, h.device)[a]  # (N, m, 24)
        logits = torch.einsum("nmd,nd->nm", v, self.u_head(h))
        if cls == 1:
            logits = logits + self.place_head(h)
        if self.codeword_bias is not None:
            logits = logits + self.codeword_bias[_detail_rows(cls, a)]
        return logits

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.bits(indices)

    def configure_optimizers(self, weight_decay: float, lr: float, betas=(0.9, 0.95), fused: bool = False):
        """AdamW with weight decay on the matrices only (``models.loop.adamw``)."""
        return adamw(self, weight_decay, lr, betas, fused)

    def bits(self, indices: torch.Tensor) -> torch.Tensor:
        """Mean bits per token of (B, G, G) index grids under the model."""
        vec = _book(str(indices.device))[indices]
        h = self.features(context(vec)).flatten(0, 2)
        cls, a, b = (t.flatten() for t in lattice.split_index(indices))
        nats = F.cross_entropy(self.cls_head(h), cls, reduction="sum")
        for k in range(N_CLASSES):
            sel = cls == k
            if sel.any():
                hk = h[sel]
                nats = nats + F.cross_entropy(self.support_heads[k](hk), a[sel], reduction="sum")
                nats = nats + F.cross_entropy(self.detail_logits(hk, k, a[sel]), b[sel], reduction="sum")
        return nats / (math.log(2) * indices.numel())


# ----------------------------------------------------------------------------- training data
def token_cache(tokenizer, files, out: Path, name: str, progress: bool = True) -> torch.Tensor:
    """(N, G, G) int32 token grids of every 256-px tile of ``files`` (edge-padded like the codec),
    for ``name == "train"`` also of their mirror images; cached in ``out`` per tokenizer.

    The tokens of the padding are what a .lq stream of format version 2 decodes there: copies of
    the last stored token of their row or column (``coders.fill_padding``), not the encoder's
    tokens of the replicated edge pixels; the contexts the prior learns are the coder's."""
    mid = bytes(tokenizer.model_id).hex()
    path = Path(out) / f"tokens-{name}-{mid}-v2.safetensors"
    if path.is_file():
        return load_file(str(path))["grids"]
    g = grid_of(tokenizer)
    grids = []
    for f in tqdm(files, desc=f"tokenizing {name}", unit="img", disable=not progress):
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"))
        views = [rgb, rgb[:, ::-1]] if name == "train" else [rgb]
        extents = container.token_extents(rgb.shape[1], rgb.shape[0], tokenizer.tile, tokenizer.patch)
        for v in views:
            idx = tiles_to_indices(tokenizer, tile_image(np.ascontiguousarray(v), tokenizer.tile))
            idx = fill_padding(idx, extents, g)
            grids.append(torch.from_numpy(idx.reshape(-1, g, g).astype(np.int32)))
    grids = torch.cat(grids)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = torch_bytes({"grids": grids}, metadata={"tokenizer_id": mid, "images": str(len(files))})
    write_file(path, lambda f: f.write(data))
    return grids


# ----------------------------------------------------------------------------- export to the exact integer prior
def _q(t: torch.Tensor, frac: int, limit: int | None = None) -> torch.Tensor:
    q = torch.round(t.double() * 2.0**frac)
    return q.clamp(-limit, limit) if limit is not None else q


def quantize_state(model: ARPrior) -> dict[str, torch.Tensor]:
    """The integer weights the coder uses (int32 tensors), named like the float model's.

    Scales: trunk layer i has inputs at 2^in_frac (0 for the codeword integers, A_FRAC after),
    weights at 2^W_FRAC, bias at 2^(in_frac + W_FRAC); heads likewise on A_FRAC inputs.
    """
    out = {}
    for name, p in model.state_dict().items():
        if name == "codeword_bias":  # logits: straight to 1/256 nat
            out[name] = _q(p, LOGIT_FRAC, 2**30).to(torch.int32)
            continue
        first = name.startswith("trunk.0.")
        in_frac = 0 if first else A_FRAC
        frac = W_FRAC if name.endswith("weight") else W_FRAC + in_frac
        limit = W_MAX if name.endswith("weight") else B_MAX
        out[name] = _q(p, frac, limit).to(torch.int64 if name.endswith("bias") else torch.int32)
    return out


# ----------------------------------------------------------------------------- files
def save_prior(model: ARPrior, path: str | os.PathLike, tokenizer_id: bytes) -> bytes:
    """Write the integer weights of ``model`` (for the tokenizer ``tokenizer_id``); returns the prior id."""
    state = quantize_state(model)
    pid = prior_id_of(model.cfg, state, tokenizer_id)
    meta = {
        "format": FORMAT_TAG,
        "config": json.dumps(model.cfg.to_dict()),
        "tokenizer_id": tokenizer_id.hex(),
        "prior_id": pid.hex(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = torch_bytes({k: v.contiguous() for k, v in state.items()}, metadata=meta)
    write_file(path, lambda f: f.write(data))
    return pid


def exact(model: ARPrior, tokenizer_id: bytes) -> ExactPrior:
    """The exact prior a float model exports to (what ``save_prior`` writes and ``load_prior`` reads):
    the numpy ``ExactPrior`` of its integer weights."""
    state = {k: v.cpu().numpy() for k, v in quantize_state(model).items()}
    ids = prior_id_of(model.cfg, state, tokenizer_id), prior_id_of(model.cfg, state, tokenizer_id, legacy=True)
    return ExactPrior(model.cfg, state, ids[0], legacy_ids=ids[1:])


def rebind_prior(prior: str | os.PathLike, old_weights: str | os.PathLike, new_weights: str | os.PathLike,
                 out: str | os.PathLike) -> bytes:
    """The prior of ``old_weights`` written for ``new_weights`` (same integers, the new tokenizer id
    and so a new prior id): for a tokenizer whose encoder was not changed (``train
    --freeze-encoder``, e.g. a decoder fine-tuned for residual stages), whose stage-1 tokens, and so
    their statistics, are the old one's. Returns the new prior id.

    Raises:
        TrainError: the encoders differ (the prior would have to be retrained), or ``prior`` is not
            the prior of ``old_weights``.
    """
    old, new = load_weights(old_weights, prior=None), load_weights(new_weights, prior=None)
    a, b = old.state_dict(), new.state_dict()
    same_cfg = {**old.cfg.to_dict(), "stage_gain": 0, "stage_decay": 0} == {**new.cfg.to_dict(), "stage_gain": 0,
                                                                             "stage_decay": 0}
    if not same_cfg or any(not torch.equal(a[k], b[k]) for k in a if k.startswith("encoder.")):
        raise TrainError(f"{new_weights} has another encoder than {old_weights}: its tokens need a retrained prior")
    cfg = load_prior(prior, bytes(old.model_id)).cfg  # a valid prior of the old tokenizer, or an error
    with safe_open(str(prior), "np") as f:
        meta = dict(f.metadata() or {})
    state = load_numpy(str(prior))  # the file's integers as they are
    pid = prior_id_of(cfg, state, bytes(new.model_id))
    meta.update(tokenizer_id=bytes(new.model_id).hex(), prior_id=pid.hex())
    write_file(out, lambda f: f.write(numpy_bytes(state, metadata=meta)))  # atomically
    return pid
