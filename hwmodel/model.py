"""``HwModel``: a :class:`Workload` (a build, typed) + its ONNX graph on an architecture spec -> area, energy, latency.

The runtime codes against this class (names kept stable, documented in docs/HWMODEL.md):

* ``HwModel(workload, graph, spec)``; a caller holding a build uses ``edgemti.runtime.workload.hw_model(manifest,
  graph, spec=None)`` (``spec=None``: the shipped spec of the build's design), which makes the ``Workload``;
* ``hw.inference(seq_len, task=None, batch=1) -> InferenceCost`` (cached per (task, seq_len, batch): a repeat
  costs microseconds); a batch of ``batch`` requests runs as one graph execution: activations scale with it,
  each weight is read once per use for the whole batch;
* ``hw.swap(task) -> Cost``: DRAM -> SRAM load of that task's pack; ``hw.price_swap(pack_bytes) -> Cost``;
* ``hw.program_rram() -> ProgramCost``: one-time programming of the RRAM images;
* ``hw.area() -> AreaReport``; ``hw.price(counts) -> Cost`` for counts the runtime records itself.

Placement (hwmodel/workload.py): backbone tensors in RRAM, bitmask-encoded; the active task's pack tensors and
the activations in SRAM; every pack in DRAM. Shapes come from :class:`ShapeInference`, prepared once per graph.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from edgemti.errors import CapacityError
from edgemti.hwmodel.bulk import StageTable, price_stages
from edgemti.hwmodel.cost import ActionCounts, Cost, price
from edgemti.hwmodel.fusion import Fusion, fuse
from edgemti.hwmodel.graph import (
    activation_working_set_bytes,
    charge_graph,
    unmatched_weights,
)
from edgemti.hwmodel.macros import LevelProvision, load_macro_table, provision
from edgemti.hwmodel.shapes import GraphShapes, ShapeInference
from edgemti.hwmodel.spec import BUFFERS, ON_CHIP_LEVELS, PRICED_LEVELS, ArchSpec
from edgemti.hwmodel.workload import Workload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpRecord:
    """One graph node's share of an inference. ``energy_j`` = sum of ``energy_by_component_j``."""

    index: int
    node: str
    op_type: str
    kind: str
    macs: int
    cycles: float  # PE-array + SFU cycles
    bytes_by_level: dict  # level -> bytes read + written
    energy_by_component_j: dict
    energy_j: float
    compute_energy_j: float  # pe_array + sfu + bitmask
    latency_s: float
    start_s: float
    weights: tuple = ()  # weight tensors this node read (each use is charged)
    group: str = ""  # the fusion group this stage belongs to (hwmodel/fusion.py), named by its anchor node
    group_kind: str = ""  # matmul | attention | adapter | gelu | add_layernorm | gather | sfu
    tiles: int = 0  # scratchpad tiles of a matmul stage (hwmodel/tiling.py)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class InferenceCost:
    """One inference of ``task`` at ``seq_len`` tokens. The records sum exactly to the totals."""

    task: str
    seq_len: int
    energy_j: float
    latency_s: float
    energy_by_component_j: dict
    macs: int
    # the per-stage records and the summed action counts are built on first use from the stage table (a serving
    # request needs only the totals: hwmodel/bulk.py)
    _records: Callable[[], list] = field(repr=False, compare=False)
    _counts: Callable[[], ActionCounts] = field(repr=False, compare=False)

    @functools.cached_property
    def records(self) -> list:
        """One :class:`OpRecord` per charged stage, in execution order; they sum to the totals (asserted)."""
        recs = self._records()
        assert math.isclose(math.fsum(r.energy_j for r in recs), self.energy_j, rel_tol=1e-9, abs_tol=1e-24)
        assert math.isclose(math.fsum(r.latency_s for r in recs), self.latency_s, rel_tol=1e-9, abs_tol=1e-24)
        return recs

    @functools.cached_property
    def counts(self) -> ActionCounts:
        return self._counts()

    def summary(self) -> dict:
        return {"task": self.task, "seq_len": self.seq_len, "energy_j": self.energy_j, "latency_s": self.latency_s,
                "macs": self.macs, "energy_by_component_j": dict(self.energy_by_component_j)}


@dataclass(frozen=True)
class ProgramCost(Cost):
    """Programming the RRAM images once: cells written per level on top of the cost."""

    cells_written: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AreaReport:
    levels: dict  # level -> LevelProvision
    pe_array_mm2: float
    logic_mm2: float  # SFUs, control, buffers

    @property
    def memory_mm2(self) -> float:
        return sum(p.area_mm2 for p in self.levels.values())

    @property
    def total_mm2(self) -> float:
        return self.memory_mm2 + self.pe_array_mm2 + self.logic_mm2

    def to_dict(self) -> dict:
        return {"total_mm2": self.total_mm2, "memory_mm2": self.memory_mm2, "pe_array_mm2": self.pe_array_mm2,
                "logic_mm2": self.logic_mm2, "levels": {k: v.to_dict() for k, v in self.levels.items()}}


def _records(charges: list, table: StageTable, extra: list[tuple[ActionCounts, Cost]]) -> list[OpRecord]:
    """The records of an inference from its stage table (and the DRAM re-fetch passes, ``extra``)."""
    out = []
    t = 0.0
    comps = table.components
    for i, ch in enumerate(charges):
        e = dict(zip(comps, table.energy_j[i].tolist(), strict=True))
        nbytes = {lv: (ch.counts.read_bits.get(lv, 0) + ch.counts.write_bits.get(lv, 0)) / 8 for lv in PRICED_LEVELS}
        lat = float(table.latency_s[i])
        out.append(OpRecord(
            index=i, node=ch.node, op_type=ch.op_type, kind=ch.kind, macs=ch.macs,
            cycles=ch.counts.pe_cycles + sum(ch.counts.sfu_cycles.values()),
            bytes_by_level={k: v for k, v in nbytes.items() if v}, energy_by_component_j=e,
            energy_j=math.fsum(e.values()), compute_energy_j=e.get("pe_array", 0) + e.get("sfu", 0) + e.get("bitmask", 0),
            latency_s=lat, start_s=t, weights=ch.weights, group=ch.group, group_kind=ch.group_kind, tiles=ch.tiles))
        t += lat
    for rc, c in extra:
        bits = rc.read_bits["dram"]
        out.append(OpRecord(
            index=len(out), node="dram_pack_refetch", op_type="Transfer", kind="layout:dram_refetch", macs=0,
            cycles=0.0, bytes_by_level={"dram": bits / 8, "sram": bits / 8},
            energy_by_component_j=dict(c.energy_by_component_j), energy_j=c.energy_j, compute_energy_j=0.0,
            latency_s=c.latency_s, start_s=t))
        t += c.latency_s
    return out


class HwModel:
    """A build priced on an architecture. Deterministic; inference costs cached per (task, seq_len)."""

    def __init__(self, workload: Workload, graph: onnx.ModelProto, spec: ArchSpec) -> None:
        self.workload = workload
        self.graph = graph
        self.spec = spec
        self.precision = workload.precision
        self.act_bits = workload.activation_bits
        self.max_seq_len = workload.max_seq_len
        self.data_inputs = workload.data_inputs
        self.shape_inference = ShapeInference(graph, workload.data_inputs)
        self._cache: dict[tuple[str, int, int], InferenceCost] = {}
        self._shape_cache: dict[tuple[str, int, int], GraphShapes] = {}
        self._swap_cache: dict[str, Cost] = {}
        self._fusion: Fusion | None = None
        self._buffer_need: dict[str, int] | None = None
        self.table = load_macro_table(spec.macro_library_path())
        self.levels = self._provision()

    # -- construction ---------------------------------------------------------------------------------------------
    def requirements(self) -> dict[str, int]:
        """Bytes each on-chip level must hold: the RRAM images; SRAM = largest pack + peak activations; each PE-array
        buffer (``execution.price_buffers``) its largest tile, block or spill at ``max_seq_len`` (the tiler's)."""
        req = {lv: self.workload.image_bytes[lv] for lv in ("rram_mlc", "rram_slc")}
        req["sram"] = max(t.pack_bytes for t in self.workload.tasks) + self.activation_peak_bytes()
        if self.spec.execution.price_buffers:
            req.update(self.buffer_requirements())
        return req

    def buffer_requirements(self) -> dict[str, int]:
        """Bytes each PE-array buffer holds at most over an inference at ``max_seq_len`` (any task: the largest)."""
        if self._buffer_need is None:
            need = dict.fromkeys(BUFFERS, 0)
            for task in self.workload.task_names:
                charges = charge_graph(self.graph, self._shapes(self.max_seq_len, task), self.workload.weights(task),
                                       self.spec, self.precision, self.act_bits, self.fusion,
                                       act_precision=self.workload.activation_precision)
                for ch in charges:
                    for lv, n in ch.buffer_bytes:
                        need[lv] = max(need[lv], n)
            self._buffer_need = need
        return dict(self._buffer_need)

    def activation_peak_bytes(self) -> int:
        """SRAM activation working set at ``max_seq_len``: the peak of the activations alive between fusion
        groups (inside a group, tiles stay in the scratchpad; hwmodel/tiling.py)."""
        shapes = self._shapes(self.max_seq_len, self._task(None))
        return activation_working_set_bytes(self.fusion, shapes, self.act_bits)

    @property
    def fusion(self) -> Fusion:
        """The graph's fusion groups (hwmodel/fusion.py), found once."""
        if self._fusion is None:
            names = {w.name for w in self.workload.backbone} | {w.name for t in self.workload.tasks for w in t.tensors}
            self._fusion = fuse(self.graph, names, self.data_inputs)
        return self._fusion

    def _provision(self) -> dict[str, LevelProvision]:
        req = self.requirements()
        out = {}
        levels = (*ON_CHIP_LEVELS, *BUFFERS) if self.spec.execution.price_buffers else ON_CHIP_LEVELS
        for lv in levels:
            mem = self.spec.on_chip_memory(lv)
            out[lv] = provision(lv, mem, self.spec.technology.node_nm, self.table, req[lv], precision=self.precision,
                                copies=self.spec.buffer_copies(lv))
        return out

    def _shapes(self, seq_len: int, task: str, batch: int = 1) -> GraphShapes:
        key = (task, seq_len, batch)
        if key not in self._shape_cache:
            weights = {name: w.shape for name, w in self.workload.weights(task).items()}
            self._shape_cache[key] = self.shape_inference.shapes(seq_len, batch, weights)
        return self._shape_cache[key]

    # -- pricing --------------------------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        return self.workload.task_names

    def price(self, counts: ActionCounts) -> Cost:
        """Price action counts recorded elsewhere (e.g. by the runtime) on this architecture."""
        return price(counts, self.spec, self.levels)

    def _task(self, task: str | None) -> str:
        if task is None:
            return self.workload.largest_task
        return self.workload.task(task).task  # UnknownTaskError naming the build's tasks

    def inference(self, seq_len: int, task: str | None = None, batch: int = 1) -> InferenceCost:
        """Energy/latency of one graph execution over ``batch`` requests of ``seq_len`` tokens each;
        ``task=None`` = the task with the largest pack (worst case)."""
        task = self._task(task)
        if not isinstance(seq_len, int) or seq_len <= 0:
            raise CapacityError(f"seq_len must be a positive int, got {seq_len!r}")
        if not isinstance(batch, int) or batch <= 0:
            raise CapacityError(f"batch must be a positive int, got {batch!r}")
        key = (task, seq_len, batch)
        if key in self._cache:
            return self._cache[key]
        if seq_len > self.max_seq_len:
            log.warning("seq_len %d exceeds the build's max_seq_len %d", seq_len, self.max_seq_len)
        weights = self.workload.weights(task)
        shapes = self._shapes(seq_len, task, batch)
        missing = unmatched_weights(self.graph, shapes, weights, self.data_inputs)
        if missing:
            log.warning("graph inputs not in the manifest, charged as SRAM activations: %s", missing[:5])
        charges = charge_graph(self.graph, shapes, weights, self.spec, self.precision, self.act_bits, self.fusion,
                               act_precision=self.workload.activation_precision)
        table = price_stages(charges, self.spec, self.levels)
        by_comp = table.total_by_component_j()
        cost = Cost(math.fsum(by_comp.values()), float(table.latency_s.sum()), by_comp)
        extra: list[tuple[ActionCounts, Cost]] = []
        passes = self.spec.execution.dram_pack_passes_per_inference
        if passes:  # the SRAM set is re-read from DRAM on each pass (it does not stay on chip between layers)
            bits = 8.0 * passes * self.sram_set_bytes(task)
            rc = ActionCounts(read_bits={"dram": bits}, write_bits={"sram": bits})
            extra.append((rc, self.price(rc)))
            cost = cost + extra[-1][1]  # the passes follow the stages (serial)

        def records() -> list:
            return _records(charges, table, extra)

        def counts() -> ActionCounts:
            total = ActionCounts()
            for ch in charges:
                total = total + ch.counts
            for rc, _ in extra:
                total = total + rc
            return total

        res = InferenceCost(task, seq_len, cost.energy_j, cost.latency_s, cost.energy_by_component_j,
                            sum(ch.macs for ch in charges), records, counts)
        self._cache[key] = res
        return res

    def idle(self, seconds: float, task: str | None = None) -> Cost:
        """The accelerator idling ``seconds`` between requests under each level's power gating (spec ``idle``):
        leakage x time x the level's idle fraction (``leak_<level>`` components; latency 0: nothing runs). With
        SRAM ``idle = "off"`` its contents are lost, so the next request of ``task`` first reloads the task's SRAM
        set from DRAM (a swap: its energy and latency are added); ``task=None`` = nothing to reload."""
        if not seconds >= 0:
            raise CapacityError(f"idle seconds must be >= 0, got {seconds!r}")
        if not self.spec.execution.include_leakage:
            e: dict[str, float] = {}
        else:
            e = {f"leak_{lv}": p.leak_w * seconds * self.spec.on_chip_memory(lv).idle_leak_fraction()
                 for lv, p in self.levels.items()}
        c = Cost(math.fsum(e.values()), 0.0, e, {"idle_s": float(seconds)})
        if seconds > 0 and task is not None and self.spec.sram.idle == "off":
            c = c + self.swap(task)
        return c

    def sram_set_bytes(self, task: str) -> int:
        """Bytes a swap (and each ``execution.dram_pack_passes_per_inference`` pass) moves from DRAM into SRAM:
        the task's pack, or the spec's SRAM requirement override when it has one (a study's own accounting)."""
        override = self.spec.sram.required_override_bytes(self.precision)
        return override if override is not None else self.workload.task(self._task(task)).pack_bytes

    def price_swap(self, pack_bytes: int) -> Cost:
        """Moving ``pack_bytes`` from DRAM into SRAM (read DRAM, write SRAM)."""
        if pack_bytes < 0:
            raise CapacityError(f"pack_bytes must be >= 0, got {pack_bytes}")
        bits = 8.0 * pack_bytes
        return self.price(ActionCounts(read_bits={"dram": bits}, write_bits={"sram": bits}))

    def swap(self, task: str) -> Cost:
        """Task switch: load ``task``'s whole pack from DRAM into SRAM; charges exactly the pack's bytes (cached)."""
        task = self._task(task)
        if task not in self._swap_cache:
            self._swap_cache[task] = self.price_swap(self.sram_set_bytes(task))
        return self._swap_cache[task]

    def program_rram(self) -> ProgramCost:
        """One-time programming of the RRAM images (read from DRAM, written into MLC and SLC cells)."""
        bits = {lv: 8.0 * self.workload.image_bytes[lv] for lv in ("rram_mlc", "rram_slc")}
        c = self.price(ActionCounts(read_bits={"dram": sum(bits.values())}, write_bits=bits))
        cells = {lv: int(b // self.spec.on_chip_memory(lv).bits_per_cell) for lv, b in bits.items()}
        return ProgramCost(c.energy_j, c.latency_s, c.energy_by_component_j, c.latency_by_part_s, cells)

    def area(self) -> AreaReport:
        """Macros of every on-chip level, plus the PE array and logic unless ``execution.area_scope = "memory"``."""
        pe = self.spec.pe_array.macs * self.spec.pe_array.mac_area_um2[self.precision] * 1e-6
        if self.spec.execution.area_scope == "memory":
            pe = 0.0
        return AreaReport(dict(self.levels), pe, pe * self.spec.pe_array.logic_area_overhead)
