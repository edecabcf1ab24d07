"""Weights I/O: fp16 safetensors with the config in the metadata, and the model id.

Only safetensors is ever read (no pickle). The model id written into every .lq header is
the first 8 bytes of SHA-256 over the config JSON and every fp16 tensor (name, shape,
bytes, in name order), so it identifies the exact weights a stream needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save

from leechcodec.errors import ModelError
from leechcodec.output import write_file

from .config import FORMAT_TAG, model_id_of
from .files import attach_prior, check_tensors, read_weights
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
    write_file(path, lambda f: f.write(save(state, metadata=meta)))
    return mid


def load_weights(path: str | os.PathLike | None = None, device: str = "cpu", prior: str | os.PathLike | None = "auto") -> LeechTokenizer:
    """Rebuild a tokenizer from a safetensors file (default: the bundled model).

    ``prior``: the AR prior to attach as ``model.prior`` (what ``--coder ar`` needs): "auto"
    takes ``NAME.prior.safetensors`` beside the weights if there is one, None attaches none.

    Nothing is allocated from the config alone: the tensor shapes it implies are checked
    on the meta device against the tensors actually in the file.

    Raises:
        ModelError: missing file, not safetensors, not a leechcodec tokenizer, an invalid
            config, or tensors that do not match the stored config or are not finite
            (``models.files``).
    """
    path, cfg, state = read_weights(path, "pt")
    try:
        with torch.device("meta"):  # shapes only, no memory
            model = LeechTokenizer(cfg)
        expected = {k: v.shape for k, v in model.state_dict().items()}
    except (ValueError, TypeError, ArithmeticError, RuntimeError) as e:  # RuntimeError: RecursionError, torch
        raise ModelError(f"{path} has an invalid model config: {e}") from None
    check_tensors(path, cfg, state, expected)
    model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)  # meta → the file's tensors
    model.model_id = model_id_of(cfg, state)
    attach_prior(model, path, prior)
    return model.to(device).eval()
