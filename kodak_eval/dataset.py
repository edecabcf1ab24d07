"""Image sets for the benchmark: the Kodak suite (downloaded or local, SHA-256 verified) and holdout folders.

Download path for one file::

    GET base_url/kodimNN.png  ──►  cache/kodimNN.png.part  (appended to with HTTP Range on resume)
      └─ SHA-256 == kodak_eval/SHA256SUMS ?  ──yes──►  rename to cache/kodimNN.png
                                             ──no───►  delete the .part, raise ChecksumError
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import platformdirs

from leechcodec.errors import InputImageError, LeechError

KODAK_URL = "http://r0k.us/graphics/kodak/kodak/"
URL_ENV = "LEECHCODEC_KODAK_URL"
KODAK_NAMES = tuple(f"kodim{i:02d}.png" for i in range(1, 25))
SHA256SUMS = Path(__file__).resolve().parent / "SHA256SUMS"
USER_AGENT = "leechcodec-bench (python urllib)"
_CHUNK = 1 << 16


class DownloadError(LeechError):
    """`leechcodec bench`: a Kodak image could not be downloaded (offline, HTTP error, repeated
    timeouts).
    """

    exit_code = 9
    brief = "a Kodak download failed"


class ChecksumError(LeechError):
    """`leechcodec bench`: a downloaded Kodak image's SHA-256 differs from `kodak_eval/SHA256SUMS`.
    """

    exit_code = 10
    brief = "a Kodak image's checksum differs"


class _Retryable(Exception):
    """A transient failure worth another try (timeout, 5xx, truncated body)."""


def default_cache_dir() -> Path:
    """The per-user cache folder for Kodak: ``<user cache>/leechcodec/kodak``."""
    return platformdirs.user_cache_path("leechcodec") / "kodak"


def kodak_base_url(base_url: str | None = None) -> str:
    """The base URL to download from: ``base_url``, else $LEECHCODEC_KODAK_URL, else the canonical suite."""
    url = base_url or os.environ.get(URL_ENV) or KODAK_URL
    return url if url.endswith("/") else url + "/"


def load_checksums(path: str | os.PathLike = SHA256SUMS) -> dict[str, str]:
    """Parse a ``sha256sum`` file into ``{file name: lowercase hex digest}``.

    Args:
        path: the SHA256SUMS file (default: the one shipped with kodak_eval).
    """
    sums = {}
    for line in Path(path).read_text().splitlines():
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if m:
            sums[m.group(2)] = m.group(1).lower()
    return sums


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, expected: str, hint: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(f"{path.name}: SHA-256 {got[:12]}… does not match the expected {expected[:12]}…; {hint}")


def _fetch_to_part(url: str, part: Path, timeout: float) -> bool:
    """One attempt: fetch ``url`` into ``part``, resuming from its current size when the server allows.

    Returns whether bytes were appended to an existing partial file.
    """
    have = part.stat().st_size if part.exists() else 0
    req = Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urlopen(req, timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and have:  # our partial file is not a prefix the server recognises: start over
            part.unlink()
            raise _Retryable(f"HTTP 416 on resume from byte {have}") from None
        if e.code in (408, 429) or e.code >= 500:
            raise _Retryable(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    with resp:
        content_range = resp.headers.get("Content-Range", "")
        resume = have and resp.status == 206 and content_range.startswith(f"bytes {have}-")
        expected = resp.headers.get("Content-Length")
        got = 0
        with open(part, "ab" if resume else "wb") as f:  # 200 (Range ignored): rewrite from scratch
            while block := resp.read(_CHUNK):
                f.write(block)
                got += len(block)
    if expected is not None and got < int(expected):
        raise _Retryable(f"connection closed after {got} of {expected} bytes")
    return bool(resume)


def _download(url: str, part: Path, retries: int, timeout: float, backoff: float) -> bool:
    """Fetch into ``part`` with retries; returns whether the finished file was appended to a partial one."""
    reason = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            return _fetch_to_part(url, part, timeout)
        except _Retryable as e:
            reason = str(e)
        except URLError as e:
            reason = str(e.reason)
        except (OSError, http.client.HTTPException) as e:
            reason = f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__
    raise DownloadError(
        f"cannot download {url}: {reason} ({retries + 1} tries; offline? pass --kodak-dir DIR with a local copy)"
    )


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``; resume, retry, verify, then rename.

    Args:
        url: http(s) URL of the file.
        dest: final path; the bytes go to ``<dest>.part`` first and are renamed only when complete
            (and, with ``sha256``, verified).
        sha256: expected hex digest; a mismatch deletes the ``.part`` file.
        retries: extra attempts after a transient failure (timeout, refused connection, 5xx,
            truncated body); each resumes with HTTP Range where the server supports it. A resumed
            file that fails the checksum is downloaded once more from scratch.
        timeout: socket timeout in seconds for each attempt.
        backoff: wait ``backoff * 2**k`` seconds before retry ``k + 1``.

    Raises:
        DownloadError: an HTTP 4xx, or still failing after all retries.
        ChecksumError: the downloaded bytes have the wrong SHA-256.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    resumed = _download(url, part, retries, timeout, backoff)
    if sha256 is not None and resumed and sha256_file(part) != sha256:
        part.unlink()  # a stale or foreign .part may be to blame: one clean download from byte 0
        _download(url, part, retries, timeout, backoff)
    if sha256 is not None:
        try:
            _check(part, sha256, f"the download from {url} was discarded")
        except ChecksumError:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return dest


def _kodak_names(count: int | None) -> tuple[str, ...]:
    if count is not None and count < 1:
        raise ValueError(f"need at least one image, asked for {count}")
    return KODAK_NAMES[:count]


def fetch_kodak(
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    count: int | None = None,
    verify: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> list[Path]:
    """Make sure the first ``count`` Kodak images are in ``cache_dir``, downloading what is missing.

    A cached file with a wrong checksum is deleted and downloaded again.

    Args:
        cache_dir: where to keep the images (default: ``default_cache_dir()``).
        base_url: server folder holding ``kodimNN.png`` (default: $LEECHCODEC_KODAK_URL or ``KODAK_URL``).
        count: first N images (default and at most: all 24).
        verify: check every file against kodak_eval/SHA256SUMS.
        retries, timeout, backoff: see ``download_file``.

    Returns:
        The image paths, in order.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base = kodak_base_url(base_url)
    sums = load_checksums()
    paths = []
    for name in _kodak_names(count):
        path = cache / name
        expected = sums[name] if verify else None
        if path.is_file() and (expected is None or sha256_file(path) == expected):
            paths.append(path)
            continue
        path.unlink(missing_ok=True)
        paths.append(
            download_file(base + name, path, sha256=expected, retries=retries, timeout=timeout, backoff=backoff)
        )
    return paths


def local_kodak(kodak_dir: str | os.PathLike, *, count: int | None = None, verify: bool = True) -> list[Path]:
    """The first ``count`` Kodak images from a local folder, checksum-verified unless ``verify`` is False.

    Args:
        kodak_dir: folder holding ``kodim01.png`` … ``kodim24.png``.
        count: first N images (default and at most: all 24).
        verify: check every file against kodak_eval/SHA256SUMS.

    Raises:
        InputImageError: a file is missing.
        ChecksumError: a file differs from the reference copy.
    """
    folder = Path(kodak_dir)
    sums = load_checksums()
    paths = []
    for name in _kodak_names(count):
        path = folder / name
        if not path.is_file():
            raise InputImageError(f"{name} not found in {folder}")
        if verify:
            _check(path, sums[name], "pass --no-verify to use this copy anyway")
        paths.append(path)
    return paths


def kodak_images(
    *,
    kodak_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    count: int | None = None,
    verify: bool = True,
) -> list[Path]:
    """Kodak image paths: from ``kodak_dir`` when given, else downloaded into ``cache_dir``.

    Args:
        kodak_dir: local copy of the suite (no download).
        cache_dir, base_url: see ``fetch_kodak``.
        count: first N images (default and at most: all 24).
        verify: check SHA-256 against kodak_eval/SHA256SUMS.
    """
    if kodak_dir is not None:
        return local_kodak(kodak_dir, count=count, verify=verify)
    return fetch_kodak(cache_dir, base_url=base_url, count=count, verify=verify)


def holdout_images(folder: str | os.PathLike, *, count: int | None = None) -> list[Path]:
    """The PNG files of ``folder`` (not recursive), sorted by name; no checksums.

    Args:
        folder: any folder of PNG images.
        count: first N images (default: all).

    Raises:
        InputImageError: the folder holds no PNG.
    """
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png") if folder.is_dir() else []
    if not paths:
        raise InputImageError(f"no .png images in {folder}")
    return paths[:count]
