"""Tokenize a folder of pictures into one .npy of Λ24 token grids, for a generative model.

    python examples/tokenize_folder.py PICTURES_DIR -o tokens.npy [--size 256]

Each picture is resized to SIZE px on its short side and centre-cropped to SIZE × SIZE, then
tokenized with the bundled model (ONNX Runtime: no torch): tokens.npy holds int32
(N, SIZE/8, SIZE/8), each an index into the 196,560 Leech-lattice codewords, and tokens.txt the
pictures' names in the same order. ``leechcodec.detokenize`` turns grids back into pictures;
the first one's PSNR is printed as a check.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import leechcodec

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def square(path: Path, size: int) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    s = size / min(im.size)
    im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.Resampling.LANCZOS)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pictures_dir", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True, help="the .npy to write (a .txt of names beside it)")
    ap.add_argument("--size", type=int, default=256, help="side of the square pictures, a multiple of 8")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pictures")
    args = ap.parse_args()
    if args.size % 8 or args.size < 8:
        raise SystemExit("--size must be a multiple of 8")
    files = sorted(p for p in args.pictures_dir.rglob("*") if p.suffix.lower() in SUFFIXES)[: args.limit]
    if not files:
        raise SystemExit(f"{args.pictures_dir}: no pictures found")
    model = leechcodec.load_model(prior=None)  # the tokenizer alone: no prior needed
    start = time.perf_counter()
    grids = [leechcodec.tokenize(square(f, args.size), model)[0] for f in tqdm(files, unit="picture")]
    seconds = time.perf_counter() - start
    tokens = np.stack(grids)
    np.save(args.output, tokens)
    args.output.with_suffix(".txt").write_text("".join(f"{f.relative_to(args.pictures_dir)}\n" for f in files))
    used = len(np.unique(tokens))
    print(f"{args.output}: {tokens.dtype} {tokens.shape}, {len(files) / seconds:.1f} pictures/s, "
          f"{used:,} distinct codewords of 196,560 in {tokens.size:,} tokens")
    back = leechcodec.detokenize(tokens[:1], model)[0].astype(np.float64)
    mse = ((back - square(files[0], args.size)) ** 2).mean()
    print(f"{files[0].name} back from its tokens: {10 * np.log10(255**2 / mse):.2f} dB PSNR")


if __name__ == "__main__":
    main()
