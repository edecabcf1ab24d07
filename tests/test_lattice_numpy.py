"""The numpy Λ24 search (``lattice._nearest_structured_np``), which encoding runs without torch.

It must return what the float64 brute force returns (the argmax over all 196,560 codewords,
ties to the smallest index) and what the torch search returns on the same rows, near ties
included; and ``lattice`` must work on numpy arrays without importing torch at all.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from leechcodec import lattice

from conftest import REPO


@pytest.fixture(scope="module")
def book() -> np.ndarray:
    return lattice.codebook().astype(np.float32)  # integers ≤ 4: exact in float32


def _check(z) -> np.ndarray:
    """numpy nearest == numpy float64 brute force == torch structured search; the indices."""
    got = lattice.nearest(z)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64 and got.shape == (len(z),)
    np.testing.assert_array_equal(got, lattice.nearest_brute(z))
    np.testing.assert_array_equal(got, lattice.nearest(torch.from_numpy(z), "structured").numpy())
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("unit", [False, True])
def test_random_rows(rng, dtype, unit):
    z = rng.standard_normal((2500, 24))
    if unit:
        z /= np.linalg.norm(z, axis=1, keepdims=True)
    _check(z.astype(dtype))


def test_near_codewords_and_exact_codewords(rng, book):
    idx = rng.integers(0, lattice.N_CODEWORDS, 1500)
    for scale in (0.0, 1e-6, 1e-3, 0.05, 0.3):
        z = (book[idx] + scale * rng.standard_normal((len(idx), 24))).astype(np.float32)
        got = _check(z)
        if scale < 0.1:
            np.testing.assert_array_equal(got, idx)


@pytest.mark.parametrize("scale", [2.0**-40, 1e-3, 3.7, 1e3, 1e6])
def test_scaled_codewords(rng, scale):
    """Any norm: the pruning slack is absolute, so the search scales rows by a power of two
    first (exactly); before, rows of norm 1000 got the wrong codeword half the time."""
    idx = rng.integers(0, lattice.N_CODEWORDS, 800)
    v = lattice.vectors(idx).astype(np.float64) * scale
    np.testing.assert_array_equal(_check(v), idx)
    _check((v + 0.2 * scale * rng.standard_normal(v.shape)).astype(np.float32))


def test_midpoints_of_two_codewords(rng, book):
    """c1 + c2 is exactly as close to c1 as to c2 (and may tie with more): the smallest index of
    the tied maxima wins. Neighbours (<c1, c2> = 16) and random pairs, in float32 (exact)."""
    i1 = rng.integers(0, lattice.N_CODEWORDS, 300)
    gram = book[i1] @ book.T  # exact: small integers
    i2 = np.array([rng.choice(np.flatnonzero(row == 16)) for row in gram])
    far = rng.integers(0, lattice.N_CODEWORDS, 300)
    z = np.concatenate([book[i1] + book[i2], book[i1] + book[far], book[i1] - book[i2]])
    got = _check(z)
    # <c1 + c2, c> is 48 for c1 and c2, at most 16 + 16 for any other c: the smaller index wins
    np.testing.assert_array_equal(got[:300], np.minimum(i1, i2))


def test_zero_rows_and_tied_magnitudes(rng):
    zero = np.zeros((4, 24), np.float32)
    zero[1] = -0.0
    spikes = np.zeros((48, 24))
    spikes[np.arange(48), np.arange(48) % 24] = np.where(np.arange(48) < 24, 1.0, -2.5)  # ties among pairs
    signs = rng.choice([-1.0, 1.0], (500, 24))  # every |z| tied: octads and Golay words tie
    for z in (zero, zero.astype(np.float64), spikes, signs, np.concatenate([signs, zero.astype(np.float64)])):
        _check(z)
    assert lattice.nearest(np.zeros((0, 24))).shape == (0,)


def test_float32_and_float64_and_lists_agree(rng):
    z = rng.standard_normal((300, 24)).astype(np.float32)
    got = lattice.nearest(z)
    np.testing.assert_array_equal(got, lattice.nearest(z.astype(np.float64)))
    np.testing.assert_array_equal(got, lattice.nearest(z.tolist()))
    np.testing.assert_array_equal(got, lattice.nearest(z, "brute"))
    np.testing.assert_array_equal(got, lattice.nearest(z, "tiled"))  # torch only, numpy out
    np.testing.assert_array_equal(got, lattice._nearest_structured_np(z, chunk=7))  # chunk seams
    with pytest.raises(ValueError):
        lattice.nearest(z[:, :23])
    with pytest.raises(ValueError):
        lattice.nearest(z, method="nope")


def test_numpy_brute_force_is_the_torch_one(rng, book):
    z = np.concatenate([rng.standard_normal((200, 24)), (book[:50] + book[500:550]).astype(np.float64)])
    np.testing.assert_array_equal(lattice.nearest_brute(z), lattice.nearest_brute(torch.from_numpy(z)).numpy())


def test_split_join_numpy():
    idx = np.arange(lattice.N_CODEWORDS)
    cls, a, b = lattice.split_index(idx)
    for x in (cls, a, b):
        assert isinstance(x, np.ndarray) and x.dtype == np.int64
    np.testing.assert_array_equal(lattice.join_index(cls, a, b), idx)
    for got, want in zip((cls, a, b), lattice.split_index(torch.from_numpy(idx))):
        np.testing.assert_array_equal(got, want.numpy())
    grid = idx[::1000][:160].reshape(4, 40)  # any shape, lists too
    np.testing.assert_array_equal(lattice.join_index(*lattice.split_index(grid.tolist())), grid)


def test_numpy_use_never_imports_torch():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import leechcodec.lattice as lattice
        z = np.random.default_rng(0).standard_normal((300, 24))
        idx = lattice.nearest(z)
        assert (idx[:50] == lattice.nearest_brute(z[:50])).all()
        assert (lattice.nearest(lattice.vectors(idx)) == idx).all()
        assert (lattice.join_index(*lattice.split_index(idx)) == idx).all()
        assert lattice.nearest(z[:5], "brute").shape == (5,)
        lattice.codebook(), lattice.TILED_STATS, lattice.BITS_PER_INDEX
        try:
            lattice.nearest(z, "nope")
        except ValueError:
            pass
        print(sorted(m for m in sys.modules if m.split(".")[0] == "torch"))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
