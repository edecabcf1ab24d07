"""Export a weights file's encoder and decoder to ONNX graphs without their weights.

    python -m leechcodec.models.export_onnx [--weights PATH]

writes ``NAME.encoder.onnx`` and ``NAME.decoder.onnx`` beside ``NAME.safetensors`` (default:
the bundled model) for ``models.runtime``, which supplies the parameters from the safetensors
file at load time: the graphs keep the structure only, and the weights have one copy.

Exporter: torch's ``torch.export``-based one (``dynamo=True``; the TorchScript exporter is
deprecated since torch 2.9), then onnxscript's optimizer with the parameters held as graph
inputs, so that it folds the shape arithmetic but leaves every parameter an initializer under
its own name (folding a Linear's transposed weight would make a new, anonymous one; ONNX
Runtime folds those transposes itself at session creation). The shot preset's decoder at
opset 18: 332 nodes and 47 KB, against 625 nodes and 98 KB from the TorchScript exporter, and
the same speed once ONNX Runtime has optimised either.

Needs torch, onnx and onnxscript (export only: the runtime needs none of them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .config import DEFAULT_WEIGHTS, pos_table
from .io import load_weights
from .runtime import GRAPH_FORMAT, IO_NAMES, META_CONFIG, META_FORMAT, META_PARAMETERS, META_PART, PARTS, graph_path
from .vit import LeechTokenizer

# 21: GELU is one Gelu node (opset 20), and ONNX Runtime 1.18, the oldest the package accepts,
# implements it (with IR version 10). At 23 attention is one Attention node too: the decoder
# ran 3-5 % faster on ONNX Runtime 1.32 (2 cores), the encoder the same, but older runtimes
# lack that operator.
OPSET = 21


class _WithPos(nn.Module):
    """One network with its position table as a second input, (gh, gw, D) → (gh·gw, D): the
    grid is then an input's shape, which ``torch.export`` can keep symbolic (a (N, D) table
    would need N = gh·gw, a product of dimensions it cannot express)."""

    def __init__(self, model: LeechTokenizer, part: str):
        super().__init__()
        self.part = part
        setattr(self, part, getattr(model, part))  # state_dict keys as in the weights file

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.part)(x, pos=pos.flatten(0, 1))


def _example(model: LeechTokenizer, part: str):
    """Example inputs and their dynamic dimensions. Batch, grid height and width differ (2, 5,
    7), so the exporter cannot mistake one dimension for another."""
    cfg, Dim = model.cfg, torch.export.Dim
    b, gh, gw = Dim("batch"), Dim("grid_h"), Dim("grid_w")
    pos = torch.from_numpy(pos_table(5, 7, cfg.width)).view(5, 7, cfg.width)
    if part == "encoder":
        x = torch.rand(2, 3, 5 * cfg.patch, 7 * cfg.patch)
        dims = {"x": {0: b, 2: cfg.patch * gh, 3: cfg.patch * gw}, "pos": {0: gh, 1: gw}}
    else:
        x = torch.nn.functional.normalize(torch.randn(2, 5, 7, cfg.latent_dim), dim=-1)
        dims = {"x": {0: b, 1: gh, 2: gw}, "pos": {0: gh, 1: gw}}
    return (x, pos), dims


def export_graph(model: LeechTokenizer, part: str, weights_name: str) -> onnx.ModelProto:
    """``model.encoder`` or ``model.decoder`` as an ONNX graph without parameter data.

    Each parameter stays an initializer named as in the state dict, with its shape and type,
    but ``data_location = EXTERNAL`` at a location that does not exist ("NAME.safetensors#name"),
    so that ONNX Runtime, given the graph alone, says which tensor of which file it lacks.
    """
    import onnx_ir as ir  # the onnx exporter's packages: only for exporting (train extra)
    import onnxscript

    net = _WithPos(model, part).eval()
    args, dims = _example(model, part)
    inp, pos, out = IO_NAMES[part]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(LeafSpec|axis name)")  # torch.export's own deprecation notes
        prog = torch.onnx.export(net, args, dynamic_shapes=dims, input_names=[inp, pos], output_names=[out],
                                 opset_version=OPSET, dynamo=True, optimize=False, verbose=False)  # fmt: skip
    params = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    g = prog.model.graph
    held = [v for name, v in g.initializers.items() if name in params]
    g.inputs.extend(held)  # graph inputs are never folded, nor merged with an equal tensor (tiny models' norms)
    onnxscript.optimizer.optimize(prog.model)
    for v in held:
        g.inputs.remove(v)
    proto = ir.serde.serialize_model(prog.model)
    onnx.checker.check_model(proto)  # with the data: the checker looks for external files
    lost = set(params) - {t.name for t in proto.graph.initializer}
    if lost:
        raise RuntimeError(f"the {part} graph does not name these parameters: {sorted(lost)}")
    for node in proto.graph.node:  # the exporter's stack traces: 85 % of the file
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]  # intermediate shapes (and more stack traces): ONNX Runtime infers them
    for t in proto.graph.initializer:
        if t.name in params:
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            t.external_data.add(key="location", value=f"{weights_name}#{t.name}")
    proto.producer_name, proto.doc_string = "leechcodec", (
        f"leechcodec tokenizer {part} without its weights: run it with leechcodec.models.runtime.load_onnx, which "
        f"supplies the initializers from {weights_name} (fp16 → float32). Inputs: {inp}, {pos} = "
        f"leechcodec.models.config.pos_table(gh, gw, width).reshape(gh, gw, width)."
    )
    meta = {
        META_FORMAT: GRAPH_FORMAT,
        META_PART: part,
        META_CONFIG: json.dumps(model.cfg.to_dict(), sort_keys=True),
        META_PARAMETERS: json.dumps({k: list(s) for k, s in sorted(params.items())}),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    return proto


def export(weights: str | os.PathLike | None = None) -> list[Path]:
    """Write both graphs of a weights file beside it (atomically); their paths."""
    weights = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    model = load_weights(weights, prior=None)
    paths = []
    for part in PARTS:
        data = export_graph(model, part, weights.name).SerializeToString()
        dest = graph_path(weights, part)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # not mkstemp: its 0600 would ship
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths.append(dest)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leechcodec.models.export_onnx", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", help="the tokenizer's .safetensors (default: the bundled model)")
    args = ap.parse_args(argv)
    for name in ("torch.onnx", "onnx_ir", "onnxscript"):  # progress notes and skipped optional ops, not news
        logging.getLogger(name).setLevel(logging.ERROR)
    for p in export(args.weights):
        print(f"{p} ({p.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
