"""Fusion groups: which ONNX nodes the accelerator runs as one pass, recognised by pattern, not by name.

EdgeBERT does not run an exported graph node by node: a matmul's bias is its accumulator's initial value, its
activation runs on the output stream, a tanh- or erf-GELU is one SFU op however many nodes the exporter wrote
for it, the attention scale and mask are applied by the softmax unit. A :class:`FusedGroup` is such a pass; the
tensors inside it live in the PE array's scratchpad and accumulators, only its inputs and outputs touch SRAM.

Patterns (each works on graphs from the dynamo exporter and the legacy TorchScript one):

* ``matmul``: MatMul/Gemm (+ bias Add) (+ activation: Gelu/Relu/Tanh/Sigmoid or a GELU chain);
* ``gelu``: a tanh-GELU (Pow/Mul/Add/Tanh/...) or erf-GELU (Div/Erf/Add/Mul) chain alone: ONE SFU op;
* ``attention``: (scale) Q.K^T (+ scale) (+ mask Add) + Softmax (+ the exporter's all-masked-row cleanup);
* ``add_layernorm``: residual Add + LayerNormalization;
* ``adapter``: down matmul (+ act) + up matmul + skip Add (the Add's other operand is the down input);
* ``lora``: a base matmul (+ bias) and the unmerged LoRA path on its input, ``x.A`` matmul -> ``.B`` matmul
  (-> scale Mul by a constant) -> Add onto the base output: the scale and the Add fold into the B matmul's
  accumulation onto the base accumulators, ``x.A`` ([tokens x rank]) stays in the scratchpad;
* anything else: one group per node (``gather``, ``sfu``).

Nodes that cost nothing fold away: layout-only nodes (Transpose, Reshape, ...; they fold into their consumer,
which reads the layout node's source), nodes computing only from constants (folded at compile time), and
control nodes whose outputs do not depend on any weight (shape arithmetic, the attention mask built from
``attention_mask``: the softmax unit applies it). Compute nodes of op types the model does not know become
``sfu`` groups of kind ``other`` and are listed in :attr:`Fusion.unknown` by node name. The op-type classes,
the tensor natures and the dataflow view the patterns match on are :mod:`edgemti.hwmodel.fusion_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from edgemti.hwmodel.fusion_graph import (
    ACT,
    ACTIVATION_OPS,
    CONST,
    ELEMENTWISE_OPS,
    MATMUL_OPS,
    SFU_OF_OP,
    DataflowGraph,
    node_name,
)

GROUP_KINDS = ("matmul", "attention", "adapter", "lora", "gelu", "add_layernorm", "gather", "sfu")
# what a node does inside its group; "folded" = free (bias into the accumulator, scale/mask into softmax, ...)
ROLES = ("matmul", "gather", "folded", *(f"sfu:{k}" for k in ("layernorm", "softmax", "gelu", "elementwise", "other")))


@dataclass(frozen=True)
class GroupOp:
    """One node of a group and its role: a charged stage (``matmul``, ``gather``, ``sfu:<kind>``) or ``folded``."""

    node: int  # index in graph.node
    role: str


@dataclass(frozen=True)
class FusedGroup:
    """Nodes the accelerator runs as one pass; ``inputs``/``outputs``: the activations it reads from / writes to
    SRAM (everything else stays in the scratchpad and accumulators)."""

    name: str  # the anchor node's name
    kind: str  # one of GROUP_KINDS
    ops: tuple[GroupOp, ...]  # graph order
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(o.node for o in self.ops)


@dataclass(frozen=True)
class Fusion:
    """The fusion groups of a graph, in execution order, and what folded away."""

    groups: tuple[FusedGroup, ...]
    folded: tuple[int, ...]  # layout / constant / control nodes: no charge
    unknown: tuple[tuple[str, str], ...]  # (op_type, node name) of compute nodes the model does not know
    sources: dict[str, tuple[str, ...]]  # tensor -> the compute-produced (or input) tensors it is a layout view of
    plans: dict = field(default_factory=dict, compare=False, repr=False)  # charging's per-graph cache (graph.py)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.groups:
            out[g.kind] = out.get(g.kind, 0) + 1
        return out


def _gelu_region(g: DataflowGraph, t_idx: int, taken: set[int]) -> tuple[list[int], str] | None:
    """The elementwise nodes of a GELU chain around the Tanh/Erf node ``t_idx``: (nodes, output tensor)."""
    nodes = g.nodes

    def elementwise(i: int) -> bool:
        return (i not in taken and i not in g.layout and nodes[i].op_type in ELEMENTWISE_OPS
                and not g.weight_inputs(i) and g.nature.get(g.out(i)) == ACT)

    # backwards: the root is the one activation every path from the Tanh/Erf leads back to
    anc: set[int] = set()
    roots: set[str] = set()
    stack = [t_idx]
    while stack:
        i = stack.pop()
        if i in anc:
            continue
        anc.add(i)
        for s in g.act_inputs(i):
            p = g.producer.get(s)
            if p is not None and elementwise(p) and len(anc) < 16:
                stack.append(p)
            else:
                roots.add(s)
    if len(roots) != 1:
        return None
    (root,) = roots
    # forwards: while the chain stays elementwise, single-consumer and fed only by the root's descendants
    region = set(anc)
    cur = t_idx
    for _ in range(8):
        c = g.sole_consumer(g.out(cur))
        if c is None or not elementwise(c):
            break
        others = [s for s in g.act_inputs(c) if s != g.out(cur)]
        ok = True
        for s in others:
            if s == root:
                continue
            p = g.producer.get(s)
            if p is None or not elementwise(p) or not all(x == root for x in g.act_inputs(p)):
                ok = False
                break
            region.add(p)
        if not ok:
            break
        region.add(c)
        cur = c
    # the root's elementwise consumers that feed the region belong to it (the 0.5*x branch)
    out = g.out(cur)
    inside = {g.out(i) for i in region} | {root}
    if any(s not in inside for i in region for s in g.act_inputs(i)):
        return None
    if any(c not in region for i in region if i != cur for c in g.consumers.get(g.out(i), [])):
        return None  # an intermediate escapes the chain: not a GELU
    return sorted(region), out


def fuse(model: onnx.ModelProto, weights: set[str], data_inputs: tuple[str, ...]) -> Fusion:
    """Fusion groups of ``model`` (``weights``: names of the weight tensors; see the module docstring)."""
    g = DataflowGraph(model, weights, data_inputs)
    nodes = g.nodes
    folded: list[int] = []
    compute: list[int] = []
    for i, n in enumerate(nodes):
        outs = [o for o in n.output if o]
        if i in g.layout or not outs or all(g.nature.get(o, CONST) < ACT for o in outs):
            folded.append(i)  # layout, constant-only or control (no weight-derived output)
        else:
            compute.append(i)
    taken: set[int] = set()
    ops: dict[int, list[GroupOp]] = {}  # anchor -> ops
    kinds: dict[int, str] = {}

    # GELU chains first: matmul groups absorb them as their activation
    gelu_of_root: dict[str, tuple[list[int], int]] = {}
    for i in compute:
        if nodes[i].op_type in ("Tanh", "Erf") and i not in taken:
            found = _gelu_region(g, i, taken)
            if found is None or len(found[0]) < 3:
                continue
            region, out = found
            anchor = g.producer[out]
            roots = {s for r in region for s in g.act_inputs(r)} - {g.out(r) for r in region}
            taken.update(region)
            gelu_of_root[next(iter(roots))] = (region, anchor)

    def gelu_ops(region: list[int], anchor: int) -> list[GroupOp]:
        return [GroupOp(r, "sfu:gelu" if r == anchor else "folded") for r in region]

    def activation_after(t: str) -> list[GroupOp]:
        if t in gelu_of_root:
            region, anchor = gelu_of_root.pop(t)
            return gelu_ops(region, anchor)
        c = g.sole_consumer(t)
        if c is not None and c not in taken and nodes[c].op_type in ACTIVATION_OPS:
            taken.add(c)
            return [GroupOp(c, "sfu:gelu")]
        return []

    for i in compute:  # attention before the rest: it takes the Q/K scale nodes that precede it
        if nodes[i].op_type in MATMUL_OPS and not g.weight_inputs(i) and len(g.act_inputs(i)) >= 2:
            att = _attention(g, i, taken)
            if att is not None:
                taken.add(i)
                ops[att[0].node], kinds[att[0].node] = att, "attention"
    for i in compute:
        if i in taken:
            continue
        op = nodes[i].op_type
        if op in MATMUL_OPS:
            taken.add(i)
            grp = [GroupOp(i, "matmul")]
            t = g.out(i)
            c = g.sole_consumer(t)
            if (c is not None and c not in taken and nodes[c].op_type == "Add" and g.weight_inputs(c)
                    and len(g.act_inputs(c)) == 1):
                taken.add(c)
                grp.append(GroupOp(c, "folded"))  # bias: the accumulators start from it
                t = g.out(c)
            grp += activation_after(t)
            ops[i], kinds[i] = grp, "matmul"
        elif op == "Add" and len(g.act_inputs(i)) == 2:
            c = g.sole_consumer(g.out(i))
            if c is not None and c not in taken and nodes[c].op_type in ("LayerNormalization",
                                                                          "SimplifiedLayerNormalization"):
                taken.update((i, c))
                ops[i], kinds[i] = [GroupOp(i, "sfu:elementwise"), GroupOp(c, "sfu:layernorm")], "add_layernorm"
                continue
            taken.add(i)
            ops[i], kinds[i] = [GroupOp(i, "sfu:elementwise")], "sfu"
        else:
            taken.add(i)
            if op == "Gather":
                ops[i], kinds[i] = [GroupOp(i, "gather")], "gather"
            else:
                ops[i], kinds[i] = [GroupOp(i, f"sfu:{SFU_OF_OP.get(op, 'other')}")], "sfu"
    for region, anchor in gelu_of_root.values():  # GELU chains no matmul absorbed
        ops[region[0]], kinds[region[0]] = gelu_ops(region, anchor), "gelu"
    _merge_adapters(g, ops, kinds)
    _merge_lora(g, ops, kinds)

    groups = []
    for anchor in sorted(ops):
        gops = tuple(sorted(ops[anchor], key=lambda o: o.node))
        groups.append(_group(g, node_name(model, anchor), kinds[anchor], gops))
    unknown = tuple((nodes[o.node].op_type, node_name(model, o.node)) for grp in groups for o in grp.ops
                    if o.role == "sfu:other")
    srcs = {t: g.sources(t) for n in nodes for t in n.input if t}
    return Fusion(tuple(groups), tuple(folded), unknown, srcs)


def _attention(g: DataflowGraph, mm: int, taken: set[int]) -> list[GroupOp] | None:
    """Q.K^T (``mm``) on to its Softmax through scale (Mul/Div by a constant) and mask (Add of a non-activation)."""
    nodes = g.nodes
    chain: list[GroupOp] = []
    t = g.out(mm)
    for _ in range(6):
        c = g.sole_consumer(t)
        if c is None or c in taken:
            return None
        op = nodes[c].op_type
        acts = g.act_inputs(c)
        if op == "Softmax":
            chain.append(GroupOp(c, "sfu:softmax"))
            t = g.out(c)
            break
        if op in ("Mul", "Div", "Add", "Sub") and acts == [t] and not g.weight_inputs(c):
            chain.append(GroupOp(c, "folded"))  # scale / mask: applied by the softmax unit
            t = g.out(c)
            continue
        return None
    else:
        return None
    # the exporter's cleanup of all-masked rows: Where(IsNaN(p), 0, p) -> the softmax unit's job
    c = g.sole_consumer(t)
    if c is not None and c not in taken and nodes[c].op_type == "Where" and g.act_inputs(c) == [t]:
        chain.append(GroupOp(c, "folded"))
    # a scale applied to Q or K before the product (dynamo's sqrt(scale) on both)
    pre = []
    for s in g.act_inputs(mm):
        p = g.producer.get(s)
        if (p is not None and p not in taken and nodes[p].op_type in ("Mul", "Div") and len(g.act_inputs(p)) == 1
                and not g.weight_inputs(p) and g.sole_consumer(s) == mm):
            pre.append(GroupOp(p, "folded"))
    taken.update(o.node for o in (*pre, *chain))
    return [*pre, GroupOp(mm, "matmul"), *chain]


def _merge_adapters(g: DataflowGraph, ops: dict[int, list[GroupOp]], kinds: dict[int, str]) -> None:
    """down matmul (+act) -> up matmul -> Add(up, down's input): one ``adapter`` group."""
    out_of: dict[str, int] = {}  # group output tensor -> anchor
    for a, gops in ops.items():
        for o in gops:
            out_of[g.out(o.node)] = a
    for down in sorted(ops):
        if kinds.get(down) != "matmul":
            continue
        x = g.act_inputs(down)
        if len(x) != 1:
            continue
        d_out = g.out(ops[down][-1].node)
        up = g.sole_consumer(d_out)
        if up is None or up not in ops or kinds.get(up) != "matmul" or up == down:
            continue
        u_out = g.out(ops[up][-1].node)
        add = g.sole_consumer(u_out)
        if add is None or add not in ops or kinds.get(add) != "sfu" or g.nodes[add].op_type != "Add":
            continue
        if sorted(g.act_inputs(add)) != sorted([u_out, x[0]]):
            continue
        ops[down] = [*ops[down], *ops.pop(up), *ops.pop(add)]
        kinds[down] = "adapter"
        kinds.pop(up)
        kinds.pop(add)


def _merge_lora(g: DataflowGraph, ops: dict[int, list[GroupOp]], kinds: dict[int, str]) -> None:
    """base matmul(x) (+bias) and A matmul(x) -> B matmul (-> Mul by a constant) -> Add(base, .): one ``lora`` group
    anchored at the base matmul; the Mul and the Add are folded (the B product accumulates onto the base's)."""
    base_of: dict[tuple[str, str], int] = {}  # (input, output) of a plain matmul group -> its anchor
    for a, gops in ops.items():
        if kinds.get(a) == "matmul" and len(g.act_inputs(a)) == 1:
            base_of[(g.act_inputs(a)[0], g.out(gops[-1].node))] = a
    for la in sorted(ops):
        if kinds.get(la) != "matmul" or len(g.act_inputs(la)) != 1 or len(ops[la]) != 1:
            continue
        x = g.act_inputs(la)[0]
        lb = g.sole_consumer(g.out(la))
        if lb is None or lb == la or kinds.get(lb) != "matmul" or len(ops.get(lb, ())) != 1:
            continue
        t, chain = g.out(lb), []
        c = g.sole_consumer(t)
        if c is not None and kinds.get(c) == "sfu" and g.nodes[c].op_type == "Mul" and g.act_inputs(c) == [t]:
            chain.append(c)
            t = g.out(c)
            c = g.sole_consumer(t)
        if c is None or kinds.get(c) != "sfu" or g.nodes[c].op_type != "Add" or len(g.act_inputs(c)) != 2:
            continue
        other = [s for s in g.act_inputs(c) if s != t]
        base = base_of.get((x, other[0])) if len(other) == 1 else None
        if base is None or base in (la, lb) or kinds.get(base) != "matmul":
            continue
        ops[base] = [*ops[base], *ops.pop(la), *ops.pop(lb),
                     *(GroupOp(o.node, "folded") for n in (*chain, c) for o in ops.pop(n))]
        kinds[base] = "lora"
        for n in (la, lb, *chain, c):
            kinds.pop(n)


def _group(g: DataflowGraph, name: str, kind: str, gops: tuple[GroupOp, ...]) -> FusedGroup:
    inside = {o.node for o in gops}
    produced = {t for i in inside for t in g.nodes[i].output if t}
    ins: list[str] = []
    for i in sorted(inside):
        for s in g.act_inputs(i):
            if s not in produced and s not in ins:
                ins.append(s)
    outs = [t for i in sorted(inside) for t in g.nodes[i].output
            if t and g.nature.get(t) == ACT
            and (t in g.graph_outputs or any(c not in inside for c in g.consumers.get(t, [])))]
    return FusedGroup(name, kind, gops, tuple(ins), tuple(outs))
