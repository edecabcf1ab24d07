"""The tokenizer on ONNX Runtime: encode and decode with numpy, never importing torch.

One source of truth for the weights: ``NAME.safetensors`` (fp16, config in its metadata).
Beside it, ``NAME.encoder.onnx`` and ``NAME.decoder.onnx`` (``models.export_onnx``) hold the
two networks' structure only: every parameter is an initializer named like its safetensors
tensor and marked as external data that is never read from disk; at session creation the
tensors of the safetensors file, widened fp16 → float32 exactly as ``models.io.load_weights``
does, take their place (``SessionOptions.add_external_initializers``; ``add_initializer``
refuses such a graph: it first looks for the external file). A retrained model therefore
needs no new graphs as long as its config is the same, and the graphs cost a few tens of KB.

Each graph takes the position table as a second input, ``pos`` (gh, gw, D) =
``models.config.pos_table``, computed here in float64 and rounded once as torch does (bit-
identical), and cached per window shape: the decoder's grid changes with the halo windows of
``codec.indices_to_image``, and a table computed inside the graph would be float32
trigonometry of its own, not torch's numbers.

Each graph's metadata (``metadata_props``) names its config and parameters; ``load_onnx``
refuses graphs made for another config (``NoGraphError``, so that a caller with torch can
fall back to ``models.io.load_weights``) and weights whose tensors do not match them.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from leechcodec.errors import ModelError, require_torch
from leechcodec.tokenizer import ConfiguredTokenizer

from .config import STAGE_FIELDS, TokenizerConfig, model_id_of, pos_table
from .files import attach_prior, check_tensors, read_weights

GRAPH_FORMAT = "leechcodec-tokenizer-graph"
# metadata_props keys of an exported graph
META_FORMAT, META_PART, META_CONFIG, META_PARAMETERS = (
    "leechcodec.format", "leechcodec.part", "leechcodec.config", "leechcodec.parameters",
)  # fmt: skip
# graph input/output names, per part: (network input, position table, output)
IO_NAMES = {"encoder": ("image", "pos", "latents"), "decoder": ("codewords", "pos", "image")}
PARTS = tuple(IO_NAMES)


class NoGraphError(ModelError):
    """The ONNX graphs beside a weights file are missing, unreadable or made for another
    config. Not a broken model: torch (``models.io.load_weights``) can still run it, and
    ``python -m leechcodec.models.export_onnx --weights PATH`` makes the graphs."""


def graph_path(weights: str | os.PathLike, part: str) -> Path:
    """``NAME.safetensors`` → ``NAME.encoder.onnx`` / ``NAME.decoder.onnx`` beside it."""
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + f".{part}.onnx")


def _varint(b: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return n, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(b: bytes):
    """(field number, value) of each top-level field of a protobuf message; values of
    length-delimited fields are bytes, the others are skipped as None."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(b, i)
            v = None
        elif wire == 2:
            n, i = _varint(b, i)
            v = b[i : i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            v = None
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(b):
            raise ValueError("truncated")
        yield key >> 3, v


def graph_metadata(path: str | os.PathLike) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (ModelProto field 14 of StringStringEntryProto
    {key = 1, value = 2}), read without the ``onnx`` package: that costs 30 MB and most of a
    second to import, and ONNX Runtime shows a graph's metadata only once a session is built.

    Raises:
        ValueError: not a protobuf message (a truncated or foreign file).
    """
    data = Path(path).read_bytes()
    meta = {}
    try:
        for field, v in _fields(data):
            if field == 14 and v is not None:
                entry = dict(_fields(v))
                meta[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    except (IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"not an ONNX file ({e.__class__.__name__})") from None
    return meta


def _graph_parameters(weights: Path, cfg: TokenizerConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """Each part's parameter names and shapes, from its graph's metadata.

    Raises:
        NoGraphError: a graph missing, unreadable, not ours, or made for another config.
    """
    how = f"make them with `python -m leechcodec.models.export_onnx --weights {weights}` (needs torch)"
    out = {}
    for part in PARTS:
        g = graph_path(weights, part)
        if not g.is_file():
            raise NoGraphError(f"no ONNX graph {g.name} beside {weights}: {how}")
        try:
            meta = graph_metadata(g)
            if meta.get(META_FORMAT) != GRAPH_FORMAT or meta.get(META_PART) != part:
                raise ValueError("no leechcodec metadata")
            # the stages' gains are not in a graph (the codec sums the stages before the decoder)
            made_for = {**json.loads(meta[META_CONFIG]), **{k: getattr(cfg, k) for k in STAGE_FIELDS}}
            same = made_for == cfg.to_dict()
            params = {k: tuple(int(n) for n in s) for k, s in json.loads(meta[META_PARAMETERS]).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise NoGraphError(f"{g} is not a leechcodec {part} graph ({e}): {how}") from None
        if not same:
            raise NoGraphError(f"{g} was made for another config than {weights} ({cfg.name!r}): {how}")
        out[part] = params
    return out


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or ``taskset``'s limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=32)
def _pos(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """The ``pos`` input of a (grid_h, grid_w) grid; a decode meets a handful of window shapes."""
    t = pos_table(grid_h, grid_w, dim).reshape(grid_h, grid_w, dim)
    t.flags.writeable = False
    return t


class OnnxTokenizer(ConfiguredTokenizer):
    """The tokenizer's two networks on ONNX Runtime, with numpy in and out: a
    ``leechcodec.tokenizer.Tokenizer`` without torch. Made by ``load_onnx``.

    Each network's session is built on its first call, so a decode never builds the encoder,
    and ``info`` builds neither. The float32 weights a session was given stay referenced here
    for its lifetime: ONNX Runtime reads them in place (an OrtValue does not own numpy data).
    """

    numpy_io = True  # numpy in and out: the codec uses it as it is (``tokenizer.numpy_networks``)
    runtime = "onnxruntime"  # what runs the networks
    precision = "fp32"  # what runs: float32 throughout, the reference arithmetic

    def __init__(self, cfg: TokenizerConfig, path: Path, state: dict[str, np.ndarray], params: dict,
                 model_id: bytes, threads: int):  # fmt: skip
        self.cfg = cfg
        self.path = path  # the weights file; the graphs are beside it (``graph_path``)
        self.model_id = model_id
        self.prior = None
        self.threads = threads
        self._state = state  # fp16, as in the file
        self._params = params  # part → {name: shape}
        self._sessions: dict = {}
        self._feeds: dict[str, list[np.ndarray]] = {}
        self._torch_twin = None

    def torch_model(self):
        """The torch twin of these weights (``models.io.load_weights``, no prior; built once), for
        what needs gradients (``encode --effort``).

        Raises:
            LeechError: torch is not installed (the ``train`` extra).
        """
        if self._torch_twin is None:
            require_torch("--effort", hint=" (it refines the tokens with the decoder's gradients)")
            from .io import load_weights  # imports torch: only when a twin is asked for

            self._torch_twin = load_weights(self.path, prior=None)
        return self._torch_twin

    def session(self, part: str):
        """The ``onnxruntime.InferenceSession`` of ``part`` ("encoder" or "decoder"), built once.

        ``threads`` intra-op threads and no inter-op pool (one graph, run node after node);
        threads do not spin while waiting for work, so that no core burns while the codec's
        numpy and coder steps, or other processes, run. Cost: about 4 % per network call
        (0-8 %, 2 cores of an AMD EPYC shared with other jobs).
        """
        s = self._sessions.get(part)
        if s is not None:
            return s
        import onnxruntime as ort  # 0.2 s: only once a network runs (`info` builds no session)

        names = sorted(self._params[part])
        weights = [np.ascontiguousarray(self._state[n], dtype=np.float32) for n in names]
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(w) for w in weights])
        graph = graph_path(self.path, part)
        try:
            s = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception classes (Fail, InvalidGraph, ...)
            how = f"`python -m leechcodec.models.export_onnx --weights {self.path}`"
            raise NoGraphError(f"{graph}: ONNX Runtime cannot load it ({e}); re-export it with {how}") from None
        self._feeds[part] = weights
        self._sessions[part] = s
        return s

    def _run(self, part: str, x: np.ndarray, gh: int, gw: int) -> np.ndarray:
        inp, pos, out = IO_NAMES[part]
        feed = {inp: np.ascontiguousarray(x, dtype=np.float32), pos: _pos(gh, gw, self.cfg.width)}
        return self.session(part).run([out], feed)[0]

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 in [0, 1] → latents (B, H/8, W/8, 24) float32, not yet normalised."""
        p = self.patch
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"expected (B, 3, H, W) with H, W multiples of {p}, got {tuple(x.shape)}")
        return self._run("encoder", x, x.shape[2] // p, x.shape[3] // p)

    def synthesis(self, q: np.ndarray) -> np.ndarray:
        """Unit codeword vectors (B, h, w, 24) float32 → image (B, 3, 8h, 8w) float32, unclamped."""
        if q.ndim != 4 or q.shape[3] != self.cfg.latent_dim:
            raise ValueError(f"expected (B, h, w, {self.cfg.latent_dim}), got {tuple(q.shape)}")
        return self._run("decoder", q, q.shape[1], q.shape[2])


def load_onnx(path: str | os.PathLike | None = None, prior: str | os.PathLike | None = "auto",
              threads: int | None = None) -> OnnxTokenizer:  # fmt: skip
    """The tokenizer of a safetensors file (default: the bundled model) on ONNX Runtime.

    The same checks, messages and model id as ``models.io.load_weights``; the tensors a config
    implies are those its graphs name (checked to be made for that config). ``prior``: "auto"
    attaches ``NAME.prior.safetensors`` if there is one (``leechcodec.exact_prior``), a path
    that file, None none. ``threads``: ONNX Runtime's intra-op threads (default: the cores this
    process may use).

    Raises:
        NoGraphError: the graphs beside the weights are missing or made for another config.
        ModelError: missing file, not safetensors, not a leechcodec tokenizer, an invalid
            config, or tensors that do not match the stored config or are not finite.
    """
    path, cfg, state = read_weights(path, "numpy")
    params = _graph_parameters(path, cfg)
    check_tensors(path, cfg, state, {k: s for part in PARTS for k, s in params[part].items()})
    model = OnnxTokenizer(cfg, path, state, params, model_id_of(cfg, state), threads or default_threads())
    attach_prior(model, path, prior)
    return model
