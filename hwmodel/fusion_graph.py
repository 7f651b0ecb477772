"""The graph as the fusion sees it: op-type classes, each tensor's nature, dataflow through layout nodes.

Op-type classes (by ONNX type, never by node name): ``LAYOUT_OPS`` move or reinterpret data and cost nothing
(a consumer reads their source); ``VIEW_OPS`` are the layout ops that keep a weight a weight (its Transpose);
``MATMUL_OPS``; ``ACTIVATION_OPS`` a matmul group takes as its activation; ``ELEMENTWISE_OPS`` a GELU chain is made
of; ``SFU_OF_OP`` the SFU kind that runs each compute op.

A tensor's nature, ordered ``CONST < CONTROL < WEIGHT < ACT``: computed from constants only (folded at
compile time), control (ids, masks, shape arithmetic: bool/int outputs), a weight (a named weight, a float
graph input, a float initializer of more than one element, or a layout view of one), an activation (computed
from a weight or a float data input). A node's output takes the largest nature of its inputs, with the
exceptions :func:`tensor_natures` states.

:class:`DataflowGraph` holds the natures and the producer/consumer maps over compute nodes, looking through
layout nodes: ``sources(t)`` are the computed tensors ``t`` is a layout view of. The patterns that group nodes
are :mod:`edgemti.hwmodel.fusion`.
"""

from __future__ import annotations

import math

import onnx

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
ACTIVATION_OPS = frozenset({"Gelu", "FastGelu", "Relu", "Tanh", "Sigmoid"})
ELEMENTWISE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Erf", "Tanh"})
# ops whose outputs are bool/int: control, never an activation
_CONTROL_OPS = frozenset({"IsNaN", "IsInf", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or",
                          "Not", "Xor", "ArgMax", "ArgMin", "NonZero", "TopK"})
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}

# a tensor's nature: what it is computed from (ordered: the max of a node's inputs, see tensor_natures)
CONST, CONTROL, WEIGHT, ACT = 0, 1, 2, 3


def node_name(model: onnx.ModelProto, idx: int) -> str:
    """The name of node ``idx``; ``<op_type>_<idx>`` for an unnamed one."""
    n = model.graph.node[idx]
    return n.name or f"{n.op_type}_{idx}"


class DataflowGraph:
    """Producer/consumer maps over compute nodes, looking through layout nodes."""

    def __init__(self, model: onnx.ModelProto, weights: set[str], data_inputs: tuple[str, ...]) -> None:
        self.model = model
        self.nodes = list(model.graph.node)
        self.nature = tensor_natures(model, weights, data_inputs)
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        # layout: layout ops, and a Gather that selects rows of an activation (the pooler's CLS token)
        self.layout = {i for i, n in enumerate(self.nodes) if n.op_type in LAYOUT_OPS
                       or (n.op_type == "Gather" and self.nature.get(n.input[0]) == ACT)}
        self._src: dict[str, tuple[str, ...]] = {}
        self.consumers: dict[str, list[int]] = {}  # consumers that compute an activation (not control)
        for i, n in enumerate(self.nodes):
            if i in self.layout or all(self.nature.get(o, CONST) < ACT for o in n.output if o):
                continue
            for t in n.input:
                for s in self.sources(t):
                    self.consumers.setdefault(s, []).append(i)
        self.graph_outputs = {o.name for o in model.graph.output}
        for o in list(self.graph_outputs):
            for s in self.sources(o):
                self.graph_outputs.add(s)

    def sources(self, t: str) -> tuple[str, ...]:
        """The non-layout tensors ``t`` is built from by layout nodes only (``t`` itself if computed)."""
        if not t:
            return ()
        if t in self._src:
            return self._src[t]
        stack, out, seen = [t], [], set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            p = self.producer.get(x)
            if p is not None and p in self.layout:
                stack.extend(i for i in self.nodes[p].input if i and self.nature.get(i, CONST) >= WEIGHT)
            elif self.nature.get(x, CONST) >= WEIGHT:
                out.append(x)
        self._src[t] = tuple(dict.fromkeys(out))
        return self._src[t]

    def act_inputs(self, i: int) -> list[str]:
        return [s for t in self.nodes[i].input for s in self.sources(t) if self.nature.get(s) == ACT]

    def weight_inputs(self, i: int) -> list[str]:
        return [s for t in self.nodes[i].input for s in self.sources(t) if self.nature.get(s) == WEIGHT]

    def out(self, i: int) -> str:
        return self.nodes[i].output[0]

    def sole_consumer(self, t: str) -> int | None:
        c = self.consumers.get(t, [])
        return c[0] if len(set(c)) == 1 and t not in self.graph_outputs else None


def tensor_natures(model: onnx.ModelProto, weights: set[str], data_inputs: tuple[str, ...]) -> dict[str, int]:
    """CONST / CONTROL / WEIGHT / ACT of every tensor. Weights: the given names, other float graph inputs and
    float initializers of more than one element (a legacy export's folded ``onnx::MatMul_12``)."""
    nat: dict[str, int] = {}
    for init in model.graph.initializer:
        numel = math.prod(init.dims) if init.dims else 1
        nat[init.name] = WEIGHT if (init.name in weights or (init.data_type in _FLOAT_TYPES and numel > 1)) else CONST
    for i in model.graph.input:
        is_float = i.type.tensor_type.elem_type in _FLOAT_TYPES
        if i.name in data_inputs:  # ids and masks are control; a float data input is an activation from outside
            nat[i.name] = ACT if is_float else CONTROL
        elif i.name not in nat:
            nat[i.name] = WEIGHT if (i.name in weights or is_float) else CONTROL
    for n in model.graph.node:
        ins = [nat.get(t, CONST) for t in n.input if t]
        op = n.op_type
        if op in ("Constant", "ConstantOfShape", "Range"):
            v = CONST if not any(x > CONST for x in ins) else CONTROL
        elif op in ("Shape", "Size") or op in _CONTROL_OPS:
            v = CONTROL if any(x > CONST for x in ins) else CONST
        elif op == "Cast" and _cast_to(n) not in _FLOAT_TYPES:
            v = CONTROL if any(x > CONST for x in ins) else CONST
        elif op in LAYOUT_OPS and op != "Concat":
            v = ins[0] if ins else CONST  # the data operand; shapes/axes/"like" operands only shape it
        else:
            v = max(ins, default=CONST)
            if v == WEIGHT and op != "Concat":
                v = ACT  # computed from a weight: an activation (a Gather of the embeddings, ...)
        for o in n.output:
            if o:
                nat[o] = v
    return nat


def _cast_to(n: onnx.NodeProto) -> int:
    return next((int(a.i) for a in n.attribute if a.name == "to"), onnx.TensorProto.FLOAT)

