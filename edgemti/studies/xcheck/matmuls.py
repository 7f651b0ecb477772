"""The matmuls of one inference: our priced matmul records with their zigzag shapes.

Shapes come from an onnxruntime run of the graph (every node's output at batch 1 and ``seq_len``), independent
of the model's own shape inference, so MACs are checked too; given the model's fusion groups, each node also
carries the operands it keeps inside its group (what the ``fusion`` adjustment removes from zigzag's figure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edgemti.errors import ConfigError
from edgemti.hwmodel.zigzag_export import Matmul

VIEW_OPS = ("Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze", "Flatten", "CastLike")


def probe_shapes(graph: onnx.ModelProto, seq_len: int, data_inputs: tuple[str, ...],
                 weight_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor at batch 1 and ``seq_len``: one onnxruntime run (the reference for the MAC check)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(graph)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        m.graph.output.extend(onnx.helper.ValueInfoProto(name=o) for o in n.output if o and o not in have)
        have.update(n.output)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    types = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
             "tensor(float16)": np.float16, "tensor(double)": np.float64}
    feeds: dict[str, np.ndarray] = {}
    for i in sess.get_inputs():
        shape = weight_shapes.get(i.name) or tuple(d if isinstance(d, int) and d > 0 else (1 if k == 0 else seq_len)
                                                   for k, d in enumerate(i.shape))
        feeds[i.name] = (np.ones if i.name in data_inputs else np.zeros)(shape, dtype=types.get(i.type, np.float32))
    outs = sess.run(None, feeds)
    shapes = {o.name: tuple(int(x) for x in np.shape(v)) for o, v in zip(sess.get_outputs(), outs, strict=True)}
    shapes.update({k: tuple(v.shape) for k, v in feeds.items()})
    shapes.update({i.name: tuple(i.dims) for i in graph.graph.initializer})
    return shapes


@dataclass(frozen=True)
class MatmulNode:
    """One priced matmul node: our record, its zigzag shape and what the adjustments need."""

    record: Any
    matmul: Matmul
    density: float  # backbone weight non-zeros / numel (1 for dense)
    bias_bits: float  # bits of the bias operand (Gemm), 0 if none
    bias_level: str
    internal: tuple[str, ...] = ()  # zigzag operands ("I", "W", "O") ours keeps inside its fusion group


def _role(record: Any, index_in_layer: int) -> str:
    """A readable name: the weight's parameter path without the layer prefix, or the attention matmul's part."""
    if record.weights:
        w = record.weights[0]
        for cut in ("albert_layers.0.", "encoder.encoder.", "encoder."):
            if cut in w:
                w = w.split(cut, 1)[1]
                break
        return w.removesuffix(".weight")
    return ("attention.scores (Q.K^T)", "attention.context (P.V)")[index_in_layer % 2]


def _internal_operands(idx: int, group: Any, nodes: Any, producer: dict[str, int],
                       consumers: dict[str, list[int]]) -> tuple[str, ...]:
    """zigzag operands of matmul node ``idx`` that stay inside its fusion ``group`` (never reach SRAM): an input
    made by a charged stage of the group (not through view/folded nodes from a group input), an output that
    reaches no group output through view/folded nodes alone."""
    roles = {op.node: op.role for op in group.ops}

    def passes(i: int) -> bool:
        return nodes[i].op_type in VIEW_OPS or roles.get(i) == "folded"

    def made_inside(t: str) -> bool:
        for _ in range(64):
            p = producer.get(t)
            if p is None or p not in roles or p == idx:
                return False
            if not passes(p):
                return True
            t = nodes[p].input[0]
        return False

    out = [op for op, t in zip(("I", "W"), [i for i in nodes[idx].input if i][:2], strict=False) if made_inside(t)]
    t = nodes[idx].output[0]
    for _ in range(64):
        if t in group.outputs:
            break
        nxt = [c for c in consumers.get(t, []) if c in roles and passes(c)]
        if not nxt:
            out.append("O")
            break
        t = nodes[nxt[0]].output[0]
    return tuple(out)


def matmul_nodes(records: list, graph: onnx.ModelProto, shapes: dict[str, tuple[int, ...]],
                 weights: dict[str, Any], act_bits: int, fusion: Any = None) -> list[MatmulNode]:
    """Our matmul records with their zigzag shapes (from the graph node and the probed shapes) and, given the
    model's ``fusion`` groups, the operands each keeps inside its group."""
    by_name = {(n.name or f"{n.op_type}_{i}"): n for i, n in enumerate(graph.graph.node)}
    index = {(n.name or f"{n.op_type}_{i}"): i for i, n in enumerate(graph.graph.node)}
    producer = {o: n for n in graph.graph.node for o in n.output}
    producer_idx = {o: i for i, n in enumerate(graph.graph.node) for o in n.output if o}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(graph.graph.node):
        for t in n.input:
            consumers.setdefault(t, []).append(i)
    groups = {g.name: g for g in fusion.groups} if fusion is not None else {}

    def source(name: str) -> str:
        while name in producer and producer[name].op_type in VIEW_OPS:
            name = producer[name].input[0]
        return name

    out: list[MatmulNode] = []
    act_matmuls = 0
    for r in records:
        if r.kind != "matmul":
            continue
        node = by_name.get(r.node)
        if node is None:
            raise ConfigError(f"xcheck: record {r.node!r} names no node of the graph")
        a, b, y = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
        if node.op_type == "Gemm":
            attrs = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
            rows, inner = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
            cols = b[0] if attrs.get("transB", 0) else b[1]
            batch = 1
        else:
            rows, inner, cols = a[-2], a[-1], b[-1]
            batch = math.prod(y) // (rows * cols)
        wname = source(node.input[1])
        w = weights.get(wname)
        if w is None:
            level, wbits, density, is_act = "sram", act_bits, 1.0, True
            role = _role(r, act_matmuls)
            act_matmuls += 1
        else:
            level = "rram_mlc" if w.place == "rram" else "sram"
            wbits, density, is_act = w.bits, (w.nnz / w.numel if w.numel else 1.0), False
            role = _role(r, 0)
        bias_bits, bias_level = 0.0, "sram"
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            bw = weights.get(source(node.input[2]))
            if bw is not None:
                bias_bits = float(bw.nnz * bw.bits if bw.place == "rram" else bw.numel * bw.bits)
                bias_level = "rram_mlc" if bw.place == "rram" else "sram"
        mm = Matmul(role, batch if is_act else 1, rows * (1 if is_act else batch), inner, cols, level, act_bits,
                    wbits, weight_is_activation=is_act, nodes=(r.node,))
        group = groups.get(getattr(r, "group", ""))
        internal = (_internal_operands(index[r.node], group, graph.graph.node, producer_idx, consumers)
                    if group is not None else ())
        out.append(MatmulNode(r, mm, density, bias_bits, bias_level, internal))
    return out


def matmul_group(nodes: list[MatmulNode]) -> dict[str, list[MatmulNode]]:
    groups: dict[str, list[MatmulNode]] = {}
    for n in nodes:
        m = n.matmul
        key = f"{m.name} {m.batch}x{m.rows}x{m.inner}x{m.cols}"
        groups.setdefault(key, []).append(n)
    return groups


def shape_key(m: Matmul) -> tuple:
    return (m.batch, m.rows, m.inner, m.cols, m.weight_level, m.act_bits, m.weight_bits, m.weight_is_activation)
