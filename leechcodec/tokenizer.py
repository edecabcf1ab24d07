"""What the codec asks of a model, written once: the ``Tokenizer`` protocol.

A tokenizer turns a picture into a grid of 24-d latents and unit codeword vectors back into a
picture; everything else (tiling, the Λ24 search, the coders, the container) is the codec's.
Three classes implement it: ``models.runtime.OnnxTokenizer`` (ONNX Runtime, numpy in and out,
what encode and decode load by default), ``models.vit.LeechTokenizer`` (the torch network that
is trained) and ``torch_nets.TorchNets`` (a torch model behind numpy arrays, made by
``numpy_networks``). The first two derive their sizes from a ``TokenizerConfig``
(``ConfiguredTokenizer``); any other object with the protocol's members works too.

This module imports nothing heavy: ``leechcodec.pillow`` and the CLI read it at start-up.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

PRECISIONS = ("auto", "fp32", "bf16")  # the networks' arithmetic (torch_nets.block_dtype)


@runtime_checkable
class Tokenizer(Protocol):
    """The model interface of ``leechcodec.encode``/``decode``.

    Required: ``analysis``, ``synthesis``, ``model_id``, ``tile``, ``patch``. Optional, read
    with these defaults where absent: ``decode_halo`` (0: each tile decoded on its own),
    ``prior`` (None: the fixed coder only), ``numpy_io`` (False: torch tensors in and out),
    ``torch_model()`` (the model itself).
    """

    model_id: bytes  # 8 bytes naming the exact weights; written into every stream's header
    tile: int  # pixels per tile side (256: the format's)
    patch: int  # pixels per token side (8): a tile is (tile / patch)² tokens

    def analysis(self, x: Any) -> Any:
        """(B, 3, H, W) float32 in [0, 1] → latents (B, H/patch, W/patch, 24), not yet normalised."""

    def synthesis(self, q: Any) -> Any:
        """Unit codeword vectors (B, h, w, 24) → pictures (B, 3, h·patch, w·patch), unclamped."""


def _from_config(field: str, doc: str) -> property:
    return property(lambda self: getattr(self.cfg, field), doc=doc)


class ConfiguredTokenizer:
    """``tile``, ``patch``, ``grid`` and ``decode_halo`` of a tokenizer made from a config
    (``self.cfg``, a ``models.config.TokenizerConfig``): one derivation for every runtime."""

    cfg: Any
    tile = _from_config("tile", "pixels per tile side")
    patch = _from_config("patch", "pixels per token side")
    grid = _from_config("grid", "tokens per tile side")
    decode_halo = _from_config("decode_halo", "tokens of the neighbouring tiles the decoder sees")


def grid_of(model) -> int:
    """Tokens per tile side: ``tile / patch`` (32 for the bundled model)."""
    return model.tile // model.patch


def halo_of(model) -> int:
    """The model's decoder halo in tokens (0 where it has none)."""
    return max(0, int(getattr(model, "decode_halo", 0)))


def prior_of(model):
    """The model's AR prior, or None."""
    return getattr(model, "prior", None)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


def numpy_networks(model, device: str = "cpu", precision: str = "fp32"):
    """``model``'s networks with numpy arrays in and out (``analysis``, ``synthesis``, ``precision``).

    A model whose networks take numpy arrays (``numpy_io``: the ONNX Runtime tokenizer) is
    returned as it is: it runs on the CPU in float32, and asking it for "bf16" or "cuda" is an
    error (those need the torch model). Any other model is a torch model, wrapped by
    ``torch_nets.TorchNets`` (the one place where encode and decode import torch).
    """
    check_precision(precision)
    if getattr(model, "numpy_io", False):
        if precision == "bf16" or device != "cpu":
            what = "bf16 precision" if precision == "bf16" else f"device {device!r}"
            raise ValueError(f"{what} needs the torch backend; this model runs on ONNX Runtime (float32, CPU)")
        return model
    from .torch_nets import TorchNets  # imports torch: only for a torch model

    return TorchNets(model, device, precision)


def torch_model(model):
    """The torch network of ``model``, for what needs gradients (``encode --effort``): the model
    itself, or the twin a numpy-io model hands out (``torch_model()``; needs torch)."""
    twin = getattr(model, "torch_model", None)
    return twin() if twin is not None else model
