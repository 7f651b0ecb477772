"""Per-operation action counts derived from an ONNX graph's nodes and concrete shapes.

Nothing here knows ALBERT: any exported encoder is charged node by node. Shapes come from one probe run of
the graph in onnxruntime with batch 1 and the requested sequence length (zeros for every weight: only shapes
matter), because ONNX shape inference loses dims through the exporters' Shape/Reshape chains.

Weights are graph inputs or initializers named like the manifest's tensors (the PyTorch parameter names).
A weight reached through layout-only nodes (Transpose, Reshape, Cast, ...) is charged where it is *consumed*,
on every use: ALBERT's shared layer is read from RRAM twelve times per inference. Backbone tensors live in
RRAM (non-zero values in MLC at the value width, one mask bit per element in SLC, one 16-bit mask word per
16-element vector decoded); task tensors and activations live in SRAM. Traffic model: compulsory (each
operand read once per op, each output written once), documented in docs/HWMODEL.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from edgemti.errors import ConfigError, FormatError
from edgemti.hwmodel.cost import ActionCounts
from edgemti.hwmodel.spec import ArchSpec

log = logging.getLogger(__name__)

LAYOUT_OPS = frozenset({
    "Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze", "Flatten", "Expand", "Concat", "Slice",
    "Split", "Shape", "Constant", "ConstantOfShape", "Range", "Size", "Dropout", "CastLike",
})
VIEW_OPS = frozenset({"Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze", "Flatten", "CastLike"})
MATMUL_OPS = frozenset({"MatMul", "Gemm", "MatMulInteger", "FusedMatMul"})
SFU_OF_OP = {
    "LayerNormalization": "layernorm", "SimplifiedLayerNormalization": "layernorm", "Softmax": "softmax",
    "Erf": "gelu", "Tanh": "gelu", "Gelu": "gelu", "FastGelu": "gelu", "Sigmoid": "gelu", "Relu": "gelu",
    "Add": "elementwise", "Sub": "elementwise", "Mul": "elementwise", "Div": "elementwise", "Where": "elementwise",
    "Pow": "elementwise", "Sqrt": "elementwise", "Neg": "elementwise", "Max": "elementwise", "Min": "elementwise",
}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


@dataclass(frozen=True)
class WeightInfo:
    """Where one weight tensor lives and how it is stored."""

    name: str
    numel: int
    nnz: int
    bits: int  # value width
    place: str  # "rram" (backbone, bitmask-encoded) or "sram" (task pack, dense)


@dataclass(frozen=True)
class OpCharge:
    """Action counts of one node (before pricing)."""

    node: str
    op_type: str
    kind: str  # matmul | gather | sfu:<kind> | layout | control
    macs: int
    counts: ActionCounts
    weights: tuple[str, ...] = ()


@dataclass
class GraphShapes:
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    float_tensors: set[str] = field(default_factory=set)


def probe_shapes(model: onnx.ModelProto, seq_len: int, data_inputs: tuple[str, ...],
                 weight_shapes: dict[str, tuple[int, ...]] | None = None, batch: int = 1) -> GraphShapes:
    """Concrete shape of every tensor for ``batch`` and ``seq_len`` (one onnxruntime run on zeros).

    ``weight_shapes`` fixes the symbolic dims of weight inputs (e.g. ``num_labels`` of a task's classifier);
    other symbolic dims are 1 on axis 0 (batch) and ``seq_len`` elsewhere.
    """
    weight_shapes = weight_shapes or {}
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(helper.ValueInfoProto(name=o))
                have.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FormatError(f"graph: onnxruntime cannot load it for the shape probe ({exc})") from None
    feeds: dict[str, np.ndarray] = {}
    for i in sess.get_inputs():
        shape = []
        for k, d in enumerate(i.shape):
            shape.append(d if isinstance(d, int) and d > 0 else (batch if k == 0 else seq_len))
        if i.name in weight_shapes:
            shape = list(weight_shapes[i.name])
        dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float16)": np.float16,
                 "tensor(bool)": np.bool_, "tensor(double)": np.float64}.get(i.type, np.float32)
        # ones for the data inputs (valid ids / mask / token types), zeros for weights
        feeds[i.name] = (np.ones if i.name in data_inputs else np.zeros)(shape, dtype=dtype)
    try:
        outs = sess.run(None, feeds)
    except Exception as exc:
        raise FormatError(f"graph: shape probe at seq_len={seq_len} failed ({exc}); is seq_len within the "
                          "model's max_position_embeddings?") from None
    gs = GraphShapes()
    for o, v in zip(sess.get_outputs(), outs, strict=True):
        gs.shapes[o.name] = tuple(int(x) for x in np.shape(v))
        if np.issubdtype(np.asarray(v).dtype, np.floating):
            gs.float_tensors.add(o.name)
    for name, v in feeds.items():
        gs.shapes[name] = tuple(v.shape)
        if np.issubdtype(v.dtype, np.floating):
            gs.float_tensors.add(name)
    for init in model.graph.initializer:
        gs.shapes[init.name] = tuple(int(d) for d in init.dims)
        if init.data_type in _FLOAT_TYPES:
            gs.float_tensors.add(init.name)
    return gs


def weight_views(model: onnx.ModelProto, weights: set[str]) -> set[str]:
    """The weight names plus every tensor that is a layout-only view of a weight (e.g. its Transpose)."""
    out = set(weights)
    for n in model.graph.node:  # graph order is topological
        if n.op_type in VIEW_OPS and n.input and n.input[0] in out:
            out.update(o for o in n.output if o)
    return out


def _numel(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape)) if shape else 1


def _gated_fraction(spec: ArchSpec, density: float) -> float:
    """Fraction of MAC slots clock-gated for a weight of ``density`` non-zeros (unstructured, independent)."""
    if spec.pe_array.gating == "none":
        return 0.0
    if spec.pe_array.gating == "ideal":
        return 1.0 - density
    return (1.0 - density) ** spec.pe_array.vector  # rtl: a whole 16-weight dot product must be zero


def _add(d: dict, k: str, v: float) -> None:
    d[k] = d.get(k, 0.0) + v


class _Traffic:
    """Bits moved per level by one node, and the weights it used."""

    def __init__(self, vec: int) -> None:
        self.vec = vec
        self.read: dict[str, float] = {}
        self.write: dict[str, float] = {}
        self.decode = 0.0
        self.used: list[str] = []

    def read_weight(self, w: WeightInfo, fraction: float = 1.0) -> None:
        self.used.append(w.name)
        if w.place == "rram":  # non-zeros from MLC, one mask bit per element from SLC, one mask word per vector
            _add(self.read, "rram_mlc", w.nnz * w.bits * fraction)
            _add(self.read, "rram_slc", w.numel * fraction)
            self.decode += math.ceil(w.numel * fraction / self.vec)
        else:
            _add(self.read, "sram", w.numel * w.bits * fraction)


def charge_graph(model: onnx.ModelProto, shapes: GraphShapes, weights: dict[str, WeightInfo], spec: ArchSpec,
                 precision: str, act_bits: int) -> list[OpCharge]:
    """One :class:`OpCharge` per node, in graph order."""
    producer = {o: n for n in model.graph.node for o in n.output}
    vec = spec.pe_array.vector
    sram_act = spec.execution.sram_activations

    def source(name: str) -> str:
        seen = 0
        while name in producer and producer[name].op_type in VIEW_OPS and seen < 64:
            name = producer[name].input[0]
            seen += 1
        return name

    out: list[OpCharge] = []
    for idx, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{idx}"
        op = node.op_type
        ins = [i for i in node.input if i]
        floats_out = [o for o in node.output if o in shapes.float_tensors]
        if op in LAYOUT_OPS or not floats_out:
            kind = "layout" if op in LAYOUT_OPS else "control"
            out.append(OpCharge(name, op, kind, 0, ActionCounts()))
            continue
        acc = _Traffic(vec)
        read, write = acc.read, acc.write
        add, read_weight = _add, acc.read_weight
        macs = 0
        gated = 0.0
        pe_cycles = 0.0
        sfu_cycles: dict[str, float] = {}
        sfu_elems: dict[str, float] = {}

        if op == "Gather" and source(ins[0]) in weights:
            w = weights[source(ins[0])]
            rows = _numel(shapes.shapes.get(ins[1], ()))
            table = shapes.shapes.get(ins[0], ())
            frac = min(1.0, rows * _numel(table[1:]) / max(1, w.numel))
            read_weight(w, frac)
            kind = "gather"
            if sram_act:
                add(write, "sram", _numel(shapes.shapes[node.output[0]]) * act_bits)
        else:
            weight_ins = [(i, weights[source(i)]) for i in ins if source(i) in weights]
            act_ins = [i for i in ins if source(i) not in weights and i in shapes.float_tensors]
            for _, w in weight_ins:
                read_weight(w)
            if sram_act:
                for i in act_ins:
                    add(read, "sram", _numel(shapes.shapes.get(i, ())) * act_bits)
                for o in floats_out:
                    add(write, "sram", _numel(shapes.shapes[o]) * act_bits)
            if op in MATMUL_OPS:
                kind = "matmul"
                a, b = shapes.shapes[ins[0]], shapes.shapes[ins[1]]
                y = shapes.shapes[node.output[0]]
                if op == "Gemm":
                    attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
                    n0, m = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
                    n1 = b[0] if attrs.get("transB", 0) else b[1]
                    batch = 1
                else:
                    if len(a) < 2 or len(b) < 1:
                        raise ConfigError(f"graph node {name}: MatMul operand shapes {a} x {b} not supported")
                    m = a[-1]
                    n0 = a[-2]
                    n1 = b[-1] if len(b) >= 2 else 1
                    batch = _numel(y) // max(1, n0 * n1)
                macs = int(batch * n0 * m * n1)
                tiles = batch * math.ceil(n0 / vec) * math.ceil(n1 / vec) * m
                pe_cycles = tiles / spec.pe_array.utilization + spec.pe_array.fill_cycles
                for _, w in weight_ins:
                    if w.place == "rram" and w.numel:
                        gated += macs * _gated_fraction(spec, w.nnz / w.numel)
                        break
            else:
                sfu = SFU_OF_OP.get(op, "other")
                kind = f"sfu:{sfu}"
                y = shapes.shapes[floats_out[0]]
                elems = _numel(y)
                inner = y[-1] if y else 1
                vectors = (elems // max(1, inner)) * math.ceil(inner / vec)
                sfu_cycles[sfu] = vectors * spec.sfu.cycles_per_vector[sfu]
                sfu_elems[sfu] = float(elems)
        counts = ActionCounts(
            read_bits=read, write_bits=write,
            macs={precision: macs} if macs else {}, gated_macs={precision: gated} if gated else {},
            pe_cycles=pe_cycles, sfu_cycles=sfu_cycles, sfu_elements=sfu_elems, bitmask_decode_vectors=acc.decode,
        )
        out.append(OpCharge(name, op, kind, macs, counts, tuple(acc.used)))
    return out


def unmatched_weights(model: onnx.ModelProto, shapes: GraphShapes, weights: dict[str, WeightInfo],
                      data_inputs: tuple[str, ...]) -> list[str]:
    """Float graph inputs / initializers with more than 1024 elements that no manifest tensor names.

    They are usually weights the exporter constant-folded under a new name (e.g. a transposed ``val_46``);
    the model then charges them as activations in SRAM, which under-counts RRAM traffic. Export with the
    parameters as named graph inputs (docs/FORMATS.md) to avoid it.
    """
    names = [i.name for i in model.graph.input] + [i.name for i in model.graph.initializer]
    return [n for n in names if n not in weights and n not in data_inputs and n in shapes.float_tensors
            and _numel(shapes.shapes.get(n, ())) > 1024]
