"""Rate-distortion benchmark of leechcodec against classical codecs on Kodak (or any folder of PNGs).

Modules: ``dataset`` (download and verify Kodak, holdout folders), ``codecs`` (Pillow baselines),
``metrics`` (PSNR, MS-SSIM, interpolation, BD-rate), ``report`` (JSON, plot, table), ``run`` (orchestration).
"""

from .dataset import ChecksumError, DownloadError, fetch_kodak, holdout_images, kodak_images, local_kodak
from .run import ALL_CODECS, available_coders, benchmark, evaluate, write_report

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
