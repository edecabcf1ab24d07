import numpy as np
import pytest
import torch

from leechcodec import lattice


@pytest.fixture(scope="module")
def book():
    return lattice.codebook()


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
    # all of Λ24's minimal vectors sum coordinates to 0 mod 8 after this scaling? (sum ≡ 0 mod 4)
    assert (book.sum(1) % 4 == 0).all()


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
