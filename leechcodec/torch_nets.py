"""A torch tokenizer behind the codec's numpy interface (``--backend torch``, ``--device cuda``).

The codec (``leechcodec.codec``) hands a model's networks numpy arrays and takes numpy arrays
back: the ONNX Runtime tokenizer (``models.runtime``) works that way natively. A torch model
(``models.vit.LeechTokenizer``, or any ``tokenizer.Tokenizer`` whose ``analysis``/``synthesis``
take and return torch tensors) is wrapped here by ``tokenizer.numpy_networks``, so the codec
itself never imports torch: only this module and the training code do.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from .tokenizer import check_precision, grid_of, halo_of


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` does bfloat16 matrix products in hardware (a CUDA GPU that supports
    it, or a CPU with AMX tiles), where bf16 blocks make the networks about twice as fast."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def block_dtype(device: str = "cpu", precision: str = "fp32") -> torch.dtype | None:
    """The dtype of the networks' transformer blocks: None (float32) or torch.bfloat16.

    ``"auto"`` takes bf16 where the hardware has it (``native_bf16``). Only the blocks' matrix
    products (and the decoder head's transposed convolution): their residual stream, the layer
    norms and the layers around them stay float32 (``models.vit.run_blocks``; the whole encoder
    in bf16 costs 0.26 dB). On the 24 Kodak images, encode and decode in bf16 give 26.136 dB
    against 26.137 in float32 (MS-SSIM 0.9084 both) at about twice the speed
    (docs/training-log.md, "Kodak figures"). The pixels of a stream are not part of the
    format, and "fp32" is the reference.
    """
    check_precision(precision)
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


def _net(fn, x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``model.analysis``/``model.synthesis`` (float32 out); a model that takes no
    ``block_dtype`` is only ever called in float32."""
    if dtype is None or "block_dtype" not in inspect.signature(fn).parameters:
        return fn(x).float()
    return fn(x, block_dtype=dtype).float()


class TorchNets:
    """``model``'s networks with numpy in and out, run on ``device`` in ``precision``: a
    ``tokenizer.Tokenizer`` with ``numpy_io`` (the codec's view of a torch model)."""

    numpy_io = True  # analysis/synthesis take and return numpy arrays
    runtime = "torch"  # what runs the networks

    def __init__(self, model, device: str = "cpu", precision: str = "fp32"):
        self.model, self.device = model, torch.device(device)
        self.tile, self.patch, self.grid = model.tile, model.patch, grid_of(model)
        self.decode_halo = halo_of(model)
        self.dtype = block_dtype(device, precision)
        self.precision = "bf16" if self.dtype is not None else "fp32"

    @torch.inference_mode()
    def analysis(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 in [0, 1] → (B, H/8, W/8, 24) float32 latents."""
        return _net(self.model.analysis, torch.from_numpy(x).to(self.device), self.dtype).cpu().numpy()

    @torch.inference_mode()
    def synthesis(self, q: np.ndarray) -> np.ndarray:
        """(B, h, w, 24) float32 unit codeword vectors → (B, 3, 8h, 8w) float32, unclamped."""
        return _net(self.model.synthesis, torch.from_numpy(q).to(self.device), self.dtype).cpu().numpy()
