"""The stage plan of a graph: each fusion group's charged stages with their operands classified, found once.

A fusion group (:mod:`edgemti.hwmodel.fusion`) charges one stage per op of role ``matmul``, ``gather`` or
``sfu:<kind>``; a folded node joins the stage before it (:func:`group_stages`). For each stage the plan records
what does not change with (task, S, B): its node, inputs and output, Gemm's transposes, and each operand classed
as a named weight (``"w"``), an activation the group reads from SRAM (``"sram"``), a float graph input or
initializer no manifest tensor names, read from SRAM like an activation (``"u"``: usually a weight the exporter
folded under a new name), or nothing to read (``""``: a value inside the group, or one the stage already read);
the other weights it reads (bias, gamma/beta), the other SRAM activations, and the group outputs it writes. An operand made by a folded node of the stage (a scale on Q) is
that node's activation input.

:func:`plan_stages` caches the plan on the :class:`~edgemti.hwmodel.fusion.Fusion` per set of weight names;
:mod:`edgemti.hwmodel.graph` then only multiplies shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import onnx
from onnx import helper

from edgemti.hwmodel.fusion import FusedGroup, Fusion, GroupOp
from edgemti.hwmodel.fusion_graph import MATMUL_OPS, node_name


class ChargedWeight(Protocol):
    """What charging reads of a weight (:class:`edgemti.hwmodel.workload.WeightInfo` has these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def numel(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def bits(self) -> int: ...
    @property
    def place(self) -> str: ...


def count_elements(shape: tuple[int, ...]) -> int:
    """Elements of a tensor of ``shape`` (a scalar's ``()``: 1)."""
    return int(math.prod(shape)) if shape else 1


def group_stages(group: FusedGroup) -> list[tuple[GroupOp, list[int]]]:
    """(charged op, its nodes): a folded node joins the charged op before it in the group (the first if none)."""
    out: list[tuple[GroupOp, list[int]]] = []
    pending: list[int] = []
    for o in group.ops:
        if o.role == "folded":
            (out[-1][1] if out else pending).append(o.node)
        else:
            out.append((o, [*pending, o.node]))
            pending = []
    if pending and out:
        out[0][1].extend(pending)
    return out


@dataclass(frozen=True)
class Stage:
    """What charging needs of one stage, found once per graph (shapes and weights vary per call)."""

    node: int
    name: str
    op_type: str
    role: str
    group: str
    group_kind: str
    ins: tuple[str, ...]  # the node's (non-empty) inputs
    out: str  # its first output
    trans: tuple[int, int]  # Gemm transA, transB
    a_ops: tuple[tuple[str, str], ...]  # matmul A / gather table: (source, "w" | "sram" | "u" unnamed weight | "")
    b_ops: tuple[tuple[str, str], ...]  # matmul B
    other_weights: tuple[str, ...]  # bias, gamma/beta: once per row tile
    other_sram: tuple[str, ...]  # other activations read from SRAM (once)
    writes: tuple[str, ...]  # group outputs this stage writes to SRAM


def plan_stages(model: onnx.ModelProto, fusion: Fusion, weights: Mapping[str, ChargedWeight], float_tensors: set[str],
          shapes: dict[str, tuple[int, ...]]) -> tuple[Stage, ...]:
    """The stages of ``fusion`` with their operands classified (cached on the Fusion per weight-name set)."""
    key = frozenset(weights)
    if key in fusion.plans:
        return fusion.plans[key]
    nodes = model.graph.node
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    # float inputs/initializers no manifest tensor names (a legacy export's folded weights): SRAM reads per use
    unmatched = {t for t in float_tensors if t not in producer and t not in weights and count_elements(shapes.get(t, ())) > 1}

    def through(srcs: tuple[str, ...], members: list[int]) -> tuple[str, ...]:
        """An operand made by a folded node of the stage (a scale on Q) is that node's activation input."""
        out = []
        for s in srcs:
            p = producer.get(s)
            if p is not None and p in members and nodes[p].op_type not in MATMUL_OPS:
                ins = [x for t in nodes[p].input if t for x in fusion.sources.get(t, (t,)) if x in float_tensors
                       and x not in weights and x in producer]
                out.extend(ins[:1] or [s])
            else:
                out.append(s)
        return tuple(out)

    stages = []
    for group in fusion.groups:
        sram = set(group.inputs) | unmatched
        for op, members in group_stages(group):
            node = nodes[op.node]
            ins = tuple(i for i in node.input if i)
            read: list[str] = []

            def classify(srcs: tuple[str, ...], read: list[str] = read, sram: set[str] = sram,
                         group: FusedGroup = group) -> tuple:
                out = []
                for x in srcs:
                    if x in weights:
                        out.append((x, "w"))
                    elif x in sram and x not in read:
                        read.append(x)
                        out.append((x, "sram" if x in group.inputs else "u"))  # u: an unnamed weight
                    else:
                        out.append((x, ""))
                return tuple(out)

            a_ops: tuple = ()
            b_ops: tuple = ()
            if op.role == "matmul":
                a_ops = classify(through(fusion.sources.get(ins[0], (ins[0],)), members))
                b_ops = classify(through(fusion.sources.get(ins[1], (ins[1],)), members))
            elif op.role == "gather":
                a_ops = tuple((x, "w") for x in fusion.sources.get(ins[0], (ins[0],))[:1] if x in weights)
            other_w: list[str] = []
            for i in members:
                for t in nodes[i].input:
                    for x in fusion.sources.get(t, (t,)) if t else ():
                        if i == op.node and op.role in ("matmul", "gather") and t in nodes[i].input[:2]:
                            continue  # the operands, above
                        if x in weights:
                            other_w.append(x)
                        elif x in sram and x not in read:
                            read.append(x)
            n_ops = len([x for x, w in (*a_ops, *b_ops) if w in ("sram", "u")])
            writes = tuple(o for i in members for o in nodes[i].output if o in group.outputs)
            attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute} if node.op_type == "Gemm" else {}
            stages.append(Stage(op.node, node_name(model, op.node), node.op_type, op.role, group.name, group.kind,
                                 ins, node.output[0], (int(attrs.get("transA", 0)), int(attrs.get("transB", 0))),
                                 a_ops, b_ops, tuple(other_w), tuple(read[n_ops:]), writes))
    fusion.plans[key] = tuple(stages)
    return fusion.plans[key]
