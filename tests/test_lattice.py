import itertools

import numpy as np
import pytest
import torch

from leechcodec import lattice


@pytest.fixture(scope="module")
def book():
    return lattice.codebook()


BIT = 1 << np.arange(24, dtype=np.int64)  # a 0/1 vector c is the integer key c @ BIT = Σ c_i 2^i


def _golay_keys() -> np.ndarray:
    """Keys of the code's own Golay words (checked against g(x) in test_golay_words_are_the_code_of_g)."""
    return lattice.golay_codewords().astype(np.int64) @ BIT


def test_golay_code_weight_distribution():
    words = lattice.golay_codewords()
    assert words.shape == (4096, 24)
    assert len({w.tobytes() for w in words}) == 4096
    counts = np.bincount(words.sum(1), minlength=25)
    assert {w: c for w, c in enumerate(counts) if c} == {0: 1, 8: 759, 12: 2576, 16: 759, 24: 1}
    # closed under addition (linear): a random sample of sums stays in the code
    keys = {w.tobytes() for w in words}
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, 4096, (200, 2)):
        assert ((words[a] + words[b]) % 2).astype(np.uint8).tobytes() in keys


def test_codebook_count_unique_norms_shapes(book):
    assert book.shape == (lattice.N_CODEWORDS, 24)
    assert book.dtype.kind == "i"
    assert len(np.unique(book, axis=0)) == 196_560
    assert set(np.unique((book**2).sum(1))) == {32}
    absval = np.sort(np.abs(book), axis=1)[:, ::-1]
    octad = book[: lattice.N_OCTAD_VECS]
    assert (np.abs(octad).max(1) == 2).all() and ((octad != 0).sum(1) == 8).all()
    assert ((octad < 0).sum(1) % 2 == 0).all()  # even number of minus signs
    golay = book[lattice.GOLAY_BASE : lattice.PAIR_BASE]
    assert (np.abs(golay).max(1) == 3).all() and ((np.abs(golay) == 1).sum(1) == 23).all()
    pairs = book[lattice.PAIR_BASE :]
    assert (absval[lattice.PAIR_BASE :, :2] == 4).all() and ((pairs != 0).sum(1) == 2).all()
    assert (book.sum(1) % 4 == 0).all()  # ≡ 4m mod 8 with the parity m: test_every_codeword_is_in_leech


def test_inner_products_and_min_distance(book, rng):
    rows = rng.choice(len(book), 1500, replace=False)
    dots = book[rows].astype(np.float32) @ book.T.astype(np.float32)  # exact for these integers
    assert set(np.unique(dots).astype(int)) <= {-32, -16, -8, 0, 8, 16, 32}
    # each sampled codeword has exactly one neighbour at distance... its own row gives 32
    assert ((dots == 32).sum(1) == 1).all()
    # the minimum normalised distance is 1: |a-b|^2 = 2 - 2<a,b>/32 = 1 at <a,b> = 16
    off = np.where(dots >= 32, -np.inf, dots)
    d2 = 2 - 2 * off.max(1) / 32
    assert np.allclose(d2, 1.0)
    # the kissing configuration of Λ24: every codeword has 4600 neighbours at distance 1
    assert ((dots == 16).sum(1) == 4600).all()


def test_index_vector_round_trip(book):
    idx = np.arange(lattice.N_CODEWORDS)
    vec = lattice.vectors(idx)
    assert vec.dtype == np.float32
    np.testing.assert_allclose(vec * np.sqrt(32), book, atol=1e-5)
    assert (lattice.nearest(vec) == idx).all()


def test_vectors_torch_in_torch_out():
    idx = torch.tensor([[0, 97_152], [195_456, 196_559]])
    v = lattice.vectors(idx)
    assert isinstance(v, torch.Tensor) and v.shape == (2, 2, 24)
    np.testing.assert_allclose(v.norm(dim=-1).numpy(), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        lattice.vectors(np.array([196_560]))


def test_canonical_order_examples():
    book = lattice.codebook()
    # first pair vector: +4 at 0 and 1
    assert list(book[lattice.PAIR_BASE][:3]) == [4, 4, 0]
    # pair sign bits: t=1 negates a, t=2 negates b
    assert list(book[lattice.PAIR_BASE + 3][:2]) == [-4, -4]
    # Golay word 0 is the zero word: (-3, 1, 1, ...) with the 3 at j
    assert list(book[lattice.GOLAY_BASE + 5][4:7]) == [1, -3, 1]
    # Golay word 4095 is the all-ones word: (3, -1, ...)
    assert list(book[lattice.GOLAY_BASE + 24 * 4095][:2]) == [3, -1]
    # octad sign pattern 0 is all plus
    assert (book[0][book[0] != 0] == 2).all()


@pytest.mark.parametrize("n", [1, 7, 3000])
def test_nearest_matches_brute_force_random(n, rng):
    z = rng.standard_normal((n, 24)).astype(np.float32)
    np.testing.assert_array_equal(lattice.nearest(z), lattice.nearest_brute(z))


def test_nearest_matches_brute_force_near_codewords(rng):
    idx = rng.integers(0, lattice.N_CODEWORDS, 2000)
    for scale in (1e-3, 0.05, 0.2):
        z = lattice.vectors(idx) + scale * rng.standard_normal((2000, 24)).astype(np.float32)
        got = lattice.nearest(z)
        np.testing.assert_array_equal(got, lattice.nearest_brute(z))
        if scale < 0.1:
            np.testing.assert_array_equal(got, idx)


def test_nearest_golay_pruning_on_sign_patterns(rng):
    """The Golay block's pruning bound reads the signs at the three largest |z|: inputs made of
    ±1 patterns (every |z| tied), with one or two spikes, or with signs flipped at the largest
    coordinates, must still give the brute force's answer."""
    n = 3000
    z = rng.choice([-1.0, 1.0], (n, 24)).astype(np.float32)
    spikes = rng.integers(0, 24, (n, 2))
    z[np.arange(n), spikes[:, 0]] *= rng.choice([1.0, 3.0, -3.0], n).astype(np.float32)
    z[np.arange(n // 2), spikes[: n // 2, 1]] *= rng.choice([1.5, 2.0, -2.5], n // 2).astype(np.float32)
    for noise in (0.0, 0.02, 0.3):
        zz = z + noise * rng.standard_normal(z.shape).astype(np.float32)
        np.testing.assert_array_equal(lattice.nearest(zz), lattice.nearest_brute(zz))


def test_nearest_scale_invariant_and_heavy_tailed(rng):
    z = rng.standard_normal((500, 24)) ** 3  # float64, spiky inputs favour the pair shape
    np.testing.assert_array_equal(lattice.nearest(z * 1e-3), lattice.nearest_brute(z))
    sparse = np.zeros((24, 24), np.float32)
    sparse[np.arange(24), np.arange(24)] = 1.0  # exact ties: smallest index wins, like brute force
    np.testing.assert_array_equal(lattice.nearest(sparse), lattice.nearest_brute(sparse))


def test_nearest_torch_and_methods(rng):
    z = torch.tensor(rng.standard_normal((300, 24)), dtype=torch.float32)
    out = lattice.nearest(z)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    assert torch.equal(out, lattice.nearest(z, method="tiled"))
    assert torch.equal(out, lattice.nearest(z, method="brute"))
    with pytest.raises(ValueError):
        lattice.nearest(z[:, :23])
    with pytest.raises(ValueError):
        lattice.nearest(z, method="nope")
    assert lattice.nearest(np.zeros((0, 24), np.float32)).shape == (0,)


# ----------------------------------------------------------------------------- the codebook is Λ24's first shell
def _clmul(a: int, b: int) -> int:
    """Product of two GF(2) polynomials held as integers (bit i: coefficient of x^i)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a, b = a << 1, b >> 1
    return out


def test_golay_words_are_the_code_of_g():
    """Independently of ``codewords``: g(x) = 1 + x^2 + x^4 + x^5 + x^6 + x^10 + x^11 divides
    x^23 + 1 (so it generates a cyclic [23, 12] code), and the code's 4,096 words are exactly
    {m(x)·g(x) : deg m < 12} with a parity bit at 23: a linear code of dimension 12 (4,096
    distinct words of a span of 12), minimum weight 8 (test_golay_code_weight_distribution)."""
    g = sum(1 << e for e in (0, 2, 4, 5, 6, 10, 11))
    rem = (1 << 23) | 1  # x^23 + 1 mod g(x), by long division over GF(2)
    while rem.bit_length() >= g.bit_length():
        rem ^= g << (rem.bit_length() - g.bit_length())
    assert rem == 0
    expected = set()
    for m in range(4096):
        c = _clmul(m, g)
        assert c < 1 << 23
        expected.add(c | (bin(c).count("1") & 1) << 23)
    keys = _golay_keys()
    assert len(expected) == 4096 and set(keys.tolist()) == expected
    assert (np.diff(keys) > 0).all()  # the index order: ascending keys (docs/FORMAT.md)
    low = keys & ((1 << 23) - 1)  # cyclic: the first 23 coordinates rotated stay in the code
    rot = ((low << 1) | (low >> 22)) & ((1 << 23) - 1)
    parity = np.array([bin(int(r)).count("1") & 1 for r in rot], dtype=np.int64)
    assert set((rot | parity << 23).tolist()) == expected


def test_every_codeword_is_in_leech(book):
    """The standard definition of Λ24 (scaled by √8): x ∈ ℤ^24 with all x_i ≡ m (mod 2); the
    places where x_i ≡ 2 (mod 4) (m = 0) or x_i ≡ 3 (mod 4) (m = 1) form a Golay codeword; and
    Σ x_i ≡ 4m (mod 8). Every row passes; with squared norm 32 (the minimum of Λ24), 196,560
    distinct rows (test_codebook_count_unique_norms_shapes) and Λ24's kissing number 196,560,
    the codebook is the whole first shell."""
    x = book.astype(np.int64)
    m = x[:, :1] & 1
    assert ((x & 1) == m).all()
    marked = np.where(m == 0, x % 4 == 2, x % 4 == 3)  # numpy's % is ≥ 0, as mod
    assert np.isin(marked.astype(np.int64) @ BIT, _golay_keys()).all()
    assert ((x.sum(1) - 4 * m[:, 0]) % 8 == 0).all()
    assert ((x**2).sum(1) == 32).all()
    assert np.bincount(m[:, 0]).tolist() == [97_152 + 1_104, 98_304]


def test_shapes_counts_and_blocks(book):
    """Each shape has its count and its own index block, and each block follows (support,
    detail) as the index order says: the octad / Golay word / pair of ``support``."""
    a = -np.sort(-np.abs(book), axis=1)  # |x| descending
    shape = np.full(len(book), -1)
    shape[(a[:, :8] == 2).all(1) & (a[:, 8:] == 0).all(1)] = 0  # ±2^8 0^16
    shape[(a[:, 0] == 3) & (a[:, 1:] == 1).all(1)] = 1  # ∓3 ±1^23
    shape[(a[:, :2] == 4).all(1) & (a[:, 2:] == 0).all(1)] = 2  # ±4^2 0^22
    assert np.bincount(shape, minlength=3).tolist() == [759 * 2**7, 4096 * 24, 276 * 4] == [97_152, 98_304, 1_104]
    cls, support, detail = lattice.split_index(np.arange(len(book)))
    np.testing.assert_array_equal(shape, cls)
    octads = lattice.golay_codewords()[lattice.golay_codewords().sum(1) == 8].astype(np.int64) @ BIT
    o = cls == 0
    np.testing.assert_array_equal((book[o] != 0) @ BIT, octads[support[o]])
    g = cls == 1
    j = np.abs(book[g]).argmax(1)
    np.testing.assert_array_equal(j, detail[g])
    minus = (book[g] < 0) ^ (np.arange(24) == j[:, None])  # s_j = -sign(v_j) at the ∓3
    np.testing.assert_array_equal(minus @ BIT, _golay_keys()[support[g]])
    p = cls == 2
    pairs = np.array(list(itertools.combinations(range(24), 2)))
    np.testing.assert_array_equal((book[p] != 0) @ BIT, (1 << pairs[support[p]]).sum(1))


def test_inner_product_distribution(book, rng):
    """From any minimal vector the others lie at inner products (squared norm 32) 32, 16, 8, 0,
    −8, −16, −32 exactly 1, 4,600, 47,104, 93,150, 47,104, 4,600, 1 times: the distance
    distribution of Λ24's first shell (a spherical 11-design), for the first and last
    codeword of each block and a random sample."""
    ends = [0, 97_151, 97_152, 195_455, 195_456, 196_559]
    rows = np.concatenate([ends, rng.choice(len(book), 30, replace=False)])
    dots = (book.astype(np.float32) @ book[rows].T.astype(np.float32)).astype(np.int64)  # exact
    want = {32: 1, 16: 4_600, 8: 47_104, 0: 93_150, -8: 47_104, -16: 4_600, -32: 1}
    for col in dots.T:
        values, counts = np.unique(col, return_counts=True)
        assert dict(zip(values.tolist(), counts.tolist())) == want


# ----------------------------------------------------------------------------- index_of and codeword
def test_index_of_round_trips(book):
    idx = np.arange(lattice.N_CODEWORDS)
    out = lattice.index_of(book)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, idx)
    np.testing.assert_array_equal(lattice.index_of(lattice.vectors(idx)), idx)  # float32 unit vectors
    np.testing.assert_array_equal(lattice.index_of(book.astype(np.int8)), idx)
    np.testing.assert_array_equal(lattice.codeword(idx), book)
    assert lattice.codeword(idx).dtype == np.int32
    some = np.array([[0, 1, 97_152], [195_456, 196_559, 123_457]])
    assert lattice.codeword(some).shape == (2, 3, 24)
    np.testing.assert_array_equal(lattice.index_of(lattice.codeword(some)), some)
    np.testing.assert_array_equal(lattice.index_of(lattice.vectors(some).astype(np.float64)), some)
    assert lattice.index_of(book[7]) == 7  # one vector → a 0-d array
    t = torch.from_numpy(some)
    assert torch.equal(lattice.index_of(lattice.vectors(t)), t)
    assert torch.equal(lattice.index_of(lattice.codeword(t)), t)
    with pytest.raises(ValueError):
        lattice.codeword([lattice.N_CODEWORDS])


def test_index_of_rejects_non_codewords(book, rng):
    """Vectors of squared norm 32 with a codeword's shape but not in Λ24, other shapes, float
    input off the lattice: ValueError. Integer input is read as codewords, float as unit vectors."""
    # of all C(24, 8) = 735,471 supports of +2^8, exactly the 759 octads are accepted (the
    # arithmetic behind index_of, −1 = rejected, on all of them at once)
    sup = np.array(list(itertools.combinations(range(24), 8)))
    x = np.zeros((len(sup), 24), np.int64)
    x[np.arange(len(sup))[:, None], sup] = 2
    got = lattice._index_of_int(x)
    assert (got >= 0).sum() == 759
    np.testing.assert_array_equal(np.sort(got[got >= 0]), 128 * np.arange(759))
    is_octad = got >= 0
    with pytest.raises(ValueError, match="not a minimal vector of Λ24"):
        lattice.index_of(x[~is_octad][:1])
    # one sign flipped: an octad vector gets an odd number of −2, a Golay vector a sign word at
    # distance 1 from the code (at the ±1s or at the ∓3); a pair vector stays a codeword
    idx = np.concatenate([rng.integers(0, lattice.N_CODEWORDS, 300), [0, 97_152, 196_559]])
    for i in idx:
        for k in np.flatnonzero(book[i]):
            y = book[i].copy()
            y[k] = -y[k]
            if i >= lattice.PAIR_BASE:
                assert lattice.index_of(y) == np.flatnonzero((book == y).all(1))[0]
            else:
                with pytest.raises(ValueError):
                    lattice.index_of(y)
    # random Golay sign words: accepted exactly when the minus signs (∓3 place corrected) are a Golay word
    s = rng.integers(0, 2, (5000, 24))
    s[:20] = lattice.golay_codewords()[rng.integers(0, 4096, 20)]
    y = 1 - 2 * s
    y[:, 5] *= -3
    keys = _golay_keys()
    in_code = np.isin(s @ BIT, keys)
    assert in_code[:20].all()
    want = lattice.GOLAY_BASE + 24 * np.searchsorted(keys, s[in_code] @ BIT) + 5
    np.testing.assert_array_equal(lattice.index_of(y[in_code]), want)
    for row in y[~in_code][:300]:
        with pytest.raises(ValueError):
            lattice.index_of(row)
    bad = [
        np.r_[4, 2, 2, 2, 2, np.zeros(19, int)],  # squared norm 32, no codeword shape
        np.r_[4, 4, 1, np.zeros(21, int)],
        np.zeros(24, int),
        2 * book[0],  # in Λ24, but not minimal
    ]
    for y in bad:
        with pytest.raises(ValueError):
            lattice.index_of(y)
    with pytest.raises(ValueError, match=r"row \(1, 0\)"):
        lattice.index_of(np.stack([book[:2], np.stack([bad[0], book[5]])]))
    # float: unit vectors within atol; integer codewords in a float array are not unit vectors
    v = lattice.vectors(np.arange(50))
    np.testing.assert_array_equal(lattice.index_of(v + 1e-6), np.arange(50))
    for y in (v + 1e-3, book[:50].astype(np.float32), rng.standard_normal((3, 24)), np.full((1, 24), np.nan)):
        with pytest.raises(ValueError):
            lattice.index_of(y)
    with pytest.raises(ValueError):
        lattice.index_of(book[:, :23])


def test_lattice_md_examples_are_the_codebooks():
    """docs/LATTICE.md's printed rows are what split_index and codebook() give."""
    import ast
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "LATTICE.md").read_text()
    rows = re.findall(r"^(\d+)\s+(\(\d+, \d+, \d+\))\s+(\[.*\])$", text, re.M)
    assert len(rows) == 6
    book = lattice.codebook()
    for i, split, vec in rows:
        i = int(i)
        assert tuple(int(x) for x in lattice.split_index(i)) == ast.literal_eval(split)
        assert list(book[i]) == ast.literal_eval(vec)
