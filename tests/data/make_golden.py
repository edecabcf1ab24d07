"""Regenerate the golden streams of tests/test_golden.py (run by hand, never by the tests).

    python tests/data/make_golden.py                # models, sources, streams, manifest
    python tests/data/make_golden.py --keep-models  # the committed models, new streams

Everything here is deterministic:

* ``tiny.safetensors``: the ``tiny`` tokenizer preset built after ``torch.manual_seed(0)``,
  saved with ``models.io.save_weights`` (fp16); ``tiny.prior.safetensors``: the ``tiny`` AR
  prior preset built after ``torch.manual_seed(1)``, saved with ``models.prior.save_prior``
  (integers). They are the fuzz harness's models too (fuzz/fuzz_decode.py loads these files).
  Both are untrained: the tests pin the format and the arithmetic, not picture quality.
* three source PNGs drawn with integer arithmetic: a whole 256x256 tile (RGB), an odd-sized
  RGB picture that pads into two tiles (301x77), an odd-sized grey one (45x61);
* each source encoded with the ``fixed`` and the ``ar`` coder in the current format version
  (``<source>.<coder>.v<version>.lq``), in version 3 with residual stages
  (``<source>.<coder>.s<stages>.v3.lq``: 2 stages with both coders, 3 stages with the ar
  coder at λ 0.005, where later-stage positions are left out), and in version 4 at another
  coded size (``<source>.<coder>.x<scale>[.s<stages>].v4.lq``: scale 0.5 fixed, 1.5 ar, 0.7 ar
  with 2 stages); the streams of earlier
  versions (version 1: ``<source>.<coder>.lq``) are kept with their manifest entries, never
  rewritten, so that the tests go on decoding them;
* ``golden.json``: the model and prior ids (content hashes), and per stream the SHA-256 of
  the stream, of its source PNG, of its token indices (big-endian uint32, tile by tile) and of its decoded pixels
  (``Image.tobytes()`` in the stream's colour mode).

Regenerating changes the committed bytes only if the format or the models changed. A
deliberate format change is a new format version in docs/FORMAT.md, with the old streams
kept (and still decoded) beside the new ones.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[1]
sys.path.insert(0, str(REPO))

import leechcodec  # noqa: E402
from leechcodec import coders, container  # noqa: E402
from leechcodec.models.io import load_weights, save_weights  # noqa: E402
from leechcodec.models.prior import PRIOR_PRESETS, ARPrior, load_prior, prior_id_of, prior_path_for, save_prior  # noqa: E402
from leechcodec.models.vit import build  # noqa: E402

TOKENIZER = DATA / "tiny.safetensors"
PRIOR = prior_path_for(TOKENIZER)
MANIFEST = DATA / "golden.json"
CODERS = ("fixed", "ar")
# version 3: (coder, encode arguments) of the staged streams of each source
STAGED = (("fixed", {"stages": 2}), ("ar", {"stages": 2}), ("ar", {"stages": 3, "lam": 0.005}))
# version 4: (coder, encode arguments) of the streams coded at another size (smaller, larger, with stages)
SCALED = (("fixed", {"scale": 0.5}), ("ar", {"scale": 1.5}), ("ar", {"scale": 0.7, "stages": 2}))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_models() -> None:
    """Build both models; a committed file whose id comes out the same is kept as it is."""
    with tempfile.TemporaryDirectory() as d:
        tok, pri = Path(d) / TOKENIZER.name, Path(d) / PRIOR.name
        torch.manual_seed(0)
        mid = save_weights(build("tiny"), tok)
        torch.manual_seed(1)
        pid = save_prior(ARPrior(PRIOR_PRESETS["tiny"]), pri, mid)
        if not TOKENIZER.is_file() or load_weights(TOKENIZER, prior=None).model_id != mid:
            shutil.copyfile(tok, TOKENIZER)
        if not PRIOR.is_file() or load_prior(PRIOR, mid).prior_id != pid:
            shutil.copyfile(pri, PRIOR)


def sources() -> dict[str, Image.Image]:
    """The source pictures: smooth ramps, hard edges, stripes and a disc, from integers only."""
    y, x = np.mgrid[0:256, 0:256]
    rgb = np.stack([x, y, (x + y) // 2], -1)
    rgb[(x - 150) ** 2 + (y - 100) ** 2 < 50**2] = (230, 40, 40)
    rgb[16:80, 160:240] = ((x[16:80, 160:240] // 8 + y[16:80, 160:240] // 8) % 2 * 255)[..., None]
    rgb[180:240, 20:120, 1] = (x[180:240, 20:120] % 6 < 3) * 200
    y, x = np.mgrid[0:77, 0:301]
    odd = np.stack([x * 255 // 300, 128 + (x * y) % 64, (y * 3) % 256], -1)
    odd[(x + 2 * y) % 40 < 4] = (20, 20, 90)
    y, x = np.mgrid[0:61, 0:45]
    grey = (x * 5 + y * 3) % 256
    grey[np.abs((x - 22) ** 2 + (y - 30) ** 2 - 15**2) < 40] = 250
    return {
        "rgb-256x256": Image.fromarray(rgb.astype(np.uint8), "RGB"),
        "rgb-301x77": Image.fromarray(odd.astype(np.uint8), "RGB"),
        "grey-45x61": Image.fromarray(grey.astype(np.uint8), "L"),
    }


def _pixels(path: Path) -> tuple:
    with Image.open(path) as im:
        return im.mode, im.size, im.tobytes()


def tokens(data: bytes, model) -> np.ndarray:
    """The token indices of a stream (what the coders decode, before any pixels), padding
    tokens included (format version 2 rebuilds them from the stored ones)."""
    header, payload = container.unpack(data)
    grid = model.tile // model.patch
    extents = container.token_extents(*header.coded_size, model.tile, model.patch, header.version)
    staged = header.stages > 1
    if header.coder == "ar":
        return coders.decode_ar(payload, header.n_tiles, grid, model.prior, extents=extents,
                                stages=header.stages if staged else None)
    if staged:
        return coders.decode_fixed_stages(payload, header.stages, header.n_tiles, grid * grid, extents)
    return coders.decode_fixed(payload, header.n_tiles, grid * grid, extents)


def tokens_sha256(indices: np.ndarray) -> str:
    """SHA-256 of the token bytes (docs/FORMAT.md): big-endian uint32, a left-out token 0xFFFFFFFF."""
    return sha256(np.ascontiguousarray(np.asarray(indices, np.int64) & 0xFFFFFFFF, dtype=">u4").tobytes())


def main() -> None:
    torch.set_num_threads(1)
    if "--keep-models" not in sys.argv[1:]:
        make_models()
    model = load_weights(TOKENIZER)
    prior = model.prior
    state = {k: v.astype(np.int64) for k, v in prior.w.items()}  # the integer weights, as saved
    manifest = {
        "about": "golden streams of tests/test_golden.py; regenerate with python tests/data/make_golden.py",
        "made_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "constriction": importlib.metadata.version("constriction"),
            "machine": platform.machine(),
        },
        # the ids are the models' content hashes (safetensors orders its metadata at random, so
        # the files' own bytes are not reproducible)
        "tokenizer": {"file": TOKENIZER.name, "model_id": model.model_id.hex()},
        "prior": {
            "file": PRIOR.name,
            "prior_id": prior.prior_id.hex(),
            "legacy_prior_id": prior_id_of(prior.cfg, state, model.model_id, legacy=True).hex(),
        },
        "streams": [],
    }
    if MANIFEST.is_file():  # earlier format versions: kept as they are
        old = json.loads(MANIFEST.read_text())["streams"]
        manifest["streams"] = [e for e in old if e.get("version", 1) not in (container.VERSION, container.STAGED,
                                                                              container.SCALED)]
    for name, im in sources().items():
        src = DATA / f"{name}.png"
        if not src.is_file() or _pixels(src) != (im.mode, im.size, im.tobytes()):  # PNG bytes vary with zlib
            im.save(src, optimize=True)
        runs = [(coder, {}, f"{name}.{coder}.v{container.VERSION}.lq") for coder in CODERS]
        runs += [(coder, kw, f"{name}.{coder}.s{kw['stages']}.v{container.STAGED}.lq") for coder, kw in STAGED]
        runs += [(coder, kw, f"{name}.{coder}.x{kw['scale']:g}{'.s%d' % kw['stages'] if 'stages' in kw else ''}"
                             f".v{container.SCALED}.lq") for coder, kw in SCALED]
        for coder, kw, file in runs:
            data = leechcodec.encode(src, model, coder=coder, precision="fp32", **kw)
            out = DATA / file
            out.write_bytes(data)
            decoded = leechcodec.decode(data, model, precision="fp32")  # the reference decode
            manifest["streams"].append({
                "file": out.name,
                "source": src.name,
                "source_sha256": sha256(src.read_bytes()),
                "coder": coder,
                "version": leechcodec.read_header(data).version,
                **({"encode": kw, "stages": leechcodec.read_header(data).stages} if kw else {}),
                **({"coded_size": "{}x{}".format(*leechcodec.read_header(data).coded_size)} if "scale" in kw else {}),
                "size": "{}x{}".format(*decoded.size),
                "mode": decoded.mode,
                "sha256": sha256(data),
                "tokens_sha256": tokens_sha256(tokens(data, model)),
                "pixels_sha256": sha256(decoded.tobytes()),
            })  # fmt: skip
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest['streams'])} streams and {MANIFEST.relative_to(REPO)}")


if __name__ == "__main__":
    main()
