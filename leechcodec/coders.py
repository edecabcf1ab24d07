"""Lossless coders for token indices (the one module that will own constriction, for the AR coder).

``fixed``: every tile's 1,024 indices are one mixed-radix integer in base 196,560, written
big-endian in ``fixed_tile_bytes(n)`` bytes: exactly ceil(n·log2(196,560)/8) bytes, i.e.
log2(196,560) = 17.585 bits per token plus under one byte per tile.
"""

from __future__ import annotations

import functools

import numpy as np

from .errors import FormatError
from .lattice import N_CODEWORDS

CODERS = ("fixed",)


@functools.lru_cache(maxsize=None)
def _radix_power(n: int) -> int:
    return N_CODEWORDS**n


@functools.lru_cache(maxsize=None)
def fixed_tile_bytes(n: int) -> int:
    """Bytes per tile of ``n`` tokens: enough for every integer below 196,560**n."""
    return ((_radix_power(n) - 1).bit_length() + 7) // 8


def encode_fixed(indices: np.ndarray) -> bytes:
    """(T, n) indices in [0, 196560) → T·fixed_tile_bytes(n) bytes."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2:
        raise ValueError(f"expected (tiles, tokens) indices, got shape {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= N_CODEWORDS):
        raise ValueError(f"token index out of range [0, {N_CODEWORDS})")
    nbytes = fixed_tile_bytes(indices.shape[1])
    out = bytearray()
    for row in indices.tolist():
        value = 0
        for d in reversed(row):  # little-endian digits: row[0] is the least significant
            value = value * N_CODEWORDS + d
        out += value.to_bytes(nbytes, "big")
    return bytes(out)


def decode_fixed(payload: bytes, tiles: int, n: int) -> np.ndarray:
    """Inverse of ``encode_fixed``: bytes → (tiles, n) int64 indices.

    Raises:
        FormatError: wrong payload length, or a tile value that no index sequence produces.
    """
    nbytes = fixed_tile_bytes(n)
    if len(payload) != tiles * nbytes:
        raise FormatError(f"fixed-rate payload is {len(payload)} bytes, expected {tiles} tiles x {nbytes}")
    limit = _radix_power(n)
    out = np.empty((tiles, n), dtype=np.int64)
    for t in range(tiles):
        value = int.from_bytes(payload[t * nbytes : (t + 1) * nbytes], "big")
        if value >= limit:
            raise FormatError(f"tile {t}: payload value out of range (corrupted stream)")
        digits = []
        for _ in range(n):
            value, d = divmod(value, N_CODEWORDS)
            digits.append(d)
        out[t] = digits
    return out
