"""``HwModel``: a build (manifest dict + ONNX graph) on an architecture spec -> area, energy, latency.

The runtime codes against this class (names kept stable, documented in docs/HWMODEL.md):

* ``HwModel.from_build(manifest, graph, spec=None)``; ``spec=None`` loads the shipped spec of the build's design;
* ``hw.inference(seq_len, task=None, batch=1) -> InferenceCost`` (cached per (task, seq_len, batch): a repeat
  costs microseconds); a batch of ``batch`` requests runs as one graph execution: activations scale with it,
  each weight is read once per use for the whole batch;
* ``hw.swap(task) -> Cost``: DRAM -> SRAM load of that task's pack; ``hw.price_swap(pack_bytes) -> Cost``;
* ``hw.program_rram() -> ProgramCost``: one-time programming of the RRAM images;
* ``hw.area() -> AreaReport``; ``hw.price(counts) -> Cost`` for counts the runtime records itself.

Placement: backbone tensors (the manifest's ``tensors``) in RRAM, bitmask-encoded; the active task's pack
tensors and the activations in SRAM; every pack in DRAM. For the vanilla design the compiler puts only the
embeddings in ``tensors`` and the rest of the transformer in each pack, so the same code charges both designs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import onnx

from edgemti.errors import CapacityError, FormatError, UnknownTaskError
from edgemti.hwmodel.cost import ActionCounts, Cost, price
from edgemti.hwmodel.graph import WeightInfo, charge_graph, probe_shapes, unmatched_weights, weight_views
from edgemti.hwmodel.macros import LevelProvision, load_macro_table, provision
from edgemti.hwmodel.spec import ON_CHIP_LEVELS, ArchSpec, load_spec

log = logging.getLogger(__name__)
DEFAULT_DATA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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
    records: list = field(repr=False)
    counts: ActionCounts = field(repr=False)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.records)

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


def precision_of(fmt: dict) -> str:
    """Manifest value format -> the spec's MAC-energy key."""
    kind, bits = fmt.get("kind"), int(fmt.get("bits", 32))
    if kind == "fixed":
        return "fixed8" if bits <= 8 else "fixed16" if bits <= 16 else "float32"
    return "float16" if bits <= 16 else "float32"


def _get(d: dict, *keys: str, origin: str = "manifest"):
    cur = d
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            raise FormatError(f"{origin}: missing key {'.'.join(keys)!r}: not an edgemti build manifest (recompile)")
        cur = cur[k]
    return cur


class HwModel:
    """A build priced on an architecture. Deterministic; inference costs cached per (task, seq_len)."""

    def __init__(self, manifest: dict, graph: onnx.ModelProto, spec: ArchSpec) -> None:
        self.manifest = manifest
        self.graph = graph
        self.spec = spec
        comp = _get(manifest, "compile")
        self.value_format = _get(comp, "value_format")
        self.precision = precision_of(self.value_format)
        self.act_bits = int(comp.get("activation_bits") or self.value_format.get("bits", 32))
        self.max_seq_len = int(comp.get("max_seq_len") or 128)
        di = manifest.get("graph", {}).get("data_inputs", DEFAULT_DATA_INPUTS)
        self.data_inputs = tuple(di.values()) if isinstance(di, dict) else tuple(di)
        self.backbone: dict[str, WeightInfo] = {}
        self.backbone_shapes = {t["name"]: tuple(t["shape"]) for t in _get(manifest, "tensors") if "shape" in t}
        for t in _get(manifest, "tensors"):
            self.backbone[t["name"]] = WeightInfo(t["name"], int(t["numel"]), int(t["nnz"]),
                                                  int(t["format"]["bits"]), "rram")
        self.packs: dict[str, dict] = {p["task"]: p for p in _get(manifest, "packs")}
        if not self.packs:
            raise FormatError("manifest: the build has no task packs; compile at least one task")
        self._cache: dict[tuple[str, int, int], InferenceCost] = {}
        self._shape_cache: dict[tuple[str, int, int], object] = {}
        self._swap_cache: dict[str, Cost] = {}
        self.table = load_macro_table(spec.macro_library_path())
        self.levels = self._provision()

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_build(cls, manifest: dict, graph: onnx.ModelProto, spec: ArchSpec | None = None) -> HwModel:
        design = _get(manifest, "design")
        if spec is None:
            spec = load_spec(design=design)
        elif spec.design != design:
            log.warning("spec %s is for the %s design, the build is %s", spec.name, spec.design, design)
        return cls(manifest, graph, spec)

    def requirements(self) -> dict[str, int]:
        """Bytes each on-chip level must hold: the RRAM images; SRAM = largest pack + peak activations."""
        images = _get(self.manifest, "images")
        req = {lv: int(_get(images, lv, "size_bytes")) for lv in ("rram_mlc", "rram_slc")}
        req["sram"] = max(int(p["length"]) for p in self.packs.values()) + self.activation_peak_bytes()
        return req

    def activation_peak_bytes(self) -> int:
        """Largest (inputs + outputs) activation footprint of one node at ``max_seq_len``: SRAM working set."""
        shapes = self._shapes(self.max_seq_len, self._task(None))
        weights = weight_views(self.graph, set(self.backbone) | {t["name"] for p in self.packs.values()
                                                                for t in p["tensors"]})
        peak = 0
        for n in self.graph.graph.node:
            names = [x for x in (*n.input, *n.output) if x and x not in weights and x in shapes.float_tensors]
            peak = max(peak, sum(math.prod(shapes.shapes.get(x, ())) for x in names))
        return int(peak * self.act_bits // 8)

    def _provision(self) -> dict[str, LevelProvision]:
        req = self.requirements()
        out = {}
        for lv in ON_CHIP_LEVELS:
            mem = self.spec.on_chip_memory(lv)
            out[lv] = provision(lv, mem, self.spec.technology.node_nm, self.table, req[lv], precision=self.precision)
        return out

    def _shapes(self, seq_len: int, task: str, batch: int = 1):
        key = (task, seq_len, batch)
        if key not in self._shape_cache:
            shapes = dict(self.backbone_shapes)
            shapes.update({t["name"]: tuple(t["shape"]) for t in self.packs[task]["tensors"] if "shape" in t})
            self._shape_cache[key] = probe_shapes(self.graph, seq_len, self.data_inputs, shapes, batch=batch)
        return self._shape_cache[key]

    # -- pricing --------------------------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        return list(self.packs)

    def price(self, counts: ActionCounts) -> Cost:
        """Price action counts recorded elsewhere (e.g. by the runtime) on this architecture."""
        return price(counts, self.spec, self.levels)

    def _task(self, task: str | None) -> str:
        if task is None:
            return max(self.packs, key=lambda t: int(self.packs[t]["length"]))
        if task not in self.packs:
            raise UnknownTaskError(f"task {task!r} is not in this build (it has {self.tasks})")
        return task

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
        weights = dict(self.backbone)
        for t in self.packs[task]["tensors"]:
            weights[t["name"]] = WeightInfo(t["name"], int(t["numel"]), int(t["numel"]), int(t["format"]["bits"]),
                                            "sram")
        shapes = self._shapes(seq_len, task, batch)
        missing = unmatched_weights(self.graph, shapes, weights, self.data_inputs)
        if missing:
            log.warning("graph inputs not in the manifest, charged as SRAM activations: %s", missing[:5])
        charges = charge_graph(self.graph, shapes, weights, self.spec, self.precision, self.act_bits)
        records = []
        total = Cost.zero()
        counts = ActionCounts()
        t = 0.0
        for i, ch in enumerate(charges):
            c = self.price(ch.counts)
            e = c.energy_by_component_j
            nbytes = {lv: (ch.counts.read_bits.get(lv, 0) + ch.counts.write_bits.get(lv, 0)) / 8
                      for lv in (*ON_CHIP_LEVELS, "dram")}
            records.append(OpRecord(
                index=i, node=ch.node, op_type=ch.op_type, kind=ch.kind, macs=ch.macs,
                cycles=ch.counts.pe_cycles + sum(ch.counts.sfu_cycles.values()),
                bytes_by_level={k: v for k, v in nbytes.items() if v}, energy_by_component_j=dict(e),
                energy_j=c.energy_j, compute_energy_j=e.get("pe_array", 0) + e.get("sfu", 0) + e.get("bitmask", 0),
                latency_s=c.latency_s, start_s=t, weights=ch.weights,
            ))
            t += c.latency_s
            total = total + c
            counts = counts + ch.counts
        passes = self.spec.execution.dram_pack_passes_per_inference
        if passes:  # the SRAM set is re-read from DRAM on each pass (it does not stay on chip between layers)
            bits = 8.0 * passes * self.sram_set_bytes(task)
            rc = ActionCounts(read_bits={"dram": bits}, write_bits={"sram": bits})
            c = self.price(rc)
            records.append(OpRecord(
                index=len(records), node="dram_pack_refetch", op_type="Transfer", kind="layout:dram_refetch", macs=0,
                cycles=0.0, bytes_by_level={"dram": bits / 8, "sram": bits / 8},
                energy_by_component_j=dict(c.energy_by_component_j), energy_j=c.energy_j, compute_energy_j=0.0,
                latency_s=c.latency_s, start_s=t))
            t += c.latency_s
            total = total + c
            counts = counts + rc
        # accounting invariants: the records close on the totals
        assert math.isclose(math.fsum(r.energy_j for r in records), total.energy_j, rel_tol=1e-9, abs_tol=1e-24)
        assert math.isclose(math.fsum(r.latency_s for r in records), total.latency_s, rel_tol=1e-9, abs_tol=1e-24)
        res = InferenceCost(task, seq_len, total.energy_j, total.latency_s, dict(total.energy_by_component_j),
                            records, counts)
        self._cache[key] = res
        return res

    def sram_set_bytes(self, task: str) -> int:
        """Bytes a swap (and each ``execution.dram_pack_passes_per_inference`` pass) moves from DRAM into SRAM:
        the task's pack, or the spec's SRAM requirement override when it has one (a study's own accounting)."""
        override = self.spec.sram.required_override_bytes(self.precision)
        return override if override is not None else int(self.packs[self._task(task)]["length"])

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
        images = _get(self.manifest, "images")
        bits = {lv: 8.0 * int(_get(images, lv, "size_bytes")) for lv in ("rram_mlc", "rram_slc")}
        c = self.price(ActionCounts(read_bits={"dram": sum(bits.values())}, write_bits=bits))
        cells = {lv: int(b // self.spec.on_chip_memory(lv).bits_per_cell) for lv, b in bits.items()}
        return ProgramCost(c.energy_j, c.latency_s, c.energy_by_component_j, c.latency_by_part_s, cells)

    def area(self) -> AreaReport:
        """Macros of every on-chip level, plus the PE array and logic unless ``execution.area_scope = "memory"``."""
        pe = self.spec.pe_array.macs * self.spec.pe_array.mac_area_um2[self.precision] * 1e-6
        if self.spec.execution.area_scope == "memory":
            pe = 0.0
        return AreaReport(dict(self.levels), pe, pe * self.spec.pe_array.logic_area_overhead)
