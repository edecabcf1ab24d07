"""What a lent GPU is asked besides training (``python -m leechcodec.models.shot exact`` and
``encode-demo``, scripts/gpu_check.sh and gpu_shot.sh): whether each nearest-codeword search
is exact there under bf16 autocast and how fast it is (the shot trains with the fastest), and
an ar-coded stream made on the device for a bit-exactness check at home.

Imports torch, numpy and pillow only (``models.shot`` says why); ``encode_demo`` needs the
constriction wheel that gpu_shot.sh installs after training.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from PIL import Image

import leechcodec
from leechcodec import lattice
from leechcodec.output import write_file
from leechcodec.quantizer import normalize
from leechcodec.tiling import tile_image

from . import io as model_io

SEARCHES = ("structured", "tiled", "tiled16")  # every one exact (leechcodec.lattice); the shot uses the fastest


def sync(device: torch.device) -> None:
    """Wait for ``device`` (a GPU's queued work), for timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_search(device: torch.device, n: int = 65_536, reps: int = 3) -> dict:
    """Milliseconds per call of each exact nearest search on ``n`` random unit vectors, and whether they agree."""
    z = normalize(torch.randn(n, lattice.DIM, device=device, generator=torch.Generator(device).manual_seed(0)))
    out, idx = {}, {}
    for method in SEARCHES:
        idx[method] = lattice.nearest(z, method)  # warm-up: tables, kernels
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            lattice.nearest(z, method)
        sync(device)
        out[f"{method}_ms"] = 1000 * (time.perf_counter() - t) / reps
    out["tokens"] = n
    ref = lattice.nearest_brute(z[:4096]) if device.type == "cpu" else lattice.nearest_brute(z)
    out["agree"] = min(float((idx[m][: len(ref)] == ref).float().mean()) for m in SEARCHES)  # with float64
    out["use"] = min(SEARCHES, key=lambda m: out[f"{m}_ms"])
    return out


def check_exact(image: str, device: str, n_time: int = 65_536) -> dict:
    """The training search's exactness on ``device``: the bundled model's latents of ``image``
    searched by every method under bf16 autocast, against the float64 reference; then each
    method's time on ``n_time`` tokens (``time_search``)."""
    dev = torch.device(device)
    model = model_io.load_weights(prior=None).to(dev)
    with Image.open(image) as im:
        tiles = tile_image(np.asarray(im.convert("RGB")), model.cfg.tile)  # the codec's tiles
    x = torch.from_numpy(tiles).to(dev).float().div(255.0)
    with torch.no_grad():
        z = normalize(model.analysis(x).float()).reshape(-1, lattice.DIM)
    ref = lattice.nearest_brute(z)
    out: dict = {"event": "exact", "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "tokens": len(z)}  # fmt: skip
    for method in SEARCHES:
        lattice.TILED_STATS.update(rows=0, uncertified=0)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            idx = lattice.nearest(z, method)
        out[method] = {"agree": float((idx == ref).float().mean()),
                       "uncertified": lattice.TILED_STATS["uncertified"] if method != "structured" else None}  # fmt: skip
    out["time"] = time_search(dev, n=n_time)
    print(json.dumps(out), flush=True)
    return out


def encode_demo(image: str, dest: str, device: str) -> None:
    """Encode ``image`` with the bundled model and its prior (ar coder) on ``device`` into ``dest``:
    decoding it at home on the CPU checks that the ar coder is bit-exact across devices."""
    model = model_io.load_weights(device=device)
    data = leechcodec.encode(image, model, coder="ar", device=device)
    write_file(dest, lambda f: f.write(data))
    print(json.dumps({"event": "encode_demo", "image": image, "bytes": len(data), "device": device,
                      "model_id": bytes(model.model_id).hex()}), flush=True)  # fmt: skip
