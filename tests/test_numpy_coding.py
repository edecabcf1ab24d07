"""Coding without torch: the exact prior (leechcodec/exact_prior.py), the ar coder and the rate
choice in numpy.

The numpy prior computes the integers the torch implementation computed (its formula is
rebuilt here with torch float64 matmuls as the reference), names the same prior ids, and the
coder round-trips; importing and running all of it leaves torch unimported.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from leechcodec import coders, exact_prior, lattice, rdo
from leechcodec.errors import ModelError
from leechcodec.exact_prior import A_MAX, B_MAX, W_MAX, ExactPrior, PriorConfig, load_prior, prior_id_of, state_shapes
from leechcodec.models.prior import PRIOR_PRESETS, ARPrior, exact, quantize_state

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PRIOR = REPO / "models" / "weights" / "leech.prior.safetensors"
GOLDEN = json.loads((REPO / "tests" / "data" / "golden.json").read_text())


# ----------------------------------------------------------------------------- the torch reference
def _torch_features(w: dict, layers: int, ctx: torch.Tensor) -> torch.Tensor:
    """The torch ExactPrior's formula: float64 matmuls on integers, floored shifts, clamp."""
    a = ctx.double()
    for i in range(layers):
        y = a @ w[f"trunk.{i}.weight"].T + w[f"trunk.{i}.bias"]
        a = torch.floor(y * 2.0 ** -(4 if i == 0 else 12)).clamp_(0, A_MAX)
    return a


def _torch_head(w: dict, h: torch.Tensor, name: str) -> torch.Tensor:
    return torch.floor((h @ w[f"{name}.weight"].T + w[f"{name}.bias"]) * 2.0**-12)


def _torch_detail(w: dict, h: torch.Tensor, cls: int, a: torch.Tensor) -> torch.Tensor:
    m = lattice.DETAIL[cls]
    rows = lattice.BASES[cls] + a[:, None] * m + torch.arange(m)
    v = torch.from_numpy(lattice.codebook()).double()[rows]  # (N, m, 24)
    y = torch.einsum("nmd,nd->nm", v, _torch_head(w, h, "u_head"))
    if cls == 1:
        y = y + _torch_head(w, h, "place_head")
    if "codeword_bias" in w:
        y = y + w["codeword_bias"][rows]
    return y


def _extreme_state(cfg: PriorConfig, rng) -> dict[str, np.ndarray]:
    """Integer weights up to the bounds load_prior allows, the largest sums the arithmetic meets:
    weights anywhere in ±W_MAX, every fourth bias at ±B_MAX and the others within ±2^22 (so
    that not every unit saturates)."""
    state = {}
    for k, s in state_shapes(cfg).items():
        if k.endswith("weight"):
            state[k] = rng.integers(-W_MAX, W_MAX + 1, s)
        else:
            state[k] = rng.integers(-(2**22), 2**22 + 1, s)
            state[k][::4] = rng.choice([-B_MAX, B_MAX], state[k][::4].shape)
    return state


@pytest.mark.parametrize("which", ["tiny", "small-cb", "extreme"])
def test_numpy_logits_equal_the_torch_reference(which):
    rng = np.random.default_rng(21)
    if which == "extreme":
        cfg = PriorConfig(name="x", hidden=64, layers=2, codeword_bias=True)
        state = _extreme_state(cfg, rng)
        ep = ExactPrior(cfg, state, b"\0" * 8)
    else:
        torch.manual_seed(22)
        m = ARPrior(PRIOR_PRESETS[which]).eval()
        if m.codeword_bias is not None:
            with torch.no_grad():
                m.codeword_bias.normal_(0, 2)
        cfg, state = m.cfg, {k: v.numpy() for k, v in quantize_state(m).items()}
        ep = exact(m, b"\0" * 8)
    w = {k: torch.from_numpy(np.asarray(v)).double() for k, v in state.items()}
    n = 300
    ctx = lattice.codebook()[rng.integers(0, lattice.N_CODEWORDS, (n, 12))].reshape(n, 288)
    ctx[:20] = 0  # the first rows and columns of a tile: neighbours outside it are zero
    h = ep.features(ctx)
    ht = _torch_features(w, cfg.layers, torch.from_numpy(ctx))
    assert h.dtype == np.float64 and np.array_equal(h, ht.numpy())
    if which == "extreme":
        assert (h == A_MAX).any() and (h == 0).any() and ((h > 0) & (h < A_MAX)).any()  # every branch of the clamp
    assert np.array_equal(ep.class_logits(h), _torch_head(w, ht, "cls_head").numpy())
    for k in range(3):
        assert np.array_equal(ep.support_logits(h, k), _torch_head(w, ht, f"support_heads.{k}").numpy()), k
        a = rng.integers(0, lattice.SUPPORT[k], n)
        got = ep.detail_logits(h, k, a)
        assert got.shape == (n, lattice.DETAIL[k])
        assert np.array_equal(got, _torch_detail(w, ht, k, torch.from_numpy(a)).numpy()), k


def test_state_shapes_are_the_float_models():
    for cfg in PRIOR_PRESETS.values():
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in ARPrior(cfg).state_dict().items()}
        assert state_shapes(cfg) == want, cfg.name


# ----------------------------------------------------------------------------- ids and files
def _torch_prior_id(cfg, state: dict, tokenizer_id: bytes, legacy: bool = False) -> bytes:
    """The prior id as the torch implementation computed it (int tensors, .long(), .numpy())."""
    import hashlib

    d = cfg.to_dict()
    if not legacy and d.get("codeword_bias") is False:
        del d["codeword_bias"]
    fmt = dict(cfg=d, w=12, a=8, amax=A_MAX, logit=8, nb=exact_prior.NEIGHBOURS, wave=3)
    h = hashlib.sha256(json.dumps(fmt, sort_keys=True).encode())
    h.update(tokenizer_id)
    for name in sorted(state):
        t = state[name].long().contiguous()
        h.update(name.encode() + str(tuple(t.shape)).encode() + t.numpy().astype("<i8").tobytes())
    return h.digest()[:8]


@pytest.mark.parametrize("path", [SHIPPED_PRIOR, REPO / "tests" / "data" / GOLDEN["prior"]["file"]])
def test_prior_ids_are_unchanged(path):
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    tok = bytes.fromhex(meta["tokenizer_id"])
    ep = load_prior(path, tok)
    state = load_file(str(path))  # torch int tensors, as the torch implementation hashed them
    pid, legacy = _torch_prior_id(ep.cfg, state, tok), _torch_prior_id(ep.cfg, state, tok, legacy=True)
    assert ep.prior_id == pid and ep.ids == (pid, legacy) and pid != legacy
    assert prior_id_of(ep.cfg, ep.w, tok) == pid  # the prior's own float64 arrays hash alike
    if path == SHIPPED_PRIOR:
        assert pid.hex() == meta["prior_id"] == "ed778d545a2985ee"  # FORMAT.md's example
    else:
        assert [i.hex() for i in ep.ids] == [GOLDEN["prior"]["prior_id"], GOLDEN["prior"]["legacy_prior_id"]]


def test_load_prior_checks_types_and_bounds_from_the_header(tmp_path):
    torch.manual_seed(6)
    m = ARPrior(PRIOR_PRESETS["tiny"])
    from leechcodec.models.prior import save_prior

    save_prior(m, tmp_path / "p.safetensors", b"\7" * 8)
    good = load_file(str(tmp_path / "p.safetensors"))
    meta = {"format": "leechcodec-prior", "config": json.dumps(m.cfg.to_dict()), "tokenizer_id": "07" * 8}
    for name, change, message in (
        ("bf16", lambda s: s.update({"cls_head.weight": s["cls_head.weight"].bfloat16()}), "integers"),  # no numpy type
        ("f32", lambda s: s.update({"cls_head.bias": s["cls_head.bias"].float()}), "integers"),
        ("shape", lambda s: s.update({"cls_head.bias": s["cls_head.bias"][:2]}), "do not match"),
        ("missing", lambda s: s.pop("u_head.bias"), "do not match"),
        ("big", lambda s: s["cls_head.weight"].__setitem__((0, 0), W_MAX + 1), "out of range"),
        ("int64min", lambda s: s["cls_head.bias"].__setitem__(0, -(2**63)), "out of range"),  # abs() would overflow
    ):
        state = {k: v.clone() for k, v in good.items()}
        change(state)
        save_file(state, str(tmp_path / f"{name}.safetensors"), metadata=meta)
        with pytest.raises(ModelError, match=message):
            load_prior(tmp_path / f"{name}.safetensors")
    (tmp_path / "short.safetensors").write_bytes((tmp_path / "p.safetensors").read_bytes()[:-10])
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_prior(tmp_path / "short.safetensors")


# ----------------------------------------------------------------------------- the coder and the rate choice
@pytest.mark.parametrize("preset", ["tiny", "small-cb"])
def test_ar_roundtrip_with_extents(preset):
    torch.manual_seed(23)
    m = ARPrior(PRIOR_PRESETS[preset]).eval()
    if m.codeword_bias is not None:
        with torch.no_grad():
            m.codeword_bias.normal_(0, 2)
    ep = exact(m, b"\3" * 8)
    rng = np.random.default_rng(24)
    idx = rng.integers(0, lattice.N_CODEWORDS, (3, 256))
    idx[1, :100] = idx[1, 0]  # skewed probabilities too
    extents = [(16, 16), (4, 16), (5, 7)]
    payload = coders.encode_ar(idx, ep, 16, extents=extents)
    want = coders.fill_padding(idx, extents, 16)
    assert np.array_equal(coders.decode_ar(payload, 3, 16, ep, extents=extents), want)
    assert coders.encode_ar(want, ep, 16, extents=extents) == payload  # only stored tokens are coded
    assert np.array_equal(coders.decode_ar(coders.encode_ar(idx, ep, 16), 3, 16, ep), idx)  # no extents: all


@pytest.mark.parametrize("largest", [True, False])
def test_top_k_is_sorted_and_takes_the_first_of_equal_scores(largest):
    rng = np.random.default_rng(25)
    scores = rng.integers(0, 6, (200, 40)).astype(np.float64)  # many ties
    ref = np.argsort(-scores if largest else scores, axis=1, kind="stable")
    for k in (0, 1, 3, 4, 17, 40, 50):
        got = rdo._top(scores, k, largest)
        assert got.shape == (200, min(k, 40)) and np.array_equal(got, ref[:, :k]), k


def test_coding_never_imports_torch():
    """Encode (with and without the rate choice) and decode with a prior from load_prior: torch
    stays out of the process."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import leechcodec.coders, leechcodec.rdo, leechcodec.exact_prior
        from leechcodec import coders, lattice
        prior = leechcodec.exact_prior.load_prior({str(SHIPPED_PRIOR)!r})
        rng = np.random.default_rng(0)
        y = rng.standard_normal((2 * 256, 24))
        idx = lattice.nearest(y).reshape(2, 256)
        extents = [(16, 16), (9, 5)]
        want = coders.fill_padding(idx, extents, 16)
        for lam in (0.0, 0.05):
            data = coders.encode_ar(idx, prior, 16, extents=extents, latents=y, lam=lam)
            back = coders.decode_ar(data, 2, 16, prior, extents=extents)
            assert np.array_equal(back, want) == (lam == 0), lam  # the knob moves some tokens
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
