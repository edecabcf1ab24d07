"""`leechcodec bench`: rate-distortion comparison with JPEG2000, WebP, AVIF and JPEG (thin layer over kodak_eval)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

import leechcodec
from leechcodec.kodak_eval.codecs import ALL_CODECS
from leechcodec.kodak_eval.dataset import default_cache_dir, holdout_images, kodak_images

from .common import (
    OutputError,
    check_device,
    device_option,
    handle_errors,
    load_model,
    note,
    quiet_option,
    threads_option,
    version_option,
)
from .errors_table import help_block

_DIR = click.Path(file_okay=False, path_type=Path)


def _parse_lambdas(ctx, param, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        lams = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        lams = ()
    if not lams or any(not (x >= 0 and x < float("inf")) for x in lams):
        raise click.BadParameter(f"{value!r}: give comma-separated numbers >= 0, e.g. 0,0.01,0.03")
    return tuple(sorted(set(lams)))


def _parse_codecs(ctx, param, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_CODECS]
    if unknown or not names:
        raise click.BadParameter(f"unknown codec(s) {', '.join(unknown) or '(none)'}; choose from {','.join(ALL_CODECS)}")
    return names


@click.command("bench", epilog="""\b
Examples:
  leechcodec bench --kodak               # download Kodak once, run all codecs
  leechcodec bench --kodak --images 4 --codecs jpeg2000,leechcodec
  leechcodec bench --kodak-dir ~/data/kodak --jobs 2 --output-dir bench-out
  leechcodec bench --no-kodak --holdout photos/   # any folder of PNGs

\b
Outputs in --output-dir: kodak/*.json, one file per codec in CompressAI's schema
(name, description, results.bpp / psnr-rgb / ms-ssim-rgb / encoding_time /
decoding_time, one value per sweep point, averaged over images), so
`python -m compressai.utils.plot -f bench-out/kodak/*.json` overlays them;
kodak.json (all codecs in one list, with the grid-artefact ratios), kodak.png
(PSNR and MS-SSIM vs bpp, CompressAI's published Kodak curves dashed), and a
Markdown table on stdout, and kodak-crops.png (--no-crops: not); --holdout
writes the same under holdout* (no crops).
Results already there are kept unless --force; files are replaced atomically,
and --update-readme rewrites only the block between its bench markers.
PSNR is computed on 8-bit RGB per image, then averaged. A progress bar per
stage (each codec's sweep, leechcodec per coder) goes to stderr; --quiet
silences it.

""" + help_block("bench"))
@click.option("--kodak/--no-kodak", default=None,
              help="Benchmark on the 24 Kodak images (the default unless --holdout is given).")
@click.option("--kodak-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Use a local copy of kodim01.png…kodim24.png instead of downloading.")
@click.option("--cache-dir", type=_DIR, default=None,
              help=f"Where downloaded Kodak images are kept [default: {default_cache_dir()}]. "
                   "The base URL can be overridden with $LEECHCODEC_KODAK_URL.")
@click.option("--no-verify", is_flag=True, help="Skip the SHA-256 check of the Kodak files.")
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also run the report on this folder of PNGs (written as holdout.json/.png).")
@click.option("--output-dir", type=_DIR, default=Path("bench-out"), show_default=True,
              help="Folder for the JSON results and the plot.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for the classical encodes (timings are then measured under load).")
@click.option("--images", "count", type=click.IntRange(min=1),
              help="Only the first N images of each set (quick runs).")
@click.option("--codecs", default=",".join(ALL_CODECS), show_default=True, callback=_parse_codecs,
              help="Comma-separated subset of codecs to run.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="leechcodec weights (.safetensors) [default: the bundled model].")
@click.option("--published", "published_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of published Kodak results (CompressAI's per-codec JSON) to draw dashed and "
                   "compare in the table [default: the bundled copy of CompressAI's learned codecs, VTM, HM, "
                   "BPG and AV1; kodak_eval/published/README.md].")
@click.option("--no-published", is_flag=True, help="Draw no published curves.")
@click.option("--crops/--no-crops", default=True, show_default=True,
              help="Also write kodak-crops.png: the same crops of kodim23, kodim04 and kodim15 decoded by "
                   "leechcodec and by JPEG2000, AVIF and WebP at the same file size, at 100 % "
                   "(Kodak runs with leechcodec; `leechcodec compare` does it for any photo).")
@device_option
@threads_option
@click.option("--force", "-f", is_flag=True,
              help="Replace the results of an earlier run in --output-dir (KODAK.json, KODAK.png, KODAK-crops.png "
                   "and the KODAK/ folder, KODAK being kodak or holdout); without it they are kept and the run "
                   "stops before any work (exit 8).")
@quiet_option
@click.option("--lambdas", callback=_parse_lambdas, metavar="X,Y,…",
              help="The ar coder's `encode --lambda` at the picture's size and one stage, one curve point each, "
                   "after the coded sizes' points [default: 0.01,0.03,0.1]; 0 alone adds none.")
@click.option("--stages", "max_stages", type=click.IntRange(1, 8), default=4, show_default=True, metavar="K",
              help="The curve's points go up to K stages (the ar coder: (--scale, --stages, --lambda) settings from "
                   "(0.3, 1, 0) to (2, 2, 0), README 'Scale'; the fixed coder: 1, 2, 3 stages). 1: one stage only.")
@click.option("--coder", "coders", multiple=True,
              help="leechcodec entropy coder (ar or fixed); repeat to compare several "
                   "[default: ar and fixed when the model has a prior, else fixed].")
@version_option
@click.option("--update-readme", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also write the table into this README, between its bench markers.")
@handle_errors
def bench(kodak, kodak_dir, cache_dir, no_verify, holdout, output_dir, jobs, count, codecs, model, published_dir,
          no_published, crops, device, threads, force, quiet, lambdas, max_stages, coders, update_readme):
    """Compare leechcodec with JPEG2000, WebP, AVIF and JPEG in rate and distortion.

    Every figure comes from real bytes: each codec encodes and decodes every
    image in memory (leechcodec through the same encode/decode as the CLI),
    and bpp, PSNR, MS-SSIM and timings are averaged over the images.
    """
    from leechcodec.kodak_eval.report import PAPER_POINT, PUBLISHED_DIR, load_published  # lazy: numpy, not for --help
    from leechcodec.kodak_eval.run import benchmark, outputs  # lazy: numpy, not for --help

    offered = leechcodec.CODERS
    bad = [c for c in coders if c not in offered]
    if bad:
        raise click.BadParameter(f"unknown coder(s) {', '.join(bad)}; leechcodec offers {', '.join(offered)}",
                                 param_hint="--coder")
    use_kodak = kodak if kodak is not None else (holdout is None or kodak_dir is not None)
    if not use_kodak and holdout is None:
        raise click.UsageError("nothing to run: give --kodak, --kodak-dir or --holdout DIR")
    if published_dir is not None and (no_published or not use_kodak):
        raise click.UsageError("--published draws Kodak results: it needs a Kodak run and no --no-published")
    stems = (["kodak"] if use_kodak else []) + (["holdout"] if holdout is not None else [])
    crops = crops and "leechcodec" in codecs
    existing = [str(p) for stem in stems for p in outputs(output_dir, stem, crops and stem == "kodak") if p.exists()]
    if existing and not force:  # before any work: results are not replaced by accident
        raise OutputError(f"{', '.join(existing)} exist{'s' * (len(existing) == 1)} (use --force to overwrite)")
    check_device(device)
    missing = [m for m in ("torch", "pytorch_msssim", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:  # MS-SSIM and the plots; encode/decode themselves need none of them
        raise leechcodec.LeechError(f"bench needs {', '.join(missing)}: pip install 'leechcodec[bench]'")
    published = [] if no_published or not use_kodak else load_published(published_dir or PUBLISHED_DIR)
    net = None
    if "leechcodec" in codecs:  # before any download: a bad --model fails fast
        net = load_model(model, device, threads=threads)
        if not coders:
            coders = ("ar", "fixed") if net.prior is not None else ("fixed",)
        if "ar" in coders and net.prior is None:
            raise click.BadParameter("--coder ar: the model has no AR prior", param_hint="--coder")
    coders = coders or ("fixed",)
    sets = []
    if use_kodak:
        paths = kodak_images(kodak_dir=kodak_dir, cache_dir=cache_dir, count=count, verify=not no_verify)
        sets.append(("kodak", f"Kodak ({len(paths)} images)", paths))
    if holdout is not None:
        paths = holdout_images(holdout, count=count)
        sets.append(("holdout", f"holdout {holdout} ({len(paths)} images)", paths))
    for stem, title, paths in sets:
        kodak_set = stem == "kodak"
        benchmark(paths, output_dir, stem=stem, title=title, echo=click.echo, note=lambda m: note(m, quiet),
                  codecs=codecs, model=net, coders=coders, device=device, jobs=jobs, progress=not quiet,
                  **({"lambdas": lambdas} if lambdas else {}), max_stages=max_stages,
                  reference=PAPER_POINT if kodak_set else None, published=published if kodak_set else [],
                  crops=crops and kodak_set,
                  readme=update_readme if kodak_set else None)
