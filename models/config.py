"""The tokenizer's configuration, presets and model id, without torch.

Everything a weights file's metadata means lives here, so that the ONNX Runtime path
(``models.runtime``) reads, checks and identifies a model without importing torch.
``models.vit`` re-exports the presets and the config class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leechcodec.container import TILE
from leechcodec.stages import STAGE_DECAY, STAGE_GAIN


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything needed to rebuild a tokenizer; stored in the weights file's metadata."""

    name: str = "custom"
    width: int = 192  # transformer width D
    depth: int = 4  # encoder blocks
    dec_depth: int = 4  # decoder blocks
    heads: int = 3
    mlp_ratio: float = 4.0
    patch: int = 8
    tile: int = 256
    latent_dim: int = 24
    stem: str = "conv"  # "conv" (3 strided convs) or "linear" (one 8×8 patch projection)
    head: str = "conv"  # "conv" (unpatchify + 2 convs), "linear" (unpatchify only) or "overlap" (see below)
    head_channels: int = 16
    skip: str = "none"  # "linear": a per-patch linear path beside encoder and decoder (see ``pca_init``)
    decode_halo: int = 0  # tokens of the neighbouring tiles the decoder sees around each tile (codec.indices_to_image)
    # residual stages (leechcodec/stages.py): stage k >= 2 adds stage_gain * stage_decay**(k - 2) times its
    # unit codeword to the decoder's input; the defaults fit the shipped model's residuals (docs/training-log.md)
    stage_gain: float = STAGE_GAIN
    stage_decay: float = STAGE_DECAY

    def __post_init__(self):
        if self.tile % self.patch:
            raise ValueError(f"tile {self.tile} is not divisible by patch {self.patch}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.latent_dim != 24:
            raise ValueError(f"latent_dim must be 24 for Λ24, got {self.latent_dim}")
        if self.stem not in ("conv", "linear") or self.head not in ("conv", "linear", "overlap"):
            raise ValueError(f"unknown stem/head {self.stem!r}/{self.head!r}")
        if self.skip not in ("none", "linear"):
            raise ValueError(f"unknown skip {self.skip!r}")
        if self.head == "overlap" and self.patch % 2:
            raise ValueError(f"the overlap head needs an even patch, got {self.patch}")
        if not 0 <= self.decode_halo <= self.tile // self.patch:
            raise ValueError(f"decode_halo must be 0..{self.tile // self.patch} tokens, got {self.decode_halo}")
        if not (0 < self.stage_gain <= 1 and 0 < self.stage_decay <= 1):
            raise ValueError(f"stage_gain and stage_decay must be in (0, 1], got {self.stage_gain}, {self.stage_decay}")
        if self.stem == "conv" and self.patch != 8:
            raise ValueError(f"the conv stem is built for patch 8, got {self.patch}")

    @property
    def grid(self) -> int:
        return self.tile // self.patch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**d)


PRESETS: dict[str, TokenizerConfig] = {
    # for tests: seconds on a CPU
    "tiny": TokenizerConfig(name="tiny", width=32, depth=1, dec_depth=1, heads=2, head_channels=8),
    # the shot preset in miniature, for the dry run of scripts/gpu_shot.sh
    "shot-tiny": TokenizerConfig(
        name="shot-tiny", width=32, depth=1, dec_depth=1, heads=2, head="overlap", head_channels=8, skip="linear"
    ),
    # sized to train and run on 2 CPU cores (the first shipped model)
    "small": TokenizerConfig(name="small", width=192, depth=3, dec_depth=4, heads=3),
    # "small" plus the PCA-initialised linear skip path (the 2026-11-25 releases, MODEL_CARD.md)
    "small-skip": TokenizerConfig(name="small-skip", width=192, depth=3, dec_depth=4, heads=3, skip="linear"),
    # trained by GPU shots (models/shot.py): wider, deeper decoder, overlapping output head
    "shot": TokenizerConfig(
        name="shot", width=256, depth=4, dec_depth=7, heads=4, head="overlap", head_channels=16, skip="linear",
        decode_halo=6,
    ),
    # a wider/deeper step up for GPU training
    "medium": TokenizerConfig(name="medium", width=384, depth=8, dec_depth=8, heads=6),
    # paper-like: width 768, depth 12, heads 12, ~174M parameters
    "base": TokenizerConfig(
        name="base", width=768, depth=12, dec_depth=12, heads=12, stem="linear", head="linear"
    ),
}
DEFAULT_PRESET = "shot"

FORMAT_TAG = "leechcodec-tokenizer"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "leech.safetensors"

# config fields added after the first release, with the value that means "as before"
LATER_FIELDS = {"skip": "none", "decode_halo": 0, "stage_gain": STAGE_GAIN, "stage_decay": STAGE_DECAY}
ZERO_OK = {"decode_halo"}  # integer fields where 0 is meaningful
STAGE_FIELDS = ("stage_gain", "stage_decay")  # what the codec does with the stages' tokens, not in the networks

MAX_TILE_TOKENS = 64 * 64  # tokens per tile; the fixed coder's big-integer work grows as its square


def config_from_json(text: str) -> TokenizerConfig:
    """Parse and check a config from untrusted JSON: known fields, their types, sane ranges.

    Raises:
        ValueError: anything wrong (``json.JSONDecodeError`` is a ValueError).
    """
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError("the config is not a JSON object")
    for f in dataclasses.fields(TokenizerConfig):
        if f.name not in d:
            continue
        v, kind = d[f.name], type(f.default)
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else kind):
            raise ValueError(f"{f.name} must be {kind.__name__}, got {v!r:.40}")
        if kind in (int, float) and not (0 <= v < float("inf") if f.name in ZERO_OK else 0 < v < float("inf")):
            raise ValueError(f"{f.name} must be {'non-negative' if f.name in ZERO_OK else 'positive'} and finite, got {v!r:.40}")
    cfg = TokenizerConfig.from_dict(d)
    if cfg.tile != TILE:
        raise ValueError(f"tile {cfg.tile}: the .lq format (version 1) has {TILE}px tiles")
    if (cfg.tile // cfg.patch) ** 2 > MAX_TILE_TOKENS:
        raise ValueError(f"{(cfg.tile // cfg.patch) ** 2} tokens per tile, over {MAX_TILE_TOKENS}")
    return cfg


def _fp16_bytes(t) -> bytes:
    """A tensor's values as little-endian IEEE half: numpy arrays as they are, torch tensors
    through ``.half()`` (duck-typed, so that this module never imports torch)."""
    a = t if isinstance(t, np.ndarray) else t.detach().cpu().half().contiguous().numpy()
    return np.ascontiguousarray(a, dtype="<f2").tobytes()


def model_id_of(cfg: TokenizerConfig, state: dict) -> bytes:
    """8-byte content hash of a config and its fp16 tensors (torch tensors or numpy arrays:
    the same values give the same id, so both runtimes name a weights file alike)."""
    h = hashlib.sha256()
    d = cfg.to_dict()
    for name, default in LATER_FIELDS.items():  # keep the ids of weights saved before they existed
        if d.get(name) == default:
            del d[name]
    h.update(json.dumps(d, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name]
        h.update(name.encode())
        h.update(str(tuple(int(n) for n in t.shape)).encode())
        h.update(_fp16_bytes(t))
    return h.digest()[:8]


# The sin-cos table has entries of size ~0.7; at full scale it drowned the content signal and
# the small preset sat on a predict-the-mean plateau (12 dB after 80 steps); at 0.1, with the
# decoder input rescaled to unit variance, it reached 17 dB (A/B, 80 steps of 8 128px crops).
POS_SCALE = 0.1


def sincos_pos_embed(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """Fixed 2-D sin-cos position embedding, (grid_h*grid_w, dim) float32: the numpy twin of
    ``models.vit.sincos_pos_embed`` (float64 arithmetic, rounded once), for the ONNX graphs,
    which take the table as an input (``models.export_onnx``)."""
    if dim % 4:
        raise ValueError(f"position embedding width {dim} is not divisible by 4")
    q = dim // 4
    omega = 1.0 / (10000 ** (np.arange(q, dtype=np.float64) / q))
    ys, xs = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64), indexing="ij")
    oy = ys.reshape(-1, 1) * omega
    ox = xs.reshape(-1, 1) * omega
    return np.concatenate([np.sin(oy), np.cos(oy), np.sin(ox), np.cos(ox)], 1).astype(np.float32)


def pos_table(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """``POS_SCALE`` × the sin-cos table, as ``models.vit.pos_embed`` adds it (float32 product)."""
    return sincos_pos_embed(grid_h, grid_w, dim) * np.float32(POS_SCALE)
