"""A tokenizer's files, read and checked once for both runtimes (no torch here).

``models.runtime`` (ONNX Runtime, numpy tensors) and ``models.io`` (torch tensors) load the same
``NAME.safetensors`` and attach the same ``NAME.prior.safetensors``: the checks on untrusted
weights and their error messages live here, so that the two runtimes refuse the same files
with the same words (tests/test_hardening.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from leechcodec.errors import ModelError
from leechcodec.exact_prior import load_prior, prior_path_for

from .config import DEFAULT_WEIGHTS, FORMAT_TAG, TokenizerConfig, config_from_json

MAX_HEADER = 100_000_000  # bytes of a safetensors JSON header we read at all


def read_weights(path: str | os.PathLike | None, framework: str) -> tuple[Path, TokenizerConfig, dict]:
    """The path, config and tensors of a tokenizer weights file (None: the bundled model);
    ``framework``: "numpy" or "pt" (torch tensors; safetensors imports torch then).

    Raises:
        ModelError: missing file, not safetensors, not a leechcodec tokenizer, or an invalid
            config (``models.config.config_from_json``).
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or int.from_bytes(head, "little") > MAX_HEADER:
            raise ModelError(f"{path} is not a safetensors file")
        with safe_open(str(path), framework=framework) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:  # TypeError: a dtype numpy lacks (bf16)
        raise ModelError(f"{path} is not a readable safetensors file ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT_TAG or "config" not in meta:
        raise ModelError(f"{path} is not a leechcodec tokenizer (no '{FORMAT_TAG}' metadata)")
    try:
        cfg = config_from_json(meta["config"])
        if cfg.depth + cfg.dec_depth > len(state):  # each block has several tensors
            raise ValueError(f"{cfg.depth}+{cfg.dec_depth} blocks but only {len(state)} tensors")
    except (ValueError, TypeError, ArithmeticError, RecursionError) as e:
        raise ModelError(f"{path} has an invalid model config: {e}") from None
    return path, cfg, state


def _finite_float(t) -> bool:
    if isinstance(t, np.ndarray):
        return bool(np.issubdtype(t.dtype, np.floating) and np.isfinite(t).all())
    return bool(t.is_floating_point() and t.isfinite().all())  # a torch tensor


def check_tensors(path: Path, cfg: TokenizerConfig, state: dict, shapes: dict) -> None:
    """``state`` holds exactly the tensors of ``shapes`` (name → shape), finite floats.

    Raises:
        ModelError: other names or shapes, or a tensor that is not finite floating point.
    """
    if set(state) != set(shapes) or any(tuple(state[k].shape) != tuple(shapes[k]) for k in shapes):
        raise ModelError(f"{path}: tensors do not match the stored config {cfg.name!r}")
    if not all(_finite_float(v) for v in state.values()):
        raise ModelError(f"{path}: tensors must be finite floating-point numbers")


def attach_prior(model, path: Path, prior: str | os.PathLike | None) -> None:
    """Set ``model.prior``: "auto" takes ``NAME.prior.safetensors`` beside the weights ``path``
    if there is one, a path that file (``leechcodec.exact_prior.load_prior`` checks it is
    this tokenizer's), None none."""
    model.prior = None
    if prior is None:
        return
    ppath = prior_path_for(path) if prior == "auto" else Path(prior)
    if prior != "auto" or ppath.is_file():
        model.prior = load_prior(ppath, bytes(model.model_id))
