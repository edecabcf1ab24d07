"""The exact integer AR prior that the ar coder uses: numpy only, no torch.

Model
-----
A token is coded by the chain rule along the lattice's own structure (``leechcodec.codewords``
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

The float model that is trained (``ARPrior``, torch) lives in ``leechcodec.models.prior``,
with the quantisation (``quantize_state``) and ``save_prior``; this module holds what coding
needs (the formats, ``ExactPrior``, the prior id, ``load_prior``), so that encoding and
decoding never import torch.

Determinism
-----------
Training uses float32 (``ARPrior``). Coding uses ``ExactPrior``: the same network with
integer weights, integer activations (floored to 1/256) and integer logits (1/256 nat),
evaluated as float64 numpy arrays holding integers below 2^53. Every sum of such products is
exact in any order, so the logits are bit-identical across BLAS libraries, thread counts and
batch sizes, and equal to what the earlier torch implementation computed (float64 tensors on
CPU or CUDA, same integers). The bounds that keep every sum below 2^53 are checked when a
prior is loaded (``load_prior``): weights within ±W_MAX, biases within ±2^40; with inputs in
−4…4 (the context) or 0…A_MAX (activations) and at most 4,096 hidden units, a product sum stays
under 2^44. Integer logits turn into integer frequencies through a table built with integer
arithmetic (``leechcodec.probability``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from .codewords import BASES, DETAIL, DIM, N_CODEWORDS, SUPPORT, detail_vectors
from .errors import ModelError

# causal neighbourhood (row, column offsets) and the wavefront that respects it
NEIGHBOURS = tuple((dr, dc) for dr in (-2, -1) for dc in range(-2, 3)) + ((0, -2), (0, -1))
WAVE = 3  # every neighbour of (r, c) has WAVE·r' + c' < WAVE·r + c
PAD = 2  # zero border of the context grid: 2 rows on top, 2 columns on each side
CTX_DIM = len(NEIGHBOURS) * DIM  # 288 integers in −4…4

N_CLASSES = 3

# fixed-point formats of the exact prior (part of the .lq "ar" format: changing any of them
# changes every probability, so they are hashed into the prior id)
W_FRAC = 12  # weights and first-layer biases: round(w · 2^12)
A_FRAC = 8  # activations: floor(a · 2^8), clamped to [0, A_MAX]
A_MAX = 2**16 - 1
LOGIT_FRAC = 8  # logits handed to the coder: floor(l · 2^8), i.e. 1/256 nat
W_MAX = 2**15 - 1
B_MAX = 2**40  # biases (and codeword biases) of a prior file

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


def state_shapes(cfg: PriorConfig) -> dict[str, tuple[int, ...]]:
    """The tensors of a prior of config ``cfg`` and their shapes: the ``state_dict`` of
    ``models.prior.ARPrior(cfg)`` (tests/test_numpy_coding.py checks that they agree)."""
    dims = [CTX_DIM] + [cfg.hidden] * cfg.layers
    heads = {"cls_head": N_CLASSES, **{f"support_heads.{k}": n for k, n in enumerate(SUPPORT)},
             "u_head": DIM, "place_head": DETAIL[1]}  # fmt: skip
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        shapes[f"trunk.{i}.weight"], shapes[f"trunk.{i}.bias"] = (n_out, n_in), (n_out,)
    for name, n_out in heads.items():
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n_out, cfg.hidden), (n_out,)
    if cfg.codeword_bias:
        shapes["codeword_bias"] = (N_CODEWORDS,)
    return shapes


def detail_rows(cls: int, a: np.ndarray) -> np.ndarray:
    """(N,) supports of class ``cls`` → (N, DETAIL[cls]) codeword indices sharing each support."""
    m = DETAIL[cls]
    return BASES[cls] + np.asarray(a, dtype=np.int64)[:, None] * m + np.arange(m)


class ExactPrior:
    """Integer inference of an ``ARPrior``: what ``leechcodec.coders`` calls to code tokens.

    Methods take and return numpy arrays; every result is float64 holding integers, logits in
    1/256 nat.
    """

    neighbours = NEIGHBOURS
    wave = WAVE
    classes = N_CLASSES

    def __init__(self, cfg: PriorConfig, state: dict, prior_id: bytes, legacy_ids=()):
        self.cfg = cfg
        self.prior_id = prior_id  # what the encoder writes
        self.ids = (prior_id, *(i for i in legacy_ids if i != prior_id))  # what a stream may name (decoder)
        # np.asarray also takes CPU torch tensors (models.prior.exact hands over numpy already)
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}

    @staticmethod
    def _floor_shift(x: np.ndarray, bits: int) -> np.ndarray:
        return np.floor(x * 2.0**-bits)  # exact: a power-of-two scale, then floor

    def features(self, ctx) -> np.ndarray:
        """(N, 288) integer contexts → (N, hidden) integer activations at 2^A_FRAC."""
        a = np.asarray(ctx, dtype=np.float64)
        for i in range(self.cfg.layers):
            y = a @ self.w[f"trunk.{i}.weight"].T + self.w[f"trunk.{i}.bias"]
            shift = W_FRAC - A_FRAC if i == 0 else W_FRAC
            a = np.clip(self._floor_shift(y, shift), 0, A_MAX, out=y)
        return a

    def _head(self, h: np.ndarray, name: str) -> np.ndarray:
        return h @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # at 2^(A_FRAC+W_FRAC)

    def _logits(self, y: np.ndarray) -> np.ndarray:
        return self._floor_shift(y, A_FRAC + W_FRAC - LOGIT_FRAC)

    def class_logits(self, h) -> np.ndarray:
        return self._logits(self._head(np.asarray(h, dtype=np.float64), "cls_head"))

    def support_logits(self, h, cls: int) -> np.ndarray:
        return self._logits(self._head(np.asarray(h, dtype=np.float64), f"support_heads.{cls}"))

    def detail_logits(self, h, cls: int, a) -> np.ndarray:
        """(N, hidden) features and (N,) supports of class ``cls`` → (N, DETAIL[cls]) logits."""
        h = np.asarray(h, dtype=np.float64)
        a = np.asarray(a, dtype=np.int64)
        u = self._logits(self._head(h, "u_head"))  # (N, 24), 1/256 nat per unit of a codeword entry
        v = detail_vectors(cls)[a].astype(np.float64)  # (N, m, 24)
        y = np.matmul(v, u[:, :, None])[:, :, 0]
        if cls == 1:
            y += self._logits(self._head(h, "place_head"))
        if "codeword_bias" in self.w:
            y += self.w["codeword_bias"][detail_rows(cls, a)]
        return y


# ----------------------------------------------------------------------------- files
def prior_id_of(cfg: PriorConfig, state: dict, tokenizer_id: bytes, legacy: bool = False) -> bytes:
    """8-byte content hash of the exact prior: config, fixed-point formats, integer weights.

    ``state`` maps names to integer arrays (numpy, or CPU torch tensors, or the float64 arrays
    of an ``ExactPrior``: each is hashed as its little-endian int64 values).

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
        t = np.asarray(state[name])
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.astype("<i8").tobytes())  # C order, whatever the array's layout
    return h.digest()[:8]


def prior_path_for(weights: str | os.PathLike) -> Path:
    """Where the prior of a tokenizer file lives by default: ``name.safetensors`` → ``name.prior.safetensors``."""
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + ".prior.safetensors")


_INT_DTYPES = {"I32": np.int32, "I64": np.int64}  # safetensors' names of the integer types a prior may hold


def load_prior(path: str | os.PathLike, tokenizer_id: bytes | None = None) -> ExactPrior:
    """Read an exact prior (safetensors only, with ``safetensors``' numpy reader).

    Shapes and types are checked from the file's header before any tensor is read: a tensor
    of a type numpy lacks (bfloat16) is refused as "not integers", not as an unreadable file.

    Raises:
        ModelError: unreadable file, not a leechcodec prior, wrong shapes or tensor types,
            or a prior trained for a different tokenizer than ``tokenizer_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"prior file not found: {path}")
    unreadable = f"{path} is not a readable safetensors file"
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{unreadable} ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT_TAG:
        raise ModelError(f"{path} is not a leechcodec prior (no '{FORMAT_TAG}' metadata)")
    try:
        d = json.loads(meta["config"])
        cb = bool(d.get("codeword_bias", LATER_FIELDS["codeword_bias"]))  # absent from priors saved before it existed
        cfg = PriorConfig(**{k: d[k] for k in ("name", "hidden", "layers")}, codeword_bias=cb)
        if not (0 < cfg.hidden <= 4096 and 0 < cfg.layers <= 16):
            raise ValueError("hidden/layers out of range")
        tok = bytes.fromhex(meta["tokenizer_id"])
        expected = state_shapes(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path} has an invalid prior config: {e}") from None
    if set(header) != set(expected) or any(header[k][0] != expected[k] for k in expected):
        raise ModelError(f"{path}: tensors do not match the stored prior config")
    if any(dtype not in _INT_DTYPES for _, dtype in header.values()):
        raise ModelError(f"{path}: prior tensors must be integers")
    try:
        with safe_open(str(path), framework="numpy") as f:
            state = {k: f.get_tensor(k) for k in header}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ModelError(f"{unreadable} ({e.__class__.__name__})") from None
    # the bounds that keep every integer sum of the exact prior below 2^53 (see the module docstring);
    # max and -min as Python ints: abs() of the most negative int32/int64 would overflow
    if any(max(int(v.max()), -int(v.min())) > (W_MAX if k.endswith("weight") else B_MAX)
           for k, v in state.items() if v.size):  # fmt: skip
        raise ModelError(f"{path}: prior weights out of range")
    if tokenizer_id is not None and tok != bytes(tokenizer_id):
        raise ModelError(f"{path} is the prior of model {tok.hex()}, not of {bytes(tokenizer_id).hex()}")
    pid, legacy = prior_id_of(cfg, state, tok), prior_id_of(cfg, state, tok, legacy=True)
    if "prior_id" in meta and meta["prior_id"] not in (pid.hex(), legacy.hex()):  # saved by save_prior: either recipe
        raise ModelError(f"{path}: its weights hash to prior id {pid.hex()}, not the {meta['prior_id']!r:.40} it names")
    return ExactPrior(cfg, state, pid, legacy_ids=(legacy,))
