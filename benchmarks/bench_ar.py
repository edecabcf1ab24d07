"""The ar coder on Kodak: real bytes against the fixed coder, losslessness, time, determinism.

    python benchmarks/bench_ar.py --kodak-dir ../shared/data/kodak [--model PATH] [--images N]

For every image: encode with ``--coder fixed`` and ``--coder ar`` (same tokens), decode both,
check the decoded pixels are identical, and time each step. Then one ar stream per image
encoded here (all threads) is decoded again in a fresh process with OMP_NUM_THREADS=1 and its
pixels compared. Prints per-image lines and the averages: bpp, bits per token (payload
bits / tokens, header and prior id included in bpp only), ar/fixed byte ratio, seconds.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import leechcodec
from leechcodec.container import HEADER
from leechcodec.lattice import BITS_PER_INDEX
from leechcodec.models.io import load_weights

from _common import kodak_parser, kodak_pngs, torch_threads

REPO = Path(__file__).resolve().parents[1]


def _timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def main():
    ap = kodak_parser(__doc__)
    ap.add_argument("--no-subprocess", action="store_true", help="skip the OMP_NUM_THREADS=1 decode check")
    args = ap.parse_args()
    model = load_weights(args.model)
    if model.prior is None:
        raise SystemExit("the model has no AR prior (NAME.prior.safetensors beside it)")
    leechcodec.decode(leechcodec.encode(Image.new("RGB", (8, 8)), model, coder="ar"), model)  # warm-up
    print(f"model {model.cfg.name} {model.model_id.hex()}, prior {model.prior.cfg.name} {model.prior.prior_id.hex()}, "
          f"{torch_threads()}")  # fmt: skip
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ar-"))
    for f in kodak_pngs(args):
        img = Image.open(f).convert("RGB")
        fixed, t_ef = _timed(leechcodec.encode, img, model, coder="fixed")
        ar, t_ea = _timed(leechcodec.encode, img, model, coder="ar")
        dec_f, t_df = _timed(leechcodec.decode, fixed, model)
        dec_a, t_da = _timed(leechcodec.decode, ar, model)
        same = np.array_equal(np.asarray(dec_f), np.asarray(dec_a))
        tokens = leechcodec.read_header(ar).n_tiles * (model.tile // model.patch) ** 2
        px = img.width * img.height
        bits_tok = 8 * (len(ar) - HEADER.size - 4 - 12) / tokens
        (tmp / f"{f.stem}.lq").write_bytes(ar)
        np.save(tmp / f"{f.stem}.npy", np.asarray(dec_a))
        rows.append((8 * len(fixed) / px, 8 * len(ar) / px, bits_tok, len(ar) / len(fixed), t_ef, t_ea, t_df, t_da, same))
        print(f"{f.stem}  fixed {rows[-1][0]:.4f} bpp  ar {rows[-1][1]:.4f} bpp  {bits_tok:6.3f} bits/token  "
              f"ratio {rows[-1][3]:.3f}  enc {t_ea:5.2f} s  dec {t_da:5.2f} s  identical pixels: {same}")  # fmt: skip
    m = np.mean([r[:8] for r in rows], axis=0)
    print(f"mean over {len(rows)} images: fixed {m[0]:.4f} bpp, ar {m[1]:.4f} bpp (max {max(r[1] for r in rows):.4f}), "
          f"{m[2]:.3f} bits/token vs {BITS_PER_INDEX:.3f} fixed, ar/fixed bytes {m[3]:.3f}; "
          f"seconds per image: encode fixed {m[4]:.2f} / ar {m[5]:.2f}, decode fixed {m[6]:.2f} / ar {m[7]:.2f}; "
          f"identical pixels on {sum(r[8] for r in rows)}/{len(rows)}")  # fmt: skip
    if args.no_subprocess:
        return
    code = (
        "import sys, numpy as np, leechcodec; from pathlib import Path; from leechcodec.models.io import load_weights\n"
        "m = load_weights(sys.argv[2] if len(sys.argv) > 2 else None); bad = 0\n"
        "for p in sorted(Path(sys.argv[1]).glob('*.lq')):\n"
        "    bad += not np.array_equal(np.asarray(leechcodec.decode(p.read_bytes(), m)), np.load(p.with_suffix('.npy')))\n"
        "print(bad)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", code, str(tmp)] + ([args.model] if args.model else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    print(f"decoded again with OMP_NUM_THREADS=1 in a fresh process: {len(rows) - int(r.stdout.split()[-1])}/{len(rows)} identical")


if __name__ == "__main__":
    main()
