"""Pictures ⇄ 256-px tiles, and token grids ⇄ the decoder's windows: the geometry both encoding
(``codec``, ``refine``) and decoding (``codec.indices_to_image``) share.

Padding rule: a picture whose sides are not multiples of the tile is padded on the right and
bottom by replicating its last column/row; decode crops the padding away exactly. Tiles are in
row-major order; each tile's tokens in raster order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from . import container


def tile_image(rgb: np.ndarray, tile: int) -> np.ndarray:
    """(H, W, 3) uint8 → (T, 3, tile, tile) uint8, row-major tiles, edge-padded."""
    h, w, _ = rgb.shape
    tx, ty = container.tile_grid(w, h, tile)
    padded = np.pad(rgb, ((0, ty * tile - h), (0, tx * tile - w), (0, 0)), mode="edge")
    tiles = padded.reshape(ty, tile, tx, tile, 3).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(tiles.reshape(ty * tx, 3, tile, tile))


class Tiles:
    """``tile_image(rgb, tile)`` made on demand: ``len`` and ``[slice]`` give what the array
    would, one batch at a time, so that a big picture is never copied whole. ``rgb`` is an
    (H, W, 3) uint8 array or an RGB PIL image (cropped tile by tile)."""

    def __init__(self, rgb: np.ndarray | Image.Image, tile: int):
        self.rgb, self.tile = rgb, tile
        self.w, self.h = rgb.size if isinstance(rgb, Image.Image) else (rgb.shape[1], rgb.shape[0])
        self.tx, self.ty = container.tile_grid(self.w, self.h, tile)

    def __len__(self) -> int:
        return self.tx * self.ty

    def _crop(self, r: int, c: int) -> np.ndarray:
        t = self.tile
        if isinstance(self.rgb, Image.Image):
            return np.asarray(self.rgb.crop((c * t, r * t, min(self.w, (c + 1) * t), min(self.h, (r + 1) * t))))
        return self.rgb[r * t : (r + 1) * t, c * t : (c + 1) * t]

    def __getitem__(self, sl: slice) -> np.ndarray:
        t = self.tile
        out = []
        for i in range(*sl.indices(len(self))):
            part = self._crop(*divmod(i, self.tx))
            if part.shape[:2] != (t, t):  # the right or bottom edge: replicate the last column/row
                part = np.pad(part, ((0, t - part.shape[0]), (0, t - part.shape[1]), (0, 0)), mode="edge")
            out.append(part.transpose(2, 0, 1))
        return np.stack(out) if out else np.empty((0, 3, t, t), np.uint8)


def token_grid(indices, tx: int, ty: int):
    """(T, g·g) per-tile indices of a ``tx`` × ``ty`` tile grid → the picture's (ty·g, tx·g) token
    grid (numpy in, numpy out; a torch tensor, as ``refine`` has, likewise)."""
    g = int(round(indices.shape[1] ** 0.5))
    grid = indices.reshape(ty, tx, g, g)
    grid = grid.permute(0, 2, 1, 3) if hasattr(grid, "permute") else grid.transpose(0, 2, 1, 3)
    return grid.reshape(ty * g, tx * g)


def grid_tiles(grid, tx: int, ty: int, g: int) -> np.ndarray:
    """The inverse of ``token_grid``: a picture's (rows, cols) token grid (rows ≤ ty·g, cols ≤
    tx·g) → (T, g²) per-tile tokens in raster order, 0 where the grid does not reach (padding
    tokens: ``coders.fill_padding`` fills them as decode does)."""
    rows, cols = grid.shape
    full = np.zeros((ty * g, tx * g), np.int64)
    full[:rows, :cols] = grid
    return full.reshape(ty, g, tx, g).transpose(0, 2, 1, 3).reshape(tx * ty, g * g)


def halo_window(r: int, c: int, tx: int, ty: int, g: int, halo: int) -> tuple[int, int, int, int]:
    """Token rows r0:r1 and columns c0:c1 of the window that decodes tile (r, c): its own g × g
    tokens and ``halo`` more on each side, clipped at the picture's edge."""
    return max(0, r * g - halo), min(ty * g, (r + 1) * g + halo), max(0, c * g - halo), min(tx * g, (c + 1) * g + halo)
