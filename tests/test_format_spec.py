"""docs/FORMAT.md, implemented a second time from its text, against the reference code.

The ``spec_*`` helpers are written from the document, not from leechcodec's modules: the
lattice index order, the exp table, the fixed-point categorical model and the range coder of
the ar layer, the coding order, the exact prior's integer arithmetic and the id recipes. A
test fails when the code and the document part ways, or when the installed constriction writes
other bytes than the document says (pyproject pins the releases checked with this file).
"""

import hashlib
import itertools
import json
import math
import zlib
from decimal import Decimal, getcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy

from leechcodec import coders, lattice, probability
from leechcodec.models.config import DEFAULT_WEIGHTS, model_id_of
from leechcodec.models.prior import ARPrior, PRIOR_PRESETS, exact, prior_id_of, prior_path_for, quantize_state
from leechcodec.models.vit import TokenizerConfig

PREC = 24  # probability bits of the range coder
WORD, STATE = 32, 64  # bits of a coder word and of its state
MASK64 = 2**64 - 1
BASES, SUPPORT, DETAIL = (0, 97_152, 195_456), (759, 4096, 276), (128, 24, 4)
NEIGHBOURS = [(-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
              (0, -2), (0, -1)]  # fmt: skip
WAVE = 3


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """One torch thread (conftest.one_thread): the reference coder's small ops run much faster."""


# ----------------------------------------------------------------------------- lattice
@lru_cache(maxsize=None)
def spec_codebook() -> np.ndarray:
    """The 196,560 codewords in the index order of FORMAT.md, 'The codewords'."""
    g = [1 if i in (0, 2, 4, 5, 6, 10, 11) else 0 for i in range(12)]  # 1 + x^2 + x^4 + x^5 + x^6 + x^10 + x^11
    words = set()
    for m in range(4096):
        c = [0] * 24
        for k in range(12):
            if m >> k & 1:
                for i, gi in enumerate(g):
                    c[k + i] ^= gi
        c[23] = sum(c[:23]) % 2
        words.add(sum(b << i for i, b in enumerate(c)))
    golay = sorted(words)
    bits = lambda w: [w >> i & 1 for i in range(24)]  # noqa: E731
    book = []
    for w in (w for w in golay if bin(w).count("1") == 8):
        q = [i for i in range(24) if w >> i & 1]
        for p in range(128):
            v = [0] * 24
            for k in range(7):
                v[q[k]] = -2 if p >> k & 1 else 2
            v[q[7]] = -2 if bin(p).count("1") % 2 else 2
            book.append(v)
    for w in golay:
        s = [-1 if b else 1 for b in bits(w)]
        for j in range(24):
            v = list(s)
            v[j] = -3 * s[j]
            book.append(v)
    for a, b in itertools.combinations(range(24), 2):
        for t in range(4):
            v = [0] * 24
            v[a], v[b] = (-4 if t & 1 else 4), (-4 if t & 2 else 4)
            book.append(v)
    return np.array(book, dtype=np.int64)


def test_the_lattice_index_order_is_the_documented_one():
    book = spec_codebook()
    assert book.shape == (196_560, 24) and bool(((book**2).sum(1) == 32).all())
    assert np.array_equal(book, lattice.codebook())


# ----------------------------------------------------------------------------- probabilities
@lru_cache(maxsize=None)
def spec_exp_table() -> np.ndarray:
    getcontext().prec = 50
    return np.array([max(1, int((Decimal(-d) / 256).exp() * 2**24 + Decimal("0.5"))) for d in range(17 * 256 + 1)])


def spec_frequencies(logits: np.ndarray) -> np.ndarray:
    """Integer logits (1/256 nat) of one distribution → integer frequencies."""
    t = spec_exp_table()
    return t[np.minimum(logits.max() - logits, 17 * 256)]


def spec_cdf(freq: np.ndarray) -> np.ndarray:
    """C(0) … C(n) of the fixed-point model, in binary64 arithmetic as FORMAT.md prescribes."""
    f = np.asarray(freq, dtype=np.float64)
    n = len(f)
    s = np.concatenate(([0.0], np.cumsum(f)))  # exact: integer sums below 2^53
    sigma = np.float64(2**PREC - n) / s[-1]  # one IEEE division, round to nearest
    c = np.floor(s[:n] * sigma).astype(np.int64) + np.arange(n)  # one IEEE product each, then floor
    return np.append(c, 2**PREC)  # (callers take Python ints out of it: products reach 2^64)


# ----------------------------------------------------------------------------- range coder
class SpecEncoder:
    """The range encoder of FORMAT.md in its big-integer form."""

    def __init__(self):
        self.low, self.range, self.shifts = 0, 2**64 - 1, 0

    def encode(self, c_lo: int, c_hi: int) -> bool:
        """Code one symbol; True when the addition carried into words already written."""
        s = self.range >> PREC
        above = self.low >> STATE
        self.low += s * c_lo
        carried = self.low >> STATE != above
        self.range = s * (c_hi - c_lo)
        if self.range < 2**WORD:
            self.low <<= WORD
            self.range <<= WORD
            self.shifts += 1
        return carried

    def words(self) -> list[int]:
        q = -(-self.low // 2**WORD)  # ceil(low / 2^32)
        out = [(q >> (WORD * k)) & 0xFFFFFFFF for k in reversed(range(self.shifts + 1))]
        if (self.low + self.range) >> WORD == q:
            out.append(0)
        return out


class SpecDecoder:
    def __init__(self, words):
        self.words, self.pos = [int(w) for w in words], 0
        self.low, self.range = 0, 2**64 - 1
        self.point = (self._next() << WORD) | self._next()
        self.shifts = 0

    def _next(self) -> int:
        w = self.words[self.pos] if self.pos < len(self.words) else 0
        self.pos += 1
        return w

    def decode(self, cdf: np.ndarray) -> int:
        s = self.range >> PREC
        q = ((self.point - self.low) & MASK64) // s
        assert q < 2**PREC, "invalid data"
        i = int(np.searchsorted(cdf, q, side="right")) - 1
        lo, hi = int(cdf[i]), int(cdf[i + 1])
        self.low = (self.low + s * lo) & MASK64
        self.range = s * (hi - lo)
        if self.range < 2**WORD:
            self.low = (self.low << WORD) & MASK64
            self.range <<= WORD
            self.point = ((self.point << WORD) & MASK64) | self._next()
            self.shifts += 1
        return i

    def canonical(self) -> bool:
        """FORMAT.md's decoder-side test: the words are exactly the encoder's."""
        z = ((self.low + self.range) & MASK64) >> WORD == ((self.low + 2**WORD - 1) & MASK64) >> WORD
        return len(self.words) == self.shifts + 1 + z and (self.point - self.low) & MASK64 == -self.low % 2**WORD


def _workload(seed: int, batches: int):
    rng = np.random.default_rng(seed)
    sizes = (3, 759, 4096, 276, 128, 24, 4)
    for k in range(batches):
        n = sizes[k % len(sizes)]
        spread = int(rng.choice([30, 500, 3000, 20_000]))
        logits = rng.integers(-spread, 1, size=(int(rng.integers(1, 6)), n))
        freq = spec_exp_table()[np.minimum(logits.max(1, keepdims=True) - logits, 17 * 256)].astype(np.float64)
        p = freq / freq.sum(1, keepdims=True)
        sym = np.array([rng.choice(n, p=row) if rng.random() > 0.1 else rng.integers(n) for row in p], np.int32)
        yield logits, freq, sym


def test_frequencies_are_the_documented_table():
    t = spec_exp_table()
    assert np.array_equal(probability.exp_table(), t)
    for logits, _, _ in _workload(1, 40):
        want = np.stack([spec_frequencies(row) for row in logits])
        assert np.array_equal(probability.frequencies(logits.astype(np.float64)), want)


def test_constriction_writes_the_documented_words():
    """Encoder and decoder of FORMAT.md against the installed constriction, word for word."""
    import constriction

    family = constriction.stream.model.Categorical(perfect=False)
    enc, spec, cdfs, symbols, carries = constriction.stream.queue.RangeEncoder(), SpecEncoder(), [], [], 0
    for _, freq, sym in _workload(2, 700):
        enc.encode(sym, family, freq)
        for row, x in zip(freq, sym):
            c = spec_cdf(row)
            carries += spec.encode(int(c[x]), int(c[x + 1]))
            cdfs.append(c)
            symbols.append(int(x))
    words = enc.get_compressed()
    assert carries > 0  # the carry into written words is exercised (constriction's "inverted" case)
    assert [int(w) for w in words] == spec.words()
    dec = SpecDecoder(words)
    assert [dec.decode(c) for c in cdfs] == symbols
    assert dec.canonical()
    for extra in ([0], [1, 2, 3]):
        dec = SpecDecoder(list(words) + extra)
        assert [dec.decode(c) for c in cdfs] == symbols and not dec.canonical()  # decodes, but is not canonical
    for other in (list(words[:-1]), list(words[:-1]) + [int(words[-1]) ^ 1]):  # a last word dropped or changed
        dec = SpecDecoder(other)
        assert [dec.decode(c) for c in cdfs] != symbols or not dec.canonical()


# ----------------------------------------------------------------------------- the exact prior and the coding order
def spec_head(w: dict, h: np.ndarray, name: str) -> np.ndarray:
    """A head's logits in 1/256 nat: (W·h + b) at scale 2^20, floored to 2^8."""
    return (h @ w[f"{name}.weight"].T + w[f"{name}.bias"]) >> 12


def spec_features(w: dict, layers: int, ctx: np.ndarray) -> np.ndarray:
    a = ctx
    for i in range(layers):
        y = a @ w[f"trunk.{i}.weight"].T + w[f"trunk.{i}.bias"]
        a = np.clip(y >> (4 if i == 0 else 12), 0, 65535)  # >> on int64 floors
    return a


def spec_split(idx: int) -> tuple[int, int, int]:
    k = 0 if idx < BASES[1] else 1 if idx < BASES[2] else 2
    return (k, *divmod(idx - BASES[k], DETAIL[k]))


def spec_ar(w: dict, layers: int, tiles: int, g: int, tokens=None, words=None, extents=None):
    """Code ``tokens`` (tiles, g·g) or decode ``words`` in FORMAT.md's order with its integer prior;
    with ``extents`` (version 2: per tile the rows and columns it stores) only stored positions
    are coded and each padding token copies the token at (min(r, rows − 1), min(c, cols − 1)).

    Returns the tokens and the encoder (coding) or the decoder (decoding)."""
    extents = extents or [(g, g)] * tiles
    book = spec_codebook()
    coder = SpecEncoder() if tokens is not None else SpecDecoder(words)
    grid = np.full((tiles, g, g), -1, dtype=np.int64)

    def code(logits: np.ndarray, want: int | None) -> int:
        c = spec_cdf(spec_frequencies(logits))
        if want is None:
            return coder.decode(c)
        coder.encode(int(c[want]), int(c[want + 1]))
        return want

    zero = np.zeros(24, dtype=np.int64)
    for t in range(WAVE * (g - 1) + g):
        wave = [(k, r, t - WAVE * r) for k in range(tiles) for r in range(g) if 0 <= t - WAVE * r < g]
        pos = [(k, r, c) for k, r, c in wave if r < extents[k][0] and c < extents[k][1]]

        def vec(k: int, r: int, c: int) -> np.ndarray:  # a neighbour outside the tile is zero
            return book[grid[k, r, c]] if r >= 0 and 0 <= c < g else zero

        ctx = np.array([np.concatenate([vec(k, r + dr, c + dc) for dr, dc in NEIGHBOURS]) for k, r, c in pos])
        ctx = ctx.reshape(len(pos), 24 * len(NEIGHBOURS)).astype(np.int64)  # a wavefront may store nothing
        h = spec_features(w, layers, ctx)
        want = [spec_split(int(tokens[k, r * g + c])) if tokens is not None else (None, None, None) for k, r, c in pos]
        cls_logits = spec_head(w, h, "cls_head")
        cls = [code(cls_logits[i], want[i][0]) for i in range(len(pos))]
        sel = {k: [i for i in range(len(pos)) if cls[i] == k] for k in range(3)}
        sup = {}
        for k in range(3):
            if sel[k]:
                logits = spec_head(w, h[sel[k]], f"support_heads.{k}")
                for row, i in zip(logits, sel[k]):
                    sup[i] = code(row, want[i][1])
        for k in range(3):
            if not sel[k]:
                continue
            u = spec_head(w, h[sel[k]], "u_head")
            place = spec_head(w, h[sel[k]], "place_head") if k == 1 else None
            for n, i in enumerate(sel[k]):
                rows = BASES[k] + sup[i] * DETAIL[k] + np.arange(DETAIL[k])
                logits = book[rows] @ u[n]
                if k == 1:
                    logits = logits + place[n]
                if "codeword_bias" in w:
                    logits = logits + w["codeword_bias"][rows]
                b = code(logits, want[i][2])
                kk, r, c = pos[i]
                grid[kk, r, c] = BASES[k] + sup[i] * DETAIL[k] + b
        for k, r, c in wave:  # padding tokens of this wavefront: their sources are coded already
            rows, cols = extents[k]
            if r >= rows or c >= cols:
                grid[k, r, c] = grid[k, min(r, rows - 1), min(c, cols - 1)]
    return grid.reshape(tiles, g * g), coder


@pytest.mark.parametrize("preset", ["tiny", "small-cb"])  # small-cb: two trunk layers and a codeword bias
def test_ar_payloads_are_the_documented_ones(preset, tmp_path):
    """The whole ar layer (prior arithmetic, coding order, range coder) from FORMAT.md's text."""
    from leechcodec.models.prior import save_prior

    torch.manual_seed(11)
    m = ARPrior(PRIOR_PRESETS[preset]).eval()
    if m.codeword_bias is not None:
        with torch.no_grad():
            m.codeword_bias.normal_(0, 2)
    tok_id = b"\7" * 8
    save_prior(m, tmp_path / "p.safetensors", tok_id)
    w = {k: v.astype(np.int64) for k, v in load_numpy(str(tmp_path / "p.safetensors")).items()}  # the file's integers
    tiles, g = 2, 16
    idx = np.random.default_rng(12).integers(0, 196_560, (tiles, g * g))
    idx[1, : g * g // 2] = idx[1, 0]  # half a tile of one token: skewed probabilities too
    payload = coders.encode_ar(idx, exact(m, tok_id), g)
    assert payload[8:12] == zlib.crc32(idx.astype(">u4").tobytes()).to_bytes(4, "big")
    words = np.frombuffer(payload[12:], dtype="<u4")
    _, enc = spec_ar(w, m.cfg.layers, tiles, g, tokens=idx)
    assert [int(x) for x in words] == enc.words()
    out, dec = spec_ar(w, m.cfg.layers, tiles, g, words=words)
    assert np.array_equal(out, idx) and dec.canonical()
    # version 2: a tile of 16 x 5 stored tokens beside one of 3 x 16
    extents = [(16, 5), (3, 16)]
    payload = coders.encode_ar(idx, exact(m, tok_id), g, extents=extents)
    filled, _ = spec_ar(w, m.cfg.layers, tiles, g, tokens=idx, extents=extents)
    assert payload[8:12] == zlib.crc32(filled.astype(">u4").tobytes()).to_bytes(4, "big")
    words = np.frombuffer(payload[12:], dtype="<u4")
    _, enc = spec_ar(w, m.cfg.layers, tiles, g, tokens=idx, extents=extents)
    assert [int(x) for x in words] == enc.words()
    out, dec = spec_ar(w, m.cfg.layers, tiles, g, words=words, extents=extents)
    assert np.array_equal(out, filled) and dec.canonical()
    assert np.array_equal(coders.decode_ar(payload, tiles, g, exact(m, tok_id), extents=extents), filled)
    grids = filled.reshape(tiles, g, g)
    assert (grids[0, :, 5:] == grids[0, :, 4:5]).all() and (grids[1, 3:] == grids[1, 2]).all()


def spec_later(coder, tiles: int, g: int, stages: int, tokens=None, extents=None) -> np.ndarray:
    """FORMAT.md, 'Later stages': stages 2 … ``stages`` coded (``tokens``: (stages − 1, tiles, g·g),
    −1 where no token) or decoded (None) with ``coder``, which goes on from stage 1's symbols.
    Returns the stages' tokens, padding filled, −1 where no token."""
    extents = extents or [(g, g)] * tiles
    out = np.full((stages - 1, tiles, g, g), -1, dtype=np.int64)
    prev = np.ones((tiles, g, g), dtype=bool)

    def code(freq, want):
        c = spec_cdf(np.asarray(freq, dtype=np.float64))
        if want is None:
            return coder.decode(c)
        coder.encode(int(c[want]), int(c[want + 1]))
        return want

    for s in range(stages - 1):
        n = {x: [1, 1] for x in range(4)}  # n0[x], n1[x]
        for r in range(g):
            row = [(k, c) for k in range(tiles) for c in range(g) if r < extents[k][0] and c < extents[k][1]]
            want = [int(tokens[s, k, r * g + c]) if tokens is not None else None for k, c in row]
            ctx = [int(r > 0 and out[s, k, r - 1, c] >= 0) + 2 * int(prev[k, r, c]) for k, c in row]
            flags = [code(n[x], None if w is None else int(w >= 0)) for x, w in zip(ctx, want)]
            live = [i for i, f in enumerate(flags) if f]
            parts = {i: spec_split(want[i]) if want[i] is not None else (None, None, None) for i in live}
            cls = {i: code(CLASS_COUNTS, parts[i][0]) for i in live}
            sup = {}
            for k in range(3):
                for i in live:
                    if cls[i] == k:
                        sup[i] = code([1] * SUPPORT[k], parts[i][1])
            for k in range(3):
                for i in live:
                    if cls[i] == k:
                        kk, c = row[i]
                        out[s, kk, r, c] = BASES[k] + sup[i] * DETAIL[k] + code([1] * DETAIL[k], parts[i][2])
            for x, f in zip(ctx, flags):
                n[x][f] += 1
        for k in range(tiles):
            rows, cols = extents[k]
            for r in range(g):
                for c in range(g):
                    out[s, k, r, c] = out[s, k, min(r, rows - 1), min(c, cols - 1)]
        prev = out[s] >= 0
    return out.reshape(stages - 1, tiles, g * g)


CLASS_COUNTS = [97152, 98304, 1104]


def test_later_stages_are_the_documented_ones(tmp_path):
    """Version 3's later stages (flags, their adaptive counts, uniform tokens) from the text alone,
    after stage 1's ar symbols: the reference's words, decoded back, tokens and CRC."""
    torch.manual_seed(13)
    m = ARPrior(PRIOR_PRESETS["tiny"]).eval()
    tok_id = b"\7" * 8
    from leechcodec.models.prior import save_prior

    save_prior(m, tmp_path / "p.safetensors", tok_id)
    w = {k: v.astype(np.int64) for k, v in load_numpy(str(tmp_path / "p.safetensors")).items()}
    tiles, g, stages = 2, 8, 3
    rng = np.random.default_rng(14)
    idx = rng.integers(0, 196_560, (tiles, g * g))
    later = rng.integers(0, 196_560, (stages - 1, tiles, g * g))
    later[0][rng.random((tiles, g * g)) < 0.3] = -1  # stage 2 leaves some out: stage 3's p varies
    later[1][rng.random((tiles, g * g)) < 0.6] = -1
    later[1, 0, : g * 3] = -1  # runs of absent flags: skewed counts
    extents = [(8, 5), (3, 8)]
    payload = coders.encode_ar(idx, exact(m, tok_id), g, extents=extents, later=lambda first: later)
    first, enc = spec_ar(w, m.cfg.layers, tiles, g, tokens=idx, extents=extents)
    filled = spec_later(enc, tiles, g, stages, tokens=later, extents=extents)
    words = np.frombuffer(payload[12:], dtype="<u4")
    assert [int(x) for x in words] == enc.words()
    every = np.concatenate([first[None], filled])
    assert payload[8:12] == zlib.crc32((every & 0xFFFFFFFF).astype(">u4").tobytes()).to_bytes(4, "big")
    out1, dec = spec_ar(w, m.cfg.layers, tiles, g, words=words, extents=extents)
    out = spec_later(dec, tiles, g, stages, extents=extents)
    assert np.array_equal(out1, first) and np.array_equal(out, filled) and dec.canonical()
    assert (filled == -1).any() and (filled >= 0).any()
    got = coders.decode_ar(payload, tiles, g, exact(m, tok_id), extents=extents, stages=stages)
    assert np.array_equal(got, every)


def spec_extents(width: int, height: int, tile: int = 256, patch: int = 8) -> list[tuple[int, int]]:
    """FORMAT.md, version 2: tile (R, C) stores rows r < min(g, ceil((height − R·tile) / patch)), columns likewise."""
    g = tile // patch
    ty, tx = -(-height // tile), -(-width // tile)
    return [(min(g, math.ceil((height - R * tile) / patch)), min(g, math.ceil((width - C * tile) / patch)))
            for R in range(ty) for C in range(tx)]


@pytest.mark.parametrize("size", [(1, 1), (301, 77), (256, 256), (513, 260), (8, 9)])
def test_fixed_payload_of_version_2_is_the_documented_one(size):
    """Per tile, its stored tokens in raster order as one base-196,560 integer in ceil(k·log2(196,560)/8) bytes."""
    from leechcodec import container

    extents = spec_extents(*size)
    assert container.token_extents(*size, 256, 8) == extents
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    idx = rng.integers(0, 196_560, (len(extents), 1024))
    want = b""
    for t, (rows, cols) in enumerate(extents):
        digits = [int(idx[t, r * 32 + c]) for r in range(rows) for c in range(cols)]
        value = sum(d * 196_560**i for i, d in enumerate(digits))
        want += value.to_bytes(math.ceil(len(digits) * math.log2(196_560) / 8), "big")
    assert coders.encode_fixed(idx, extents) == want
    back = coders.decode_fixed(want, len(extents), 1024, extents).reshape(-1, 32, 32)
    for t, (rows, cols) in enumerate(extents):
        r, c = np.minimum(np.arange(32), rows - 1), np.minimum(np.arange(32), cols - 1)
        assert np.array_equal(back[t], idx[t].reshape(32, 32)[r][:, c])


# ----------------------------------------------------------------------------- ids
SHIPPED_MODEL_JSON = (
    '{"dec_depth": 7, "decode_halo": 6, "depth": 4, "head": "overlap", "head_channels": 16, "heads": 4, '
    '"latent_dim": 24, "mlp_ratio": 4.0, "name": "shot", "patch": 8, "skip": "linear", "stem": "conv", '
    '"tile": 256, "width": 256}'
)
SHIPPED_PRIOR_JSON = (
    '{"a": 8, "amax": 65535, "cfg": {"hidden": 256, "layers": 2, "name": "small"}, "logit": 8, '
    '"nb": [[-2, -2], [-2, -1], [-2, 0], [-2, 1], [-2, 2], [-1, -2], [-1, -1], [-1, 0], [-1, 1], [-1, 2], '
    '[0, -2], [0, -1]], "w": 12, "wave": 3}'
)


def spec_model_id(config: dict, tensors: dict) -> bytes:
    later = {"skip": "none", "decode_halo": 0, "stage_gain": 0.52, "stage_decay": 0.625}  # FORMAT.md: left out at these
    d = {k: v for k, v in config.items() if not (k in later and v == later[k])}
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode() + repr(tuple(t.shape)).encode() + np.ascontiguousarray(t).astype("<f2").tobytes())
    return h.digest()[:8]


def spec_prior_id(config: dict, tensors: dict, tokenizer_id: bytes, legacy: bool = False) -> bytes:
    cfg = {k: v for k, v in config.items() if legacy or not (k == "codeword_bias" and v is False)}
    fmt = {"a": 8, "amax": 65535, "cfg": cfg, "logit": 8, "nb": [list(n) for n in NEIGHBOURS], "w": 12, "wave": 3}
    h = hashlib.sha256(json.dumps(fmt, sort_keys=True).encode() + tokenizer_id)
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode() + repr(tuple(t.shape)).encode() + np.ascontiguousarray(t).astype("<i8").tobytes())
    return h.digest()[:8]


def _meta(path) -> dict:
    with safe_open(str(path), framework="np") as f:
        return f.metadata()


def test_the_shipped_model_id_follows_the_documented_recipe():
    meta = _meta(DEFAULT_WEIGHTS)
    config = json.loads(meta["config"])
    later = {"skip": "none", "decode_halo": 0, "stage_gain": 0.52, "stage_decay": 0.625}  # FORMAT.md: left out at these
    d = {k: v for k, v in config.items() if not (k in later and v == later[k])}
    assert json.dumps(d, sort_keys=True) == SHIPPED_MODEL_JSON  # the example in FORMAT.md
    tensors = load_numpy(str(DEFAULT_WEIGHTS))
    mid = spec_model_id(config, tensors)
    assert mid.hex() == meta["model_id"] == "e39460a8835c5a43"
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    assert model_id_of(TokenizerConfig(**config), state) == mid


def test_the_shipped_prior_id_follows_the_documented_recipe():
    from leechcodec.models.prior import PriorConfig

    path = prior_path_for(DEFAULT_WEIGHTS)
    meta = _meta(path)
    config, tok = json.loads(meta["config"]), bytes.fromhex(meta["tokenizer_id"])
    fmt = {"a": 8, "amax": 65535, "cfg": {k: v for k, v in config.items() if k != "codeword_bias"}, "logit": 8,
           "nb": [list(n) for n in NEIGHBOURS], "w": 12, "wave": 3}  # fmt: skip
    assert json.dumps(fmt, sort_keys=True) == SHIPPED_PRIOR_JSON  # the example in FORMAT.md
    tensors = load_numpy(str(path))
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    cfg = PriorConfig(**config)
    assert prior_id_of(cfg, state, tok) == spec_prior_id(config, tensors, tok)  # what encoders write
    assert spec_prior_id(config, tensors, tok).hex() == "ed778d545a2985ee" == meta["prior_id"]  # FORMAT.md's example
    assert spec_prior_id(config, tensors, tok, legacy=True) != prior_id_of(cfg, state, tok)


def test_a_codeword_bias_prior_hashes_the_field():
    m = ARPrior(PRIOR_PRESETS["small-cb"])
    state = quantize_state(m)
    tensors = {k: v.numpy() for k, v in state.items()}
    config = m.cfg.to_dict()
    assert config["codeword_bias"] is True
    assert prior_id_of(m.cfg, state, b"\5" * 8) == spec_prior_id(config, tensors, b"\5" * 8)


# ----------------------------------------------------------------------------- the statements of the text itself
DOC = (Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md").read_text()
FLAT = " ".join(DOC.split())
DATA = Path(__file__).resolve().parent / "data"


def token_bytes(tokens) -> bytes:
    """FORMAT.md, 'Token bytes': every index as a big-endian uint32, tile by tile, raster order."""
    return b"".join(int(t).to_bytes(4, "big") for t in tokens)


def spec_fixed_tokens(data: bytes, g: int = 32) -> list[list[int]]:
    """The tokens of a version-2 fixed stream of whole tiles' grids, from the text alone: the header,
    the base-196,560 integer per tile, then the padding rule of 'Stored tokens'."""
    assert data[:4] == b"LQ24" and data[4] == 2 and data[5] == 0
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    plen = int.from_bytes(data[30:34], "big")
    assert len(data) == 38 + plen and int.from_bytes(data[-4:], "big") == zlib.crc32(data[:-4])
    payload, at, tiles = data[34 : 34 + plen], 0, []
    for rows, cols in spec_extents(width, height):
        n = math.ceil(rows * cols * math.log2(196_560) / 8)
        value = int.from_bytes(payload[at : at + n], "big")
        at += n
        stored = [(value // 196_560**i) % 196_560 for i in range(rows * cols)]
        tiles.append([stored[min(r, rows - 1) * cols + min(c, cols - 1)] for r in range(g) for c in range(g)])
    assert at == plen
    return tiles


def test_the_worked_example_of_the_token_bytes():
    """Every number of the worked example in 'Token bytes and their hashes', recomputed: from the
    indices, and from the conformance stream decoded by the text's rules alone; the index CRC
    is what the ar stream of the same tokens stores, the token hash what golden.json pins."""
    small = token_bytes([0, 1, 196_559])
    assert f"`{small[:4].hex()} {small[4:8].hex()} {small[8:].hex()}`" in FLAT
    assert f"CRC-32 `{zlib.crc32(small):08x}`" in FLAT and f"`{hashlib.sha256(small).hexdigest()}`" in FLAT
    data = (DATA / "grey-45x61.fixed.v2.lq").read_bytes()
    (tile,) = spec_fixed_tokens(data)
    assert f"(144 bytes: a 45 × 61 grey picture, one tile, `g = 32`)" in FLAT and len(data) == 144
    assert spec_extents(45, 61) == [(8, 6)] and "`rows × cols = 8 × 6` tokens" in FLAT
    assert "which begin `" + ", ".join(map(str, tile[:6])) + "`" in FLAT
    tb = token_bytes(tile)
    assert len(tb) == 4 * 1024 and f"CRC-32 `{zlib.crc32(tb):08x}`" in FLAT
    ar = (DATA / "grey-45x61.ar.v2.lq").read_bytes()
    assert ar[34 + 8 : 34 + 12] == zlib.crc32(tb).to_bytes(4, "big")  # the index CRC, big-endian
    golden = {s["file"]: s for s in json.loads((DATA / "golden.json").read_text())["streams"]}
    sha = hashlib.sha256(tb).hexdigest()
    assert golden["grey-45x61.fixed.v2.lq"]["tokens_sha256"] == golden["grey-45x61.ar.v2.lq"]["tokens_sha256"] == sha
    assert f"the token hash `{sha}`" in FLAT
    assert np.array_equal(coders.decode_fixed(data[34:-4], 1, 1024, [(8, 6)]).reshape(-1), tile)  # the reference agrees


def test_the_crc_is_zlibs_and_the_length_leaves_it_out():
    assert zlib.crc32(b"123456789") == 0xCBF43926 and "`0xCBF43926`" in FLAT and "`0xEDB88320`" in FLAT
    for path in sorted(DATA.glob("*.lq")):
        data = path.read_bytes()
        extra = {3: 1, 4: 9}.get(data[4], 0)  # version 3: the stage count; 4: the stage count and the coded size
        assert int.from_bytes(data[30:34], "big") == len(data) - 38 - extra  # plen: the CRC is not counted
        assert data[-4:] == zlib.crc32(data[:-4]).to_bytes(4, "big")
        if data[4] == 3:
            assert 2 <= data[34] <= 8
        if data[4] == 4:
            assert 1 <= data[34] <= 8
    assert ("the 4-byte CRC-32 after the payload is **not** counted (a file is `38 + plen` bytes, `39 + plen` in "
            "version 3, `47 + plen` in version 4)") in FLAT


def test_a_payload_without_words_is_refused_as_documented():
    """`M = 0`: a 12-byte ar payload decodes from zeros and is refused (FormatError), as the text says."""
    import dataclasses

    import leechcodec
    from leechcodec import container
    from leechcodec.errors import FormatError
    from leechcodec.models.io import load_weights

    data = (DATA / "grey-45x61.ar.v2.lq").read_bytes()
    header, payload = container.unpack(data)
    empty = container.pack(dataclasses.replace(header, payload_length=12), payload[:12])
    with pytest.raises(FormatError):
        leechcodec.decode(empty, load_weights(DATA / "tiny.safetensors"))
    assert "`M = 0` (a 12-byte payload) is not an empty stream" in FLAT


def _doc_table(title: str) -> list[list[str]]:
    """The rows (cells without backticks) of the first Markdown table after ``title``."""
    rows = []
    for line in DOC.split(title, 1)[1].splitlines():
        if line.startswith("|"):
            cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-:"):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the head


def test_the_config_fields_and_defaults_are_the_documented_ones():
    import dataclasses

    rows = _doc_table("The config's fields (`models/vit.py:TokenizerConfig`)")
    types = {str: "string", int: "integer", float: "float"}
    fields = [(f.name, types[type(f.default)], json.dumps(f.default)) for f in dataclasses.fields(TokenizerConfig)]
    assert [(name, kind, default) for name, kind, default, _ in rows] == fields


def test_the_metadata_keys_are_the_documented_ones():
    from leechcodec.models import io as model_io
    from leechcodec.models import prior as model_prior

    tok = {row[0] for row in _doc_table("**Tokenizer** (`models/io.py`")}
    meta = _meta(DEFAULT_WEIGHTS)
    assert set(meta) == tok and meta["format"] == model_io.FORMAT_TAG and f"must be `{model_io.FORMAT_TAG}`" in FLAT
    pri = {row[0] for row in _doc_table("**Prior** (`leechcodec/exact_prior.py`")}
    meta = _meta(prior_path_for(DEFAULT_WEIGHTS))
    assert set(meta) == pri and meta["format"] == model_prior.FORMAT_TAG and f"must be `{model_prior.FORMAT_TAG}`" in FLAT


def test_the_text_promises_tokens_not_pixels():
    assert "It does **not** define pixels" in FLAT and "`models/vit.py`" in FLAT
    assert "64 megapixels" not in FLAT and "2^26 = 67,108,864 pixels" in FLAT


# ----------------------------------------------------------------------------- resampling (version 4)
def spec_resample_axis(samples: np.ndarray, m: int) -> np.ndarray:
    """FORMAT.md, 'Resampling': one pass along axis 0 of integer ``samples`` (n, ...) to m samples,
    from the text alone (binary64 in the order written, math.sin as the correctly rounded sin)."""
    n = samples.shape[0]
    if n == m:
        return samples
    scale = n / m
    fs = max(scale, 1.0)
    support = 3.0 * fs
    ss = 1.0 / fs

    def sinc(x: float) -> float:
        if x == 0.0:
            return 1.0
        t = x * math.pi
        return math.sin(t) / t

    def kernel(x: float) -> float:
        return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0

    out = np.empty((m, *samples.shape[1:]), np.int64)
    for j in range(m):
        center = (j + 0.5) * scale
        lo = max(0, math.trunc(center - support + 0.5))
        hi = min(n, math.trunc(center + support + 0.5))
        w = [kernel(((i - center) + 0.5) * ss) for i in range(lo, hi)]
        total = 0.0
        for x in w:
            total += x
        k = [x / total if total != 0.0 else x for x in w]
        big = [math.trunc(x * 2**22 + 0.5) if x >= 0 else math.trunc(x * 2**22 - 0.5) for x in k]
        acc = np.full(samples.shape[1:], 2**21, np.int64)
        for i, K in zip(range(lo, hi), big):
            acc = acc + samples[i].astype(np.int64) * K
        out[j] = np.clip(acc >> 22, 0, 255)  # >> 22: the floor of the division by 2^22
    return out


def spec_resample(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """(ch, cw, 3) uint8 → (height, width, 3): every row first, then every column of that."""
    rows = spec_resample_axis(rgb.transpose(1, 0, 2), width).transpose(1, 0, 2)  # along the rows: axis 1
    return spec_resample_axis(rows, height).astype(np.uint8)


@pytest.mark.parametrize("size, to", [((37, 23), (74, 46)), ((96, 64), (61, 40)), ((1, 1), (2, 2)), ((5, 9), (3, 17)),
                                      ((40, 30), (40, 61)), ((300, 7), (113, 7))])
def test_the_resampling_is_the_documented_one(size, to):
    """The reference resampler (leechcodec.scale, Pillow's Lanczos) gives exactly what the text says."""
    from PIL import Image

    from leechcodec import scale

    rng = np.random.default_rng(size[0] * 1000 + to[0])
    rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    rgb[: size[1] // 2] = rgb[: size[1] // 2] // 64 * 255  # hard edges: the kernel's negative lobes reach 0 and 255
    ref = np.asarray(scale.to_size(Image.fromarray(rgb), to))
    assert np.array_equal(ref, spec_resample(rgb, *to))
    assert "`L(x) = sinc(x) · sinc(x / 3.0)` for `−3 ≤ x < 3`" in FLAT and "`q_j = min(255, max(0, ⌊(2^21 + Σ_i p_i · K_i) / 2^22⌋))`" in FLAT


def test_version_4_decodes_the_coded_size_then_resamples_as_documented(tmp_path):
    """decode of a version-4 stream = the text's resampling of the coded-size picture its tokens give
    (that picture decoded from the same payload under a version-2 header of the coded size), then the
    colour mode: fails if the decoder ignores the coded size or resamples another way."""
    import dataclasses

    import leechcodec
    from PIL import Image

    from leechcodec import container
    from leechcodec.models.io import load_weights

    model = load_weights(DATA / "tiny.safetensors")
    rng = np.random.default_rng(3)
    for mode, size, factor in (("RGB", (70, 50), 0.6), ("L", (45, 61), 1.7), ("RGB", (300, 20), 0.35)):
        picture = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        for coder in ("fixed", "ar"):
            data = leechcodec.encode(picture, model, coder=coder, scale=factor, precision="fp32")
            header, payload = container.unpack(data)
            assert header.version == 4 and header.coded_size == container.coded_size(*size, factor)
            assert header.coded_size == tuple(max(1, math.floor(n * factor + 0.5)) for n in size)  # FORMAT.md's rule
            cw, ch = header.coded_size
            plain = dataclasses.replace(header, width=cw, height=ch, mode="RGB", version=2, coded_width=0, coded_height=0)
            coded = np.asarray(leechcodec.decode(container.pack(plain, payload), model, precision="fp32"))
            want = Image.fromarray(spec_resample(coded, *size))
            got = leechcodec.decode(data, model, precision="fp32")
            assert got.size == size and got.mode == mode
            assert np.array_equal(np.asarray(got), np.asarray(want.convert(mode)))
