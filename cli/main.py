"""The `leechcodec` command: a thin click layer over leechcodec, models and kodak_eval.

Every error leechcodec raises on purpose is a ``LeechError`` with an ``exit_code``;
``cli.common.handle_errors`` turns it into one line on stderr and that exit code
(table in the README).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import click
from PIL import Image

import leechcodec
import leechcodec.container
from leechcodec.container import MAX_SCALE
from leechcodec.quality import table_text as quality_table

from .bench import bench
from .common import (
    FiniteFloatRange,
    OutputError,
    batch_plan,
    check_output,
    display_name,
    handle_errors,
    load_model,
    note,
    read_image_input,
    read_input,
    run_batch,
    runtime_options,
    say,
    version_option,
    write_output,
)
from .compare import compare
from .errors_table import help_block
from .figures import FIGURES as FIG
from .train import export, train

MAX_EFFORT = 1000  # rounds of --effort: about 50 minutes for a 768x512 picture on 2 cores

# first bytes of common image files, to tell a user who gives one to `decode` what happened
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\0", b"MM\0*", b"RIFF", b"\0\0\0\x0cjP")


CLI_HELP = f"""leechcodec: a learned image codec on the Leech lattice (Λ24-SQ), for research.

    \b
    Compress and restore an image:
      leechcodec encode photo.png -o photo.lq
      leechcodec decode photo.lq -o photo-decoded.png
      leechcodec info photo.lq
    \b
    A 256x256 tile becomes 32x32 tokens, one per 8x8 patch, each one of the 196,560
    minimal vectors of the Leech lattice. The default (ar) coder stores them in
    {FIG['ar.bpp']} bits per pixel on average on Kodak ({FIG['ar.psnr']} dB PSNR); --coder fixed
    spends 17.585 bits on each token, 0.2748 bits per pixel plus the header.
    Use `-` for stdin/stdout. `leechcodec COMMAND --help` explains each command.
    """


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, help=CLI_HELP)
@click.version_option(leechcodec.__version__, prog_name="leechcodec")
def cli():
    pass


@cli.command(epilog=help_block("encode"))
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", required=True, metavar="OUTPUT",
              help="The .lq file to write ('-' for stdout), or an existing directory: each INPUT becomes DIR/NAME.lq. "
                   "A name ending in '/' is always a directory, which must exist (none is made).")
@click.option(
    "--coder", type=click.Choice(["auto", *leechcodec.CODERS]), default="auto", show_default=True,
    help="How token indices are stored: 'ar' = arithmetic coding with the model's autoregressive prior "
    "(smaller files, lossless over tokens); 'fixed' = 17.585 bits per token; 'auto' = ar when the model "
    "has a prior, else fixed.",
)  # fmt: skip
@click.option(
    "--effort", type=click.IntRange(0, MAX_EFFORT), default=0, show_default=True, metavar="N",
    help="Rounds of token refinement against the decoder: a sharper picture at the same size for a "
    f"slower encode (--effort 2 added {FIG['effort.2.extra_s']} to an encode of kodim23, 768x512, on "
    f"{FIG['cpu.busy']}; MODEL_CARD.md has the dB gained). Decoding is unchanged. 0 = the encoder's tokens as they are; "
    f"at most {MAX_EFFORT}. "
    "A picture of several tiles shows a progress bar over them on stderr (not with --quiet).",
)  # fmt: skip
@click.option(
    "--lambda", "lam", type=FiniteFloatRange(0), default=0.0, show_default=True, metavar="X",
    help="The rate knob of the ar coder: trades picture quality for a smaller file. Each token becomes the "
    "codeword that minimises distortion + X x bits under the prior (X is in squared latent distance per "
    "bit). 0 = off: the nearest codewords, the largest file. Useful values run from 0.005 to about 0.1; past "
    f"0.2 the files hardly shrink. On Kodak with the bundled model: 0.01 gives {FIG['knob.0.01.bytes']} bytes and "
    f"{FIG['knob.0.01.dpsnr']}, 0.03 {FIG['knob.0.03.bytes']} and {FIG['knob.0.03.dpsnr']}, 0.1 "
    f"{FIG['knob.0.1.bytes']} and {FIG['knob.0.1.dpsnr']} (README, bench table). To ask for a size, use --bpp. "
    "Decoding is unchanged.",
)  # fmt: skip
@click.option(
    "--bpp", type=FiniteFloatRange(0, min_open=True), metavar="B",
    help="A target size instead of --lambda: a file at or under B bits per pixel (header included), within 2 % "
    "of B unless one token costs more than that (tiny pictures). For each picture it chooses the coded size "
    "(--scale), and residual stages where twice the size is not enough: "
    f"at most {FIG['bpp.passes']} encoder runs at different sizes, each predicted from those before (one more "
    "between the two closest where none lands within 2 %), and a search over lambda on the tokens already made "
    "for the last per cent. With --scale it keeps that size "
    "and searches stages and lambda; with --stages K it uses at most K stages. Exit 12 if B is below the "
    f"smallest file there is. --bpp {FIG['bpp.target']} on kodim23 (768x512) took {FIG['bpp.s']}, a plain encode "
    f"{FIG['speed.encode_s']}, on {FIG['cpu.busy']}.",
)  # fmt: skip
@click.option(
    "--scale", type=FiniteFloatRange(0, MAX_SCALE, min_open=True), metavar="S",
    help="Code the picture at S times its size (each side rounded, at least 1 pixel; 0 < S <= 2) and let decode "
    "resample it back: the cheapest rate knob. Below 1 the file is smaller and the picture softer, above 1 "
    f"larger and sharper; cost grows with the area: scale 2 is four times the tokens and encoded in "
    f"{FIG['time.2.1.encode']} the time, decoded in {FIG['time.2.1.decode']} (Kodak bench). On Kodak scale 0.5 "
    f"gives {FIG['point.0.5.1.0.bpp']} bpp and {FIG['point.0.5.1.0.psnr']} dB, 1 {FIG['ar.bpp']} and "
    f"{FIG['ar.psnr']}, 2 {FIG['point.2.1.0.bpp']} and {FIG['point.2.1.0.psnr']}. A file coded at another size "
    "is .lq version 4; --max-pixels applies to the coded size too.",
)  # fmt: skip
@click.option(
    "--stages", type=click.IntRange(1, leechcodec.MAX_STAGES), metavar="K",
    help="Residual Λ24 stages per 8x8 patch, at most K (1 to 8): each stage adds a token that refines the ones "
    "before it, for a sharper picture and a larger file (the fixed coder: 0.2748 bpp more per stage; the ar "
    "coder leaves out the tokens that --lambda finds not worth their bits). Default: 1, or what --bpp chooses "
    "(up to 4), or what --quality says. A file with two or more stages is .lq version 3 (version 4 at another coded size).",
)  # fmt: skip
@click.option(
    "-q", "--quality", type=FiniteFloatRange(0, 100), metavar="Q",
    help="0 to 100 instead of --lambda/--bpp: higher is sharper and larger (the ar coder). Each Q is a coded size, "
    f"a number of stages and a lambda from a fixed table ({quality_table()}; between rows of as many stages the "
    "scale is interpolated). README.md, 'Quality, scale and stages', has the sizes and PSNR on Kodak.",
)  # fmt: skip
@click.option("--keep-orientation", is_flag=True,
              help="Code the pixels in stored order, ignoring the EXIF Orientation tag (by default the picture is "
                   "turned the way viewers show it).")
@click.option("--first-frame", is_flag=True,
              help="Code the first frame of an animation or multi-page file (refused without this flag).")
@runtime_options
@handle_errors
def encode(inputs, output, coder, effort, lam, bpp, scale, stages, quality, keep_orientation, first_frame, precision, device,
           threads, backend, model_path, prior_path, force, max_pixels, quiet, verbose):  # fmt: skip
    """Compress the image INPUT (PNG, JPEG, …; '-' for stdin) into a .lq file.

    Several INPUTs (or -o naming a directory) write DIR/NAME.lq for each, loading the
    model once, with a progress bar over the files; a file that fails is reported and
    the others go on, and the exit code is then the first failure's.

    \b
    Any size from 1x1 up to --max-pixels; sides that are not multiples of 256 are
    edge-padded and cropped back on decode. Greyscale stays greyscale; alpha is
    dropped and 16-bit samples are reduced to 8 bits, each with a warning. The EXIF
    orientation is applied and a non-sRGB ICC profile converted to sRGB, each with a
    warning; animations and multi-page files need --first-frame.
    \b
    Examples:
      leechcodec encode kodim23.png -o kodim23.lq
      leechcodec encode kodim23.png -o kodim23.lq --bpp 0.1    # at most 0.1 bits per pixel
      leechcodec encode kodim23.png -o kodim23.lq --scale 0.5  # coded at 384x256: smaller, softer
      leechcodec encode kodim23.png -o kodim23.lq -q 80        # quality 0-100: coded size and stages
      leechcodec encode kodim23.png -o kodim23.lq --coder fixed --stages 2   # 0.55 bpp, two stages
      leechcodec encode kodim23.png -o kodim23.lq --effort 8   # slower, sharper, same size
      leechcodec encode photos/*.png -o compressed/            # many files, one start-up
    """
    plan = batch_plan(inputs, output, ".lq")
    if sum((lam > 0, bpp is not None, quality is not None)) > 1:
        raise click.UsageError("give one of --lambda, --bpp and --quality")
    if (lam > 0 or bpp is not None or quality is not None) and coder == "fixed":
        raise click.UsageError("--lambda, --bpp and --quality trade distortion for bits of the ar coder; the fixed "
                               "coder spends 17.585 bits on any token (its size is set by --stages)")
    if coder == "fixed" and prior_path:
        note("--prior is not used by the fixed coder", quiet)
    models = functools.cache(lambda: load_model(model_path, device, prior_path, use_prior=coder != "fixed",
                                                threads=threads, backend=backend, precision=precision))

    @functools.cache
    def model():
        m = models()
        if coder == "auto" and m.prior is None:  # said once, also in a batch
            note(f"model {m.model_id.hex()} has no AR prior: the fixed coder is used, files about 2.7x larger "
                 "(NAME.prior.safetensors beside the weights, or --prior, gives the ar coder)", quiet)  # fmt: skip
        return m

    def one(src: str, dst: str, single: bool) -> None:
        t0 = time.perf_counter()
        check_output(dst, force)
        image = read_image_input(src, max_pixels, first_frame)  # before loading the model
        t1 = time.perf_counter()
        m = model()
        if (lam > 0 or bpp is not None or quality is not None) and m.prior is None:
            raise leechcodec.ModelError(f"--lambda, --bpp and --quality need the ar coder, and model {m.model_id.hex()} has no "
                                        "AR prior (NAME.prior.safetensors beside the weights, or --prior)")
        t2 = time.perf_counter()
        stats: dict = {}
        lq = leechcodec.encode(image, m, coder=coder, device=device, progress=single and not quiet,
                               max_pixels=max_pixels, effort=effort, keep_orientation=keep_orientation,
                               precision=precision, stats=stats, lam=lam, bpp=bpp, stages=stages,
                               quality=quality, scale=scale)  # fmt: skip
        t3 = time.perf_counter()
        write_output(dst, lambda f: f.write(lq), force)
        t4 = time.perf_counter()
        h = leechcodec.read_header(lq, None)
        if (single or verbose) and not quiet:
            knob = f", lambda {stats['lambda']:.4g}" if stats.get("lambda") else ""
            knob += f", {stats['stages']} stages" if stats.get("stages", 1) > 1 else ""
            knob += (f", coded at {h.coded_size[0]}x{h.coded_size[1]} (scale {h.coded_size[0] / h.width:.3g})"
                     if h.scaled else "")
            say(f"{display_name(dst) if dst != '-' else 'stdout'}: {h.width}x{h.height}, {len(lq):,} bytes, "
                f"{8 * len(lq) / h.pixels:.4f} bpp, {stats['coder']} coder{knob}, {t4 - t0:.2f} s")  # fmt: skip
        if verbose:
            _details(m, getattr(m.prior, "prior_id", b"") if stats["coder"] == "ar" else None, stats, device,
                     (t0, t1, t2, t3, t4))  # fmt: skip

    _run(plan, inputs, output, one, quiet, "encode")


@cli.command(epilog=help_block("decode"))
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, metavar="OUTPUT",
    help="Image to write; the format follows the extension (.png, .bmp, .tif, …; '-' writes PNG to stdout). "
    "An existing directory: each INPUT becomes DIR/NAME.png (or the --format's extension); a name ending in '/' "
    "is always a directory, which must exist (none is made).",
)  # fmt: skip
@click.option("--format", "fmt_name", metavar="FORMAT",
              help="Image format to write (png, bmp, tiff, webp, …) when OUTPUT's name does not say, "
                   "e.g. -o /dev/null or a FIFO; overrides the extension.")
@click.option("--quality", type=click.IntRange(1, 100), metavar="1-100",
              help="Quality of a lossy output format (JPEG, WebP, AVIF). Without it such an output is written at "
                   "Pillow's default quality, with a warning saying which.")
@runtime_options
@handle_errors
def decode(inputs, output, fmt_name, quality, precision, device, threads, backend, model_path, prior_path, force,
           max_pixels, quiet, verbose):  # fmt: skip
    """Restore the image in the .lq file INPUT ('-' for stdin).

    The stream records the model it needs (a hash of its weights) and its coder;
    decoding with a different --model (or, for 'ar' streams, --prior) is refused.
    Several INPUTs (or -o naming a directory) work as in `encode`.

    \b
    Examples:
      leechcodec decode kodim23.lq -o kodim23-decoded.png
      leechcodec decode kodim23.lq -o /dev/null --format png     # time it, keep nothing
      leechcodec decode compressed/*.lq -o restored/
    """
    plan = batch_plan(inputs, output, "." + (fmt_name or "png").lower().lstrip("."))
    model = functools.cache(lambda ar: load_model(model_path, device, prior_path, use_prior=ar, threads=threads,
                                                  backend=backend, precision=precision))

    said = set()  # notes said once per command, also in a batch

    def once(text: str) -> None:
        if text not in said:
            said.add(text)
            say(text)

    def one(src: str, dst: str, single: bool) -> None:
        t0 = time.perf_counter()
        check_output(dst, force)
        fmt = _output_format(dst, fmt_name)
        data = read_input(src)
        _refuse_image(data, src)
        h = leechcodec.read_header(data, max_pixels)  # validate before loading the model
        if h.coder == "fixed" and prior_path and not quiet:
            once(f"leechcodec: note: --prior is not used: {display_name(src)} is coded with the fixed coder")
        save = _save_options(fmt, quality, once, quiet)
        t1 = time.perf_counter()
        m = model(h.coder == "ar")
        t2 = time.perf_counter()
        stats: dict = {}
        image = leechcodec.decode(data, m, device=device, progress=single and not quiet, max_pixels=max_pixels,
                                  precision=precision, stats=stats)  # fmt: skip
        t3 = time.perf_counter()
        write_output(dst, lambda f: image.save(f, format=fmt, **save), force)
        t4 = time.perf_counter()
        if (single or verbose) and not quiet:
            say(f"{display_name(dst) if dst != '-' else 'stdout'}: {h.width}x{h.height} {h.mode} {fmt}, from "
                f"{len(data):,} bytes ({8 * len(data) / h.pixels:.4f} bpp, {h.coder} coder), {t4 - t0:.2f} s")  # fmt: skip
        if verbose:
            prior = data[h.header_size :][:8] if h.coder == "ar" else None
            _details(m, prior, stats, device, (t0, t1, t2, t3, t4))

    _run(plan, inputs, output, one, quiet, "decode")


def _refuse_image(data: bytes, path: str) -> None:
    """A ``FormatError`` that says so where ``data`` (of ``decode`` or ``info``) is an image file."""
    if data.startswith(IMAGE_SIGNATURES):
        raise leechcodec.FormatError(
            f"{display_name(path)} is an image, not a .lq stream (compress it: leechcodec encode)"
        )


def _run(plan, inputs, output, one, quiet: bool, verb: str) -> None:
    """One input to ``output`` (progress bar and summary line), or a batch (``run_batch``)."""
    if plan is None:
        one(inputs[0], output, True)
    else:
        run_batch(plan, lambda src, dst: one(src, dst, False), quiet, verb)


def _details(model, prior_id: bytes | None, stats: dict, device: str, t: tuple) -> None:
    """The -v line: what was used, and the seconds of each phase (``t``: the CLI's five clock readings)."""
    phases = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in stats.items() if k.endswith("_s"))
    runtime = getattr(model, "runtime", "torch")
    say(f"  model {model.model_id.hex()}, prior {prior_id.hex() if prior_id else '-'}, {runtime}, precision "
        f"{stats['precision']}, {device}; read {t[1] - t[0]:.2f} s, start-up ({runtime}, weights) {t[2] - t[1]:.2f} s, "
        f"{phases}, write {t[4] - t[3]:.2f} s")  # fmt: skip


# Pillow's default quality of the lossy formats it writes (JPEG 75, WebP 80, AVIF 75)
LOSSY_DEFAULT_QUALITY = {"JPEG": 75, "WEBP": 80, "AVIF": 75}


def _save_options(fmt: str, quality: int | None, once, quiet: bool) -> dict:
    """Pillow save options for ``--quality``: lossy formats get it, or a warning with the default."""
    if fmt in LOSSY_DEFAULT_QUALITY:
        if quality is None:
            once(f"leechcodec: warning: {fmt} is lossy: written at Pillow's default quality "
                 f"{LOSSY_DEFAULT_QUALITY[fmt]} on top of the codec's loss (--quality sets it; PNG keeps the decode "
                 "exactly)")  # fmt: skip
            return {}
        return {"quality": quality}
    if quality is not None and not quiet:
        once(f"leechcodec: note: --quality is not used: {fmt} is written losslessly")
    return {}


def _output_format(output: str, name: str | None) -> str:
    """Pillow's format name for ``--format`` or, failing that, the extension of ``output`` (PNG for '-')."""
    Image.init()
    if name:
        fmt = Image.EXTENSION.get("." + name.lower().lstrip("."), name.upper())
        if fmt not in Image.SAVE:
            raise OutputError(f"--format {name}: Pillow cannot write that format; use e.g. png")
        return fmt
    if output == "-":
        return "PNG"
    ext = Path(output).suffix.lower()
    if ext not in Image.EXTENSION:
        raise OutputError(f"unknown image extension {ext or '(none)'!r} for {output}; use e.g. .png or --format png")
    fmt = Image.EXTENSION[ext]
    if fmt not in Image.SAVE:
        raise OutputError(f"Pillow cannot write {fmt} files ({output}); use e.g. .png")
    return fmt


@cli.command(epilog=help_block("info"))
@click.argument("input", metavar="FILE")
@version_option
@handle_errors
def info(input):
    """Print the header of a .lq FILE: size, colour mode, coder, model (and prior) id, bpp.

    A damaged file is described field by field (each value, and what is wrong with it)
    and the command exits with 4.
    """
    data = read_input(input)
    _refuse_image(data, input)
    rows = leechcodec.container.describe(data)
    problems = [(name, problem) for name, _, problem in rows if problem]
    if problems:  # field by field: what is valid, where it breaks
        for name, value, problem in rows:
            click.echo(f"{name + ':':16s}{value}" + (f"   <- {problem}" if problem else ""))
        first = f"{problems[0][0]}: {problems[0][1]}"
        more = f" (and {len(problems) - 1} more, above)" if len(problems) > 1 else ""
        raise leechcodec.FormatError(f"{display_name(input)} is not a valid .lq stream: {first}{more}")
    h = leechcodec.read_header(data, None)
    click.echo(f"size:       {h.width}x{h.height} ({h.mode})")
    stored = "the tokens that touch the picture" if h.version >= 2 else "every token of the padded tiles"
    stored += ", at a coded size" if h.scaled else ""
    click.echo(f"format:     version {h.version} ({stored})")
    if h.scaled:
        cw, ch = h.coded_size
        click.echo(f"coded size: {cw}x{ch} (scale {cw / h.width:.3g} x {ch / h.height:.3g}; decode resamples to "
                   f"{h.width}x{h.height})")
    click.echo(f"tiles:      {h.tiles_x}x{h.tiles_y} of {h.tile}px")
    click.echo(f"stages:     {h.stages} ({'one token' if h.stages == 1 else f'up to {h.stages} tokens'} per 8x8 patch)")
    click.echo(f"coder:      {h.coder}")
    click.echo(f"model id:   {h.model_id.hex()}")
    if h.coder == "ar" and h.payload_length >= 8:
        payload = data[h.header_size : h.header_size + 8]
        click.echo(f"prior id:   {payload.hex()}")
    click.echo(f"bytes:      {len(data)} (payload {h.payload_length})")
    click.echo(f"bpp:        {8 * len(data) / h.pixels:.4f}")


cli.add_command(train)
cli.add_command(export)
cli.add_command(bench)
cli.add_command(compare)


def main():  # console-script entry point
    cli(prog_name="leechcodec")
