"""Lossless coders for token indices; the one module that uses constriction.

``fixed``: every tile's 1,024 indices are one mixed-radix integer in base 196,560, written
big-endian in ``fixed_tile_bytes(n)`` bytes: exactly ceil(n·log2(196,560)/8) bytes, i.e.
log2(196,560) = 17.585 bits per token plus under one byte per tile.

``ar``: a range coder (constriction's ``queue.RangeEncoder``) driven by an autoregressive
prior (``exact_prior.ExactPrior``, or anything with its methods). Payload::

    8 bytes   prior id (content hash of the exact prior)
    4 bytes   CRC32 of the token indices, big-endian uint32 per index, tile by tile
    4·k bytes the range coder's 32-bit words, little-endian

Tokens are coded wavefront by wavefront (all tiles together): in wavefront ``t`` the
positions (r, c) with ``wave·r + c = t``, in tile-major then row order; for those, first all
classes, then the supports class by class, then the details class by class. The prior
returns integer logits in 1/256 nat; ``frequencies`` maps them to integers with an integer
table, so encoder and decoder hand constriction bit-identical inputs. A decoder whose prior
disagreed would produce other tokens; the index CRC turns that into an error. Streams are
canonical: the decoder re-codes the tokens it decodes and refuses words that differ from the
encoder's (trailing words included). docs/FORMAT.md specifies all of it to the bit.

numpy only: encoding and decoding (``exact_prior``, ``rdo``, this module) never import torch.
The prior's integer logits are exact in float64 whatever the BLAS (``exact_prior``), and the
frequencies are looked up in an integer table, so the streams are those the earlier torch
implementation wrote, bit for bit (tests/test_golden.py, tests/test_format_spec.py).
"""

from __future__ import annotations

import functools
import zlib
from fractions import Fraction

import numpy as np
from tqdm import tqdm

from .container import CODERS  # noqa: F401 - re-exported: the coders this module implements
from .errors import FormatError, ModelMismatchError
from .lattice import DETAIL, DIM, N_CODEWORDS, SUPPORT, _codebook_int8, join_index, split_index
from .stages import ABSENT


@functools.lru_cache(maxsize=None)
def _radix_power(n: int) -> int:
    return N_CODEWORDS**n


@functools.lru_cache(maxsize=None)
def fixed_tile_bytes(n: int) -> int:
    """Bytes per tile of ``n`` tokens: enough for every integer below 196,560**n."""
    return ((_radix_power(n) - 1).bit_length() + 7) // 8


def _checked(indices, tokens: int | None = None) -> np.ndarray:
    """(tiles, tokens) int64 indices in [0, 196560), or ValueError."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or (tokens is not None and indices.shape[1] != tokens):
        raise ValueError(f"expected (tiles, {tokens or 'tokens'}) indices, got shape {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= N_CODEWORDS):
        raise ValueError(f"token index out of range [0, {N_CODEWORDS})")
    return indices


def stored_mask(extents, grid: int) -> np.ndarray:
    """(T, grid, grid) bool: the positions a stream stores, from per-tile (rows, cols) extents
    (``container.token_extents``): the top-left ``rows × cols`` of each tile's grid."""
    e = np.asarray(extents, dtype=np.int64).reshape(-1, 2)
    r = np.arange(grid)
    return (r[None, :, None] < e[:, 0, None, None]) & (r[None, None, :] < e[:, 1, None, None])


def padding_sources(extents, grid: int) -> np.ndarray:
    """(T, grid²) int64: for each position of each tile (raster order), the position whose token
    the decoder puts there: itself for a stored token, (min(r, rows − 1), min(c, cols − 1)) for a
    padding token (``fill_padding``)."""
    e = np.asarray(extents, dtype=np.int64).reshape(-1, 2)
    g = np.arange(grid)
    ri = np.minimum(g[None, :], e[:, :1] - 1)  # (T, grid)
    ci = np.minimum(g[None, :], e[:, 1:] - 1)
    return (ri[:, :, None] * grid + ci[:, None, :]).reshape(len(e), -1)


def fill_padding(indices: np.ndarray, extents, grid: int) -> np.ndarray:
    """(T, grid²) indices with every padding token (outside its tile's extent) replaced by the
    token at (min(r, rows − 1), min(c, cols − 1)) of its tile: the last stored token of its row
    or column, as the image's edge is replicated into the padding."""
    src = padding_sources(extents, grid)
    idx = np.asarray(indices).reshape(len(src), -1)
    return np.take_along_axis(idx, src, 1)


def _stored_counts(extents, tiles: int, n: int) -> list[int]:
    return [n] * tiles if extents is None else [int(r) * int(c) for r, c in extents]


def encode_fixed(indices: np.ndarray, extents=None) -> bytes:
    """(T, n) indices in [0, 196560) → per tile, its stored indices (all n, or those inside its
    ``extents`` entry, raster order) as one integer in ``fixed_tile_bytes(k)`` bytes."""
    indices = _checked(indices)
    grid = int(round(indices.shape[1] ** 0.5))
    keep = None if extents is None else stored_mask(extents, grid).reshape(len(indices), -1)
    out = bytearray()
    for t, row in enumerate(indices):
        digits = (row if keep is None else row[keep[t]]).tolist()
        value = 0
        for d in reversed(digits):  # little-endian digits: digits[0] is the least significant
            value = value * N_CODEWORDS + d
        out += value.to_bytes(fixed_tile_bytes(len(digits)), "big")
    return bytes(out)


def decode_fixed(payload: bytes, tiles: int, n: int, extents=None) -> np.ndarray:
    """Inverse of ``encode_fixed``: bytes → (tiles, n) int64 indices, padding tokens filled
    (``fill_padding``) when ``extents`` is given.

    Raises:
        FormatError: wrong payload length, or a tile value that no index sequence produces.
    """
    counts = _stored_counts(extents, tiles, n)
    want = sum(fixed_tile_bytes(k) for k in counts)
    if len(payload) != want:
        raise FormatError(f"fixed-rate payload is {len(payload)} bytes, expected {want} for {tiles} tiles")
    grid = int(round(n**0.5))
    keep = None if extents is None else stored_mask(extents, grid).reshape(tiles, -1)
    out = np.zeros((tiles, n), dtype=np.int64)
    at = 0
    for t, k in enumerate(counts):
        nbytes = fixed_tile_bytes(k)
        value = int.from_bytes(payload[at : at + nbytes], "big")
        at += nbytes
        if value >= _radix_power(k):
            raise FormatError(f"tile {t}: payload value out of range (corrupted stream)")
        digits = []
        for _ in range(k):
            value, d = divmod(value, N_CODEWORDS)
            digits.append(d)
        if keep is None:
            out[t] = digits
        else:
            out[t, keep[t]] = digits
    return out if extents is None else fill_padding(out, extents, grid)


def encode_fixed_stages(tokens: np.ndarray, extents=None) -> bytes:
    """(S, T, n) tokens of S residual stages (every one present) → the stages' fixed payloads,
    stage 1 first (``encode_fixed`` each): format version 3's fixed payload, version 2's for S = 1."""
    tokens = np.asarray(tokens)
    if (tokens == ABSENT).any():
        raise ValueError("the fixed coder stores every token of every stage: no position may be left out")
    return b"".join(encode_fixed(t, extents) for t in tokens)


def decode_fixed_stages(payload: bytes, stages: int, tiles: int, n: int, extents=None) -> np.ndarray:
    """Inverse of ``encode_fixed_stages``: bytes → (stages, tiles, n) int64 tokens.

    Raises:
        FormatError: a payload that is not ``stages`` times one stage's length, or a bad tile value.
    """
    one = sum(fixed_tile_bytes(k) for k in _stored_counts(extents, tiles, n))
    if len(payload) != stages * one:
        raise FormatError(f"fixed-rate payload is {len(payload)} bytes, expected {stages * one} for {tiles} tiles "
                          f"and {stages} stage{'s' * (stages > 1)}")
    return np.stack([decode_fixed(payload[i * one : (i + 1) * one], tiles, n, extents) for i in range(stages)])


# ----------------------------------------------------------------------------- ar
EXP_FRAC = 8  # logits arrive in units of 2^-8 nat
EXP_ONE = 2**24  # frequency of the most likely symbol
EXP_SPAN = 17 * 2**EXP_FRAC  # logits more than 17 nats below the best get frequency 1
AR_HEAD = 12  # prior id + index CRC


@functools.lru_cache(maxsize=None)
def exp_table() -> np.ndarray:
    """round(2^24 · exp(-d/256)) for d = 0 … EXP_SPAN (at least 1), from integers only, as a
    read-only float64 array (the type constriction takes; every entry is exact in it).

    exp(-1/256) is a Taylor sum in exact rationals, fixed to 64 fractional bits; its powers
    are taken by integer multiply-and-shift, so every platform builds the same table.
    """
    x, term, r = Fraction(-1, 2**EXP_FRAC), Fraction(1), Fraction(0)
    for k in range(1, 14):
        r += term
        term = term * x / k
    step = int(r * 2**64)
    acc, out = 2**64, []
    for _ in range(EXP_SPAN + 1):
        out.append(max(1, (acc * EXP_ONE + 2**63) >> 64))
        acc = (acc * step) >> 64
    table = np.array(out, dtype=np.float64)
    table.setflags(write=False)  # cached: shared by every caller
    return table


def frequencies(logits) -> np.ndarray:
    """(N, n) integer logits (1/256 nat, float64) → (N, n) integer frequencies (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    d = np.minimum(logits.max(1, keepdims=True) - logits, EXP_SPAN).astype(np.int64)
    return exp_table()[d]


def _index_crc(indices: np.ndarray) -> int:
    """CRC-32 of the token bytes: every index as a big-endian uint32 (``ABSENT`` as 0xFFFFFFFF),
    a block of rows at a time (no copy of a many-stage stream's tokens at once)."""
    flat = np.asarray(indices).reshape(-1)
    crc = 0
    for i in range(0, len(flat), 1 << 20):
        crc = zlib.crc32(flat[i : i + (1 << 20)].astype(np.int64).__and__(0xFFFFFFFF).astype(">u4").tobytes(), crc)
    return crc


CHUNK = 512  # rows of logits per coder call: memory bounded however many tiles a wave spans (and fastest of 256-2048)


def _chunks(positions: np.ndarray):
    """``positions`` in consecutive pieces of at most CHUNK: the coder sees the same symbols in
    the same order, and the integer logits of a row do not depend on the rows beside it."""
    for i in range(0, len(positions), CHUNK):
        yield positions[i : i + CHUNK]


def _run_wavefront(prior, tiles: int, grid: int, code, progress: bool = False, desc: str = "",
                   extents=None, choose=None) -> np.ndarray:
    """Visit every token of ``tiles`` grids in coding order.

    ``code(kind, logits, pos, sel)`` returns the symbols of one batch: ``kind`` is "class",
    "support" or "detail", ``pos`` the (rows, cols) of this wavefront, ``sel`` the positions
    (tile-major) being coded, at most CHUNK of them. The encoder looks the symbols up, the
    decoder decodes them; both see the same logits in the same order. With ``extents``
    (per-tile stored rows and columns) only stored positions are coded; a padding token takes
    its value from its source (``fill_padding``), which lies in an earlier wavefront, and the
    contexts see it like any other token. ``choose(h, pos, coded)``, if given, runs before a
    wavefront's symbols are coded, with the prior's features ``h`` of its stored positions
    ``coded`` (flat, tile-major): the encoder's rate–distortion choice (``rdo``).
    """
    nb = prior.neighbours
    top, side = max(-dr for dr, _ in nb), max(abs(dc) for _, dc in nb)
    nb_r, nb_c = np.array([dr for dr, _ in nb]) + top, np.array([dc for _, dc in nb]) + side
    # codeword entries are integers in −4…4: int8 keeps the context grid of a 64-megapixel
    # picture at 30 MB (240 MB in float64); each wavefront's contexts are widened on use
    vec = np.zeros((tiles, grid + top, grid + 2 * side, DIM), dtype=np.int8)
    book = _codebook_int8()
    out = np.zeros((tiles, grid, grid), dtype=np.int64)
    ext = np.full((tiles, 2), grid, np.int64) if extents is None else np.asarray(extents, np.int64).reshape(tiles, 2)
    mask = stored_mask(ext, grid)  # (T, grid, grid)
    w = prior.wave
    for t in tqdm(range(w * (grid - 1) + grid), desc=desc, unit="wave", disable=not progress, leave=False):
        rows = np.array([r for r in range(grid) if 0 <= t - w * r < grid], dtype=np.int64)
        cols = t - w * rows
        pos = (rows, cols)
        stored = mask[:, rows, cols].reshape(-1)  # (T·P,)
        coded = np.flatnonzero(stored)
        row_of = np.full(stored.shape, -1, np.int64)  # position → its row of h (stored positions only)
        row_of[coded] = np.arange(len(coded))
        # the 12 neighbours of every position in one gather: (T, P, 12, 24) → (T·P, 288), neighbour-major
        ctx = vec[:, rows[:, None] + nb_r, cols[:, None] + nb_c].reshape(tiles * len(rows), -1)
        h = prior.features(ctx[coded])
        if choose is not None and len(coded):
            choose(h, pos, coded)
        cls = np.zeros(stored.shape, dtype=np.int64)
        a = np.zeros_like(cls)
        b = np.zeros_like(cls)
        for sel in _chunks(coded):
            cls[sel] = code("class", prior.class_logits(h[row_of[sel]]), pos, sel)
        groups = [(k, np.flatnonzero((cls == k) & stored)) for k in range(prior.classes)]
        for k, group in groups:
            for sel in _chunks(group):
                a[sel] = code("support", prior.support_logits(h[row_of[sel]], k), pos, sel)
        for k, group in groups:
            for sel in _chunks(group):
                b[sel] = code("detail", prior.detail_logits(h[row_of[sel]], k, a[sel]), pos, sel)
        idx = join_index(cls, a, b).reshape(tiles, -1)
        if len(coded) < stored.size:  # padding tokens: copies of tokens of earlier wavefronts
            rr = np.minimum(rows[None, :], ext[:, :1] - 1)
            cc = np.minimum(cols[None, :], ext[:, 1:] - 1)
            idx = np.where(stored.reshape(tiles, -1), idx, out[np.arange(tiles)[:, None], rr, cc])
        out[:, rows, cols] = idx
        vec[:, rows + top, cols + side] = book[idx]
    return out.reshape(tiles, -1)


CLASS_FREQ = np.array([SUPPORT[k] * DETAIL[k] for k in range(3)], dtype=np.float64)  # codewords per class
FLAG_CONTEXTS = 4  # a later-stage flag's context: token above (same stage) + 2 · token of the stage before here


def _run_later(tiles: int, grid: int, n_later: int, code, extents=None, want: np.ndarray | None = None) -> np.ndarray:
    """Code the tokens of stages 2 … 1 + ``n_later`` (after all of stage 1), docs/FORMAT.md
    "Later stages": stage by stage, row by row (all tiles: tile-major, then column), over the
    stored positions of each row, first every position's presence flag, then the class of
    every present token, the supports class by class, the details class by class.

    A flag's distribution is the counts (starting at 1 absent, 1 present) of the flags already
    coded in its context (``FLAG_CONTEXTS``) in the rows above, of this stage; a class has the
    frequencies of its codewords (``CLASS_FREQ``), supports and details are uniform: a present
    token costs log2(196,560) = 17.585 bits plus the range coder's rounding.
    ``code(freq, symbols)`` codes one batch (the encoder passes the symbols, the decoder None)
    and returns the symbols. ``want`` (n_later, tiles, grid²): the encoder's tokens.
    Returns (n_later, tiles, grid²) int32, ``ABSENT`` where no token, padding filled.
    """
    ext = np.full((tiles, 2), grid, np.int64) if extents is None else np.asarray(extents, np.int64).reshape(tiles, 2)
    mask = stored_mask(ext, grid)
    out = np.full((n_later, tiles, grid, grid), ABSENT, np.int32)  # int32: 7 stages of a big picture stay small
    prev = np.ones((tiles, grid, grid), bool)  # stage 1 has a token everywhere
    for s in range(n_later):
        wanted = None if want is None else np.asarray(want[s]).reshape(tiles, grid, grid)
        counts = np.ones((FLAG_CONTEXTS, 2), np.int64)
        here = out[s]
        for r in range(grid):
            sel = mask[:, r, :]
            if not sel.any():
                continue
            up = here[:, r - 1, :] != ABSENT if r else np.zeros((tiles, grid), bool)
            ctx = (up.astype(np.int64) + 2 * prev[:, r, :])[sel]
            row_want = None if wanted is None else wanted[:, r, :][sel]
            flags = code(counts[ctx].astype(np.float64), None if row_want is None else (row_want != ABSENT).astype(np.int64))
            np.add.at(counts, (ctx, flags), 1)
            live = np.flatnonzero(flags)
            cls = code(np.tile(CLASS_FREQ, (len(live), 1)),
                       None if row_want is None else split_index(row_want[live])[0]) if len(live) else np.zeros(0, np.int64)
            a, b = np.zeros_like(cls), np.zeros_like(cls)
            parts = None if row_want is None else split_index(row_want[live])
            for kind, sizes, got in (("support", SUPPORT, a), ("detail", DETAIL, b)):
                for k in range(3):
                    group = np.flatnonzero(cls == k)
                    for g in _chunks(group):
                        sym = None if parts is None else parts[1 if kind == "support" else 2][g]
                        got[g] = code(np.ones((len(g), sizes[k])), sym)
            row = np.full(int(sel.sum()), ABSENT, np.int32)
            row[live] = join_index(cls, a, b)
            block = here[:, r, :]
            block[sel] = row
            here[:, r, :] = block
        out[s] = here = fill_padding(here.reshape(tiles, -1), ext, grid).reshape(tiles, grid, grid)
        prev = here != ABSENT
    return out.reshape(n_later, tiles, grid * grid)


def encode_ar(indices: np.ndarray, prior, grid: int, progress: bool = False, extents=None,
              latents=None, lam: float = 0.0, later=None) -> bytes:
    """(T, grid²) indices → ar payload (see the module docstring); with ``extents`` (per-tile
    stored rows and columns, format version 2) only stored tokens are coded, and the padding
    tokens the decoder will rebuild (``fill_padding``) are what the CRC and contexts see.

    With ``lam`` > 0 and ``latents`` ((T, grid², 24), the encoder's latents) each stored token
    is chosen anew, in coding order, as the codeword minimising distortion + λ·bits
    (``rdo.choose``); ``indices`` (the nearest codewords) seed the candidates. ``lam`` = 0
    codes ``indices`` as they are.
    """
    import constriction

    indices = _checked(indices, grid * grid)
    if extents is not None:
        indices = fill_padding(indices, extents, grid)
    tiles = len(indices)
    tokens = indices.reshape(tiles, grid, grid).copy()  # what is coded; rdo rewrites stored positions
    enc = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    choose = None
    if lam > 0:
        from . import rdo

        if latents is None:
            raise ValueError("rate-distortion coding (lam > 0) needs the encoder's latents")
        y = rdo.as_latents(latents)
        if y.shape[0] != indices.size:
            raise ValueError(f"{y.shape[0]} latents for {indices.size} tokens")
        nearest = indices.reshape(-1)
        cand = rdo.candidate_supports(y, nearest)  # (T·grid², C) each, a bounded batch of latents at a time

        def choose(h, pos, coded):
            p = len(pos[0])
            t, j = np.divmod(coded, p)
            r, c = pos[0][j], pos[1][j]
            flat = (t * grid + r) * grid + c
            for sel in _chunks(np.arange(len(coded))):
                f = flat[sel]
                tokens[t[sel], r[sel], c[sel]] = rdo.choose(prior, h[sel], y[f], nearest[f], cand[0][f], cand[1][f], lam)

    wave: dict = {}  # this wavefront's pos and its symbols of each kind: split once, not per chunk

    def code(kind, logits, pos, sel):
        if wave.get("pos") is not pos:  # `is`: the entry keeps its pos alive
            wave.clear()
            wave.update(zip(("class", "support", "detail"), split_index(tokens[:, pos[0], pos[1]])), pos=pos)
        sym = wave[kind].reshape(-1)[sel]
        enc.encode(sym.astype(np.int32), family, frequencies(logits))
        return sym

    coded = _run_wavefront(prior, tiles, grid, code, progress, "ar encode", extents, choose)
    if later is not None:  # stages 2 …: chosen now that stage 1's tokens are
        rest = np.asarray(later(coded), dtype=np.int64)
        rest = rest.reshape(len(rest), tiles, grid * grid)
        if extents is not None:
            rest = np.stack([fill_padding(t, extents, grid) for t in rest]) if len(rest) else rest

        def code_later(freq, sym):
            enc.encode(np.asarray(sym, np.int32), family, np.ascontiguousarray(freq, np.float64))
            return np.asarray(sym, np.int64)

        rest = _run_later(tiles, grid, len(rest), code_later, extents, rest)
        coded = np.concatenate([coded[None].astype(np.int32), rest]).reshape(-1)
    words = enc.get_compressed().astype("<u4").tobytes()
    return bytes(prior.prior_id) + _index_crc(coded).to_bytes(4, "big") + words


def decode_ar(payload: bytes, tiles: int, grid: int, prior, progress: bool = False, extents=None,
              stages: int | None = None) -> np.ndarray:
    """Inverse of ``encode_ar``: payload → (tiles, grid²) int64 indices (``extents`` as there);
    with ``stages`` (a version-3 stream) → (stages, tiles, grid²), ``ABSENT`` where a later
    stage has no token.

    A stream may name any of ``prior.ids`` (if the prior has them: the current id first,
    then older recipes' ids of the same weights), else ``prior.prior_id``.

    Raises:
        ModelMismatchError: the payload was coded with another prior.
        FormatError: a malformed stream, decoded tokens whose CRC differs from the
            encoder's (a corrupted stream or a prior that computes different probabilities),
            or words other than the ones the encoder writes for those tokens (trailing
            words, another point in the last interval): every token sequence has one stream.
    """
    import constriction

    pid = payload[:8]
    if len(pid) == 8 and pid not in {bytes(i) for i in getattr(prior, "ids", (prior.prior_id,))}:  # first (FORMAT.md)
        raise ModelMismatchError(
            f"this file needs prior {pid.hex()}, the loaded prior is {bytes(prior.prior_id).hex()}; "
            "see MODEL_CARD.md, 'Released models' for the prior of each model (pass it with --prior)"
        )
    if len(payload) < AR_HEAD or (len(payload) - AR_HEAD) % 4:
        raise FormatError(f"ar payload of {len(payload)} bytes is malformed")
    crc = int.from_bytes(payload[8:12], "big")
    words = np.frombuffer(payload[AR_HEAD:], dtype="<u4").astype(np.uint32)
    dec = constriction.stream.queue.RangeDecoder(words)
    enc = constriction.stream.queue.RangeEncoder()  # re-codes what is decoded: the canonical words
    family = constriction.stream.model.Categorical(perfect=False)

    def code(kind, logits, pos, sel):
        freq = frequencies(logits)
        try:
            sym = np.asarray(dec.decode(family, freq), dtype=np.int32)
        except Exception as e:  # constriction raises AssertionError on impossible data
            raise FormatError(f"ar stream is corrupted ({e})") from None
        enc.encode(sym, family, freq)
        return sym.astype(np.int64)

    indices = _run_wavefront(prior, tiles, grid, code, progress, "ar decode", extents)
    if stages is not None:

        def code_later(freq, sym):
            freq = np.ascontiguousarray(freq, np.float64)
            try:
                sym = np.asarray(dec.decode(family, freq), dtype=np.int32)
            except Exception as e:
                raise FormatError(f"ar stream is corrupted ({e})") from None
            enc.encode(sym, family, freq)
            return sym.astype(np.int64)

        later = _run_later(tiles, grid, stages - 1, code_later, extents)
        if len(later) and (later[-1] == ABSENT).all():  # the encoder leaves such a stage out: one stream per tokens
            raise FormatError(f"ar stream's stage {stages} holds no token (not canonical: a stream of "
                              f"{stages - 1} stages codes these tokens)")
        indices = np.concatenate([indices[None].astype(np.int32), later])
    if _index_crc(indices) != crc:
        raise FormatError("ar stream decoded to tokens with the wrong checksum (corrupted stream or prior mismatch)")
    _check_canonical(words, enc.get_compressed())
    return indices


def _check_canonical(words: np.ndarray, canonical: np.ndarray) -> None:
    """One token sequence has one ar stream: the words the encoder writes for it, nothing more.

    A range decoder reads zeros past the end and ignores what follows the last word it needs,
    and other final words inside the last interval decode alike; all of those are refused.
    """
    if np.array_equal(words, canonical):
        return
    n, k = len(canonical), len(words)
    if k > n and np.array_equal(words[:n], canonical):
        raise FormatError(f"ar stream has {4 * (k - n)} trailing bytes after its last word (not canonical)")
    raise FormatError(
        f"ar stream's range-coder words are not the canonical coding of its tokens ({k} words, the encoder writes {n})"
    )
