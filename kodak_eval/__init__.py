"""Rate-distortion benchmark of leechcodec against classical codecs on Kodak (or any folder of PNGs).

Modules: ``dataset`` (download and verify Kodak, holdout folders), ``codecs`` (Pillow baselines),
``metrics`` (PSNR, MS-SSIM, interpolation, BD-rate), ``report`` (JSON, plot, table), ``run`` (orchestration).
"""

import importlib

if not __name__.startswith("leechcodec."):  # one name, so one copy of each class (issue 28)
    raise ImportError(f"this folder is the package leechcodec.{__name__}: import it by that name")

_WHERE = {
    "ChecksumError": "dataset", "DownloadError": "dataset", "fetch_kodak": "dataset",
    "holdout_images": "dataset", "kodak_images": "dataset", "local_kodak": "dataset",
    "ALL_CODECS": "codecs", "available_coders": "run", "benchmark": "run", "evaluate": "run",
    "write_report": "run",
}  # fmt: skip


def __getattr__(name: str):
    # submodules load on first use: `run` and `metrics` import numpy, which the CLI's light
    # commands (and `bench --help`) do without
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'leechcodec.kodak_eval' has no attribute {name!r}")


__all__ = [
    "ALL_CODECS",
    "ChecksumError",
    "DownloadError",
    "available_coders",
    "benchmark",
    "evaluate",
    "fetch_kodak",
    "holdout_images",
    "kodak_images",
    "local_kodak",
    "write_report",
]
