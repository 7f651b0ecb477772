"""What the simulated accelerator is charged for one engine run: count first, then price.

The memories count what a placement moved (:class:`edgemti.runtime.tiers.Placement`: the load's DRAM write, the
swap's DRAM read and SRAM write) and the hardware model prices those counts; the run itself is priced at its
sequence bucket and batch size (cached per (task, bucket, batch) in the hardware model). Costs compose with
``Cost.__add__`` in the order things happen: idle time (with any wake-up reload), the load from disk, the swap, then
the run (serial: latencies add). A batch's run energy is split evenly over its rows; the first row carries the
placement and the idle time. :class:`RunCharger` also keeps the accelerator's clock: the host time its last run
ends, from which the idle time before the next one is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgemti.hwmodel.cost import ActionCounts, Cost
from edgemti.runtime.tiers import Placement


@dataclass(frozen=True)
class RunCharge:
    """The costs of one run of ``rows`` requests: ``share`` (each row's part of the run), ``first`` (the first
    row's total: idle + load + swap + its share), and the parts (None where nothing happened)."""

    share: Cost
    first: Cost
    swap: Cost | None
    load: Cost | None
    idle: Cost | None
    idle_s: float


class RunCharger:
    """Prices the engine's runs and placements on hardware model ``hw`` (re-pointed when the build grows)."""

    def __init__(self, hw: Any) -> None:
        self.hw = hw
        self._swap_cost: dict[str, Cost] = {}
        self.busy_until: float | None = None  # host time the simulated accelerator finishes its last run

    def adopt(self, hw: Any) -> None:
        """Price with a new hardware model (a pack added at run time): the swap cache is dropped."""
        self.hw = hw
        self._swap_cost.clear()

    def swap(self, task: str) -> Cost:
        """A swap of ``task``'s whole pack (the hardware model's own count; the summary's fifo replay)."""
        if task not in self._swap_cost:
            self._swap_cost[task] = self.hw.swap(task)
        return self._swap_cost[task]

    def price_swap_counts(self, dram_bytes_read: int, sram_bytes_written: int) -> Cost:
        """A swap from the bytes the memories counted (DRAM read, SRAM written)."""
        return self.hw.price(ActionCounts(read_bits={"dram": 8.0 * dram_bytes_read},
                                          write_bits={"sram": 8.0 * sram_bytes_written}))

    def price_load_counts(self, dram_bytes_written: int) -> Cost:
        """A load from disk from the bytes the DRAM counted: a DRAM write (the spec's ``dram.write_pj_per_bit``,
        its bandwidth and first-access latency); reading the storage is not modelled."""
        return self.hw.price(ActionCounts(write_bits={"dram": 8.0 * dram_bytes_written}))

    def placement_costs(self, p: Placement) -> tuple[Cost | None, Cost | None]:
        """(swap cost, load cost) of placement ``p``, priced from its counted bytes; None where nothing moved."""
        swap = self.price_swap_counts(p.dram_read_bytes, p.sram_written_bytes) if p.swapped else None
        return swap, (self.price_load_counts(p.dram_written_bytes) if p.loaded else None)

    def run(self, task: str, seq_len: int, rows: int, placement: Placement, t0: float) -> RunCharge:
        """Charge one run of ``rows`` requests of ``task`` priced at ``seq_len``, which arrived at host time ``t0``
        and needed ``placement``; advances the accelerator's clock."""
        idle_s = max(0.0, t0 - self.busy_until) if self.busy_until is not None else 0.0
        run = self.hw.inference(seq_len, task, batch=rows)  # cached per (task, seq_len, batch)
        share = Cost(run.energy_j / rows, run.latency_s, {k: v / rows for k, v in run.energy_by_component_j.items()})
        swap, load = self.placement_costs(placement)
        first = share + swap if swap is not None else share
        if load is not None:
            first = load + first
        charge_idle = self.hw.spec.execution.charge_idle and idle_s > 0
        idle = self.hw.idle(idle_s, None if placement.swapped else task) if charge_idle else None
        if idle is not None:  # idle (and any wake-up reload), then the run
            first = idle + first
        self.busy_until = max(t0, self.busy_until or t0) + float(first.latency_s)
        return RunCharge(share, first, swap, load, idle, idle_s)
