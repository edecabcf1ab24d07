"""The tokenizer on ONNX Runtime (models.runtime) computes what torch computes, from the same
safetensors file, refuses what load_weights refuses, and never imports torch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DEMO_IMAGE, REPO

pytest.importorskip("onnxruntime")

from leechcodec.errors import ModelError  # noqa: E402
from leechcodec.models.config import DEFAULT_WEIGHTS  # noqa: E402
from leechcodec.models.io import load_weights, save_weights  # noqa: E402
from leechcodec.models.config import STAGE_FIELDS  # noqa: E402
from leechcodec.models.runtime import NoGraphError, graph_metadata, graph_path, load_onnx  # noqa: E402

TOL = 1e-4  # float32 through a different library: measured ≤ 1.4e-5 (latents up to 11.5), ≤ 1e-6 (pixels)


def _export(tmp_path, preset: str):
    """Random (not trained, every tensor perturbed) weights of ``preset`` and their graphs."""
    pytest.importorskip("onnxscript")
    from leechcodec.models.export_onnx import export
    from leechcodec.models.vit import build

    torch.manual_seed(3)
    model = build(preset)
    with torch.no_grad():
        for p in model.parameters():  # norms and biases away from 1 and 0, so that a swap shows
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / f"{preset}.safetensors"
    save_weights(model, path)
    export(path)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """preset → its weights file, with its graphs beside it (exported once: seconds each)."""
    folder = tmp_path_factory.mktemp("onnx")
    return {preset: _export(folder, preset) for preset in ("tiny", "shot-tiny")}


@pytest.fixture(params=["tiny", "shot-tiny"])
def exported(request, exports):
    return exports[request.param]


def _copy(weights, dest, graphs_of):
    """``weights`` copied to ``dest`` with the graphs of the weights file ``graphs_of`` beside it."""
    shutil.copyfile(weights, dest)
    for part in ("encoder", "decoder"):
        shutil.copyfile(graph_path(graphs_of, part), graph_path(dest, part))


def _units(rng, *shape):
    q = rng.standard_normal((*shape, 24)).astype(np.float32)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_graphs_keep_structure_and_names_only(exported):
    onnx = pytest.importorskip("onnx")
    state = load_weights(exported, prior=None).state_dict()
    for part in ("encoder", "decoder"):
        g = graph_path(exported, part)
        m = onnx.load(str(g), load_external_data=False)
        params = [t for t in m.graph.initializer if t.name in state]
        assert {t.name for t in params} == {k for k in state if k.startswith(part + ".")}
        assert all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data for t in params)
        assert g.stat().st_size < 64 * 1024
        assert graph_metadata(g) == {p.key: p.value for p in m.metadata_props}  # the runtime's own reader


def test_outputs_match_torch(exported, rng):
    ref = load_weights(exported, prior=None)
    model = load_onnx(exported, threads=1)
    assert model.model_id == ref.model_id and model.cfg == ref.cfg
    x = rng.random((2, 3, 256, 256), dtype=np.float32)
    with torch.inference_mode():
        want = ref.analysis(torch.from_numpy(x)).numpy()
    got = model.analysis(x)
    assert got.shape == want.shape == (2, 32, 32, 24)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    x = x[:1, :, :40, :56]  # any multiple of the patch, as torch's encoder takes
    with torch.inference_mode():
        want = ref.analysis(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.analysis(x), want, rtol=0, atol=TOL)
    for shape in [(1, 32, 32), (2, 38, 44), (1, 7, 5)]:  # a tile, a halo window, a picture's edge
        q = _units(rng, *shape)
        with torch.inference_mode():
            want = ref.synthesis(torch.from_numpy(q)).numpy()
        got = model.synthesis(q)
        assert got.shape == want.shape == (shape[0], 3, 8 * shape[1], 8 * shape[2])
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_sessions_are_built_on_first_use(exported, rng):
    model = load_onnx(exported, threads=1)
    assert not model._sessions
    model.synthesis(_units(rng, 1, 4, 4))
    assert set(model._sessions) == {"decoder"}


def test_position_table_twin_is_bit_identical():
    from leechcodec.models.config import pos_table
    from leechcodec.models.vit import POS_SCALE, sincos_pos_embed

    for width in (32, 256):
        want = (POS_SCALE * sincos_pos_embed(44, 44, width)).numpy()  # the largest halo window and all below it
        assert np.array_equal(pos_table(44, 44, width), want)


def test_bundled_graphs_match_the_bundled_weights():
    ref = load_weights(prior=None)
    for part in ("encoder", "decoder"):
        meta = graph_metadata(graph_path(DEFAULT_WEIGHTS, part))
        stage_fields = {k: getattr(ref.cfg, k) for k in STAGE_FIELDS}  # not in a graph: the codec sums the stages
        assert {**json.loads(meta["leechcodec.config"]), **stage_fields} == ref.cfg.to_dict()
        names = {k for k in ref.state_dict() if k.startswith(part + ".")}
        assert set(json.loads(meta["leechcodec.parameters"])) == names
    model = load_onnx(prior=None, threads=2)
    assert model.model_id == ref.model_id and model.decode_halo == ref.decode_halo == 6
    with Image.open(DEMO_IMAGE) as im:
        x = np.asarray(im.convert("RGB").crop((256, 0, 512, 256)), dtype=np.float32).transpose(2, 0, 1)[None] / 255
    with torch.inference_mode():
        z_ref = ref.analysis(torch.from_numpy(x))
        q = torch.nn.functional.normalize(z_ref, dim=-1)
        y_ref = ref.synthesis(q)
    np.testing.assert_allclose(model.analysis(x), z_ref.numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(model.synthesis(q.numpy()), y_ref.numpy(), rtol=0, atol=TOL)


def test_graphs_missing_or_for_another_config(tmp_path, exports):
    other = tmp_path / "other.safetensors"
    shutil.copyfile(exports["tiny"], other)
    with pytest.raises(NoGraphError, match="export_onnx --weights"):
        load_onnx(other)
    _copy(exports["tiny"], other, graphs_of=exports["shot-tiny"])
    with pytest.raises(NoGraphError, match="another config"):
        load_onnx(other)
    graph_path(other, "decoder").write_bytes(b"\xff" * 100)
    with pytest.raises(NoGraphError):
        load_onnx(other)
    assert issubclass(NoGraphError, ModelError)


def test_broken_weights_give_load_weights_messages(tmp_path, exports):
    """Each broken file (with valid graphs beside it) fails both loaders with the same ModelError."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    good = exports["tiny"]
    state = load_file(str(good))
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()

    def variant(name, tensors=None, metadata=None, raw=None):
        p = tmp_path / f"{name}.safetensors"
        if raw is not None:
            p.write_bytes(raw)
        else:
            save_file(state if tensors is None else tensors, str(p), metadata=meta if metadata is None else metadata)
        for part in ("encoder", "decoder"):
            shutil.copyfile(graph_path(good, part), graph_path(p, part))
        return p

    first = next(k for k, v in state.items() if v.ndim == 2)
    cases = [
        tmp_path / "absent.safetensors",
        variant("garbage", raw=b"\x08" + b"\0" * 7 + b"not json"),
        variant("short", raw=b"abc"),
        variant("foreign", metadata={"format": "something-else"}),
        variant("badconfig", metadata={**meta, "config": '{"width": -3}'}),
        variant("missing", tensors={k: v for k, v in state.items() if k != first}),
        variant("reshaped", tensors={**state, first: state[first].flatten()}),
        variant("nan", tensors={**state, first: torch.full_like(state[first], float("nan"))}),
    ]
    for p in cases:
        with pytest.raises(ModelError) as want:
            load_weights(p)
        with pytest.raises(ModelError) as got:
            load_onnx(p)
        assert type(got.value) is ModelError and str(got.value) == str(want.value), p.name


def test_runs_without_importing_torch():
    code = (
        "import sys, numpy as np\n"
        "from leechcodec.models.runtime import load_onnx\n"
        "m = load_onnx(prior=None, threads=1)\n"
        "z = m.analysis(np.zeros((1, 3, 256, 256), np.float32))\n"
        "y = m.synthesis(np.full((1, 32, 32, 24), 24 ** -0.5, np.float32))\n"
        "assert z.shape == (1, 32, 32, 24) and y.shape == (1, 3, 256, 256)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(m.model_id.hex())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == load_weights(prior=None).model_id.hex()


def test_bundled_prior_is_attached():
    model = load_onnx()
    assert model.prior is not None and model.prior.prior_id == load_weights().prior.prior_id
    assert load_onnx(prior=None).prior is None


def test_model_id_of_numpy_and_torch_agree():
    from safetensors.numpy import load_file

    from leechcodec.models.config import model_id_of

    ref = load_weights(prior=None)
    assert model_id_of(ref.cfg, load_file(str(DEFAULT_WEIGHTS))) == ref.model_id
