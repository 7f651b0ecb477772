"""Architecture spec: the accelerator and its memory levels, read from an Accelergy-like TOML file.

A spec file (``hwmodel/specs/adapter.toml`` is the paper's design, ``vanilla.toml`` the vanilla-ALBERT
baseline on the same accelerator) lists components with attributes and per-action energies. Every
technology number in it carries a ``source``. The memory macro menu (area, per-access energy, leakage,
bandwidth per macro capacity) is a separate CSV named by ``technology.macro_library``.

The loader is the boundary: it collects *every* problem of a file (missing field, wrong type, negative
value, unknown key) and raises one :class:`SpecError` listing them. The frozen dataclasses validate on
construction too (for specs built in code), with the same rules (the machinery: :mod:`edgemti.hwmodel.validated`).
This module is the spec's types and their file format: the level names, the sections, the loader.

Units: frequencies in Hz, energies in pJ (the tables' unit; :mod:`edgemti.hwmodel.cost` converts to J),
capacities in bytes, bandwidth in bytes/s, latencies in s, areas in um^2 / mm^2 as named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast, get_type_hints

from edgemti.errors import SpecError
from edgemti.hwmodel.dvfs_spec import DvfsSpec, check_nominal
from edgemti.hwmodel.tomlfile import header_problems, read_toml
from edgemti.hwmodel.validated import (
    Validated,
    build_checked,
    field_problems,
    fraction,
    in_unit_interval,
    non_negative,
    one_of,
    positive,
    rule,
    table_of_non_negative,
)

SPEC_FORMAT = "edgemti-arch-spec"
SPEC_FORMAT_VERSION = 2  # 2: the PE array's buffers as levels (spad_a, spad_b, psum); utilization_source
SPECS_DIR = Path(__file__).resolve().parent / "specs"
DATA_DIR = Path(__file__).resolve().parent / "data"
ON_CHIP_LEVELS = ("sram", "rram_slc", "rram_mlc")
LEVELS = (*ON_CHIP_LEVELS, "dram")
# the PE array's buffers (EdgeBERT PUModule): operand A's scratchpad (the activation tile), operand B's (the
# 16-column weight block, or a second activation's), the partial-sum buffer (Y between reduction chunks)
BUFFERS = ("spad_a", "spad_b", "psum")
PRICED_LEVELS = (*LEVELS, *BUFFERS)  # every level action counts name and pricing charges
PRECISIONS = ("fixed8", "fixed16", "float16", "float32")
SFU_KINDS = ("layernorm", "softmax", "gelu", "elementwise", "other")


def _opt_precision_table(v: Any) -> str | None:
    """None, or a table precision -> number > 0 (e.g. a requirement per value format)."""
    if v is None:
        return None
    if not isinstance(v, dict) or not v:
        return f"must be a non-empty table keyed by precision ({list(PRECISIONS)})"
    bad_keys = [k for k in v if k not in PRECISIONS]
    if bad_keys:
        return f"has unknown precisions {bad_keys} (known: {list(PRECISIONS)})"
    bad = {k: x for k, x in v.items() if not isinstance(x, (int, float)) or isinstance(x, bool) or not x > 0}
    return f"must map to numbers > 0, bad entries {bad}" if bad else None


@dataclass(frozen=True)
class ClockSpec(Validated):
    freq_hz: float = rule(positive)
    source: str = ""


@dataclass(frozen=True)
class PeArraySpec(Validated):
    """The MAC array. ``utilization`` 1.0 = the paper's 256 MACs/cycle roofline; ~0.5 = EdgeBERT RTL as written."""

    macs: int = rule(positive)
    vector: int = rule(positive)
    utilization: float = rule(in_unit_interval)
    utilization_source: str = rule(lambda v: None if v.strip() else "must name where the value comes from")
    fill_cycles: int = rule(non_negative)
    gating: str = rule(one_of("rtl", "ideal", "none"))
    gated_energy_fraction: float = rule(fraction)
    mac_energy_pj: dict = rule(table_of_non_negative(PRECISIONS))
    mac_area_um2: dict = rule(table_of_non_negative(PRECISIONS))
    logic_area_overhead: float = rule(non_negative)  # SFUs and control as a fraction of the PE-array area (buffers: levels)
    source: str = ""


@dataclass(frozen=True)
class SfuSpec(Validated):
    """Near-memory special function units, per 16-element vector (EdgeBERT II x passes)."""

    cycles_per_vector: dict = rule(table_of_non_negative(SFU_KINDS))
    mac_equiv_per_element: dict = rule(table_of_non_negative(SFU_KINDS))
    source: str = ""


@dataclass(frozen=True)
class BitmaskSpec(Validated):
    decode_pj_per_vector: float = rule(non_negative)
    encode_pj_per_vector: float = rule(non_negative)
    source: str = ""


@dataclass(frozen=True)
class MemorySpec(Validated):
    """One on-chip level. ``capacity_bytes`` is what the chip offers (the compiler's fit check).

    ``provision = "auto"``: area/leakage/energy come from the macro combination that just covers the build's
    requirement (the paper's method), never above ``capacity_bytes``; ``"fixed"``: from ``capacity_bytes``.
    """

    technology: str = rule(one_of("SRAM", "RRAM_SLC", "RRAM_MLC2", "RRAM_SLC_best"))
    capacity_bytes: int = rule(positive)
    provision: str = rule(one_of("auto", "fixed"))
    word_cells: int = rule(positive)
    bits_per_cell: int = rule(positive)
    bw_mode: str = rule(one_of("weighted", "parallel"))
    periphery_area_fraction: float = rule(non_negative)
    max_macros: int = rule(positive)
    objective: str = rule(one_of("closest", "min_area"))
    source: str = ""
    # Requirement override (a study's own accounting, e.g. the paper's Table III): provision the level for
    # ``required_mib[precision]`` instead of what the build needs, per value precision of the build.
    # ``required_unit = "data"``: MiB (2**20 B) of data; ``"nvsim_cells"``: NVSim's capacity convention,
    # MiB of cells, so data bytes = required_mib x 2**20 x bits_per_cell.
    required_mib: dict | None = rule(_opt_precision_table, default=None)
    required_unit: str = rule(one_of("data", "nvsim_cells"), default="data")
    # power gating between requests (HwModel.idle): "on" leaks fully; "retention" (SRAM at its retention voltage)
    # keeps the data at retention_leak_fraction of the leakage; "off" leaks nothing (RRAM: non-volatile, the
    # periphery is off; SRAM/buffers: contents lost, so SRAM's task set is reloaded from DRAM on wake-up)
    idle: str = rule(one_of("on", "retention", "off"), default="on")
    retention_leak_fraction: float = rule(fraction, default=1.0)

    def idle_leak_fraction(self) -> float:
        """Fraction of the level's leakage power drawn while the accelerator idles between requests."""
        return {"on": 1.0, "retention": self.retention_leak_fraction, "off": 0.0}[self.idle]

    def required_override_bytes(self, precision: str) -> int | None:
        """Data bytes of the requirement override for a build of ``precision``; None: provision the build's need."""
        if self.required_mib is None:
            return None
        if precision not in self.required_mib:
            raise SpecError(f"MemorySpec: required_mib has no entry for precision {precision!r} "
                            f"(it has {sorted(self.required_mib)}): add one or remove required_mib")
        cells = self.bits_per_cell if self.required_unit == "nvsim_cells" else 1
        return int(round(self.required_mib[precision] * 2**20 * cells))


@dataclass(frozen=True)
class DramSpec(Validated):
    """Off-chip DRAM, TETRIS-style: energy per bit moved, a bandwidth and a first-access latency."""

    technology: str = rule(lambda v: None if v else "must be a non-empty name")
    capacity_bytes: int = rule(positive)
    read_pj_per_bit: float = rule(non_negative)
    write_pj_per_bit: float = rule(non_negative)
    bandwidth_bytes_per_s: float = rule(positive)
    latency_s: float = rule(non_negative)
    source: str = ""


@dataclass(frozen=True)
class ExecutionSpec(Validated):
    """Switches of the performance model (see docs/HWMODEL.md, composition rules)."""

    overlap: bool = False  # double-buffered: per op latency = max(compute, memory) instead of the sum
    include_compute_energy: bool = True  # the paper ignores compute energy; report --paper reports both
    include_leakage: bool = True
    sram_activations: bool = True  # activations read/written in SRAM per op
    # times per inference the running task's SRAM set is re-read from DRAM and re-written into SRAM (0: it
    # stays in SRAM between layer passes). The set is sram.required_mib when given, else the task's pack.
    dram_pack_passes_per_inference: int = rule(non_negative, default=0)
    area_scope: str = rule(one_of("chip", "memory"), default="chip")  # memory: macros only, no PE/logic
    # false: the PE array's buffers (spad_a, spad_b, psum) are not provisioned, priced or counted in area (a study
    # whose accounting has no such levels, e.g. the paper's); they still bound the tiles
    price_buffers: bool = True
    # true: the serve loop charges the accelerator's idle time between requests (host arrival - the previous
    # run's simulated end) under each level's power gating (HwModel.idle). Off by default: it makes a log's
    # energy depend on wall-clock arrival times
    charge_idle: bool = False


@dataclass(frozen=True)
class ScratchpadSpec(Validated):
    """How the PE array's operand buffers (levels ``spad_a``, ``spad_b``) are used.

    ``double_buffered = false`` (EdgeBERT as its source has it: ``decode_inst0/1`` feed the two operands, one
    scratchpad each): a matmul's operands are fetched, then computed on, per tile (memory and compute serial).
    ``true``: a second copy of each operand buffer loads the next tile while the array computes (memory overlaps
    compute after the first tile); it costs the second copies' area and leakage (docs/HWMODEL.md, dataflow).
    """

    double_buffered: bool = False
    source: str = ""


@dataclass(frozen=True)
class TechnologySpec(Validated):
    node_nm: int = rule(positive)
    macro_library: str = rule(lambda v: None if v else "must name a macro CSV")


@dataclass(frozen=True)
class ArchSpec:
    """A whole architecture: accelerator + memory levels. ``memory(level)`` for level in ``LEVELS``."""

    name: str
    design: str = rule(one_of("adapter", "vanilla"))
    technology: TechnologySpec = rule(None)
    clock: ClockSpec = rule(None)
    pe_array: PeArraySpec = rule(None)
    sfu: SfuSpec = rule(None)
    bitmask: BitmaskSpec = rule(None)
    sram: MemorySpec = rule(None)
    rram_slc: MemorySpec = rule(None)
    rram_mlc: MemorySpec = rule(None)
    dram: DramSpec = rule(None)
    execution: ExecutionSpec = rule(None)
    scratchpad: ScratchpadSpec = rule(None)
    spad_a: MemorySpec = rule(None)
    spad_b: MemorySpec = rule(None)
    psum: MemorySpec = rule(None)
    description: str = ""
    path: str = ""  # where it was loaded from ("" for specs built in code)
    dvfs: DvfsSpec | None = None  # optional [dvfs] section: V/F operating points (hwmodel/dvfs.py)

    def __post_init__(self) -> None:
        problems = field_problems(self, "")
        if problems:
            raise SpecError(_message(self.path or "<ArchSpec>", problems))

    def memory(self, level: str) -> MemorySpec | DramSpec:
        if level not in LEVELS:
            raise SpecError(f"unknown memory level {level!r}: use one of {list(LEVELS)}")
        return getattr(self, level)

    def on_chip_memory(self, level: str) -> MemorySpec:
        """The spec of an on-chip level (SRAM, an RRAM array or a PE-array buffer); DRAM is off chip."""
        if level not in (*ON_CHIP_LEVELS, *BUFFERS):
            raise SpecError(f"{level!r} is not an on-chip memory level: use one of {[*ON_CHIP_LEVELS, *BUFFERS]}")
        return getattr(self, level)

    def buffer_copies(self, level: str) -> int:
        """Physical copies of a level: 2 for the operand buffers when double-buffered, else 1."""
        return 2 if level in ("spad_a", "spad_b") and self.scratchpad.double_buffered else 1

    def capacities_bytes(self) -> dict[str, int]:
        """Capacity in bytes of every memory level (``LEVELS``): what a build must fit, what the emulator allocates."""
        return {lv: int(self.memory(lv).capacity_bytes) for lv in LEVELS}

    @property
    def cycle_s(self) -> float:
        return 1.0 / self.clock.freq_hz

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return {"format": SPEC_FORMAT, "format_version": SPEC_FORMAT_VERSION, **d}

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def with_overrides(self, overrides: dict[str, Any]) -> ArchSpec:
        """A copy with dotted keys replaced, e.g. ``{"dram.read_pj_per_bit": 15.0}``; validated like a file."""
        d = self.to_dict()
        for key, value in overrides.items():
            node = d
            parts = key.split(".")
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise SpecError(f"override {key!r}: no section {p!r} in the spec")
                node = node[p]
            if parts[-1] not in node:
                raise SpecError(f"override {key!r}: no field {parts[-1]!r} (known: {sorted(node)})")
            node[parts[-1]] = value
        return spec_from_dict(d, origin=f"{self.path or self.name} + overrides", path=self.path)

    def macro_library_path(self) -> Path:
        p = Path(self.technology.macro_library)
        if p.is_absolute():
            return p
        if self.path and (Path(self.path).parent / p).is_file():
            return Path(self.path).parent / p
        return DATA_DIR / p


def _message(origin: str, problems: list[str]) -> str:
    head = f"{origin}: {len(problems)} problem(s) in the architecture spec: "
    return head + "; ".join(problems)


# -- loading ---------------------------------------------------------------------------------------------------


def spec_from_dict(data: dict, origin: str = "<dict>", path: str = "") -> ArchSpec:
    """Validate a parsed spec (format header included) and build it; one SpecError lists every problem."""
    problems = header_problems(data, SPEC_FORMAT, SPEC_FORMAT_VERSION, {1: (
        ": version 1 has no PE-array buffer levels (spad_a, spad_b, psum) and no pe_array.utilization_source"
        "; see docs/HWMODEL.md")})
    data = {k: v for k, v in data.items() if k not in ("format", "format_version")}
    spec_kwargs_problems: list[str] = []
    if "name" not in data:
        problems.append("name is missing")
    # build the sections first, then the top level, so every problem is collected before raising
    parts: dict[str, Any] = {}
    if data.get("dvfs") is not None:  # an array of tables: parsed by its own class
        try:
            parts["dvfs"] = DvfsSpec.from_dict(data["dvfs"])
        except SpecError as exc:
            problems.append(str(exc))
    for f in fields(ArchSpec):
        if f.name in ("name", "design", "description", "path", "dvfs"):
            continue
        if f.name not in data:
            if f.name == "execution":
                parts[f.name] = ExecutionSpec()
                continue
            problems.append(f"{f.name} section is missing")
            continue
        sub = build_checked(get_type_hints(ArchSpec)[f.name], data[f.name], f.name + ".", spec_kwargs_problems)
        if sub is not None:
            parts[f.name] = sub
    problems += spec_kwargs_problems
    design = data.get("design")
    if design not in ("adapter", "vanilla"):
        problems.append(f"design must be one of ['adapter', 'vanilla'], got {design!r}")
    known = {f.name for f in fields(ArchSpec)} - {"path"}
    problems += [f"{k} is not a known section (known: {sorted(known)})" for k in data if k not in known]
    for level, tech in (("rram_mlc", "RRAM_MLC2"), ("rram_slc", "RRAM_SLC"), ("sram", "SRAM"),
                        *((b, "SRAM") for b in BUFFERS)):
        m = parts.get(level)
        if m is not None and not m.technology.startswith(tech):
            problems.append(f"{level}.technology must be a {tech} technology, got {m.technology!r}")
    if parts.get("dvfs") is not None and parts.get("clock") is not None:
        problems += check_nominal(parts["dvfs"], parts["clock"].freq_hz)
    if problems:
        raise SpecError(_message(origin, problems))
    return ArchSpec(name=str(data["name"]), design=cast(str, design),  # checked above
                    description=str(data.get("description", "")), path=path, **parts)


def load_spec(path: str | Path | None = None, design: str = "adapter") -> ArchSpec:
    """Load an architecture spec; ``path=None`` gives the shipped spec of ``design`` ("adapter" | "vanilla")."""
    if path is None:
        if design not in ("adapter", "vanilla"):
            raise SpecError(f"design must be 'adapter' or 'vanilla', got {design!r}")
        path = SPECS_DIR / f"{design}.toml"
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist: give a TOML spec (see {SPECS_DIR}/adapter.toml)")
    data = read_toml(path, SpecError, "the architecture spec")
    return spec_from_dict(data, origin=str(path), path=str(path))
