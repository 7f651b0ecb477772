"""Per-operation action counts derived from an ONNX graph's nodes and concrete shapes.

Nothing here knows ALBERT: any exported encoder is charged node by node. Shapes come from
:mod:`edgemti.hwmodel.shapes` (inferred once per graph, symbolically in the batch and the sequence length); the
stages and their operands' classes from :mod:`edgemti.hwmodel.stage_plan` (found once per graph). This module
counts each stage at the shapes of a (task, S, B) and prices the counts (:func:`price_charges`).

Weights are graph inputs or initializers named like the manifest's tensors (the PyTorch parameter names).
A weight reached through layout-only nodes (Transpose, Reshape, Cast, ...) is charged where it is *consumed*,
on every use: ALBERT's shared layer is read from RRAM twelve times per inference. Backbone tensors live in
RRAM (non-zero values in MLC at the value width, one mask bit per element in SLC, one 16-bit mask word per
16-element vector decoded); task tensors and activations live in SRAM. Traffic model: compulsory (each
operand read once per op, each output written once), documented in docs/HWMODEL.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import onnx

from edgemti.errors import ConfigError
from edgemti.hwmodel.cost import ActionCounts, Cost, price
from edgemti.hwmodel.fusion import Fusion, fuse
from edgemti.hwmodel.fusion_graph import VIEW_OPS
from edgemti.hwmodel.macros import LevelProvision
from edgemti.hwmodel.shapes import GraphShapes
from edgemti.hwmodel.spec import ArchSpec
from edgemti.hwmodel.stage_plan import ChargedWeight, count_elements, plan_stages
from edgemti.hwmodel.tiling import tile_matmul, working_set_bytes
from edgemti.hwmodel.workload import WeightInfo

log = logging.getLogger(__name__)

__all__ = ["OpCharge", "activation_working_set_bytes", "charge_graph", "price_charges", "unmatched_weights",
           "weight_views"]


@dataclass(frozen=True)
class OpCharge:
    """Action counts of one charged stage of a fusion group (before pricing).

    ``counts`` is everything the stage does; ``prologue`` the part of it (reads) that happens before the first
    tile can start (priced serially); ``overlap``: the rest of the stage's memory traffic overlaps its compute.
    """

    node: str  # the stage's anchor node
    op_type: str
    kind: str  # matmul | gather | sfu:<kind>
    macs: int
    counts: ActionCounts
    weights: tuple[str, ...] = ()
    group: str = ""  # the fusion group's name (its anchor node)
    group_kind: str = ""  # matmul | attention | adapter | gelu | add_layernorm | gather | sfu
    tiles: int = 0  # scratchpad tiles of a matmul stage
    overlap: bool = False
    prologue: ActionCounts | None = None
    buffer_bytes: tuple[tuple[str, int], ...] = ()  # (buffer level, bytes this stage holds in it): its working set


def weight_views(model: onnx.ModelProto, weights: set[str]) -> set[str]:
    """The weight names plus every tensor that is a layout-only view of a weight (e.g. its Transpose)."""
    out = set(weights)
    for n in model.graph.node:  # graph order is topological
        if n.op_type in VIEW_OPS and n.input and n.input[0] in out:
            out.update(o for o in n.output if o)
    return out


def _stream_bits(w: ChargedWeight) -> int:
    """Bits one pass over a weight moves: non-zeros + mask bits from RRAM, or the dense values from SRAM."""
    return w.nnz * w.bits + w.numel if w.place == "rram" else w.numel * w.bits


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
    """Bits moved per level by one stage, and the weights it used (once per use)."""

    def __init__(self, vec: int) -> None:
        self.vec = vec
        self.read: dict[str, float] = {}
        self.write: dict[str, float] = {}
        self.decode = 0.0
        self.used: list[str] = []

    def read_weight(self, w: ChargedWeight, fraction: float = 1.0) -> None:
        self.used.append(w.name)
        if w.place == "rram":  # non-zeros from MLC, one mask bit per element from SLC, one mask word per vector
            _add(self.read, "rram_mlc", w.nnz * w.bits * fraction)
            _add(self.read, "rram_slc", w.numel * fraction)
            self.decode += math.ceil(w.numel / self.vec) * fraction
        else:
            _add(self.read, "sram", w.numel * w.bits * fraction)


def charge_graph(model: onnx.ModelProto, shapes: GraphShapes, weights: Mapping[str, ChargedWeight], spec: ArchSpec,
                 precision: str, act_bits: int, fusion: Fusion | None = None,
                 act_precision: str | None = None) -> list[OpCharge]:
    """One :class:`OpCharge` per charged stage of every fusion group, in execution order.

    ``fusion``: the graph's groups (:func:`edgemti.hwmodel.fusion.fuse`; computed here when not given).
    Activations a group reads or writes outside itself move through SRAM (at ``act_bits``); inside a group
    they stay in the scratchpad and accumulators. Matmul operands stream as :mod:`edgemti.hwmodel.tiling`
    dictates (each re-read counted). ``act_precision``: the MAC-energy key SFU work is priced at (the
    activations' precision; default ``precision``).
    """
    if fusion is None:
        fusion = fuse(model, set(weights), ())
    shp = shapes.shapes
    vec = spec.pe_array.vector
    sram_act = spec.execution.sram_activations
    buf = spec.spad_a.capacity_bytes
    acc_bits = min(32, 2 * act_bits)  # partial sums: EdgeBERT accumulates 8-bit operands in 16 bits
    dbuf = spec.scratchpad.double_buffered
    bufs = spec.execution.price_buffers  # the PE array's buffers as levels (else the v2 accounting: spill in SRAM)
    spill_level = "psum" if bufs else "sram"
    out: list[OpCharge] = []
    # a stage's counts depend only on its kind, its operands' classes and weights and the shapes it touches: equal
    # stages (ALBERT's 12 passes over one shared layer) are counted once
    memo: dict[tuple, tuple] = {}
    for st in plan_stages(model, fusion, weights, shapes.float_tensors, shp):
        key = (st.op_type, st.role, st.trans, tuple((x if w == "w" else w) for x, w in st.a_ops),
               tuple((x if w == "w" else w) for x, w in st.b_ops), st.other_weights,
               tuple(shp.get(t) for t in st.ins), shp.get(st.out), tuple(shp.get(t) for t in st.writes),
               tuple(shp.get(t) for t in st.other_sram), tuple(shp.get(x) for x, _ in (*st.a_ops, *st.b_ops)))
        hit = memo.get(key)
        if hit is not None:
            out.append(OpCharge(st.name, st.op_type, st.role, hit[0], hit[1], hit[2], group=st.group,
                                group_kind=st.group_kind, tiles=hit[3], overlap=hit[4], prologue=hit[5],
                                buffer_bytes=hit[6]))
            continue
        acc = _Traffic(vec)
        read, write = acc.read, acc.write
        macs = 0
        gated = 0.0
        pe_cycles = 0.0
        sfu_cycles: dict[str, float] = {}
        sfu_elems: dict[str, float] = {}
        prologue: dict[str, float] = {}
        tiles = 0
        b_passes = 1
        held: tuple[tuple[str, int], ...] = ()

        def sram(t: str, times: float = 1.0, read: dict[str, float] = read) -> None:
            if sram_act:
                _add(read, "sram", count_elements(shp.get(t, ())) * act_bits * times)

        if st.role == "matmul":
            a, b = shp[st.ins[0]], shp[st.ins[1]]
            y = shp[st.out]
            if st.op_type == "Gemm":
                n0, m = (a[1], a[0]) if st.trans[0] else (a[0], a[1])
                n1 = b[0] if st.trans[1] else b[1]
                batch = 1
            else:
                if len(a) < 2 or len(b) < 1:
                    raise ConfigError(f"graph node {st.name}: MatMul operand shapes {a} x {b} not supported")
                m, n1 = a[-1], (b[-1] if len(b) >= 2 else 1)
                if len(b) <= 2:  # a weight-like B: every row of A (all batch elements) shares it
                    n0, batch = count_elements(a) // max(1, m), 1
                else:
                    n0 = a[-2]
                    batch = count_elements(y) // max(1, n0 * n1)
            macs = int(batch * n0 * m * n1)
            b_bits = float(sum(_stream_bits(weights[x]) if w == "w" else m * n1 * act_bits for x, w in st.b_ops))
            b_elem = max((weights[x].bits if w == "w" else act_bits for x, w in st.b_ops), default=act_bits)
            til = tile_matmul(batch, n0, m, n1, act_bits, b_bits, acc_bits, buf, vec, b_elem,
                              spec.spad_b.capacity_bytes, spec.psum.capacity_bytes if bufs and sram_act else 0)
            tiles, b_passes = til.tiles, til.b_passes
            pe_cycles = batch * math.ceil(n0 / vec) * math.ceil(n1 / vec) * m / spec.pe_array.utilization
            pe_cycles += spec.pe_array.fill_cycles
            for x, w in st.a_ops:
                if w == "w":
                    acc.read_weight(weights[x])
                elif w:
                    sram(x)
                    if sram_act and dbuf and w == "sram":  # the first tile loads before any compute
                        prologue["sram"] = prologue.get("sram", 0.0) + til.tile_rows * til.tile_k * act_bits
            for x, w in st.b_ops:
                if w == "w":
                    bw = weights[x]
                    acc.read_weight(bw, b_passes)
                    if bw.place == "rram" and bw.numel:
                        gated += macs * _gated_fraction(spec, bw.nnz / bw.numel)
                elif w:
                    sram(x, b_passes)
            if sram_act and til.partial_sum_passes:
                spill = count_elements(y) * acc_bits * til.partial_sum_passes
                _add(read, spill_level, spill)
                _add(write, spill_level, spill)
            if bufs:
                # the datapath reads one vector of each operand per cycle of a 16 x 16 x 16 block
                # (EdgeBERT InputSetup ReadReqRun0/1: _N0 x _N1 x M vectors each), at each operand's width
                vectors = batch * math.ceil(n0 / vec) * math.ceil(n1 / vec) * m
                _add(read, "spad_a", vectors * vec * act_bits)
                _add(read, "spad_b", vectors * vec * b_elem)
                _add(write, "spad_a", batch * n0 * m * act_bits)  # A loads once in all (tiling loop order)
                _add(write, "spad_b", batch * m * n1 * b_elem * b_passes)  # decoded B, once per row tile
                held = (("spad_a", math.ceil(til.tile_rows * til.tile_k * act_bits / 8)),
                        ("spad_b", math.ceil(til.tile_k * min(n1, vec) * b_elem / 8)),
                        ("psum", math.ceil(til.tile_rows * n1 * acc_bits / 8) if sram_act and til.partial_sum_passes
                         else 0))
        elif st.role == "gather":
            for x, _ in st.a_ops:
                tw = weights[x]
                rows = count_elements(shp.get(st.ins[1], ()))
                acc.read_weight(tw, min(1.0, rows * count_elements(shp.get(st.ins[0], ())[1:]) / max(1, tw.numel)))
        else:
            sfu = st.role.split(":", 1)[1]
            y = shp[st.out]
            elems = count_elements(y)
            inner = y[-1] if y else 1
            vectors = (elems // max(1, inner)) * math.ceil(inner / vec)
            sfu_cycles[sfu] = vectors * spec.sfu.cycles_per_vector[sfu]
            sfu_elems[sfu] = float(elems)
        for x in st.other_weights:
            acc.read_weight(weights[x], b_passes)
        for x in st.other_sram:
            sram(x)
        if sram_act:
            for o in st.writes:
                _add(write, "sram", count_elements(shp[o]) * act_bits)
        counts = ActionCounts(
            read_bits=read, write_bits=write,
            macs={precision: macs} if macs else {}, gated_macs={precision: gated} if gated else {},
            pe_cycles=pe_cycles, sfu_cycles=sfu_cycles, sfu_elements=sfu_elems,
            sfu_precision=(act_precision or precision) if sfu_elems else "",
            bitmask_decode_vectors=acc.decode,
        )
        pro = ActionCounts(read_bits=prologue) if prologue else None
        memo[key] = (macs, counts, tuple(acc.used), tiles, st.role == "matmul" and dbuf, pro, held)
        out.append(OpCharge(
            st.name, st.op_type, st.role, macs, counts, tuple(acc.used), group=st.group, group_kind=st.group_kind,
            tiles=tiles, overlap=st.role == "matmul" and dbuf, prologue=pro, buffer_bytes=held))
    return out


def price_charges(charges: list[OpCharge], spec: ArchSpec, levels: dict[str, LevelProvision]) -> list[Cost]:
    """Cost of each charge. A double-buffered stage takes max(compute, memory) after its prologue (the first
    tile's load, serial); the rest take compute + memory unless ``execution.overlap`` makes every unit overlap.
    Equal counts price once (a shared layer's passes repeat the same stages)."""
    overlapped = dataclasses.replace(spec, execution=dataclasses.replace(spec.execution, overlap=True))
    memo: dict[tuple, Cost] = {}

    def priced(counts: ActionCounts, sp: ArchSpec, over: bool) -> Cost:
        key = (over, *(tuple(sorted(v.items())) if isinstance(v, dict) else v
                       for v in (getattr(counts, f.name) for f in dataclasses.fields(counts))))
        if key not in memo:
            memo[key] = price(counts, sp, levels)
        return memo[key]

    out = []
    for ch in charges:
        if ch.overlap and not spec.execution.overlap:
            if ch.prologue is not None:
                out.append(priced(ch.prologue, spec, False)
                           + priced(_minus(ch.counts, ch.prologue), overlapped, True))
            else:
                out.append(priced(ch.counts, overlapped, True))
        else:
            out.append(priced(ch.counts, spec, False))
    return out


def _minus(counts: ActionCounts, part: ActionCounts) -> ActionCounts:
    """``counts`` less the reads of ``part`` (a prologue holds reads only)."""
    reads = {k: max(0.0, v - part.read_bits.get(k, 0.0)) for k, v in counts.read_bits.items()}
    return dataclasses.replace(counts, read_bits=reads)


def unmatched_weights(model: onnx.ModelProto, shapes: GraphShapes, weights: dict[str, WeightInfo],
                      data_inputs: tuple[str, ...]) -> list[str]:
    """Float graph inputs / initializers with more than 1024 elements that no manifest tensor names.

    They are usually weights the exporter constant-folded under a new name (e.g. a transposed ``val_46``);
    the model then charges them as activations in SRAM, which under-counts RRAM traffic. Export with the
    parameters as named graph inputs (docs/FORMATS.md) to avoid it.
    """
    names = [i.name for i in model.graph.input] + [i.name for i in model.graph.initializer]
    return [n for n in names if n not in weights and n not in data_inputs and n in shapes.float_tensors
            and count_elements(shapes.shapes.get(n, ())) > 1024]


def activation_working_set_bytes(fusion: Fusion, shapes: GraphShapes, act_bits: int) -> int:
    """SRAM bytes the activations need: the peak of the tensors alive between fusion groups at ``act_bits``
    (:func:`edgemti.hwmodel.tiling.working_set_bytes`); a group's inner tensors stay in the scratchpad."""
    sched = [(g.inputs, g.outputs) for g in fusion.groups]
    sizes = {t: math.ceil(count_elements(shapes.shapes.get(t, ())) * act_bits / 8) for g in fusion.groups
             for t in (*g.inputs, *g.outputs)}
    return working_set_bytes(sched, sizes)
