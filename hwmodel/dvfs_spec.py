"""The DVFS section of a spec (``[dvfs]``): operating points, the switch cost's numbers, the scaled components.

The typed values only, validated on construction; what they do to a cost is :mod:`edgemti.hwmodel.dvfs`. This
module imports nothing of edgemti but errors, so the spec loader can hold it without importing the cost model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgemti.errors import SpecError

_DYNAMIC = ("pe_array", "sfu", "bitmask", "sram", "spad_a", "spad_b", "psum")
_LEAKAGE = ("leak_sram", "leak_spad_a", "leak_spad_b", "leak_psum", "leak_rram_slc", "leak_rram_mlc")


@dataclass(frozen=True)
class OperatingPoint:
    """One V/F bin."""

    voltage_v: float
    freq_hz: float

    def __post_init__(self) -> None:
        if not (isinstance(self.voltage_v, (int, float)) and 0 < self.voltage_v < 5):
            raise SpecError(f"OperatingPoint: voltage_v must be in (0, 5) V, got {self.voltage_v!r}")
        if not (isinstance(self.freq_hz, (int, float)) and 0 < self.freq_hz < 1e11):
            raise SpecError(f"OperatingPoint: freq_hz must be in (0, 1e11) Hz, got {self.freq_hz!r}")

    def to_dict(self) -> dict[str, float]:
        return {"voltage_v": self.voltage_v, "freq_hz": self.freq_hz}


@dataclass(frozen=True)
class DvfsSpec:
    """Operating points (ascending frequency, voltage non-decreasing), the switch cost, the scaled components."""

    points: tuple[OperatingPoint, ...]
    switch_latency_s: float
    switch_energy_j: float
    dynamic_components: tuple[str, ...] = _DYNAMIC
    leakage_components: tuple[str, ...] = _LEAKAGE
    source: str = ""

    def __post_init__(self) -> None:
        problems = []
        if len(self.points) < 1:
            problems.append("points must list at least one operating point")
        f = [p.freq_hz for p in self.points]
        v = [p.voltage_v for p in self.points]
        if any(b <= a for a, b in zip(f, f[1:], strict=False)) or any(b < a for a, b in zip(v, v[1:], strict=False)):
            problems.append(f"points must ascend in frequency with non-decreasing voltage, got {list(zip(v, f, strict=False))}")
        for name in ("switch_latency_s", "switch_energy_j"):
            x = getattr(self, name)
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or x < 0:
                problems.append(f"{name} must be a number >= 0, got {x!r}")
        if problems:
            raise SpecError("DvfsSpec: " + "; ".join(problems))

    @property
    def nominal(self) -> OperatingPoint:
        """The fastest point (the spec's clock; checked by :func:`check_nominal`)."""
        return self.points[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in self.points], "switch_latency_s": self.switch_latency_s,
                "switch_energy_j": self.switch_energy_j, "dynamic_components": list(self.dynamic_components),
                "leakage_components": list(self.leakage_components), "source": self.source}

    @classmethod
    def from_dict(cls, d: Any, origin: str = "dvfs") -> DvfsSpec:
        """The spec's ``[dvfs]`` table (``points`` = an array of ``{voltage_v, freq_hz}`` tables)."""
        keys = {"points", "switch_latency_s", "switch_energy_j", "dynamic_components", "leakage_components",
                "source"}
        if not isinstance(d, dict):
            raise SpecError(f"{origin} must be a table, got {type(d).__name__}")
        unknown = sorted(set(d) - keys)
        missing = sorted({"points", "switch_latency_s", "switch_energy_j"} - set(d))
        if unknown or missing:
            raise SpecError(f"{origin}: unknown keys {unknown}, missing keys {missing} (known: {sorted(keys)})")
        pts = d["points"]
        if not isinstance(pts, (list, tuple)) or any(not isinstance(p, dict) or set(p) != {"voltage_v", "freq_hz"}
                                            for p in pts):
            raise SpecError(f"{origin}.points must be an array of {{voltage_v, freq_hz}} tables, got {pts!r}"[:300])
        try:
            return cls(points=tuple(OperatingPoint(float(p["voltage_v"]), float(p["freq_hz"])) for p in pts),
                       switch_latency_s=float(d["switch_latency_s"]), switch_energy_j=float(d["switch_energy_j"]),
                       dynamic_components=tuple(d.get("dynamic_components", _DYNAMIC)),
                       leakage_components=tuple(d.get("leakage_components", _LEAKAGE)),
                       source=str(d.get("source", "")))
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{origin}: {exc}") from None


def check_nominal(dvfs: DvfsSpec, clock_hz: float) -> list[str]:
    """Problems with ``dvfs`` against the spec's clock (the fastest point must be the clock)."""
    if not math.isclose(dvfs.nominal.freq_hz, clock_hz, rel_tol=1e-9):
        return [f"dvfs: the fastest point ({dvfs.nominal.freq_hz:g} Hz) must be clock.freq_hz ({clock_hz:g} Hz)"]
    return []
