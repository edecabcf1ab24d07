"""leechcodec.tokenize / detokenize hand out the codec's own tokens (issue 38): the grids a stream
stores, and the pictures decode makes of them."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import leechcodec
from leechcodec import coders, container, stages as staging
from leechcodec.tiling import token_grid

DEMO = Path(__file__).resolve().parents[1] / "docs" / "kodim23.png"


@pytest.fixture(scope="module")
def model():
    return leechcodec.load_model()


@pytest.fixture(scope="module")
def picture():
    """An odd size: two tile columns, the right and bottom tiles partly padding."""
    return Image.open(DEMO).crop((101, 57, 101 + 301, 57 + 203))


def stream_tokens(data: bytes, model) -> np.ndarray:
    """The token grids a stream stores: (stages, rows, cols), read with the codec's own decoders."""
    head, payload = container.unpack(data)
    w, h = head.coded_size
    extents = container.token_extents(w, h, model.tile, model.patch)
    g = model.tile // model.patch
    if head.coder == "fixed":
        idx = coders.decode_fixed_stages(payload, head.stages, head.n_tiles, g * g, extents)
    else:
        idx = coders.decode_ar(payload, head.n_tiles, g, model.prior, False, extents,
                               head.stages if head.stages > 1 else None)
        idx = idx[None] if idx.ndim == 2 else idx
    rows, cols = -(-h // model.patch), -(-w // model.patch)
    return np.stack([token_grid(s, head.tiles_x, head.tiles_y)[:rows, :cols] for s in idx])


@pytest.mark.parametrize("stages", [1, 3])
def test_tokens_are_what_the_fixed_coder_writes(model, picture, stages):
    tokens = leechcodec.tokenize(picture, model, stages=stages)
    assert tokens.dtype == np.int32
    want_shape = (1, 26, 38) if stages == 1 else (stages, 1, 26, 38)  # ceil(203/8), ceil(301/8)
    assert tokens.shape == want_shape
    stored = stream_tokens(leechcodec.encode(picture, model, coder="fixed", stages=stages), model)
    assert np.array_equal(tokens.reshape(stages, 26, 38), stored)


@pytest.mark.parametrize("stages", [1, 2])
def test_detokenize_is_what_decode_makes(model, picture, stages):
    data = leechcodec.encode(picture, model, coder="fixed", stages=stages)
    decoded = np.asarray(leechcodec.decode(data, model))
    tokens = leechcodec.tokenize(picture, model, stages=stages)
    pictures = leechcodec.detokenize(tokens, model, size=picture.size)
    assert pictures.shape == (1, 203, 301, 3) and pictures.dtype == np.uint8
    assert np.array_equal(pictures[0], decoded)
    # without a size: the whole grid, the picture in its top-left corner
    whole = leechcodec.detokenize(tokens, model)
    assert whole.shape == (1, 26 * 8, 38 * 8, 3)
    assert np.array_equal(whole[0, :203, :301], decoded)


def test_detokenize_takes_an_ar_streams_tokens_with_absent_later_stages(model, picture):
    data = leechcodec.encode(picture, model, stages=2, lam=0.004)
    stored = stream_tokens(data, model)
    assert (stored[1] == staging.ABSENT).any()  # λ left some stage-2 positions empty
    pictures = leechcodec.detokenize(stored[:, None], model, size=picture.size)
    assert np.array_equal(pictures[0], np.asarray(leechcodec.decode(data, model)))


def test_a_batch_is_its_pictures_one_by_one(model, picture):
    other = Image.open(DEMO).crop((300, 200, 601, 403))
    one = leechcodec.tokenize(picture, model)
    two = leechcodec.tokenize([picture, other], model)
    assert two.shape == (2, 26, 38)
    assert np.array_equal(two[:1], one)
    assert np.array_equal(two[1:], leechcodec.tokenize(np.asarray(other), model))
    stacked = np.stack([np.asarray(picture), np.asarray(other)])
    assert np.array_equal(leechcodec.tokenize(stacked, model), two)
    back = leechcodec.detokenize(two, model, size=picture.size)
    assert np.array_equal(back[1], leechcodec.detokenize(two[1:], model, size=picture.size)[0])
    with pytest.raises(ValueError, match="share one size"):
        leechcodec.tokenize([picture, other.crop((0, 0, 64, 64))], model)


def test_torch_in_torch_out(model, picture):
    rgb = np.asarray(picture)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255  # (3, H, W) in [0, 1]
    tokens = leechcodec.tokenize(x, model)
    assert isinstance(tokens, torch.Tensor) and tokens.dtype == torch.int32
    assert np.array_equal(tokens.numpy(), leechcodec.tokenize(rgb, model))
    out = leechcodec.detokenize(tokens, model, size=picture.size)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 203, 301) and out.dtype == torch.float32
    ref = leechcodec.detokenize(tokens.numpy(), model, size=picture.size)
    assert torch.equal((out * 255).round().to(torch.uint8).permute(0, 2, 3, 1), torch.from_numpy(ref))


def test_a_torch_model_on_its_device_writes_the_codecs_tokens(picture):
    """A torch model (on the CPU here; on a GPU it runs where its parameters are) and torch
    tensors, one by one or as a list: the tokens of the fixed coder's stream by the same model."""
    torch_model = leechcodec.load_model(backend="torch", prior=None)
    x = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)  # uint8 (3, H, W)
    tokens = leechcodec.tokenize([x, x], torch_model)
    assert isinstance(tokens, torch.Tensor) and tokens.shape == (2, 26, 38)
    stored = stream_tokens(leechcodec.encode(picture, torch_model, coder="fixed"), torch_model)
    assert np.array_equal(tokens[1].numpy(), stored[0])
    out = leechcodec.detokenize(tokens[:1], torch_model, size=picture.size)
    decoded = np.asarray(leechcodec.decode(leechcodec.encode(picture, torch_model, coder="fixed"), torch_model))
    assert np.array_equal((out[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), decoded)


def test_the_network_runs_where_the_model_is(model):
    from leechcodec.tokens import _device

    assert _device(model, None) == "cpu"  # ONNX Runtime
    assert _device(torch.nn.Linear(2, 2, device="meta"), None) == "meta"  # a torch model: its parameters' device
    assert _device(torch.nn.Linear(2, 2, device="meta"), "cpu") == "cpu"  # unless told


def test_bad_input_is_a_clear_error(model, picture):
    tokens = leechcodec.tokenize(picture, model)
    with pytest.raises(ValueError, match="tokens"):
        leechcodec.detokenize(tokens, model, size=(400, 203))  # 50 columns, not 38
    with pytest.raises(ValueError, match=r"tokens\[None\]"):
        leechcodec.detokenize(tokens[0], model)
    with pytest.raises(ValueError, match="out of range"):
        leechcodec.detokenize(tokens + 196_560, model)
    with pytest.raises(ValueError, match="out of range"):
        leechcodec.detokenize(np.stack([tokens, tokens + 196_560]), model)  # a later stage's too
    with pytest.raises(ValueError, match="uint8"):
        leechcodec.tokenize(np.zeros((8, 8, 3), np.float32), model)
    with pytest.raises(ValueError, match="stages"):
        leechcodec.tokenize(picture, model, stages=0)
    with pytest.raises(TypeError, match="cannot tokenize"):
        leechcodec.tokenize(42, model)
