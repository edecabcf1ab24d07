"""Writing a file without replacing what is not ours to replace.

``write_file(path, writer)`` is what every output of leechcodec goes through (the CLI's
encode/decode/export, the benchmark's report files):

* a regular file, new or existing: written to a temp file beside it, flushed to disk and
  renamed into place, so it is always either the old file or the complete new one (a failure
  or Ctrl-C leaves no temp file); an existing file keeps its permission bits, and its owner and
  group where the process may set them;
* a symlink: the same for its final target, beside the target; the link stays;
* a device or FIFO (/dev/null, a pipe): written directly, streaming, never replaced.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def final_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` puts the bytes: a symlink's final target, else the path itself."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def stat_or_none(p: str | os.PathLike) -> os.stat_result | None:
    try:
        return os.stat(p)
    except FileNotFoundError:
        return None


def is_special(st: os.stat_result | None) -> bool:
    """A device, FIFO or socket: written into directly, never renamed over."""
    return st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


def _umask() -> int:
    """The process umask (reading it means setting it: fine in a single-threaded CLI)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike, writer) -> None:
    """Call ``writer(binary_file)`` to give ``path`` its new content (rules above).

    Raises:
        OSError: the file cannot be written (and nothing was replaced); whatever ``writer`` raises.
    """
    p = final_target(path)
    st = stat_or_none(p)
    if is_special(st):
        with open(p, "wb") as f:
            writer(f)
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, stat.S_IMODE(st.st_mode) if st else 0o666 & ~_umask())  # mkstemp makes 0600
            if st is not None:
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:  # not ours to give away: keep what we may
                    pass
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
