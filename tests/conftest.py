"""Shared fixtures: a tiny (untrained) tokenizer saved as safetensors, the data paths, and the
one-process reference run of the DDP tests."""

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
KODAK = SHARED / "kodak"
DEMO_IMAGE = REPO / "docs" / "kodim23.png"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    from leechcodec.models.io import save_weights
    from leechcodec.models.vit import build

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(build("tiny"), path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from leechcodec.models.io import load_weights

    return load_weights(tiny_model_path)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: much faster on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_frozen(one_thread):
    """The frozen tiny model of tests/data (untrained, with tiny.prior.safetensors: the ar coder),
    which coded the golden streams there."""
    from leechcodec.models.io import load_weights

    return load_weights(Path(__file__).resolve().parent / "data" / "tiny.safetensors")


@pytest.fixture
def kodak_crops(kodak_dir, tmp_path):
    """A folder of two 256x256 RGB crops of Kodak images (c0.png, c1.png)."""
    from PIL import Image

    folder = tmp_path / "crops"
    folder.mkdir()
    for i, name in enumerate(("kodim01.png", "kodim02.png")):
        with Image.open(kodak_dir / name) as im:
            im.convert("RGB").crop((256, 128, 512, 384)).save(folder / f"c{i}.png")
    return folder


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def kodak_dir():
    if not (KODAK / "kodim01.png").is_file():
        pytest.skip(f"Kodak images not found at {KODAK}")
    return KODAK


@pytest.fixture
def train_like_ddp():
    """``run(ckpt, out, world)``: the run that wrote DDP checkpoint ``ckpt`` (``world`` processes,
    ``batch`` each), redone in this one process with batch ``world x batch``, the batch of step
    ``s`` being the concatenation of what ranks 0 ... world-1 draw (generators seeded by
    ``(seed, s, rank)``, models/train.py). DDP averages the ranks' gradients and each rank's
    loss is a mean over its samples, so both runs take the same optimiser steps up to float
    rounding. Returns the tensors of the new checkpoint."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    import leechcodec.models.train as mt

    def run(ckpt, out, world: int) -> dict:
        with safe_open(str(ckpt), framework="pt") as f:
            meta = f.metadata()
        tc = json.loads(meta["train_config"])
        cfg = mt.TrainConfig(**dict(tc, data=tuple(tc["data"]), out=str(out), batch=world * tc["batch"]))
        task = mt.PriorTask if meta["task"] == "prior" else mt.TokenizerTask
        draw, steps = task.batch, []

        def global_batch(self, gen, size):
            step = len(steps)  # a fresh run calls batch() once per step, from step 0
            steps.append(step)
            seeds = [((cfg.seed * 1_000_003 + step) * 65_537 + rank) % 2**63 for rank in range(world)]
            return torch.cat([draw(self, torch.Generator().manual_seed(s), size // world) for s in seeds])

        n = torch.get_num_threads()
        task.batch = global_batch
        try:
            torch.set_num_threads(1)
            mt.train(cfg, progress=False)
        finally:
            task.batch = draw
            torch.set_num_threads(n)
        assert len(steps) == cfg.steps
        return load_file(str(Path(out) / "checkpoint.safetensors"))

    return run


@pytest.fixture(autouse=True)
def exit_codes_are_in_the_help(monkeypatch):
    """Every exit code a test sees from a command (through CliRunner) is one that the command's
    --help lists (cli/errors_table.py COMMAND_CODES): the table cannot leave out a code that
    happens, as `bench --help` once left out 8."""
    from click.testing import CliRunner

    from leechcodec.cli.errors_table import COMMAND_CODES

    real = CliRunner.invoke

    def invoke(self, cli, args=None, *a, **kw):
        result = real(self, cli, args, *a, **kw)
        name = cli.name
        if name not in COMMAND_CODES and isinstance(args, (list, tuple)) and args and args[0] in COMMAND_CODES:
            name = args[0]  # the group, given the command's name
        if name in COMMAND_CODES and isinstance(result.exit_code, int):
            assert result.exit_code in COMMAND_CODES[name], (
                f"`{name}` exited {result.exit_code}, a code its --help does not list (cli/errors_table.py): "
                f"{result.output[-300:]}"
            )
        return result

    monkeypatch.setattr(CliRunner, "invoke", invoke)
