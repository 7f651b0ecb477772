"""Export an architecture spec and a list of matmuls in the input formats of KU Leuven's zigzag (``zigzag-dse``).

zigzag (github.com/KULeuven-MICAS/zigzag) is a mapping-aware cost model: given an accelerator YAML (a MAC array
and a memory hierarchy with per-access energies and port bandwidths), a mapping YAML (the spatial unrolling)
and an ONNX workload, it searches loop orders and reports energy and latency per layer. ``edgemti.studies.xcheck``
runs it on what this module writes and compares the result with this package's own per-matmul costs.

Nothing here imports zigzag: the files are plain YAML/ONNX, so the export is testable without the optional
``[xcheck]`` extra. What is exported, and from where (every number comes from the spec or the provisioned
levels, none is a literal here):

* the MAC array: ``pe_array.macs`` MACs as ``vector`` x ``macs / vector`` (EdgeBERT: 16 x 16), unit energy =
  ``pe_array.mac_energy_pj`` of the build's precision; output-stationary spatial unrolling (``K`` x ``D``: the
  16 x 16 output tile our PE-cycle count assumes, docs/HWMODEL.md);
* a per-MAC accumulator register for the output operand at zero energy (both models fold accumulation into the
  MAC energy);
* the PE array's operand buffers as provisioned levels (``spad_a``: the activation operand and the outputs;
  ``spad_b``: the weight block; double buffering from ``scratchpad.double_buffered``), at their per-bit energies,
  so zigzag counts and prices the buffer accesses of its own loop order;
* SRAM (activations, task weights), RRAM MLC (backbone non-zero values, exported as the dense stream they
  deliver: see :func:`accelerator`'s ``weight_density``) and DRAM (off-chip) with the provisioned
  levels' per-bit read/write energies (``LevelProvision.read_j_per_bit``) and bandwidths, as zigzag's per-access
  costs: ``r_cost = bandwidth_bits x J/bit`` (zigzag charges one access per ``bandwidth_max`` bits moved).
  Bandwidths are bits per clock cycle (``bytes/s x 8 / freq_hz``, rounded to an integer: zigzag needs ints).

zigzag binds one memory per operand and level, so the weight operand's home is a parameter:
``weight_level = "rram_mlc"`` (backbone matmuls), ``"sram"`` (task-pack matmuls: adapters, classifier; and the
attention matmuls, whose second operand is an activation), ``"dram"`` (weights streamed from off chip; no
inference matmul of either design does that, it is exported for completeness).

The SLC bitmask side channel (mask bits, decoder) has no zigzag equivalent; the cross-check adds it as a named
adjustment (docs/HWMODEL.md, "Cross-check against zigzag").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import yaml
from onnx import TensorProto, helper

from edgemti.errors import ConfigError
from edgemti.hwmodel.macros import LevelProvision
from edgemti.hwmodel.spec import ArchSpec

ZIGZAG_EXPORT_VERSION = 1
WEIGHT_LEVELS = ("rram_mlc", "sram", "dram")
OPERANDS = ("I1", "I2", "O")  # zigzag's memory operands: I1 = activations, I2 = weights, O = outputs


@dataclass(frozen=True)
class Matmul:
    """One matmul as zigzag sees it: ``out[b][d][k] += in[b][d][c] * w([b])[c][k]``.

    ``batch`` > 1 only for the attention matmuls (heads), whose second operand is an activation
    (``weight_level = "sram"``, ``weight_is_activation``). ``count`` is how many graph nodes of the priced
    inference this shape stands for (ALBERT's shared layer repeats each matmul 12 times); ``nodes`` names them.
    """

    name: str
    batch: int
    rows: int  # D: tokens
    inner: int  # C: reduction
    cols: int  # K: output features
    weight_level: str
    act_bits: int
    weight_bits: int
    weight_is_activation: bool = False
    count: int = 1
    nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = [f"{f} must be > 0, got {getattr(self, f)}" for f in
                    ("batch", "rows", "inner", "cols", "act_bits", "weight_bits", "count") if getattr(self, f) <= 0]
        if self.weight_level not in WEIGHT_LEVELS:
            problems.append(f"weight_level must be one of {list(WEIGHT_LEVELS)}, got {self.weight_level!r}")
        if self.batch > 1 and not self.weight_is_activation:
            problems.append("batch > 1 needs weight_is_activation (a batched matmul of two activations)")
        if problems:
            raise ConfigError(f"Matmul {self.name!r}: " + "; ".join(problems))

    @property
    def macs(self) -> int:
        return self.batch * self.rows * self.inner * self.cols

    @property
    def weight_numel(self) -> int:
        return (self.batch if self.weight_is_activation else 1) * self.inner * self.cols


@dataclass(frozen=True)
class ZzLevel:
    """One memory level in zigzag's units: bits, pJ per access of ``bw_*_bits`` bits, cycles."""

    name: str
    size_bits: int
    read_pj_per_bit: float
    write_pj_per_bit: float
    bw_read_bits: int  # per clock cycle
    bw_write_bits: int
    latency_cycles: int
    area_mm2: float


def _bits_per_cycle(bytes_per_s: float, freq_hz: float) -> int:
    return max(1, round(bytes_per_s * 8 / freq_hz))


def zz_levels(spec: ArchSpec, levels: Mapping[str, LevelProvision]) -> dict[str, ZzLevel]:
    """The spec's memory levels in zigzag's units: provisioned on-chip levels and the spec's DRAM."""
    f = spec.clock.freq_hz
    out: dict[str, ZzLevel] = {}
    for name in ("sram", "rram_mlc"):
        if name not in levels:
            raise ConfigError(f"zigzag export: the architecture provisions no {name} level (have {sorted(levels)})")
        p = levels[name]
        out[name] = ZzLevel(name, int(p.capacity_bytes) * 8, p.read_j_per_bit * 1e12, p.write_j_per_bit * 1e12,
                            _bits_per_cycle(p.read_bytes_per_s, f), _bits_per_cycle(p.write_bytes_per_s, f),
                            max(1, math.ceil(max(p.read_latency_s, p.write_latency_s) * f)), p.area_mm2)
    d = spec.dram
    bw = _bits_per_cycle(d.bandwidth_bytes_per_s, f)
    out["dram"] = ZzLevel("dram", int(d.capacity_bytes) * 8, d.read_pj_per_bit, d.write_pj_per_bit, bw, bw,
                          max(1, math.ceil(d.latency_s * f)), 0.0)
    for name in ("spad_a", "spad_b"):
        out[name] = buffer_level(spec, levels, name)
    return out


def buffer_level(spec: ArchSpec, levels: Mapping[str, LevelProvision], name: str) -> ZzLevel:
    """An operand buffer of the PE array (``spad_a``: activations and outputs; ``spad_b``: the weight block) in
    zigzag's units, at its provisioned per-bit energies (0 when ``execution.price_buffers`` is off: not priced).

    Size: the spec's capacity x its copies (zigzag's ``force_double_buffering`` then lets a tile use half).
    Bandwidth: one vector per cycle for each of the array's lanes (EdgeBERT's 16 banks feed it every cycle).
    """
    copies = spec.buffer_copies(name)
    p = levels.get(name)
    bits = spec.pe_array.macs * 64
    return ZzLevel(name, spec.on_chip_memory(name).capacity_bytes * 8 * copies,
                   p.read_j_per_bit * 1e12 if p else 0.0, p.write_j_per_bit * 1e12 if p else 0.0, bits, bits, 1,
                   p.area_mm2 if p else 0.0)


def _port(name: str, kind: str, bw_min: int, bw_max: int, alloc: list[str]) -> dict[str, Any]:
    return {"name": name, "type": kind, "bandwidth_min": int(bw_min), "bandwidth_max": int(bw_max),
            "allocation": alloc}


def _memory(lv: ZzLevel, operands: list[str], served: list[str], word_bits: int,
            port_per_operand: bool = False, double_buffered: bool = False) -> dict[str, Any]:
    """A zigzag memory: one read and one write port carrying every direction of every operand it holds (a
    physical array: operands share its bandwidth), or one pair per operand (``port_per_operand``: a buffer
    whose operands are separate banks).

    zigzag charges ``ceil(bits / bandwidth_min) * bandwidth_min / bandwidth_max`` accesses of ``r_cost`` each,
    so with ``r_cost = bandwidth_max x pJ/bit`` the energy is the bits moved x pJ/bit, rounded up to ``word_bits``.
    """
    r_min, w_min = min(word_bits, lv.bw_read_bits), min(word_bits, lv.bw_write_bits)

    def reads(ops: list[str]) -> list[str]:
        return [f"{op}, tl" for op in ops] + (["O, th"] if "O" in ops else [])

    def writes(ops: list[str]) -> list[str]:
        return [f"{op}, fh" for op in ops] + (["O, fl"] if "O" in ops else [])

    groups = [[op] for op in operands] if port_per_operand else [operands]
    ports = []
    for i, ops in enumerate(groups, start=1):
        ports += [_port(f"r_port_{i}", "read", r_min, lv.bw_read_bits, reads(ops)),
                  _port(f"w_port_{i}", "write", w_min, lv.bw_write_bits, writes(ops))]
    return {
        "size": int(lv.size_bits), "r_cost": lv.bw_read_bits * lv.read_pj_per_bit,
        "w_cost": lv.bw_write_bits * lv.write_pj_per_bit, "area": float(lv.area_mm2),
        "latency": int(lv.latency_cycles), "operands": operands, "ports": ports, "served_dimensions": served,
        "force_double_buffering": bool(double_buffered),
    }


def _accumulator(lv: ZzLevel) -> dict[str, Any]:
    """A per-MAC output register: one port per direction (read-modify-write every cycle, as zigzag's examples)."""
    bw = lv.bw_read_bits
    return {"size": int(lv.size_bits), "r_cost": 0.0, "w_cost": 0.0, "area": 0.0, "latency": 1, "operands": ["O"],
            "ports": [_port("r_port_1", "read", bw, bw, ["O, tl"]), _port("r_port_2", "read", bw, bw, ["O, th"]),
                      _port("w_port_1", "write", bw, bw, ["O, fh"]), _port("w_port_2", "write", bw, bw, ["O, fl"])],
            "served_dimensions": []}


def array_dims(spec: ArchSpec) -> tuple[int, int]:
    """(D1, D2) sizes of the MAC array: ``vector`` output features x ``macs / vector`` tokens (16 x 16)."""
    pe = spec.pe_array
    if pe.macs % pe.vector:
        raise ConfigError(f"zigzag export: pe_array.macs ({pe.macs}) must be a multiple of vector ({pe.vector})")
    return pe.vector, pe.macs // pe.vector


def accelerator(spec: ArchSpec, levels: Mapping[str, LevelProvision], precision: str, act_bits: int,
                weight_bits: int, weight_level: str, weight_density: float = 1.0) -> dict[str, Any]:
    """The zigzag accelerator (as the dict its YAML parser reads) for matmuls whose weights live in ``weight_level``.

    Hierarchy, innermost first: per-MAC output accumulators; the scratchpad for activations and outputs; then
    each operand's home: activations and outputs in SRAM, weights in ``weight_level``.
    """
    if weight_level not in WEIGHT_LEVELS:
        raise ConfigError(f"zigzag export: weight_level must be one of {list(WEIGHT_LEVELS)}, got {weight_level!r}")
    if precision not in spec.pe_array.mac_energy_pj:
        raise ConfigError(f"zigzag export: no MAC energy for precision {precision!r} in the spec "
                          f"(have {sorted(spec.pe_array.mac_energy_pj)})")
    if not 0 < weight_density <= 1:
        raise ConfigError(f"zigzag export: weight_density must be in (0, 1], got {weight_density}")
    lv = zz_levels(spec, levels)
    if weight_level == "rram_mlc" and weight_density < 1:
        m = lv["rram_mlc"]
        lv["rram_mlc"] = ZzLevel(m.name, int(m.size_bits / weight_density), m.read_pj_per_bit * weight_density,
                                 m.write_pj_per_bit * weight_density, max(1, round(m.bw_read_bits / weight_density)),
                                 max(1, round(m.bw_write_bits / weight_density)), m.latency_cycles, m.area_mm2)
    d1, d2 = array_dims(spec)
    dims = ["D1", "D2"]
    acc_bits = 2 * act_bits  # zigzag's default partial-sum width; the registers are free, so it only sizes them
    reg = ZzLevel("reg_O", acc_bits, 0.0, 0.0, acc_bits, acc_bits, 1, 0.0)
    word = spec.sram.word_cells * spec.sram.bits_per_cell
    memories: dict[str, Any] = {"reg_O": _accumulator(reg)}
    # EdgeBERT: activations (in and out) tile through operand A's scratchpad; the weights stream from their home
    # into operand B's (the weight block the array reuses across a row tile)
    memories["spad_a"] = _memory(lv["spad_a"], ["I1", "O"], dims, word, port_per_operand=True,
                                 double_buffered=spec.scratchpad.double_buffered)
    memories["spad_b"] = _memory(lv["spad_b"], ["I2"], dims, word, double_buffered=spec.scratchpad.double_buffered)
    if weight_level == "sram":
        memories["sram"] = _memory(lv["sram"], ["I1", "I2", "O"], dims, word)
    else:
        memories["sram"] = _memory(lv["sram"], ["I1", "O"], dims, word)
        w_word = (spec.rram_mlc.word_cells * spec.rram_mlc.bits_per_cell if weight_level == "rram_mlc" else word)
        memories[weight_level] = _memory(lv[weight_level], ["I2"], dims, w_word)
    return {
        "name": f"edgemti_{spec.name}_{precision}_w_{weight_level}".replace("-", "_").replace(".", "_"),
        "memories": memories,
        "operational_array": {
            "input_precision": [int(act_bits), int(weight_bits)],
            "unit_energy": float(spec.pe_array.mac_energy_pj[precision]),
            "unit_area": float(spec.pe_array.mac_area_um2[precision]) * 1e-6,
            "dimensions": dims, "sizes": [d1, d2],
        },
    }


def mapping(spec: ArchSpec) -> list[dict[str, Any]]:
    """zigzag mapping: output-stationary 16 x 16 unrolling (K on D1, D on D2); temporal order searched by zigzag."""
    d1, d2 = array_dims(spec)
    return [{"name": "default", "spatial_mapping": {"D1": [f"K, {d1}"], "D2": [f"D, {d2}"]},
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def _header(kind: str, spec: ArchSpec, extra: str = "") -> str:
    return (f"# edgemti zigzag export v{ZIGZAG_EXPORT_VERSION}: {kind} for zigzag-dse 3.x, from spec {spec.name!r} "
            f"(sha256 {spec.spec_hash()[:16]}){extra}\n# units: size bits, bandwidth bits/cycle at "
            f"{spec.clock.freq_hz:g} Hz, r_cost/w_cost pJ per access of bandwidth_max bits, unit_energy pJ/MAC\n")


def write_accelerator(path: str | Path, spec: ArchSpec, levels: Mapping[str, LevelProvision], precision: str,
                      act_bits: int, weight_bits: int, weight_level: str, weight_density: float = 1.0) -> Path:
    path = Path(path)
    acc = accelerator(spec, levels, precision, act_bits, weight_bits, weight_level, weight_density)
    extra = f", weights in {weight_level}" + (f" (density {weight_density:.4f}, seen dense)" if weight_density < 1
                                               else "")
    path.write_text(_header("accelerator", spec, extra) + yaml.safe_dump(acc, sort_keys=False))
    return path


def write_mapping(path: str | Path, spec: ArchSpec) -> Path:
    path = Path(path)
    path.write_text(_header("mapping", spec) + yaml.safe_dump(mapping(spec), sort_keys=False))
    return path


def workload(matmuls: Sequence[Matmul], name: str = "edgemti_matmuls") -> onnx.ModelProto:
    """An ONNX graph of the matmuls, one MatMul node each, as zigzag's ONNX parser reads it.

    Weights are graph inputs (zigzag treats an operand no node produces as a constant weight); both operands
    of an attention matmul are produced by Identity nodes so zigzag sees two activations (batch dims on both).
    Precisions ride on zigzag's custom node attributes ``act_size`` / ``weight_size`` / ``output_size``; ``count``
    and the graph nodes a shape stands for are in the node's ``doc_string``.
    """
    names = [m.name for m in matmuls]
    if len(set(names)) != len(names):
        raise ConfigError(f"zigzag export: matmul names must be unique, got {names}")
    inputs, values, nodes, outputs = [], [], [], []
    for m in matmuls:
        lead = [1, m.batch] if m.batch > 1 else [1]
        a, w, y = f"{m.name}.in", f"{m.name}.w", f"{m.name}.out"
        a_shape = [*lead, m.rows, m.inner]
        if m.weight_is_activation:  # both operands produced by nodes: zigzag gives both the batch dims
            for t, shape in ((a, a_shape), (w, [*lead, m.inner, m.cols])):
                inputs.append(helper.make_tensor_value_info(f"{t}_src", TensorProto.FLOAT, shape))
                values.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, shape))
                nodes.append(helper.make_node("Identity", [f"{t}_src"], [t], name=f"{t}_producer"))
        else:
            inputs.append(helper.make_tensor_value_info(a, TensorProto.FLOAT, a_shape))
            inputs.append(helper.make_tensor_value_info(w, TensorProto.FLOAT, [m.inner, m.cols]))
        outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, [*lead, m.rows, m.cols]))
        node = helper.make_node("MatMul", [a, w], [y], name=m.name, act_size=int(m.act_bits),
                                weight_size=int(m.act_bits if m.weight_is_activation else m.weight_bits),
                                output_size=2 * int(m.act_bits))
        node.doc_string = f"count={m.count}; weight_level={m.weight_level}; nodes={','.join(m.nodes)}"
        nodes.append(node)
    graph = helper.make_graph(nodes, name, inputs, outputs, value_info=values)
    model = helper.make_model(graph, producer_name="edgemti.hwmodel.zigzag_export",
                              producer_version=str(ZIGZAG_EXPORT_VERSION))
    return model


def write_workload(path: str | Path, matmuls: Sequence[Matmul]) -> Path:
    path = Path(path)
    onnx.save(workload(matmuls), str(path))
    return path
