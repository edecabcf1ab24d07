"""Writing a file without replacing what is not ours to replace.

``write_file(path, writer)`` is what every output of leechcodec goes through (the CLI's
encode/decode/export, the benchmark's report files):

* a regular file, new or existing: written to a temp file beside it, flushed to disk and
  renamed into place (and the folder flushed after the rename), so it is always either the old
  file or the complete new one (a failure or Ctrl-C leaves no temp file); an existing file
  keeps its permission bits, and its owner and group where the process may set them; a new
  one gets 0666 less the umask, applied by the kernel (the process umask is never changed);
* checked again at write time, not only before the work: a new file is linked into place, which
  never replaces anything that appeared meanwhile (a file, a symlink, a FIFO); an existing one
  is replaced only if it is still a regular file; with ``overwrite=False`` nothing that exists
  is replaced (``FileExistsError``);
* a symlink: the same for its final target, beside the target; the link stays;
* a device or FIFO (/dev/null, a pipe): written directly, streaming, never replaced;
* a name that ends in ``/`` names a directory, never a file: refused (``IsADirectoryError``).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
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


def names_a_directory(path: str | os.PathLike) -> bool:
    """``path`` ends with a separator (``out/``): a directory, whatever is there (``Path`` drops the slash)."""
    name = os.fspath(path)
    return isinstance(name, str) and name.endswith(("/", os.sep))


def kind_of(st: os.stat_result) -> str:
    """A few words for what a stat result is (for messages)."""
    m = st.st_mode
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(m):
            return name
    return "a device"


def _new_temp(p: Path) -> tuple[int, str]:
    """A new, empty, exclusively created temp file beside ``p``: (fd, name); mode 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = str(p.parent / f".{p.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(p.parent))


def _fsync_dir(d: Path) -> None:
    """Flush a folder's entries (the rename) to disk, where the system allows it."""
    try:
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def _put_in_place(tmp: str, p: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``p``, re-checking ``p`` now (see the module docstring)."""
    try:
        now = os.lstat(p)
    except FileNotFoundError:
        now = None
    if now is None:
        try:
            os.link(tmp, p)  # fails, replacing nothing, if anything appeared at p meanwhile
        except FileExistsError:
            now = os.lstat(p)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
                raise
            if os.path.lexists(p):  # no hard links on this file system: the re-check, then the rename
                now = os.lstat(p)
            else:
                os.replace(tmp, p)
                return
        else:
            os.unlink(tmp)
            return
    if not overwrite or not stat.S_ISREG(now.st_mode):
        raise FileExistsError(errno.EEXIST, f"{kind_of(now)} appeared there while the output was made; left as it is",
                              str(p))  # fmt: skip
    os.replace(tmp, p)


def write_file(path: str | os.PathLike, writer, overwrite: bool = True) -> None:
    """Call ``writer(binary_file)`` to give ``path`` its new content (rules above).

    Args:
        overwrite: replace an existing regular file (else ``FileExistsError``, also for one that
            appears while ``writer`` runs).

    Raises:
        OSError: the file cannot be written (and nothing was replaced): ``FileExistsError`` for
            something at ``path`` that is not to be replaced, ``IsADirectoryError`` for a directory
            or a name ending in ``/``; whatever ``writer`` raises.
    """
    if names_a_directory(path):
        raise IsADirectoryError(errno.EISDIR, "a name ending in '/' is a directory, not a file", os.fspath(path))
    p = final_target(path)
    st = stat_or_none(p)
    if is_special(st):
        with open(p, "wb") as f:
            writer(f)
        return
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(p))
    if st is not None and not overwrite:
        raise FileExistsError(errno.EEXIST, "File exists", str(p))
    tmp = None
    try:
        fd, tmp = _new_temp(p)
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                try:
                    os.fchown(fd, st.st_uid, st.st_gid)
                except OSError:  # not ours to give away: keep what we may
                    pass
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        _put_in_place(tmp, p, overwrite)
        _fsync_dir(p.parent)
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
