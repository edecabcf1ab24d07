"""`leechcodec compare`: crops of leechcodec and classical codecs at the same file size (thin layer over
kodak_eval.figures)."""

from __future__ import annotations

from pathlib import Path

import click

import leechcodec
from leechcodec.kodak_eval.codecs import CLASSICAL

from .common import (
    FiniteFloatRange,
    check_output,
    device_option,
    display_name,
    force_option,
    handle_errors,
    load_model,
    model_option,
    note,
    quiet_option,
    read_image_input,
    say,
    threads_option,
    version_option,
    write_output,
)
from .errors_table import help_block
from .figures import FIGURES as FIG

DEFAULT_CODECS = ("jpeg2000", "avif", "webp")  # kodak_eval.figures.DEFAULT_CODECS, without importing numpy
FAR_OFF = 10.0  # % off leechcodec's size past which a note says the sizes are not equal


def _parse_codecs(ctx, param, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in CLASSICAL]
    if unknown or not names:
        raise click.BadParameter(f"unknown codec(s) {', '.join(unknown) or '(none)'}; "
                                 f"choose from {','.join(CLASSICAL)}")
    return names


def _parse_crop(ctx, param, value: str | None) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    parts = value.split(",")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give four integers x,y,w,h, e.g. 256,128,192,192") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise click.BadParameter(f"{value!r}: x and y must be ≥ 0, w and h ≥ 1")
    return x, y, w, h


@click.command("compare", epilog="""\b
Examples:
  leechcodec compare kodim23.png -o compare.png
  leechcodec compare kodim23.png -o compare.png --crop 256,128,192,192
  leechcodec compare photo.png -o compare.png --codecs jpeg2000,avif,webp,jpeg --size 256

\b
The figure: a title line (file, crop box), then for each of original,
leechcodec and every codec a label (name and setting, bytes, bpp, PSNR
of the whole picture) above its crop, pasted at 100 % (no resampling).
Each codec's setting (quality, or compression ratio for JPEG2000) is the
one whose file is closest in size to leechcodec's, not above it on a tie.
Codecs this Pillow build lacks are left out with a note.

\b
How equal the sizes are: as close as each codec's settings allow, and
each label says how far off it is. On kodim23 (768x512) the files were
within """ + FIG["compare.kodim23.max_off"] + """ of leechcodec's (JPEG2000 """ + FIG["compare.kodim23.jpeg2000"] + """, AVIF """ + FIG["compare.kodim23.avif"] + """,
WebP """ + FIG["compare.kodim23.webp"] + """). A small picture's file is so small that a codec's
smallest file (its headers included) can be much larger: on a """ + FIG["compare.small.size"] + """
crop of it, JPEG2000 """ + FIG["compare.small.jpeg2000"] + """, AVIF """ + FIG["compare.small.avif"] + """, WebP """ + FIG["compare.small.webp"] + """. A codec more
than """ + f"{FAR_OFF:g}" + """ % off gets a note.

""" + help_block("compare"))
@click.argument("photo", metavar="PHOTO")
@click.option("-o", "--output", required=True, metavar="OUTPUT",
              help="The PNG figure to write ('-' for stdout).")
@click.option("--crop", callback=_parse_crop, metavar="X,Y,W,H",
              help="The window to show, in pixels of PHOTO as viewers show it (EXIF orientation applied). "
                   "Default: the --size window where the codecs differ most from the original and from one another.")
@click.option("--size", type=click.IntRange(min=8), default=192, show_default=True, metavar="N",
              help="Side of the automatically chosen crop (smaller pictures are shown whole along that side).")
@click.option("--codecs", default=",".join(DEFAULT_CODECS), show_default=True, callback=_parse_codecs,
              help=f"Comma-separated classical codecs to match in bytes: any of {','.join(CLASSICAL)}.")
@click.option(
    "--coder", type=click.Choice(["auto", *leechcodec.CODERS]), default="auto", show_default=True,
    help="leechcodec's entropy coder, as in `encode` ('auto' = ar when the model has a prior).",
)  # fmt: skip
@click.option("--lambda", "lam", type=FiniteFloatRange(0), default=0.0, show_default=True, metavar="X",
              help="leechcodec's rate knob, as in `encode --lambda` (ar coder): compare at a smaller size.")
@device_option
@threads_option
@model_option
@force_option
@quiet_option
@version_option
@handle_errors
def compare(photo, output, crop, size, codecs, coder, lam, device, threads, model_path, force, quiet):
    """Show crops of PHOTO coded by leechcodec and by JPEG2000, AVIF, WebP at about the same file size.

    PHOTO is coded with leechcodec; each classical codec is then set to give a
    file as close as it can to that many bytes (see below how close), and every
    file is decoded. A crop of each decode, side by side with the original's, is
    written as a PNG.
    """
    if lam > 0 and coder == "fixed":
        raise click.UsageError("--lambda trades distortion for bits of the ar coder, not of the fixed coder")
    check_output(output, force)
    if output != "-" and Path(output).suffix.lower() != ".png":
        note(f"{output} is written as PNG", quiet)
    from leechcodec.image_io import prepare  # lazy: numpy, not for --help

    # the picture as viewers show it (EXIF orientation, ICC profile): what is coded, and what --crop counts in
    image = prepare(read_image_input(photo))  # before loading the model
    if crop is not None:
        x, y, w, h = crop
        if x + w > image.width or y + h > image.height:
            raise click.BadParameter(
                f"{x},{y},{w},{h} reaches x={x + w}, y={y + h}, outside the {image.width}x{image.height} picture",
                param_hint="--crop",
            )
    missing = [c for c in codecs if not CLASSICAL[c].available()]
    if missing:
        note(f"left out (this Pillow build cannot write them): {', '.join(missing)}", quiet)
    model = load_model(model_path, device, use_prior=coder != "fixed", threads=threads)

    from leechcodec.kodak_eval.figures import Row, panels, pick_crop, render, summary  # lazy: numpy, not for --help

    if lam > 0 and model.prior is None:
        raise leechcodec.ModelError(f"--lambda needs the ar coder, and model {model.model_id.hex()} has no AR prior")
    shown = panels(image, model, coder=coder, codecs=codecs, device=device, progress=not quiet, lam=lam)
    row = Row(Path(display_name(photo)).name, shown, crop if crop is not None else pick_crop(shown, size))
    canvas, _ = render([row])
    write_output(output, lambda f: canvas.save(f, "PNG"), force)
    ours = next((p.nbytes for p in shown if p.label == "leechcodec"), None)
    for p in shown:
        if ours and p.nbytes and p.label != "leechcodec" and abs(p.nbytes - ours) > FAR_OFF / 100 * ours:
            note(f"{p.label}'s closest file ({p.setting}) is {100 * (p.nbytes - ours) / ours:+.1f} % off "
                 f"leechcodec's {ours:,} bytes: compare with care", quiet)
    if not quiet:
        say(f"{output if output != '-' else 'stdout'}: {summary(row)}")
