"""Weights I/O: fp16 safetensors with the config in the metadata, and the model id.

Only safetensors is ever read (no pickle). The model id written into every .lq header is
the first 8 bytes of SHA-256 over the config JSON and every fp16 tensor (name, shape,
bytes, in name order), so it identifies the exact weights a stream needs.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from leechcodec.errors import ModelError

from .config import (  # noqa: F401  (re-exported: they moved to the torch-free models.config)
    DEFAULT_WEIGHTS,
    FORMAT_TAG,
    LATER_FIELDS,
    MAX_TILE_TOKENS,
    ZERO_OK,
    config_from_json,
    model_id_of,
)
from .vit import LeechTokenizer


def _fp16_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}


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


def load_weights(path: str | os.PathLike | None = None, device: str = "cpu", prior: str | os.PathLike | None = "auto") -> LeechTokenizer:
    """Rebuild a tokenizer from a safetensors file (default: the bundled model).

    ``prior``: the AR prior to attach as ``model.prior`` (what ``--coder ar`` needs): "auto"
    takes ``NAME.prior.safetensors`` beside the weights if there is one, None attaches none.

    Nothing is allocated from the config alone: the tensor shapes it implies are checked
    on the meta device against the tensors actually in the file.

    Raises:
        ModelError: missing file, not safetensors, not a leechcodec tokenizer, an invalid
            config, or tensors that do not match the stored config or are not finite.
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
        cfg = config_from_json(meta["config"])
        if cfg.depth + cfg.dec_depth > len(state):  # each block has several tensors
            raise ValueError(f"{cfg.depth}+{cfg.dec_depth} blocks but only {len(state)} tensors")
        with torch.device("meta"):  # shapes only, no memory
            model = LeechTokenizer(cfg)
        expected = model.state_dict()
    except (ValueError, TypeError, ArithmeticError, RuntimeError) as e:  # RuntimeError: RecursionError, torch
        raise ModelError(f"{path} has an invalid model config: {e}") from None
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise ModelError(f"{path}: tensors do not match the stored config {cfg.name!r}")
    if not all(v.is_floating_point() and bool(v.isfinite().all()) for v in state.values()):
        raise ModelError(f"{path}: tensors must be finite floating-point numbers")
    model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)  # meta → the file's tensors
    model.model_id = model_id_of(cfg, state)
    model.prior = None
    if prior is not None:
        from .prior import load_prior, prior_path_for

        ppath = prior_path_for(path) if prior == "auto" else Path(prior)
        if prior != "auto" or ppath.is_file():
            model.prior = load_prior(ppath, model.model_id, device)
    return model.to(device).eval()
