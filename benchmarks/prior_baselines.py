"""Context-free baselines for the AR prior: what the token statistics alone are worth.

    python benchmarks/prior_baselines.py RUN/tokens-train-ID.safetensors RUN/tokens-val-ID.safetensors

Reads two token caches written by ``leechcodec train --prior`` (training tiles with their
mirror images; Kodak tiles) and prints the cross-entropy on the second, in bits per token, of

* the fixed coder: log2(196,560) = 17.585;
* a unigram over all 196,560 indices fitted on the first (add-1/2 smoothing);
* the unigram factorised like the prior (class, support | class, detail | class), no context.

The trained prior's figure (``val_bits`` in its log.jsonl, and real bytes from
``benchmarks/bench_ar.py``) is what the neighbour context adds on top.
"""

import argparse

import numpy as np
import torch
from safetensors.torch import load_file

from leechcodec import lattice


def _xent(train: np.ndarray, test: np.ndarray, n: int) -> float:
    counts = np.bincount(train, minlength=n).astype(np.float64) + 0.5
    p = counts / counts.sum()
    return float(-np.log2(p[test]).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("val")
    args = ap.parse_args()
    tr = load_file(args.train)["grids"].long().flatten()
    va = load_file(args.val)["grids"].long().flatten()
    print(f"{len(tr):,} training tokens, {len(va):,} test tokens")
    print(f"fixed coder:            {lattice.BITS_PER_INDEX:.3f} bits/token")
    print(f"unigram (196,560-way):  {_xent(tr.numpy(), va.numpy(), lattice.N_CODEWORDS):.3f} bits/token")
    ct, at, bt = (t.numpy() for t in lattice.split_index(tr))
    cv, av, bv = (t.numpy() for t in lattice.split_index(va))
    bits = _xent(ct, cv, 3) * len(cv)
    for k in range(3):
        st, sv = ct == k, cv == k
        if sv.any():
            bits += _xent(at[st], av[sv], lattice.SUPPORT[k]) * sv.sum()
            bits += _xent(bt[st], bv[sv], lattice.DETAIL[k]) * sv.sum()
    print(f"unigram, factorised:    {bits / len(cv):.3f} bits/token")
    share = np.bincount(cv, minlength=3) / len(cv)
    print(f"class shares on the test tokens: octad {share[0]:.3f}, Golay {share[1]:.3f}, pair {share[2]:.3f}; "
          f"distinct codewords {len(torch.unique(va)):,}")


if __name__ == "__main__":
    main()
