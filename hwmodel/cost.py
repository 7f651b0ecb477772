"""Count first, then price: action counts and the pricing of counts into SI costs.

:class:`ActionCounts` is what an execution *did* (bits read/written per memory level, MACs by precision, SFU
cycles, bitmask vectors, PE-array cycles). :func:`price` multiplies it by the spec's tables and the provisioned
levels. :class:`Cost` is the result, in joules and seconds.

Composition rules (docs/HWMODEL.md):

* energy always adds;
* one priced unit (an op, a swap): ``t_compute = (pe_cycles + sfu_cycles) / f_clk``;
  ``t_memory = max over levels (bits / bandwidth + access latency if the level is touched)`` (levels are
  separate arrays working in parallel; DRAM latency is its first-access latency);
  ``latency = t_compute + t_memory``, or ``max(t_compute, t_memory)`` with ``execution.overlap = true``;
* the PE array's buffers (``spad_a``, ``spad_b``, ``psum``): energy per bit accessed; their time is inside the PE
  cycles (reads) and the source level's transfer (fills);
* leakage energy of a unit = sum of on-chip leakage powers (buffers included) x the unit's latency (so it sums
  exactly);
* units in sequence add (``Cost.__add__``): energies and latencies both add, per component too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from edgemti.errors import ConfigError
from edgemti.hwmodel.macros import LevelProvision
from edgemti.hwmodel.spec import (
    BUFFERS,
    LEVELS,
    ON_CHIP_LEVELS,
    PRECISIONS,
    PRICED_LEVELS,
    SFU_KINDS,
    ArchSpec,
)

LEAKING_LEVELS = (*ON_CHIP_LEVELS, *BUFFERS)
COMPONENTS = ("pe_array", "sfu", "bitmask", *PRICED_LEVELS, *(f"leak_{lv}" for lv in LEAKING_LEVELS))


def _add_dicts(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


@dataclass(frozen=True)
class ActionCounts:
    """What an execution did. Bits are data bits; MACs are issued MAC slots (dense), gated ones counted apart."""

    read_bits: dict = field(default_factory=dict)  # level -> bits read
    write_bits: dict = field(default_factory=dict)  # level -> bits written
    macs: dict = field(default_factory=dict)  # precision -> issued MACs (including gated ones)
    gated_macs: dict = field(default_factory=dict)  # precision -> MACs clock-gated (zero operand)
    pe_cycles: float = 0.0  # PE-array cycles (tiles / utilisation + fill)
    sfu_cycles: dict = field(default_factory=dict)  # SFU kind -> cycles
    sfu_elements: dict = field(default_factory=dict)  # SFU kind -> elements processed
    sfu_precision: str = ""  # MAC-energy key the SFU computes at (the activation precision); set with sfu_elements
    bitmask_decode_vectors: float = 0.0
    bitmask_encode_vectors: float = 0.0

    def __post_init__(self) -> None:
        if self._valid():
            return
        problems = []
        for name, keys in _KEYED_FIELDS:
            d = getattr(self, name)
            problems += [f"{name}[{k!r}] is not one of {list(keys)}" for k in d if k not in keys]
            problems += [f"{name}[{k!r}] must be >= 0, got {v}" for k, v in d.items() if not v >= 0]
        if any(self.sfu_elements.values()) and self.sfu_precision not in PRECISIONS:
            problems.append(f"sfu_elements need sfu_precision in {list(PRECISIONS)}, got {self.sfu_precision!r}")
        elif self.sfu_precision and self.sfu_precision not in PRECISIONS:
            problems.append(f"sfu_precision must be one of {list(PRECISIONS)}, got {self.sfu_precision!r}")
        for name in ("pe_cycles", "bitmask_decode_vectors", "bitmask_encode_vectors"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for p, g in self.gated_macs.items():
            if g > self.macs.get(p, 0):
                problems.append(f"gated_macs[{p!r}]={g} exceeds macs[{p!r}]={self.macs.get(p, 0)}")
        if problems:
            raise ConfigError("ActionCounts: " + "; ".join(problems))

    def _valid(self) -> bool:
        """The common case, checked fast (pricing builds hundreds of counts per inference)."""
        for name, keys in _KEYED_FIELDS:
            d = self.__dict__[name]
            if d and not (keys.issuperset(d) and all(v >= 0 for v in d.values())):
                return False
        if any(self.sfu_elements.values()) and self.sfu_precision not in PRECISIONS:
            return False
        if self.sfu_precision and self.sfu_precision not in PRECISIONS:
            return False
        if not (self.pe_cycles >= 0 and self.bitmask_decode_vectors >= 0 and self.bitmask_encode_vectors >= 0):
            return False
        return all(g <= self.macs.get(p, 0) for p, g in self.gated_macs.items())

    def __add__(self, other: ActionCounts) -> ActionCounts:
        if self.sfu_precision and other.sfu_precision and self.sfu_precision != other.sfu_precision:
            raise ConfigError(f"ActionCounts: cannot add SFU work at {self.sfu_precision} and {other.sfu_precision}")
        a, b = self.__dict__, other.__dict__
        out = object.__new__(ActionCounts)  # the sum of two valid counts is valid: no re-check
        d = out.__dict__
        for name in _DICT_FIELDS:
            d[name] = _add_dicts(a[name], b[name]) if b[name] else dict(a[name])
        for name in _NUMBER_FIELDS:
            d[name] = a[name] + b[name]
        d["sfu_precision"] = self.sfu_precision or other.sfu_precision
        return out

    def scaled(self, k: float) -> ActionCounts:
        kw: dict[str, Any] = {}
        for f in fields(self):
            a = getattr(self, f.name)
            if isinstance(a, str):
                kw[f.name] = a
            else:
                kw[f.name] = {x: v * k for x, v in a.items()} if isinstance(a, dict) else a * k
        return ActionCounts(**kw)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_KEYED_FIELDS = (("read_bits", frozenset(PRICED_LEVELS)), ("write_bits", frozenset(PRICED_LEVELS)),
                 ("macs", frozenset(PRECISIONS)), ("gated_macs", frozenset(PRECISIONS)),
                 ("sfu_cycles", frozenset(SFU_KINDS)), ("sfu_elements", frozenset(SFU_KINDS)))
_DICT_FIELDS = tuple(f.name for f in fields(ActionCounts) if f.type == "dict")
_NUMBER_FIELDS = tuple(f.name for f in fields(ActionCounts) if f.type == "float")
assert len(_DICT_FIELDS) + len(_NUMBER_FIELDS) + 1 == len(fields(ActionCounts))  # + sfu_precision


@dataclass(frozen=True)
class Cost:
    """Energy (J) and latency (s) with their breakdowns. ``a + b`` = a then b (serial)."""

    energy_j: float
    latency_s: float
    energy_by_component_j: dict = field(default_factory=dict)
    latency_by_part_s: dict = field(default_factory=dict)  # compute_s, memory_s (before overlap)

    def __post_init__(self) -> None:
        total = sum(self.energy_by_component_j.values())
        if self.energy_by_component_j and not math.isclose(total, self.energy_j, rel_tol=1e-9, abs_tol=1e-24):
            raise AssertionError(f"Cost: breakdown sums to {total} J, total is {self.energy_j} J")

    def __add__(self, other: Cost) -> Cost:
        out = object.__new__(Cost)  # two closed breakdowns add up to a closed one: no re-check
        d = out.__dict__
        d["energy_j"] = self.energy_j + other.energy_j
        d["latency_s"] = self.latency_s + other.latency_s
        d["energy_by_component_j"] = _add_dicts(self.energy_by_component_j, other.energy_by_component_j)
        d["latency_by_part_s"] = _add_dicts(self.latency_by_part_s, other.latency_by_part_s)
        return out

    @staticmethod
    def zero() -> Cost:
        return Cost(0.0, 0.0, {}, {})

    def to_dict(self) -> dict:
        return {"energy_j": self.energy_j, "latency_s": self.latency_s,
                "energy_by_component_j": dict(self.energy_by_component_j),
                "latency_by_part_s": dict(self.latency_by_part_s)}


def mac_energy_j(spec: ArchSpec, precision: str) -> float:
    return spec.pe_array.mac_energy_pj[precision] * 1e-12


def price(counts: ActionCounts, spec: ArchSpec, levels: Mapping[str, LevelProvision]) -> Cost:
    """Price ``counts`` with the spec's tables and the provisioned on-chip ``levels`` (see module rules)."""
    ex = spec.execution
    e: dict[str, float] = {}
    # compute
    pe = 0.0
    for p, n in counts.macs.items():
        g = counts.gated_macs.get(p, 0)
        pe += ((n - g) + g * spec.pe_array.gated_energy_fraction) * mac_energy_j(spec, p)
    # the SFU computes on activations: its MAC-equivalent work is priced at their precision
    sfu = sum(n * spec.sfu.mac_equiv_per_element[k] for k, n in counts.sfu_elements.items())
    if sfu:
        sfu *= mac_energy_j(spec, counts.sfu_precision)
    bm = (counts.bitmask_decode_vectors * spec.bitmask.decode_pj_per_vector
          + counts.bitmask_encode_vectors * spec.bitmask.encode_pj_per_vector) * 1e-12
    if ex.include_compute_energy:
        e["pe_array"], e["sfu"], e["bitmask"] = pe, sfu, bm
    # memories: dynamic energy and transfer time
    t_mem = 0.0
    for lv in LEVELS:
        rb, wb = counts.read_bits.get(lv, 0.0), counts.write_bits.get(lv, 0.0)
        if lv == "dram":
            d = spec.dram
            energy = (rb * d.read_pj_per_bit + wb * d.write_pj_per_bit) * 1e-12
            t = (rb + wb) / 8 / d.bandwidth_bytes_per_s + (d.latency_s if rb + wb else 0.0)
        else:
            if (rb or wb) and lv not in levels:
                raise ConfigError(f"price: counts touch {lv} but the architecture provisions no {lv}")
            if not (rb or wb):
                e[lv] = 0.0
                continue
            L = levels[lv]
            energy = rb * L.read_j_per_bit + wb * L.write_j_per_bit
            t = 0.0
            if rb:
                t += rb / 8 / L.read_bytes_per_s + L.read_latency_s
            if wb:
                t += wb / 8 / L.write_bytes_per_s + L.write_latency_s
        e[lv] = energy
        t_mem = max(t_mem, t)
    # the PE array's buffers: energy per access; no transfer time of their own (16 banks deliver a vector a cycle
    # inside the PE cycles; their fills ride on the source level's transfer). Unprovisioned (price_buffers off,
    # or untouched): not priced.
    for lv in BUFFERS:
        if lv in levels:
            L = levels[lv]
            e[lv] = counts.read_bits.get(lv, 0.0) * L.read_j_per_bit + counts.write_bits.get(lv, 0.0) * L.write_j_per_bit
    t_comp = (counts.pe_cycles + sum(counts.sfu_cycles.values())) * spec.cycle_s
    latency = max(t_comp, t_mem) if ex.overlap else t_comp + t_mem
    if ex.include_leakage:
        for lv in LEAKING_LEVELS:
            if lv in levels:
                e[f"leak_{lv}"] = levels[lv].leak_w * latency
    return Cost(sum(e.values()), latency, e, {"compute_s": t_comp, "memory_s": t_mem})
