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
returns integer logits in 1/256 nat; ``probability.frequencies`` maps them to integers with an
integer table, so encoder and decoder hand constriction bit-identical inputs. One coder object
per direction (``_Encoder``, ``_Decoder``) does all the coding the visiting order asks for
(``_run_wavefront``, ``_run_later``): the encoder looks the symbols up (and, with λ > 0, lets
``rdo`` choose them first), the decoder decodes them. A decoder whose prior
disagreed would produce other tokens; the index CRC turns that into an error. Streams are
canonical: the decoder re-codes the tokens it decodes and refuses words that differ from the
encoder's (trailing words included). docs/FORMAT.md specifies all of it to the bit.

numpy only: encoding and decoding (``exact_prior``, ``probability``, ``rdo``, this module)
never import torch.
The prior's integer logits are exact in float64 whatever the BLAS (``exact_prior``), and the
frequencies are looked up in an integer table, so the streams are those the earlier torch
implementation wrote, bit for bit (tests/test_golden.py, tests/test_format_spec.py).
"""

from __future__ import annotations

import functools
import zlib

import constriction  # a required dependency, imported in well under a millisecond
import numpy as np
from tqdm import tqdm

from . import rdo
from .codewords import DETAIL, DIM, N_CODEWORDS, SUPPORT, codebook_int8, join_index, split_index
from .container import CODERS  # noqa: F401 - re-exported: the coders this module implements
from .errors import FormatError, ModelMismatchError
from .probability import frequencies
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
AR_HEAD = 12  # prior id + index CRC


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


def _take(symbols: np.ndarray | None, sel) -> np.ndarray | None:
    """The encoder's ``symbols[sel]``; None when decoding (no symbols to take)."""
    return None if symbols is None else symbols[sel]


def _run_wavefront(prior, tiles: int, grid: int, coder, progress: bool = False, desc: str = "",
                   extents=None, want: np.ndarray | None = None) -> np.ndarray:
    """Visit every token of ``tiles`` grids in coding order; returns the (tiles, grid²) tokens.

    ``coder`` (``_Encoder`` or ``_Decoder``) codes them: first ``coder.choose(h, pos, coded)``
    with the prior's features ``h`` of a wavefront's stored positions ``coded`` (flat,
    tile-major; ``pos`` its (rows, cols)), which lets the encoder rewrite their tokens in
    ``want`` (``rdo``); then ``coder.code(freq, sym)`` for each batch of at most CHUNK symbols,
    ``sym`` looked up in ``want`` (the encoder's (tiles, grid, grid) tokens; None: decoding).
    Both sides see the same frequencies in the same order. With ``extents`` (per-tile stored
    rows and columns) only stored positions are coded; a padding token takes its value from its
    source (``fill_padding``), which lies in an earlier wavefront, and the contexts see it like
    any other token.
    """
    nb = prior.neighbours
    top, side = max(-dr for dr, _ in nb), max(abs(dc) for _, dc in nb)
    nb_r, nb_c = np.array([dr for dr, _ in nb]) + top, np.array([dc for _, dc in nb]) + side
    # codeword entries are integers in −4…4: int8 keeps the context grid of a 64-megapixel
    # picture at 30 MB (240 MB in float64); each wavefront's contexts are widened on use
    vec = np.zeros((tiles, grid + top, grid + 2 * side, DIM), dtype=np.int8)
    book = codebook_int8()
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
        if len(coded):
            coder.choose(h, pos, coded)
        # the encoder's (class, support, detail) of every position, once the choice is made
        w_cls, w_a, w_b = (None,) * 3 if want is None else split_index(want[:, rows, cols].reshape(-1))
        cls = np.zeros(stored.shape, dtype=np.int64)
        a = np.zeros_like(cls)
        b = np.zeros_like(cls)
        for sel in _chunks(coded):
            cls[sel] = coder.code(frequencies(prior.class_logits(h[row_of[sel]])), _take(w_cls, sel))
        groups = [(k, np.flatnonzero((cls == k) & stored)) for k in range(prior.classes)]
        for k, group in groups:
            for sel in _chunks(group):
                a[sel] = coder.code(frequencies(prior.support_logits(h[row_of[sel]], k)), _take(w_a, sel))
        for k, group in groups:
            for sel in _chunks(group):
                b[sel] = coder.code(frequencies(prior.detail_logits(h[row_of[sel]], k, a[sel])), _take(w_b, sel))
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


def _run_later(tiles: int, grid: int, n_later: int, coder, extents=None, want: np.ndarray | None = None) -> np.ndarray:
    """Code the tokens of stages 2 … 1 + ``n_later`` (after all of stage 1), docs/FORMAT.md
    "Later stages": stage by stage, row by row (all tiles: tile-major, then column), over the
    stored positions of each row, first every position's presence flag, then the class of
    every present token, the supports class by class, the details class by class.

    A flag's distribution is the counts (starting at 1 absent, 1 present) of the flags already
    coded in its context (``FLAG_CONTEXTS``) in the rows above, of this stage; a class has the
    frequencies of its codewords (``CLASS_FREQ``), supports and details are uniform: a present
    token costs log2(196,560) = 17.585 bits plus the range coder's rounding.
    ``coder.code(freq, symbols)`` codes one batch (symbols from ``want``, the encoder's
    (n_later, tiles, grid²) tokens; None: decoding) and returns the symbols.
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
            w_flag = None if row_want is None else (row_want != ABSENT).astype(np.int64)
            flags = coder.code(counts[ctx].astype(np.float64), w_flag)
            np.add.at(counts, (ctx, flags), 1)
            live = np.flatnonzero(flags)
            w_cls, w_a, w_b = (None,) * 3 if row_want is None else split_index(row_want[live])
            cls = coder.code(np.tile(CLASS_FREQ, (len(live), 1)), w_cls) if len(live) else np.zeros(0, np.int64)
            a, b = np.zeros_like(cls), np.zeros_like(cls)
            for sizes, w, got in ((SUPPORT, w_a, a), (DETAIL, w_b, b)):
                for k in range(3):
                    for g in _chunks(np.flatnonzero(cls == k)):
                        got[g] = coder.code(np.ones((len(g), sizes[k])), _take(w, g))
            row = np.full(int(sel.sum()), ABSENT, np.int32)
            row[live] = join_index(cls, a, b)
            block = here[:, r, :]
            block[sel] = row
            here[:, r, :] = block
        out[s] = here = fill_padding(here.reshape(tiles, -1), ext, grid).reshape(tiles, grid, grid)
        prev = here != ABSENT
    return out.reshape(n_later, tiles, grid * grid)


class _Encoder:
    """The encoder side of the ar coder: codes the symbols it is handed, one range coder for
    the whole stream. With λ > 0 (``lam``) it first chooses each wavefront's stored tokens anew
    (``choose``: ``rdo.choose``, the codeword minimising distortion + λ·bits), rewriting them in
    ``tokens`` ((T, grid, grid), which ``_run_wavefront`` then codes); ``nearest`` ((T·grid²,),
    the encoder's nearest codewords) seeds the candidates."""

    def __init__(self, tokens: np.ndarray, prior, nearest: np.ndarray, latents=None, lam: float = 0.0):
        self.tokens = tokens
        self._enc = constriction.stream.queue.RangeEncoder()
        self._family = constriction.stream.model.Categorical(perfect=False)
        self._lam, self._choosing = lam, lam > 0
        if self._choosing:
            if latents is None:
                raise ValueError("rate-distortion coding (lam > 0) needs the encoder's latents")
            self._y = rdo.as_latents(latents)
            if self._y.shape[0] != nearest.size:
                raise ValueError(f"{self._y.shape[0]} latents for {nearest.size} tokens")
            self._prior, self._nearest = prior, nearest
            self._cand = rdo.candidate_supports(self._y, nearest)  # (T·grid², C) each, a bounded batch at a time

    def choose(self, h, pos, coded) -> None:
        """Rewrite the tokens of a wavefront's stored positions ``coded`` (flat, tile-major; ``pos``
        its (rows, cols); ``h`` the prior's features of them) with λ > 0; nothing at λ = 0."""
        if not self._choosing:
            return
        grid = self.tokens.shape[1]
        t, j = np.divmod(coded, len(pos[0]))
        r, c = pos[0][j], pos[1][j]
        flat = (t * grid + r) * grid + c
        for sel in _chunks(np.arange(len(coded))):
            f = flat[sel]
            self.tokens[t[sel], r[sel], c[sel]] = rdo.choose(self._prior, h[sel], self._y[f], self._nearest[f],
                                                             self._cand[0][f], self._cand[1][f], self._lam)

    def code(self, freq, sym) -> np.ndarray:
        """Code one batch of symbols (N,) with integer frequencies (N, n); returns them, int64."""
        self._enc.encode(np.asarray(sym, np.int32), self._family, np.ascontiguousarray(freq, np.float64))
        return np.asarray(sym, np.int64)

    def words(self) -> np.ndarray:
        return self._enc.get_compressed()


class _Decoder:
    """The decoder side, with ``_Encoder``'s interface: decodes each batch from ``words`` and
    codes it again, so that ``check_canonical`` can hold the stream to the encoder's words."""

    def __init__(self, words: np.ndarray):
        self._words = words
        self._dec = constriction.stream.queue.RangeDecoder(words)
        self._enc = constriction.stream.queue.RangeEncoder()  # re-codes what is decoded: the canonical words
        self._family = constriction.stream.model.Categorical(perfect=False)

    def choose(self, h, pos, coded) -> None:
        """Nothing to choose: the decoder takes the tokens the stream holds."""

    def code(self, freq, sym=None) -> np.ndarray:
        """Decode one batch with integer frequencies (N, n) → (N,) int64 symbols (``sym`` unused)."""
        freq = np.ascontiguousarray(freq, np.float64)
        try:
            sym = np.asarray(self._dec.decode(self._family, freq), dtype=np.int32)
        except Exception as e:  # constriction raises AssertionError on impossible data
            raise FormatError(f"ar stream is corrupted ({e})") from None
        self._enc.encode(sym, self._family, freq)
        return sym.astype(np.int64)

    def check_canonical(self) -> None:
        _check_canonical(self._words, self._enc.get_compressed())


def encode_ar(indices: np.ndarray, prior, grid: int, progress: bool = False, extents=None,
              latents=None, lam: float = 0.0, later=None) -> bytes:
    """(T, grid²) indices → ar payload (see the module docstring); with ``extents`` (per-tile
    stored rows and columns, format version 2) only stored tokens are coded, and the padding
    tokens the decoder will rebuild (``fill_padding``) are what the CRC and contexts see.

    With ``lam`` > 0 and ``latents`` ((T, grid², 24), the encoder's latents) each stored token
    is chosen anew, in coding order, as the codeword minimising distortion + λ·bits
    (``rdo.choose``); ``indices`` (the nearest codewords) seed the candidates. ``lam`` = 0
    codes ``indices`` as they are. ``later(stage-1 tokens)``, if given, returns the tokens of
    stages 2 … (``_run_later``), coded after stage 1.
    """
    indices = _checked(indices, grid * grid)
    if extents is not None:
        indices = fill_padding(indices, extents, grid)
    tiles = len(indices)
    tokens = indices.reshape(tiles, grid, grid).copy()  # what is coded; rdo rewrites stored positions
    coder = _Encoder(tokens, prior, indices.reshape(-1), latents, lam)
    coded = _run_wavefront(prior, tiles, grid, coder, progress, "ar encode", extents, want=tokens)
    if later is not None:  # stages 2 …: chosen now that stage 1's tokens are
        rest = np.asarray(later(coded), dtype=np.int64)
        rest = rest.reshape(len(rest), tiles, grid * grid)
        if extents is not None:
            rest = np.stack([fill_padding(t, extents, grid) for t in rest]) if len(rest) else rest
        rest = _run_later(tiles, grid, len(rest), coder, extents, want=rest)
        coded = np.concatenate([coded[None].astype(np.int32), rest]).reshape(-1)
    words = coder.words().astype("<u4").tobytes()
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
    pid = payload[:8]
    if len(pid) == 8 and pid not in {bytes(i) for i in getattr(prior, "ids", (prior.prior_id,))}:  # first (FORMAT.md)
        raise ModelMismatchError(
            f"this file needs prior {pid.hex()}, the loaded prior is {bytes(prior.prior_id).hex()}; "
            "see MODEL_CARD.md, 'Released models' for the prior of each model (pass it with --prior)"
        )
    if len(payload) < AR_HEAD or (len(payload) - AR_HEAD) % 4:
        raise FormatError(f"ar payload of {len(payload)} bytes is malformed")
    crc = int.from_bytes(payload[8:12], "big")
    coder = _Decoder(np.frombuffer(payload[AR_HEAD:], dtype="<u4").astype(np.uint32))
    indices = _run_wavefront(prior, tiles, grid, coder, progress, "ar decode", extents)
    if stages is not None:
        later = _run_later(tiles, grid, stages - 1, coder, extents)
        if len(later) and (later[-1] == ABSENT).all():  # the encoder leaves such a stage out: one stream per tokens
            raise FormatError(f"ar stream's stage {stages} holds no token (not canonical: a stream of "
                              f"{stages - 1} stages codes these tokens)")
        indices = np.concatenate([indices[None].astype(np.int32), later])
    if _index_crc(indices) != crc:
        raise FormatError("ar stream decoded to tokens with the wrong checksum (corrupted stream or prior mismatch)")
    coder.check_canonical()
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
