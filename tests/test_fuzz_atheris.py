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
    assert runs > 1000, log[-2000:]


def test_seed_corpus_carries_the_tiny_model_id(tiny_model):
    """The *.valid seeds decode with the tiny model.

    If its initialisation changes, regenerate them: python fuzz/fuzz_decode.py --make-corpus fuzz/corpus
    """
    import leechcodec

    valid = sorted(SEEDS.glob("*.valid.bin"))
    assert len(valid) >= 3
    for seed in valid:
        image = leechcodec.decode(seed.read_bytes()[1:], tiny_model)
        assert image.size[0] >= 1
