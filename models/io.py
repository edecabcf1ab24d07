"""Weights I/O: fp16 safetensors with the config in the metadata, and the model id.

Only safetensors is ever read (no pickle). The model id written into every .lq header is
the first 8 bytes of SHA-256 over the config JSON and every fp16 tensor (name, shape,
bytes, in name order), so it identifies the exact weights a stream needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from leechcodec.errors import ModelError

from .vit import LeechTokenizer, TokenizerConfig

FORMAT_TAG = "leechcodec-tokenizer"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "leech-small.safetensors"


def _fp16_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}


def model_id_of(cfg: TokenizerConfig, state: dict[str, torch.Tensor]) -> bytes:
    """8-byte content hash of a config and its fp16 tensors."""
    h = hashlib.sha256()
    h.update(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].to(torch.float16).contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.digest()[:8]


def save_weights(model: LeechTokenizer, path: str | os.PathLike) -> bytes:
    """Write ``model`` as fp16 safetensors (atomically) and return its model id."""
    state = _fp16_state(model)
    mid = model_id_of(model.cfg, state)
    meta = {"format": FORMAT_TAG, "config": json.dumps(model.cfg.to_dict()), "model_id": mid.hex()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return mid


def load_weights(path: str | os.PathLike | None = None, device: str = "cpu") -> LeechTokenizer:
    """Rebuild a tokenizer from a safetensors file (default: the bundled model).

    Raises:
        ModelError: missing file, not safetensors, not a leechcodec tokenizer, or tensors
            that do not match the stored config.
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or int.from_bytes(head, "little") > 100_000_000:
            raise ModelError(f"{path} is not a safetensors file")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT_TAG or "config" not in meta:
        raise ModelError(f"{path} is not a leechcodec tokenizer (no '{FORMAT_TAG}' metadata)")
    try:
        cfg = TokenizerConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as e:
        raise ModelError(f"{path} has an invalid model config: {e}") from None
    model = LeechTokenizer(cfg)
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise ModelError(f"{path}: tensors do not match the stored config {cfg.name!r}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.model_id = model_id_of(cfg, state)
    return model.to(device).eval()
