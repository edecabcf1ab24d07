"""Shared pieces of the CLI: error mapping, safe input/output, common options."""

from __future__ import annotations

import contextvars
import errno
import functools
import logging
import math
import os
import stat
import sys
import time
import warnings
from pathlib import Path

import click

import leechcodec
import leechcodec.container
from leechcodec.errors import LeechError, LeechWarning, require_cuda, require_torch
from leechcodec.output import final_target, is_special, names_a_directory, stat_or_none, write_file

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # like a process killed by SIGPIPE

# Pillow logs some malformed files at ERROR level (Python would print that as a second line
# on stderr); the exception that follows is what the CLI reports.
logging.getLogger("PIL").addHandler(logging.NullHandler())


# in a batch, the file being worked on ("a.png: "), put before its warnings and errors
_CURRENT_FILE: contextvars.ContextVar[str] = contextvars.ContextVar("current_file", default="")


def say(line: str) -> None:
    """One line on stderr, above a progress bar if one is showing (stdout stays for ``-o -``)."""
    if _CURRENT_FILE.get():
        from tqdm import tqdm  # lazy: 30 ms of start-up that --help and info do without

        tqdm.write(line, file=sys.stderr)
    else:
        click.echo(line, err=True)


def note(message: str, quiet: bool = False) -> None:
    """``leechcodec: note: …``: an option or default that does not apply, said instead of ignored silently."""
    if not quiet:
        say(f"leechcodec: note: {message}")


def _internal(e: Exception) -> str:
    return f"internal error: {e.__class__.__name__}: {e} (LEECHCODEC_DEBUG=1 shows details)"


def _fail(message: str, code: int) -> None:
    click.echo(f"leechcodec: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Map LeechError → its exit code, anything unexpected → 70; one line, no traceback.

    Set LEECHCODEC_DEBUG=1 to get the traceback of an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        def show_warning(message, category, *rest, **kw):
            if issubclass(category, LeechWarning):
                say(f"leechcodec: warning: {_CURRENT_FILE.get()}{message}")

        with warnings.catch_warnings():
            warnings.simplefilter("always", LeechWarning)
            warnings.showwarning = show_warning
            try:
                return fn(*args, **kwargs)
            except LeechError as e:
                _fail(str(e), e.exit_code)
            except KeyboardInterrupt:
                _fail("interrupted", EXIT_INTERRUPTED)
            except BrokenPipeError:  # `leechcodec decode x.lq -o - | head`: the reader left
                try:  # silence the flush of stdout at exit (Python docs, "Note on SIGPIPE")
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError, AttributeError):
                    pass
                sys.exit(EXIT_BROKEN_PIPE)
            except click.exceptions.ClickException:
                raise
            except Exception as e:  # noqa: BLE001 - the CLI promises no tracebacks
                if os.environ.get("LEECHCODEC_DEBUG"):
                    raise
                _fail(_internal(e), EXIT_INTERNAL)

    return wrapper


def batch_plan(inputs: tuple[str, ...], output: str, suffix: str) -> list[tuple[str, str]] | None:
    """Where each input goes when ``output`` is a directory: ``output/STEM{suffix}``.

    None for the plain form, one input to the file (or '-') ``output``. Several inputs need a
    directory; two inputs with one stem (a/x.png, b/x.jpg) are refused before any work.
    """
    if len(inputs) == 1 and not Path(output).is_dir():
        return None
    if output == "-" or not Path(output).is_dir():
        raise click.UsageError(f"{len(inputs)} inputs need -o to be an existing directory, not {output!r}")
    if "-" in inputs:
        raise click.UsageError("'-' (stdin) is a single input: it cannot be one of several")
    plan, seen = [], {}
    for src in inputs:
        dst = str(Path(output) / (Path(src).stem + suffix))
        if dst in seen:
            raise click.UsageError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
        plan.append((src, dst))
    return plan


def run_batch(plan: list[tuple[str, str]], one, quiet: bool, verb: str) -> None:
    """``one(src, dst)`` for every pair, with a progress bar over files (stderr, off with
    ``quiet``). A file that fails is reported (one line naming it) and the rest go on; at the
    end a summary, and a failure exits with the first failed file's exit code."""
    from tqdm import tqdm  # lazy: 30 ms of start-up that --help and info do without

    failed: list[int] = []
    t0 = time.perf_counter()
    for src, dst in tqdm(plan, desc=verb, unit="file", disable=quiet, file=sys.stderr, leave=False):
        token = _CURRENT_FILE.set(f"{src}: ")
        try:
            one(src, dst)
        except LeechError as e:
            failed.append(e.exit_code)
            say(f"leechcodec: error: {src}: {e}")
        except Exception as e:  # noqa: BLE001 - a bug on one file: report it, go on with the others
            if os.environ.get("LEECHCODEC_DEBUG") or isinstance(e, (BrokenPipeError, click.ClickException)):
                raise
            failed.append(EXIT_INTERNAL)
            say(f"leechcodec: error: {src}: {_internal(e)}")
        finally:
            _CURRENT_FILE.reset(token)
    seconds = time.perf_counter() - t0
    done = len(plan) - len(failed)
    if failed:
        _fail(f"{len(failed)} of {len(plan)} files failed, {done} {verb}d (exit code of the first failure)", failed[0])
    if not quiet:
        click.echo(f"{verb}d {done} file{'s' * (done != 1)} in {seconds:.1f} s ({done / seconds:.2f} files/s)", err=True)


def display_name(path: str) -> str:
    """``path`` as messages name it: '-' is stdin."""
    return "stdin" if path == "-" else path


def read_input(path: str, limit: int | None = None) -> bytes:
    """Bytes of a file (its first ``limit`` bytes if given), or all of stdin for '-'."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        if limit is not None:
            with open(path, "rb") as f:
                return f.read(limit)
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise leechcodec.InputImageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise leechcodec.InputImageError(f"{path} is a directory") from None
    except OSError as e:
        raise leechcodec.InputImageError(f"cannot read {path}: {e.strerror}") from None


def read_image_input(path: str, max_pixels: int | None = leechcodec.DEFAULT_MAX_PIXELS, first_frame: bool = False):
    """The image ``path`` names ('-': stdin) as ``leechcodec.image_io.read_image`` reads it, a .lq
    stream refused (``encode``, ``compare``)."""
    regular = path != "-" and Path(path).is_file()  # Pillow reads a regular file itself, not all at once;
    data = read_input(path, limit=16 if regular else None)  # stdin, a FIFO: read once, here
    if data.startswith(leechcodec.container.MAGIC):
        raise leechcodec.InputImageError(
            f"{display_name(path)} is a .lq stream, not an image (restore it: leechcodec decode)"
        )
    from leechcodec import image_io  # lazy: numpy, which --help and info do without

    return image_io.read_image(path if regular else data, max_pixels, first_frame)


class OutputError(LeechError):
    """The output cannot be written: it exists (use `--force`; for `bench`, the results of an
    earlier run), is a directory or a socket, its folder does not exist, a part of its path is a
    file (`-o photo.png/x.lq`), a symlink loop, a name ending in `/` that is not an existing
    directory (no directory is made), something not to be replaced appeared there while the
    output was made, an unknown image extension or one Pillow cannot write (`.psd`) without a
    `--format` it can, a mode the format cannot hold (`.xbm`), or the write itself failed (disk
    full, permission denied).
    """

    exit_code = 8
    brief = "the output cannot be written"


def check_output(path: str, force: bool) -> None:
    """Fail early (before any work) if ``path`` cannot be written.

    An existing regular file (or a symlink to one) needs ``force``; a device or FIFO (e.g.
    /dev/null) does not: it is written into, as cp and cwebp do. A name ending in ``/`` is a
    directory, never a file name (and no directory is made). ``write_output`` checks again
    when it writes.
    """
    if path == "-":
        return
    try:
        p = Path(path)
        if p.is_dir():
            raise OutputError(f"{path} is a directory")
        if names_a_directory(path):
            raise OutputError(f"{path} names a directory (it ends with '/') and there is none: make it first, "
                              "or give a file name")  # fmt: skip
        target = final_target(path)
        st = stat_or_none(target)
    except OSError as e:  # a parent that is a file, a symlink loop, a folder we may not search
        raise OutputError(f"cannot write {path}: {_why(path, e)}") from None
    if st is not None and stat.S_ISSOCK(st.st_mode):
        raise OutputError(f"{path} is a socket")
    if st is not None and not is_special(st) and not force:
        raise OutputError(f"{path} exists (use --force to overwrite)")
    if not target.parent.resolve().is_dir():
        raise OutputError(f"directory {target.parent} does not exist")


def _why(path: str, e: OSError) -> str:
    """``e``'s reason in words, naming the part of ``path`` that is not a directory if that is it."""
    if e.errno == errno.ENOTDIR:
        for parent in reversed(Path(path).parents):
            if parent.exists() and not parent.is_dir():
                return f"{parent} is not a directory"
    if e.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    return e.strerror or str(e)


def write_output(path: str, writer, force: bool) -> None:
    """Call ``writer(binary_file)`` so that ``path`` gets the new content safely
    (``leechcodec.output.write_file``; '-' is stdout). ``path`` is checked again now: without
    ``force`` a file that appeared since ``check_output`` is not replaced, and with it only a
    regular file is."""
    if path == "-":
        writer(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    try:
        write_file(path, writer, overwrite=force)
    except FileExistsError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}" + (" (use --force to overwrite)" * (not force))) from None
    except (OSError, ValueError) as e:  # ValueError: e.g. Pillow cannot save this mode as BLP/QOI
        raise OutputError(f"cannot write {path}: {_why(path, e) if isinstance(e, OSError) else e}") from None


def load_model(path: str | None, device: str, prior: str | None = None, use_prior: bool = True,
               threads: int | None = None, backend: str = "auto", precision: str = "auto"):
    """``leechcodec.load_model`` with the CLI's options: the tokenizer and, with ``use_prior``, its
    AR prior (``--prior``, or the one beside the weights)."""
    return leechcodec.load_model(path, prior=(prior or "auto") if use_prior else None, device=device,
                                 backend=backend, threads=threads, precision=precision)


def check_device(device: str) -> None:
    """``--device cuda`` on a machine without CUDA (or without torch): a LeechError (exit 1), before any work."""
    if device == "cuda":
        require_torch("--device cuda")
        require_cuda()


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses nan and ±inf (nan passes any range check: it compares
    false), so `--lambda nan` is a usage error (exit 2) like any other bad value."""

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


model_option = click.option(
    "--model", "model_path", type=click.Path(dir_okay=False), default=None,
    help="Tokenizer weights (.safetensors). Default: the bundled model.",
)  # fmt: skip
prior_option = click.option(
    "--prior", "prior_path", type=click.Path(dir_okay=False), default=None,
    help="AR prior of the model (.safetensors) for the 'ar' coder. Default: NAME.prior.safetensors beside the model.",
)  # fmt: skip
precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
    help="Arithmetic of the network's transformer blocks: 'fp32' is the reference; 'bf16' (torch backend) is "
    "faster where the hardware has it (CPUs with AMX, recent GPUs) and gives slightly different pixels; "
    "'auto' takes bf16 on such hardware with the torch backend, else fp32.",
)  # fmt: skip
device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
    help="Where the network runs. 'cuda' runs the torch model on a GPU (needs torch with CUDA).",
)  # fmt: skip
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, metavar="N",
    help="CPU threads for the networks. Default: the CPUs this process may use. Give fewer when other "
    "jobs share the machine; the entropy coder always runs on one.",
)  # fmt: skip
backend_option = click.option(
    "--backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
    help="What runs the networks: 'onnx' (ONNX Runtime, no torch needed), 'torch' (needs the train extra), "
    "'auto' = onnx on a CPU, torch for --device cuda or --precision bf16. Streams are the same format either way.",
)  # fmt: skip
quiet_option = click.option(
    "--quiet", is_flag=True,
    help="No progress bar, summary line or notes on stderr (warnings and errors still print).",
)  # fmt: skip
verbose_option = click.option(
    "-v", "--verbose", is_flag=True,
    help="Also print the model, prior, coder and precision used and the seconds of each phase "
    "(and a summary line for every file of a batch).",
)  # fmt: skip
version_option = click.version_option(leechcodec.__version__, "--version", prog_name="leechcodec")
force_option = click.option("--force", "-f", is_flag=True, help="Overwrite OUTPUT if it exists.")
batch_force_option = click.option("--force", "-f", is_flag=True,
                                  help="Overwrite OUTPUT if it exists; in a batch, each DIR/NAME file that exists.")
max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=1), default=leechcodec.DEFAULT_MAX_PIXELS, show_default=True,
    help="Refuse images with more pixels than this (a guard against decompression bombs; default 2^26 = "
    "67,108,864). It is the limit that applies, in place of Pillow's guard (89,478,485), so it can be raised up to "
    "what the format holds: 65,535 tiles of 256 px (16,776,960 px) per side. The image padded to whole tiles may "
    "have 4x as many pixels.",
)  # fmt: skip


def runtime_options(command):
    """The options ``encode`` and ``decode`` share, after their own, in this order in their --help."""
    for option in reversed((precision_option, device_option, threads_option, backend_option, model_option,
                            prior_option, batch_force_option, max_pixels_option, quiet_option, verbose_option,
                            version_option)):  # fmt: skip
        command = option(command)
    return command
