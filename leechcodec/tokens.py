"""Pictures ⇄ token grids, for generative models: ``tokenize`` and ``detokenize``.

    import leechcodec
    model = leechcodec.load_model()
    tokens = leechcodec.tokenize("kodim23.png", model)      # int32 (1, 64, 96): one per 8×8 patch
    pictures = leechcodec.detokenize(tokens, model)         # uint8 (1, 512, 768, 3)

The tokens are the codec's: ``tokenize`` runs what ``encode`` runs (the same tiles, network
batches and exact Λ24 search) and returns the token grid a stream stores, and ``detokenize``
runs what ``decode`` runs on it (padding tokens filled, the decoder's halo windows). A picture
of any size gives ceil(H/8) × ceil(W/8) tokens; its right and bottom edges are replicated into
the last tile, as the codec does. A token is an index into the 196,560 codewords of
``leechcodec.lattice`` (17.585 bits).

numpy in, numpy out on ONNX Runtime (the default model; no torch). Torch tensors in (a torch
model: ``load_model(backend="torch", device="cuda")``), torch tensors out on their device.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import coders, container, lattice, stages as staging
from .codec import indices_to_image, tiles_to_indices
from .container import DEFAULT_MAX_PIXELS
from .image_io import prepare, read_image, to_rgb_array
from .tiling import Tiles, grid_tiles, token_grid
from .tokenizer import grid_of, numpy_networks


def tokenize(images, model, *, stages: int = 1, device: str | None = None, precision: str = "auto",
             progress: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
             keep_orientation: bool = False):  # fmt: skip
    """Pictures → their token grids: int32 (N, ceil(H/8), ceil(W/8)), or (stages, N, …).

    Args:
        images: one picture or a batch of pictures of one size. One picture: a path, encoded
            image bytes, a PIL image, an (H, W, 3) uint8 array or a (3, H, W) torch tensor.
            A batch: a list of those (all tensors, or none), an (N, H, W, 3) uint8 array or an
            (N, 3, H, W) torch tensor. Files and PIL images go through ``encode``'s reading
            rules (colour profile, EXIF orientation, grey pictures as RGB). A float tensor holds
            values in [0, 1] and is rounded to 8 bits first, since the codec codes 8-bit pictures.
        model: a tokenizer (``leechcodec.load_model()``).
        stages: residual Λ24 stages (1 to ``MAX_STAGES``): stage k ≥ 2 is the token of what the
            stages before it left, every position holding one (what the fixed coder stores,
            ``leechcodec.stages``). ``stages`` > 1 adds a leading dimension.
        device, precision: the network's, as ``encode`` takes them ("cuda" needs a torch model);
            device None: where the model is (the CPU for ONNX Runtime).
        progress: a progress bar over the pictures of a batch.
        max_pixels: refuse larger pictures (None: no limit), as ``encode`` does.
        keep_orientation: code the stored pixel order, ignoring the EXIF orientation.

    Returns:
        int32 numpy, or an int32 torch tensor on the input tensor's device for torch input.
        ``tokens[..., i, j]`` codes the pixels ``8i … 8i+7`` × ``8j … 8j+7``.
    """
    stages = staging.check_stages(stages)
    pictures, like = _pictures(images, max_pixels, keep_orientation)
    net = numpy_networks(model, _device(model, device), precision)  # a bad device or precision fails before any work
    gain = staging.gains(model, stages)
    g = grid_of(model)
    out = []
    for rgb in tqdm(pictures, desc="tokenize", unit="picture", disable=not progress or len(pictures) < 2, leave=False):
        h, w = rgb.shape[:2]
        container.check_size(w, h, model.tile, max_pixels)
        tiles = Tiles(rgb, model.tile)
        latents = [] if stages > 1 else None
        first = tiles_to_indices(net, tiles, latents=latents)  # (T, g²): encode's call
        staged = [first]
        if stages > 1:
            filled = coders.fill_padding(first, container.token_extents(w, h, model.tile, model.patch), g)
            staged += list(staging.later_tokens(np.concatenate(latents), filled, gain, every=True)
                           .reshape(stages - 1, *first.shape))
        rows, cols = -(-h // model.patch), -(-w // model.patch)
        out.append(np.stack([token_grid(s, tiles.tx, tiles.ty)[:rows, :cols] for s in staged]))
    tokens = np.stack(out, 1).astype(np.int32)  # (S, N, rows, cols)
    return _like(tokens[0] if stages == 1 else tokens, like)


def detokenize(tokens, model, *, size: tuple[int, int] | None = None, device: str | None = None,
               precision: str = "auto", progress: bool = False):  # fmt: skip
    """Token grids → pictures, as ``decode`` makes them from a stream holding those tokens.

    Args:
        tokens: int (N, h, w) grids, or (S, N, h, w) of S residual stages (−1: a later-stage
            position without a token, as the ar coder's streams have), numpy or torch.
        model: the tokenizer that made them.
        size: (width, height) of the pictures, each side within 8 pixels below the grid's
            (a picture of W × H pixels has ceil(W/8) × ceil(H/8) tokens); default: the grid's
            own, (8w, 8h).
        device, precision: the network's, as ``decode`` takes them; device None: where the model is.
        progress: a progress bar over the pictures.

    Returns:
        uint8 (N, H, W, 3) numpy for numpy tokens; for torch tokens, float32 (N, 3, H, W) in
        [0, 1] (the 8-bit pictures, divided by 255) on the tokens' device.
    """
    arr, like = _as_numpy(tokens)
    if arr.ndim not in (3, 4) or arr.dtype.kind not in "iu":
        raise ValueError(f"expected integer tokens of shape (N, h, w) or (stages, N, h, w), got "
                         f"{arr.dtype} {tuple(arr.shape)} (one grid: tokens[None])")
    staged = arr[None] if arr.ndim == 3 else arr
    n_stages, n, rows, cols = staged.shape
    staging.check_stages(n_stages)
    if rows < 1 or cols < 1:
        raise ValueError(f"an empty token grid: {rows}x{cols}")
    width, height = size or (cols * model.patch, rows * model.patch)
    if -(-width // model.patch) != cols or -(-height // model.patch) != rows:
        raise ValueError(f"a {width}x{height} picture has {-(-width // model.patch)}x{-(-height // model.patch)} "
                         f"tokens (columns x rows), the grid {cols}x{rows}")
    later_low = n_stages > 1 and staged[1:].min() < staging.ABSENT
    if staged[0].min() < 0 or staged.max() >= lattice.N_CODEWORDS or later_low:
        raise ValueError("a token out of range: stage 1 holds indices 0 … 196559, later stages also −1 (no token)")
    net = numpy_networks(model, _device(model, device), precision)
    gain = staging.gains(model, n_stages)
    g, t = grid_of(model), model.tile
    tx, ty = container.tile_grid(width, height, t)
    extents = container.token_extents(width, height, t, model.patch)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in tqdm(range(n), desc="detokenize", unit="picture", disable=not progress or n < 2, leave=False):
        # (S, T, g²), the padding tokens filled as decode fills them
        tiles = np.stack([coders.fill_padding(grid_tiles(s[i], tx, ty, g), extents, g) for s in staged])
        out[i] = indices_to_image(net, tiles, tx, ty, size=(width, height), gain=gain)
    if like is None:
        return out
    torch = sys.modules["torch"]
    return torch.from_numpy(out).to(like).permute(0, 3, 1, 2).float().div_(255.0)


# ------------------------------------------------------------------------------------ helpers
def _device(model, device: str | None) -> str:
    """``device``, or where the model's parameters are (the CPU for a model without them)."""
    if device is not None:
        return device
    params = getattr(model, "parameters", None)
    p = next(iter(params()), None) if callable(params) and not getattr(model, "numpy_io", False) else None
    return "cpu" if p is None else str(p.device)


def _pictures(images, max_pixels: int | None, keep_orientation: bool) -> tuple[list[np.ndarray], object]:
    """``tokenize``'s input → (H, W, 3) uint8 pictures of one size, and the torch device to
    return tensors on (None: numpy)."""
    t = sys.modules.get("torch")
    if t is not None and isinstance(images, t.Tensor):
        x = images.detach()
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (3, H, W) or (N, 3, H, W) tensor, got shape {tuple(images.shape)}")
        if x.is_floating_point():
            x = (x.float().clamp(0, 1) * 255).round()  # the 8-bit picture the codec would code
        elif x.dtype != t.uint8:
            raise ValueError(f"an integer picture tensor must be uint8, got {x.dtype}")
        pics = x.to(t.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return list(pics), images.device
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[-1] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) or (N, H, W, 3) array, got {images.dtype} {images.shape}")
        return list(images[None] if images.ndim == 3 else images), None
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("no pictures to tokenize")
    if t is not None and all(isinstance(x, t.Tensor) for x in items):
        if len({tuple(x.shape) for x in items}) > 1:
            raise ValueError("the pictures of a batch must share one size: tokenize them one by one")
        return _pictures(t.stack(items), max_pixels, keep_orientation)
    pics = [_one_picture(x, max_pixels, keep_orientation) for x in items]
    if len({p.shape for p in pics}) > 1:
        sizes = sorted({f"{p.shape[1]}x{p.shape[0]}" for p in pics})
        raise ValueError(f"the pictures of a batch must share one size, got {', '.join(sizes)}: "
                         "tokenize them one by one")
    return pics, None


def _one_picture(x, max_pixels: int | None, keep_orientation: bool) -> np.ndarray:
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) array, got {x.dtype} {x.shape}")
        return x
    if not isinstance(x, (str, os.PathLike, bytes, Image.Image)) and not hasattr(x, "read"):
        raise TypeError(f"cannot tokenize a {type(x).__name__}: give a path, image bytes, a PIL image or an array")
    return to_rgb_array(prepare(read_image(x, max_pixels), keep_orientation))[0]


def _as_numpy(tokens) -> tuple[np.ndarray, object]:
    t = sys.modules.get("torch")
    if t is not None and isinstance(tokens, t.Tensor):
        return tokens.detach().cpu().numpy(), tokens.device
    return np.asarray(tokens), None


def _like(tokens: np.ndarray, device) -> object:
    if device is None:
        return tokens
    return sys.modules["torch"].from_numpy(np.ascontiguousarray(tokens)).to(device)

