"""Multi-task inference (MTI) scenarios: a request stream over tasks, and the task-switch cost it induces.

SRAM holds the parameters of one task at a time (the paper's provisioning, s IV-C): serving a request of a
task other than the loaded one first loads its pack from DRAM (:meth:`HwModel.swap`). The first request is a
switch too (cold start). For the adapter design a pack is the adapters + layer norms + classifier; for the
vanilla design it is the whole transformer, which is where the paper's energy gap comes from.

Per-inference figures = (sum of inference costs + sum of swap costs) / requests. With a switch rate ``s``
(fraction of requests that change task) this is ``inference + s * swap`` (:func:`per_inference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgemti.errors import ConfigError
from edgemti.hwmodel.cost import Cost
from edgemti.hwmodel.model import HwModel

PATTERNS = ("round_robin", "blocked", "random")


@dataclass(frozen=True)
class Scenario:
    """``pattern``: round_robin (switch on every request), blocked (``block`` requests per task), random
    (i.i.d. by ``mix``, seeded)."""

    tasks: tuple[str, ...]
    pattern: str = "round_robin"
    n_requests: int = 300
    seq_len: int = 128
    block: int = 1
    mix: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not self.tasks:
            problems.append("tasks must not be empty")
        if self.pattern not in PATTERNS:
            problems.append(f"pattern must be one of {list(PATTERNS)}, got {self.pattern!r}")
        for name in ("n_requests", "seq_len", "block"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.mix is not None and (len(self.mix) != len(self.tasks) or min(self.mix) < 0 or sum(self.mix) <= 0):
            problems.append(f"mix must have one weight >= 0 per task (sum > 0), got {self.mix}")
        if problems:
            raise ConfigError("Scenario: " + "; ".join(problems))

    def sequence(self) -> list[str]:
        n, k = self.n_requests, len(self.tasks)
        if self.pattern == "round_robin":
            return [self.tasks[i % k] for i in range(n)]
        if self.pattern == "blocked":
            return [self.tasks[(i // self.block) % k] for i in range(n)]
        p = np.asarray(self.mix if self.mix is not None else [1.0] * k, dtype=float)
        idx = np.random.default_rng(self.seed).choice(k, size=n, p=p / p.sum())
        return [self.tasks[i] for i in idx]


@dataclass(frozen=True)
class ScenarioResult:
    n_requests: int
    n_switches: int
    energy_j: float
    latency_s: float
    inference_energy_j: float
    swap_energy_j: float
    energy_by_component_j: dict = field(default_factory=dict)
    requests_by_task: dict = field(default_factory=dict)

    @property
    def switch_rate(self) -> float:
        return self.n_switches / self.n_requests

    @property
    def energy_per_inference_j(self) -> float:
        return self.energy_j / self.n_requests

    @property
    def latency_per_inference_s(self) -> float:
        return self.latency_s / self.n_requests

    def to_dict(self) -> dict:
        return {**self.__dict__, "switch_rate": self.switch_rate,
                "energy_per_inference_j": self.energy_per_inference_j,
                "latency_per_inference_s": self.latency_per_inference_s}


def run_scenario(hw: HwModel, scenario: Scenario) -> ScenarioResult:
    """Serve the scenario's request stream; inference costs are cached per (task, seq_len)."""
    unknown = [t for t in scenario.tasks if t not in hw.tasks]
    if unknown:
        raise ConfigError(f"Scenario: tasks {unknown} are not in the build (it has {hw.tasks})")
    loaded = None
    total_inf, total_swap = Cost.zero(), Cost.zero()
    switches = 0
    by_task: dict[str, int] = {}
    for task in scenario.sequence():
        if task != loaded:
            total_swap = total_swap + hw.swap(task)
            switches += 1
            loaded = task
        c = hw.inference(scenario.seq_len, task)
        total_inf = total_inf + Cost(c.energy_j, c.latency_s, c.energy_by_component_j)
        by_task[task] = by_task.get(task, 0) + 1
    total = total_inf + total_swap
    return ScenarioResult(scenario.n_requests, switches, total.energy_j, total.latency_s, total_inf.energy_j,
                          total_swap.energy_j, dict(total.energy_by_component_j), by_task)


def per_inference(hw: HwModel, seq_len: int, switch_rate: float, task: str | None = None) -> Cost:
    """Expected cost of one request when a fraction ``switch_rate`` of requests switch task."""
    if not 0.0 <= switch_rate <= 1.0:
        raise ConfigError(f"switch_rate must be in [0, 1], got {switch_rate}")
    inf = hw.inference(seq_len, task)
    sw = hw.swap(task if task is not None else _largest(hw))
    e = {k: inf.energy_by_component_j.get(k, 0.0) + switch_rate * sw.energy_by_component_j.get(k, 0.0)
         for k in set(inf.energy_by_component_j) | set(sw.energy_by_component_j)}
    return Cost(inf.energy_j + switch_rate * sw.energy_j, inf.latency_s + switch_rate * sw.latency_s, e)


def _largest(hw: HwModel) -> str:
    return hw.workload.largest_task
