"""Autoregressive prior over Λ24 token indices, exact in integer arithmetic for coding.

Model
-----
A token is coded by the chain rule along the lattice's own structure (``leechcodec.lattice``
index order), so every distribution is small and the product sums to one exactly:

    class  (3: octad ±2^8 / Golay ∓3 ±1^23 / pair ±4^2)
      └─ support  a  (759 octads / 4,096 Golay words / 276 pairs)        free logits
         └─ detail b  (128 sign patterns / 24 places of the 3 / 4 signs)  logits <v, u> + bias

The detail logits are computed from the candidate codeword vectors themselves: ``u`` is a
24-d output of the network and ``v`` the integer codewords that share the chosen support,
so a sign pattern is scored coordinate by coordinate instead of by a 128-way table.

Context: the integer codeword vectors of 12 causal neighbours (two rows above, columns −2…+2,
and two to the left; zero outside the tile), through an MLP. A local context loses little
against a full raster transformer on these grids and allows *wavefront* decoding: position
(r, c) depends only on positions with a smaller ``WAVE·r + c``, so all positions of one
wavefront (of every tile) are decoded together — 125 network calls per 32×32 grid instead
of 1,024, and no cache to keep.

Determinism
-----------
Training uses float32 (``ARPrior``). Coding uses ``ExactPrior``: the same network with
integer weights, integer activations (floored to 1/256) and integer logits (1/256 nat),
evaluated as float64 tensors holding integers below 2^53. Every sum of such products is
exact in any order, so the logits are bit-identical across thread counts, batch sizes and
devices (CPU or CUDA, where float64 matmuls are exact on integers too). Integer logits turn
into integer frequencies through a table built with integer arithmetic (``leechcodec.coders``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from leechcodec import lattice
from leechcodec.errors import ModelError

# causal neighbourhood (row, column offsets) and the wavefront that respects it
NEIGHBOURS = tuple((dr, dc) for dr in (-2, -1) for dc in range(-2, 3)) + ((0, -2), (0, -1))
WAVE = 3  # every neighbour of (r, c) has WAVE·r' + c' < WAVE·r + c
PAD = 2  # zero border of the context grid: 2 rows on top, 2 columns on each side
CTX_DIM = len(NEIGHBOURS) * lattice.DIM  # 288 integers in −4…4

N_CLASSES = 3
SUPPORT, DETAIL, BASES = lattice.SUPPORT, lattice.DETAIL, lattice.BASES

# fixed-point formats of the exact prior (part of the .lq "ar" format: changing any of them
# changes every probability, so they are hashed into the prior id)
W_FRAC = 12  # weights and first-layer biases: round(w · 2^12)
A_FRAC = 8  # activations: floor(a · 2^8), clamped to [0, A_MAX]
A_MAX = 2**16 - 1
LOGIT_FRAC = 8  # logits handed to the coder: floor(l · 2^8), i.e. 1/256 nat
W_MAX = 2**15 - 1

FORMAT_TAG = "leechcodec-prior"


@dataclass(frozen=True)
class PriorConfig:
    name: str = "prior"
    hidden: int = 256
    layers: int = 2  # hidden layers of the trunk
    codeword_bias: bool = False  # a learned logit per codeword added at the detail level

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# config fields added after the first release, with the value that means "as before": the
# prior id leaves them out at that value, so adding one keeps the ids of existing priors
LATER_FIELDS = {"codeword_bias": False}


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
    from PIL import Image
    from tqdm import tqdm

    from leechcodec import container
    from leechcodec.codec import tile_image, tiles_to_indices
    from leechcodec.coders import fill_padding

    mid = bytes(tokenizer.model_id).hex()
    path = Path(out) / f"tokens-{name}-{mid}-v2.safetensors"
    if path.is_file():
        return load_file(str(path))["grids"]
    g = tokenizer.tile // tokenizer.patch
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    save_file({"grids": grids}, tmp, metadata={"tokenizer_id": mid, "images": str(len(files))})
    os.replace(tmp, path)
    return grids


# ----------------------------------------------------------------------------- exact integer prior
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
        limit = W_MAX if name.endswith("weight") else 2**40
        out[name] = _q(p, frac, limit).to(torch.int64 if name.endswith("bias") else torch.int32)
    return out


class ExactPrior:
    """Integer inference of an ``ARPrior``: what ``leechcodec.coders`` calls to code tokens.

    Every method returns float64 tensors that hold integers; logits are in 1/256 nat.
    """

    neighbours = NEIGHBOURS
    wave = WAVE
    classes = N_CLASSES

    def __init__(self, cfg: PriorConfig, state: dict[str, torch.Tensor], prior_id: bytes, device="cpu", legacy_ids=()):
        self.cfg = cfg
        self.prior_id = prior_id  # what the encoder writes
        self.ids = (prior_id, *(i for i in legacy_ids if i != prior_id))  # what a stream may name (decoder)
        self.device = torch.device(device)
        self.w = {k: v.to(self.device, torch.float64) for k, v in state.items()}
        self._details = {}

    def to(self, device) -> "ExactPrior":
        return ExactPrior(self.cfg, {k: v.long() for k, v in self.w.items()}, self.prior_id, device, self.ids[1:])

    @staticmethod
    def _floor_shift(x: torch.Tensor, bits: int) -> torch.Tensor:
        return torch.floor(x * 2.0**-bits)  # exact: a power-of-two scale, then floor

    def features(self, ctx: torch.Tensor) -> torch.Tensor:
        """(N, 288) integer contexts → (N, hidden) integer activations at 2^A_FRAC."""
        a = ctx.to(self.device, torch.float64)
        for i in range(self.cfg.layers):
            y = a @ self.w[f"trunk.{i}.weight"].T + self.w[f"trunk.{i}.bias"]
            shift = W_FRAC - A_FRAC if i == 0 else W_FRAC
            a = self._floor_shift(y, shift).clamp_(0, A_MAX)
        return a

    def _head(self, h: torch.Tensor, name: str) -> torch.Tensor:
        return h @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # at 2^(A_FRAC+W_FRAC)

    def _logits(self, y: torch.Tensor) -> torch.Tensor:
        return self._floor_shift(y, A_FRAC + W_FRAC - LOGIT_FRAC)

    def class_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self._logits(self._head(h, "cls_head"))

    def support_logits(self, h: torch.Tensor, cls: int) -> torch.Tensor:
        return self._logits(self._head(h, f"support_heads.{cls}"))

    def detail_logits(self, h: torch.Tensor, cls: int, a: torch.Tensor) -> torch.Tensor:
        if cls not in self._details:
            self._details[cls] = detail_vectors(cls, "cpu").to(self.device, torch.float64)
        u = self._logits(self._head(h, "u_head"))  # (N, 24), 1/256 nat per unit of a codeword entry
        y = torch.einsum("nmd,nd->nm", self._details[cls][a.to(self.device)], u)
        if cls == 1:
            y = y + self._logits(self._head(h, "place_head"))
        if "codeword_bias" in self.w:
            y = y + self.w["codeword_bias"][_detail_rows(cls, a.to(self.device))]
        return y


# ----------------------------------------------------------------------------- files
def prior_id_of(cfg: PriorConfig, state: dict[str, torch.Tensor], tokenizer_id: bytes, legacy: bool = False) -> bytes:
    """8-byte content hash of the exact prior: config, fixed-point formats, integer weights.

    The config enters without the ``LATER_FIELDS`` that have their "as before" value, so a
    field added with such a default keeps every existing id. ``legacy=True`` hashes the
    whole config instead: the id that priors saved while ``codeword_bias`` was hashed
    unconditionally (the releases up to 2026-11-26) carry, and that their ar streams name.
    """
    d = cfg.to_dict()
    if not legacy:
        for name, default in LATER_FIELDS.items():
            if name in d and d[name] == default:
                del d[name]
    h = hashlib.sha256()
    fmt = dict(cfg=d, w=W_FRAC, a=A_FRAC, amax=A_MAX, logit=LOGIT_FRAC, nb=NEIGHBOURS, wave=WAVE)
    h.update(json.dumps(fmt, sort_keys=True).encode())
    h.update(tokenizer_id)
    for name in sorted(state):
        t = state[name].long().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().astype("<i8").tobytes())
    return h.digest()[:8]


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return pid


def prior_path_for(weights: str | os.PathLike) -> Path:
    """Where the prior of a tokenizer file lives by default: ``name.safetensors`` → ``name.prior.safetensors``."""
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + ".prior.safetensors")


def load_prior(path: str | os.PathLike, tokenizer_id: bytes | None = None, device: str = "cpu") -> ExactPrior:
    """Read an exact prior (safetensors only).

    Raises:
        ModelError: unreadable file, not a leechcodec prior, wrong shapes or tensor types,
            or a prior trained for a different tokenizer than ``tokenizer_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"prior file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT_TAG:
        raise ModelError(f"{path} is not a leechcodec prior (no '{FORMAT_TAG}' metadata)")
    try:
        d = json.loads(meta["config"])
        cb = bool(d.get("codeword_bias", LATER_FIELDS["codeword_bias"]))  # absent from priors saved before it existed
        cfg = PriorConfig(**{k: d[k] for k in ("name", "hidden", "layers")}, codeword_bias=cb)
        if not (0 < cfg.hidden <= 4096 and 0 < cfg.layers <= 16):
            raise ValueError("hidden/layers out of range")
        tok = bytes.fromhex(meta["tokenizer_id"])
        with torch.device("meta"):
            expected = ARPrior(cfg).state_dict()
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path} has an invalid prior config: {e}") from None
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise ModelError(f"{path}: tensors do not match the stored prior config")
    if any(v.dtype not in (torch.int32, torch.int64) for v in state.values()):
        raise ModelError(f"{path}: prior tensors must be integers")
    # the bounds that keep every integer sum of the exact prior below 2^53 (see quantize_state)
    if any(int(v.abs().max()) > (W_MAX if k.endswith("weight") else 2**40) for k, v in state.items() if v.numel()):
        raise ModelError(f"{path}: prior weights out of range")
    if tokenizer_id is not None and tok != bytes(tokenizer_id):
        raise ModelError(f"{path} is the prior of model {tok.hex()}, not of {bytes(tokenizer_id).hex()}")
    pid, legacy = prior_id_of(cfg, state, tok), prior_id_of(cfg, state, tok, legacy=True)
    if "prior_id" in meta and meta["prior_id"] not in (pid.hex(), legacy.hex()):  # saved by save_prior: either recipe
        raise ModelError(f"{path}: its weights hash to prior id {pid.hex()}, not the {meta['prior_id']!r:.40} it names")
    return ExactPrior(cfg, state, pid, device, (legacy,))


def exact(model: ARPrior, tokenizer_id: bytes, device: str = "cpu") -> ExactPrior:
    """The exact prior a float model exports to (what ``save_prior`` writes and ``load_prior`` reads)."""
    state = quantize_state(model)
    ids = prior_id_of(model.cfg, state, tokenizer_id), prior_id_of(model.cfg, state, tokenizer_id, legacy=True)
    return ExactPrior(model.cfg, state, ids[0], device, ids[1:])
