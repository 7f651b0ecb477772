"""Dynamic voltage and frequency scaling (EdgeBERT, MICRO'21): operating points, how a cost scales, the choice.

A spec's optional ``[dvfs]`` section lists operating points (supply voltage, clock frequency; the nominal point is
the one at the spec's ``clock.freq_hz``) and what a V/F switch costs. Running a priced unit at point ``p`` instead
of nominal ``n`` (``k = f_n / f_p >= 1``):

* compute time (PE-array + SFU cycles) stretches by ``k``; memory transfer time does not (the macros' access
  times are their own); a unit's latency recombines them as :func:`edgemti.hwmodel.cost.price` does (serial, or
  the max of the two with ``execution.overlap``);
* dynamic energy of the components on the scaled rail (``dynamic_components``: the PE array, SFUs, bitmask
  logic, the operand/partial-sum buffers and SRAM by default) scales with ``(V_p / V_n)^2``; RRAM reads (the cells' read voltage) and DRAM (off
  chip) do not;
* leakage power of ``leakage_components`` scales with ``V_p / V_n`` and its energy with the stretched time.

:func:`choose_point` gives the lowest-voltage point whose predicted latency meets a target (EdgeBERT sets V/F
from the predicted exit layer); :func:`switch_cost` is one switch. The spec's typed section is
:mod:`edgemti.hwmodel.dvfs_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edgemti.hwmodel.cost import Cost
from edgemti.hwmodel.dvfs_spec import DvfsSpec, OperatingPoint, check_nominal

__all__ = ["DvfsSpec", "OperatingPoint", "check_nominal", "choose_point", "scale", "switch_cost"]

def switch_cost(dvfs: DvfsSpec) -> Cost:
    """One V/F change: the regulator settles and the clock relocks (the accelerator waits), a fixed energy."""
    return Cost(dvfs.switch_energy_j, dvfs.switch_latency_s, {"dvfs_switch": dvfs.switch_energy_j},
                {"dvfs_switch_s": dvfs.switch_latency_s})


def scale(energy_by_component_j: Mapping[str, float], latency_s: float, compute_s: float, overlap: bool,
          point: OperatingPoint, dvfs: DvfsSpec) -> Cost:
    """One priced unit (its component energies, latency and compute time at nominal) run at ``point``."""
    n = dvfs.nominal
    k = n.freq_hz / point.freq_hz
    v = point.voltage_v / n.voltage_v
    compute_s = min(compute_s, latency_s)
    memory_s = latency_s - compute_s if not overlap else (latency_s if latency_s > compute_s else 0.0)
    new_latency = max(compute_s * k, memory_s) if overlap else compute_s * k + memory_s
    stretch = new_latency / latency_s if latency_s > 0 else 1.0
    dyn, leak = set(dvfs.dynamic_components), set(dvfs.leakage_components)
    e = {}
    for c, x in energy_by_component_j.items():
        e[c] = x * v * v if c in dyn else (x * v * stretch if c in leak else x)
    return Cost(sum(e.values()), new_latency, e, {"compute_s": compute_s * k, "memory_s": memory_s})


def choose_point(dvfs: DvfsSpec, latency_at: Callable[[OperatingPoint], float], target_s: float
                 ) -> tuple[OperatingPoint, bool]:
    """The lowest-voltage point whose ``latency_at(point)`` (the predicted remaining work, switch included by the
    caller) is within ``target_s``; ``(nominal, False)`` when none is."""
    for p in dvfs.points:
        if latency_at(p) <= target_s:
            return p, True
    return dvfs.nominal, False
