"""The figures README.md, MODEL_CARD.md and the --help texts quote come from the measured results
(kodak_eval/doc_figures.py), and the docs a newcomer reads first say what they should."""

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from leechcodec.cli.figures import FIGURES
from leechcodec.cli.main import cli
from leechcodec.kodak_eval import doc_figures

REPO = Path(__file__).resolve().parents[1]
USER_DOCS = ("README.md", "MODEL_CARD.md", "docs/training-log.md", "docs/FORMAT.md", "models/weights/NOTICE.md")


def _help(*args: str) -> str:
    r = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_docs_and_help_figures_agree_with_the_results():
    """What `python -m leechcodec.kodak_eval.doc_figures --check` (CI) checks: every marked figure in the docs
    and cli/figures.py are what the committed results make."""
    assert doc_figures.check(doc_figures.load()) == []
    assert doc_figures.main(["--check"]) == 0


def _repo_copy(tmp_path: Path) -> Path:
    results = [str(f.relative_to(REPO)) for f in (REPO / "docs" / "results").glob("*.json")]
    for rel in (*doc_figures.DOCS, "cli/figures.py", *results):
        src = REPO / rel
        if src.exists():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp_path / rel)
    return tmp_path


def test_check_fails_on_a_figure_the_results_do_not_give(tmp_path):
    repo = _repo_copy(tmp_path)
    figs = doc_figures.load(repo)
    assert doc_figures.check(figs, repo) == []
    card = repo / "MODEL_CARD.md"
    card.write_text(re.sub(r"<!-- fig:bd.jpeg2000 -->[^<]*", "<!-- fig:bd.jpeg2000 -->+50.0 %", card.read_text(), count=1))
    problems = doc_figures.check(figs, repo)
    assert any("MODEL_CARD.md" in p and "bd.jpeg2000" in p and "'+50.0 %'" in p for p in problems), problems
    # a name the results do not make, and a hand-edited constants module
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- fig:made.up -->42<!-- /fig -->\n")
    (repo / "cli" / "figures.py").write_text((repo / "cli" / "figures.py").read_text().replace(
        repr(FIGURES["ar.bpp"]), "'0.1500'", 1))
    problems = doc_figures.check(figs, repo)
    assert any("made.up" in p for p in problems) and any("cli/figures.py" in p for p in problems), problems
    # writing puts the results' figures back, and the unknown name is reported
    assert any("made.up" in p for p in doc_figures.write(figs, repo))
    assert [p for p in doc_figures.check(figs, repo) if "made.up" not in p] == []


def test_figures_follow_the_bench_block():
    """A new bench table changes the figures: they are read from it, not typed."""
    readme = (REPO / "README.md").read_text()
    figs = doc_figures.figures(readme, None)
    assert re.fullmatch(r"[+−]\d+\.\d %", figs["bd.jpeg2000"])
    changed = readme.replace("| JPEG2000 (OpenJPEG) | 27.71 dB |", "| JPEG2000 (OpenJPEG) | 27.99 dB |", 1)
    changed = re.sub(r"(\| JPEG2000 \(OpenJPEG\) \| 27\.99 dB \|[^\n]*?\| )[+-][\d.]+ % \|", r"\1+70.0 % |", changed, 1)
    changed = re.sub(r"(\| JPEG2000 \(OpenJPEG\) \| 27\.99 dB \|[^\n]*\| )[+-][\d.]+ % (\| [\d.]+ – [\d.]+ dB \|)$",
                     r"\1+55.5 % \2", changed, 1, re.M)  # the last BD-rate column: the curve's one-stage part
    other = doc_figures.figures(changed, None)
    assert other["at_ar.jpeg2000"] == "27.99" and other["bd.jpeg2000"] == "+70.0 %" and other["bd1.jpeg2000"] == "+55.5 %"
    with pytest.raises(doc_figures.FigureError):
        doc_figures.figures(readme.replace("<!-- bench:start -->", ""), None)


def test_readme_first_screen_leads_with_the_comparison():
    """The first screen (up to the quick start) says what leechcodec is, how it compares with the
    codecs a user knows, shows the crops, and uses no project jargon."""
    readme = (REPO / "README.md").read_text()
    first = readme.split("## Quick start")[0]
    assert "research codec" in first and "Leech lattice" in first
    for codec in ("jpeg2000", "avif", "webp", "jpeg"):
        assert f"<!-- fig:bd.{codec} -->" in first
    for picture in ("docs/kodak-crops.png", "docs/kodak-curve.png"):  # the crops and the rate–distortion curve
        assert picture in first and (REPO / picture).is_file(), picture
    visible = re.sub(r"<!--.*?-->", "", first)
    for jargon in ("shot", "halo", "format version", "EMA", "small-skip", "preset"):
        assert not re.search(rf"\b{jargon}\b", visible), jargon
    quick = readme.split("## Quick start")[1].split("\n## ")[0]
    assert "pip install -e ." in quick and "leechcodec encode docs/kodim23.png" in quick
    assert "python -m pytest" in quick and "fig:speed.encode_s" in quick


def test_no_machine_paths_or_internal_names_in_docs():
    for rel in USER_DOCS:
        text = (REPO / rel).read_text()
        for bad in ("/work/", "device tool", "session", "helper", "gpu_segment"):
            assert bad not in text.lower(), (rel, bad)
    assert not (REPO / "scripts" / "gpu_segment.sh").exists()


def test_model_card_is_a_model_card():
    card = (REPO / "MODEL_CARD.md").read_text()
    assert len(card.splitlines()) <= 150
    for section in ("## Model description", "## Intended use", "## Licence of the weights",
                    "## Training data and procedure", "## Evaluation", "## Limitations", "## How to load and use",
                    "## Released models", "## Citation"):
        assert f"\n{section}\n" in card, section
    assert "2512.14697" in card and "non-commercial research" in card.lower()
    assert "docs/training-log.md" in card and (REPO / "docs" / "training-log.md").is_file()


def test_licence_files_and_metadata():
    import tomllib

    assert "MIT License" in (REPO / "LICENSE").read_text()
    notice = (REPO / "models" / "weights" / "NOTICE.md").read_text()
    assert "non-commercial research" in notice and "BSDS500" in notice and "ImageNet" in notice
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"].startswith("MIT AND LicenseRef-")
    assert set(project["project"]["license-files"]) == {"LICENSE", "models/weights/NOTICE.md"}
    assert "weights/NOTICE.md" in project["tool"]["setuptools"]["package-data"]["leechcodec.models"]


def test_help_texts_quote_the_results():
    top = _help()
    assert f"{FIGURES['ar.bpp']} bits per pixel on average on Kodak" in top
    assert "0.2748 bits per pixel plus the header" in top and "for research" in top
    enc = _help("encode")
    assert "0 = off: the nearest codewords" in enc and "Useful values run from 0.005 to about 0.1" in enc
    assert f"0.01 gives {FIGURES['knob.0.01.bytes']} bytes and {FIGURES['knob.0.01.dpsnr']}" in enc
    assert f"at most {FIGURES['bpp.passes']} encoder runs" in enc and f"took {FIGURES['bpp.s']}" in enc
    assert f"scale 2 is four times the tokens and encoded in {FIGURES['time.2.1.encode']} the time" in enc
    assert f"--effort 2 added {FIGURES['effort.2.extra_s']}" in enc
    assert "--bpp 0.1" in enc.split("Options:")[0]  # the examples show --bpp, not --lambda
    assert "--lambda 0.03" not in enc.split("Options:")[0]
    for stale in ("About 12 coder passes", "26.136", "twice as", "about 3 s per 768x512"):
        assert stale not in enc, stale
    cmp_ = _help("compare")
    assert f"within {FIGURES['compare.kodim23.max_off']} of leechcodec's" in cmp_
    assert f"AVIF {FIGURES['compare.small.avif']}" in cmp_ and "gets a note" in cmp_
    assert "about the same file size" in cmp_
