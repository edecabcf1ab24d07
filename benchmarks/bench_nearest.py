"""Nearest-codeword search: structured exact search vs brute force over all 196,560 codewords.

    python benchmarks/bench_nearest.py [--tokens 6144] [--repeat 3]

6,144 tokens = one 768x512 Kodak image. Prints seconds per call and the speed-up, and
checks that both return the same indices.
"""

import argparse
import time

import numpy as np
import torch

from leechcodec import lattice


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=6144)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.standard_normal((args.tokens, 24)).astype(np.float32))
    z = z / z.norm(dim=1, keepdim=True)
    lattice.nearest(z[:8])  # build tables outside the timing
    lattice.nearest_tiled(z[:8])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.tokens} unit vectors")
    t_s, a = best_of(lambda: lattice.nearest(z, method="structured"), args.repeat)
    t_b, b = best_of(lambda: lattice.nearest_tiled(z), args.repeat)
    t_r, c = best_of(lambda: lattice.nearest_brute(z), 1)
    print(f"structured exact search      {t_s * 1e3:9.1f} ms")
    print(f"brute force fp32 (matmul+argmax, 1024-row chunks) {t_b * 1e3:9.1f} ms  -> speed-up {t_b / t_s:.1f}x")
    print(f"brute force fp64 reference   {t_r * 1e3:9.1f} ms  -> speed-up {t_r / t_s:.1f}x")
    print(f"identical to fp64 brute force: {bool(torch.equal(a, c))}; to fp32 brute force: {bool(torch.equal(a, b))}")


if __name__ == "__main__":
    main()
