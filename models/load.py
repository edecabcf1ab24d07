"""One entry point for loading a model, whichever runtime serves it (no torch unless needed).

``load()`` gives the codec a tokenizer with its AR prior attached:

* ``backend="onnx"``: the networks on ONNX Runtime (``models.runtime``), the prior and the Λ24
  search in numpy. What encode and decode use on a CPU: no torch import (0.05 s against about
  1 s), and ONNX Runtime's float32 kernels were faster than torch's on 2 cores (README, "Speed").
* ``backend="torch"``: the ``nn.Module`` of ``models.vit`` (``models.io.load_weights``), for
  ``--device cuda``, ``--precision bf16`` and what needs gradients (training, ``--effort``).
  Needs torch (the ``train`` extra).
* ``backend="auto"`` (the default): torch where the device or precision asks for it, else
  ONNX; a weights file without ONNX graphs beside it (``python -m leechcodec.models.export_onnx``
  makes them) falls back to torch when torch is installed.
"""

from __future__ import annotations

from leechcodec.errors import have_torch, require_cuda, require_torch

from .runtime import NoGraphError, default_threads, load_onnx

BACKENDS = ("auto", "onnx", "torch")


def wants_torch(backend: str = "auto", device: str = "cpu", precision: str = "auto") -> bool:
    """Whether ``load`` takes the torch model for these options (before looking at the files)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return backend == "torch" or (backend == "auto" and (device != "cpu" or precision == "bf16"))


def load(path=None, prior="auto", device: str = "cpu", backend: str = "auto", threads: int | None = None,
         precision: str = "auto"):
    """The tokenizer of the weights file ``path`` (None: the bundled model) with its prior.

    Args:
        path: a tokenizer .safetensors (its config is in the file's metadata).
        prior: "auto" (``NAME.prior.safetensors`` beside the weights, if there is one), a path,
            or None (no prior: the fixed coder only).
        device: "cpu" or "cuda" (torch).
        backend: "auto", "onnx" or "torch" (module docstring).
        threads: CPU threads for the networks (None: ``models.runtime.default_threads()``).
        precision: only read to choose the backend: "bf16" needs torch.

    Raises:
        ModelError: unusable weights or prior; ``NoGraphError`` (a ModelError) for
            ``backend="onnx"`` and weights without ONNX graphs.
        LeechError: the torch backend is needed and torch is not installed.
    """
    threads = threads or default_threads()
    if not wants_torch(backend, device, precision):
        try:
            return load_onnx(path, prior=prior, threads=threads)
        except NoGraphError:
            if backend == "onnx" or not have_torch():
                raise
    why = "--device cuda" if device != "cpu" else "--precision bf16" if precision == "bf16" else "the torch backend"
    require_torch(why, hint=" (README, 'Install') or use the default CPU backend")
    if device == "cuda":
        require_cuda()
    import torch  # ~1 s: only for the torch backend (training's extra)

    from .io import load_weights  # imports torch likewise

    torch.set_num_threads(threads)
    return load_weights(path, device=device, prior=prior)
