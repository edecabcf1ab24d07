"""Runs the coverage-guided fuzz target fuzz/fuzz_decode.py for about a minute.

A crash is any exception other than a LeechError, an input slower than 10 s, or memory
over the limit; libFuzzer then exits non-zero and leaves a crash-*/timeout-*/oom-* file.
LEECHCODEC_FUZZ_SECONDS changes the duration (e.g. 600 for a longer hunt). Under atheris'
instrumentation the process grows by about 1 GB a minute (plain decoding does not), so the
memory limit grows with the duration.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "fuzz" / "fuzz_decode.py"
SEEDS = REPO / "fuzz" / "corpus"
SECONDS = int(os.environ.get("LEECHCODEC_FUZZ_SECONDS", "60"))


@pytest.mark.slow
def test_fuzz_decode_finds_no_crash(tmp_path):
    new = tmp_path / "corpus"  # libFuzzer adds inputs to the first folder; the seeds stay as they are
    new.mkdir()
    cmd = [
        sys.executable, str(TARGET), str(new), str(SEEDS), f"-max_total_time={SECONDS}", "-max_len=8192",
        "-timeout=10", f"-rss_limit_mb={max(4096, 40 * SECONDS)}", f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=SECONDS + 120)
    log = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("INFO: Instrumenting"))
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert r.returncode == 0 and not findings, f"{findings}\n{log[-4000:]}"
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", log).group(1))
    # an ar input that gets past the header checks costs a whole range decode (~0.3 s on a core),
    # so a minute runs ~1,300 inputs on the busy 2-core machine (~500/s while ar seeds stopped at
    # the prior id): this checks that the fuzzer ran, not how fast
    assert runs > 300 * SECONDS // 60, log[-2000:]


def test_seed_corpus_carries_the_tiny_model_id(one_thread):
    """The *.valid (fixed) and *.ar-valid seeds decode with the fuzz target's model: the frozen
    tiny tokenizer and AR prior of tests/data.

    If the format changes on purpose, regenerate them: python fuzz/fuzz_decode.py --make-corpus fuzz/corpus
    """
    import leechcodec
    from leechcodec.models.io import load_weights

    tiny_model = load_weights(REPO / "tests" / "data" / "tiny.safetensors")  # its prior beside it
    valid = sorted(SEEDS.glob("*.valid.bin")) + sorted(SEEDS.glob("*.ar-valid.bin"))
    assert len(valid) >= 6 and sum(".ar-valid." in p.name for p in valid) >= 3
    for seed in valid:
        image = leechcodec.decode(seed.read_bytes()[1:], tiny_model)
        # the seed's name says what it encodes: "rgb-70x90" is a 70-row, 90-column RGB image
        kind, rows, cols = re.fullmatch(r"(rgb|grey)-(\d+)x(\d+)", seed.name.split(".")[0]).groups()
        want = ("RGB" if kind == "rgb" else "L", (int(cols), int(rows)))
        header = leechcodec.read_header(seed.read_bytes()[1:])
        assert (header.mode, (header.width, header.height)) == want, seed.name
        assert (image.mode, image.size) == want, seed.name
