"""The GPU shot's files: the pack it trains on, the weights it leaves in OUT, what travels.

* Here, before a shot: ``prepare`` fills the ignored carry folder with the pack (JPEG crops),
  the init weights and wheels, and checks what travels to the lent machine (``travel_bytes``)
  against its 64 MiB.
* On the machine: ``load_pack`` decodes the pack once; ``save_parts`` and ``commit_summary``
  leave the EMA weights in parts under the size limit of what comes back, with summary.json,
  so that a kill at any moment leaves the last complete save.
* Back here: ``join_parts`` puts the weights back together and checks their SHA-256.

Imports torch, numpy, pillow and safetensors only (``models.shot`` says why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from leechcodec.output import write_file

from . import io as model_io
from .loop import image_files

PART_BYTES = 15 * 2**20  # what comes back is at most 16 MiB a file
MAX_TRAVEL = 64 * 2**20  # what travels to the device: tracked + untracked-not-ignored + carried
WEIGHTS_NAME = "shot.safetensors"


class ShotError(Exception):
    """A shot cannot start or its outputs cannot be put back together."""


def load_pack(folder: str | os.PathLike, tile: int = 256, workers: int = 8) -> torch.Tensor:
    """Every image of ``folder`` (sorted) decoded once: uint8 (N, 3, tile, tile), centre crops."""
    files = image_files(folder)
    if not files:
        raise ShotError(f"no images in the pack {folder}")

    def read(p: Path) -> np.ndarray:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            if w < tile or h < tile:
                raise ShotError(f"{p} is {w}×{h}, smaller than the {tile}px tile")
            l, t = (w - tile) // 2, (h - tile) // 2
            return np.asarray(im.crop((l, t, l + tile, t + tile))).transpose(2, 0, 1)

    with ThreadPoolExecutor(workers) as ex:
        arrays = list(ex.map(read, files))
    return torch.from_numpy(np.stack(arrays))


def save_parts(model, out: Path, scratch: Path, part_bytes: int = PART_BYTES) -> dict:
    """Write ``model`` as release weights split into parts in ``out``, beside the previous ones.

    Two generations alternate (``shot.safetensors.a.partK`` and ``.b.partK``): the new parts
    never overwrite the ones the current summary.json names, so a kill at any moment leaves
    that summary and its parts intact. ``commit_summary`` then switches summary.json to the new
    generation with one rename and only afterwards removes the old parts. The returned record
    (the SHA-256 of the whole file) goes into summary.json, which ``join_parts`` checks.
    """
    full = scratch / WEIGHTS_NAME
    mid = model_io.save_weights(model, full)
    data = full.read_bytes()
    try:
        current = json.loads((out / "summary.json").read_text())["weights"]["parts"]
    except (OSError, ValueError, KeyError, TypeError):
        current = []
    slot = "b" if any(n.startswith(f"{WEIGHTS_NAME}.a.") for n in current) else "a"
    parts = [data[i : i + part_bytes] for i in range(0, len(data), part_bytes)]
    names = [f"{WEIGHTS_NAME}.{slot}.part{k}" for k in range(len(parts))]
    for name, blob in zip(names, parts):
        write_file(out / name, lambda f, b=blob: f.write(b))
    return {
        "model_id": mid.hex(),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "parts": names,
    }


def commit_summary(out: Path, summary: dict) -> None:
    """Make ``summary`` (whose ``weights`` came from ``save_parts``) the shot's result: one
    rename of summary.json, then the parts of other generations are removed."""
    write_file(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=1).encode()))
    keep = set(summary["weights"]["parts"])
    for p in out.glob(f"{WEIGHTS_NAME}.*part*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)


def join_parts(folder: str | os.PathLike, dest: str | os.PathLike, decode_halo: int | None = None) -> dict:
    """Put the weights of a shot's OUT folder back together into ``dest``; returns summary.json.

    ``decode_halo``: rewrite the config's ``decode_halo`` (for weights trained before their
    preset had one); the model id in the returned summary is then the new one.

    Raises:
        ShotError: no summary, a missing part, or bytes that do not match the recorded SHA-256.
    """
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        rec = summary["weights"]
        data = b"".join((folder / name).read_bytes() for name in rec["parts"])
    except (OSError, ValueError, KeyError) as e:
        raise ShotError(f"{folder} holds no complete shot output: {e}") from None
    if hashlib.sha256(data).hexdigest() != rec["sha256"]:
        raise ShotError(f"the weight parts in {folder} do not match summary.json (a save was cut off)")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_file(dest, lambda f: f.write(data))
    if decode_halo is not None:
        model = model_io.load_weights(dest, prior=None)
        model.cfg = dataclasses.replace(model.cfg, decode_halo=decode_halo)
        summary["weights"]["model_id"] = model_io.save_weights(model, dest).hex()
    return summary


def travel_bytes(repo: str | os.PathLike, carry: list[str]) -> dict:
    """Bytes that would travel to the device: git-tracked files present in the working tree,
    untracked files git does not ignore, and the ``carry`` paths (files or folders)."""
    repo = Path(repo)

    def listed(*args: str) -> list[Path]:
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", *args], capture_output=True, check=True).stdout
        return [repo / p for p in out.decode().split("\0") if p]

    def size(paths) -> int:
        return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())

    tracked = size(listed())
    untracked = size(listed("--others", "--exclude-standard"))
    carried = 0
    for c in carry:
        p = repo / c
        carried += size(p.rglob("*")) if p.is_dir() else size([p])
    return {"tracked": tracked, "untracked": untracked, "carried": carried, "total": tracked + untracked + carried}


def prepare(repo: str | os.PathLike, pack: str, carry: str = ".carry", init: str | None = None,
            wheels: list[str] = (), limit: int = MAX_TRAVEL) -> dict:  # fmt: skip
    """Fill the ignored folder ``carry`` with the pack, the init weights and wheels, and check
    that what travels stays within 64 MiB.

    Raises:
        ShotError: ``carry`` is not ignored by git, a missing input, or over 64 MiB.
    """
    repo = Path(repo).resolve()
    dest = repo / carry
    dest.mkdir(parents=True, exist_ok=True)  # a "dir/" pattern matches only an existing folder
    if subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", carry]).returncode != 0:
        raise ShotError(f"{carry} is not ignored by git: it would travel twice")
    if init and Path(init).resolve().is_relative_to(repo):
        raise ShotError(f"{init} is in the working tree and travels anyway: give it to gpu_shot.sh as INIT={init}")
    src = Path(pack)
    files = image_files(src) if src.is_dir() else []
    if not files:
        raise ShotError(f"no images in the pack {pack}")
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "pack").mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, dest / "pack" / f.name)
    if init:
        shutil.copyfile(init, dest / "init.safetensors")
    if wheels:
        (dest / "wheels").mkdir()
        for w in wheels:
            shutil.copyfile(w, dest / "wheels" / Path(w).name)
    sizes = travel_bytes(repo, [carry])
    sizes["pack_images"] = len(files)
    if sizes["total"] > limit:
        raise ShotError(
            f"{sizes['total'] / 2**20:.1f} MiB would travel (tracked {sizes['tracked'] / 2**20:.1f}, untracked "
            f"{sizes['untracked'] / 2**20:.1f}, carried {sizes['carried'] / 2**20:.1f}), over the {limit / 2**20:g} MiB limit"
        )
    return sizes
