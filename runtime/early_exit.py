"""Serving with EdgeBERT's entropy early exit: layer by layer, stop at the exit, charge only what ran.

:class:`EarlyExitEngine` wraps an :class:`edgemti.runtime.engine.Engine` (the same build, HMA, slots and swaps)
and answers through :class:`edgemti.runtime.stages.StagedGraph`: stage 1 (embeddings, layer 1, off-ramp 1), then
for each next layer only if the last off-ramp's softmax entropy was not under the task's threshold
(:class:`edgemti.exit_policy.ExitPolicy`, from the manifest). Layer ``L`` answers through the task head.

Cost, counted first and priced by the hardware model: the inference's per-node records (``hw.inference``) are
grouped by the stage their node belongs to; a request exiting at ``k`` is charged stages ``1..k`` (plus its swap),
never a node of a later stage. With a latency target and a spec with ``[dvfs]``: layer 1 runs at the nominal
point; the predictor's exit layer for layer 1's entropy picks the lowest-voltage point at which layers
``2..predicted`` (and the switch) still finish within the target (hwmodel/dvfs.py); the remaining layers run
there. The answer says whether the actual latency met the target (a miss when the exit came later than
predicted, or no point was fast enough).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemti.errors import ConfigError, FormatError, RequestError
from edgemti.exit_policy import ExitPolicy
from edgemti.formats.graph import bind_initializers, load_graph
from edgemti.hwmodel.cost import Cost
from edgemti.hwmodel.dvfs import OperatingPoint
from edgemti.runtime.answer import cost_dict
from edgemti.runtime.exit_cost import ExitCostModel
from edgemti.runtime.request import Request, error_response
from edgemti.runtime.stages import StagedGraph

log = logging.getLogger(__name__)


def softmax_entropy(logits: np.ndarray) -> float:
    """Entropy in nats of the softmax of one row of logits."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    z = z - z.max()
    s = np.exp(z).sum()
    p = np.exp(z) / s
    return float(-(p * (z - math.log(s))).sum())


@dataclass(frozen=True)
class ExitConfig:
    """How early exit serves: ``latency_target_s`` (None = no target, every layer at the nominal point)."""

    latency_target_s: float | None = None

    def __post_init__(self) -> None:
        t = self.latency_target_s
        if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 < t < 3600):
            raise ConfigError(f"ExitConfig: latency_target_s must be a number of seconds in (0, 3600), got {t!r}",
                              options=("latency_target_s",))


@dataclass
class ExitStats:
    """Counters of one run (what the summary and /metrics show beside the engine's)."""

    requests: int = 0
    exit_histogram: dict[int, int] = field(default_factory=dict)
    target_misses: int = 0
    switches: int = 0


@dataclass(frozen=True)
class Priced:
    """One early-exit answer priced: its inference cost and the DVFS decision behind it."""

    cost: Cost
    point: OperatingPoint | None  # what the prediction chose (None: no target)
    used: OperatingPoint | None  # what layers 2.. ran at (nominal when no switch happened)
    switched: bool
    feasible: bool  # some point met the target for the predicted exit
    target_met: bool | None  # None without a target


class EarlyExitEngine:
    """Serves the engine's build with early exit. Same protocol as the engine for the server loop."""

    def __init__(self, engine: Any, config: ExitConfig | None = None, threads: int | None = None) -> None:
        self.engine = engine
        self.config = config or ExitConfig()
        m = engine.manifest
        self.policies: dict[str, ExitPolicy] = {}
        missing = []
        for t in m.tasks:
            p = m.pack(t).exit
            if p is None:
                missing.append(t)
            else:
                self.policies[t] = p
        if missing:
            raise ConfigError(f"tasks {missing} have no exit policy in the build: calibrate their packs "
                              "(calibrate-exit) and recompile, or serve without early exit", options=("early_exit",))
        graph = load_graph(engine.build.graph_bytes())
        self.graph = StagedGraph(bind_initializers(graph, engine.hma.read_backbone()), threads=threads)
        self.costs = ExitCostModel(engine.hw, engine.spec, graph)
        for t, p in self.policies.items():
            if p.num_layers != self.graph.num_layers:
                raise FormatError(f"task {t}: exit policy has {p.num_layers} layers, the graph {self.graph.num_layers}")
        self.dvfs = engine.spec.dvfs
        if self.config.latency_target_s is not None and self.dvfs is None:
            raise ConfigError(f"a latency target needs DVFS operating points: spec {engine.spec.name!r} has no "
                              "[dvfs] section", options=("latency_target_s", "spec"))
        self.exit_stats = ExitStats()

    # -- the server protocol, delegated ------------------------------------------------------------------------
    @property
    def rules(self):
        return self.engine.rules

    @property
    def manifest(self):
        return self.engine.manifest

    def is_resident(self, task: str) -> bool:
        return self.engine.is_resident(task)

    def swap_cost(self, task: str) -> tuple[float, float]:
        return self.engine.swap_cost(task)

    @property
    def residency(self):
        return self.engine.residency

    def load_cost(self, task: str) -> tuple[float, float]:
        return self.engine.load_cost(task)

    def in_dram(self, task: str) -> bool:
        return self.engine.in_dram(task)

    def warm(self, tasks: tuple[str, ...] | None = None) -> int:
        return self.engine.warm(tasks)

    def log_header(self) -> dict:
        return dict(self.engine.log_header(), early_exit={
            "num_layers": self.graph.num_layers, "latency_target_s": self.config.latency_target_s,
            "dvfs_points": len(self.dvfs.points) if self.dvfs else 0,
            "thresholds": {t: p.threshold for t, p in self.policies.items()}})

    # -- serving -----------------------------------------------------------------------------------------------
    def price(self, task: str, seq_len: int, exit_layer: int, predicted: int, target_s: float | None) -> Priced:
        """What an answer that exited at ``exit_layer`` (predicted: ``predicted``) costs under ``target_s``: the
        operating point the prediction picks, the inference cost (layer 1 nominal, switch, the rest at the point),
        whether the target was met. :meth:`infer` prices every answer with it."""
        point, feasible = self.costs.choose(task, seq_len, predicted, target_s)
        cost, switched = self.costs.exit_cost(task, seq_len, exit_layer, point)
        used = point if switched else (self.dvfs.nominal if self.dvfs is not None else None)
        met = None if target_s is None else bool(cost.latency_s <= target_s)
        return Priced(cost, point, used, switched, feasible, met)

    def infer(self, task: str, text: str, text_pair: str | None = None) -> dict:
        """One request through the layers; the fields of the engine's answer plus the exit's (module docstring)."""
        t0 = time.perf_counter()
        feeds, truncated = self.engine.encode_request(task, text, text_pair)
        return self.infer_ids(task, feeds, truncated, t0)

    def infer_ids(self, task: str, feeds: dict[str, np.ndarray], truncated: bool = False,
                  t0: float | None = None) -> dict:
        t0 = time.perf_counter() if t0 is None else t0
        eng = self.engine
        swapped, evicted, host_swap = eng.make_resident(task)
        placement = eng.last_placement
        swap_cost, load_cost = eng.placement_costs(placement)
        policy = self.policies[task]
        pack = eng.pack_tensors(task)
        seq_len = int(feeds["input_ids"].shape[1])
        values: dict[str, np.ndarray] = dict(feeds)
        entropies: list[float] = []
        t1 = time.perf_counter()
        n = self.graph.num_layers
        point: OperatingPoint | None = None
        predicted, feasible = n, True
        logits = np.zeros(0)
        for k in range(1, n + 1):
            logits = self.graph.run(k, values, pack)[0]
            entropies.append(softmax_entropy(logits))
            if k == 1:
                predicted = policy.predict_exit(entropies[0])
                point, feasible = self.costs.choose(task, seq_len, predicted, self.config.latency_target_s)
            if k < n and entropies[-1] < policy.threshold:
                break
        exit_layer = len(entropies)
        t2 = time.perf_counter()
        priced = self.price(task, seq_len, exit_layer, predicted, self.config.latency_target_s)
        assert priced.point == point
        inference, switched, used, met = priced.cost, priced.switched, priced.used, priced.target_met
        cost = inference
        if swap_cost is not None:
            cost = swap_cost + cost
        if load_cost is not None:  # loaded from disk into DRAM, then swapped, then run
            cost = load_cost + cost
        target = self.config.latency_target_s
        st = self.exit_stats
        st.requests += 1
        st.exit_histogram[exit_layer] = st.exit_histogram.get(exit_layer, 0) + 1
        st.target_misses += int(met is False)
        st.switches += int(switched)
        row = logits.astype(np.float64)
        z = row - row.max()
        p = np.exp(z) / np.exp(z).sum()
        pe = self.manifest.pack(task)
        return {"task": task, "label": pe.labels[int(np.argmax(row))], "scores": [float(x) for x in p],
                "logits": [float(x) for x in row], "seq_len": seq_len,
                "tokens": int(feeds["attention_mask"].sum()), "truncated": bool(truncated), "swapped": swapped,
                "evicted": evicted, "exit_layer": exit_layer, "num_layers": n, "entropy": entropies[-1],
                "entropies": entropies, "threshold": policy.threshold, "predicted_exit_layer": predicted,
                "operating_point": used.to_dict() if used is not None else None,
                "latency_target_s": target, "latency_target_met": met, "dvfs_feasible": feasible,
                "inference": cost_dict(inference), "swap": cost_dict(swap_cost) if swap_cost else None,
                "loaded": placement.loaded, "dram_evicted": placement.dram_evicted,
                "load": dict(cost_dict(load_cost), bytes=placement.dram_written_bytes) if load_cost else None,
                "energy_j": float(cost.energy_j), "latency_s": float(cost.latency_s),
                "energy_by_component_j": {k: float(v) for k, v in cost.energy_by_component_j.items()},
                "host_s": time.perf_counter() - t0, "host_run_s": t2 - t1, "host_swap_s": host_swap,
                "host_charge_s": time.perf_counter() - t2, "batch_size": 1}

    def infer_request(self, req: Request) -> dict:
        return dict({"id": req.id, "ok": True}, **self.infer(req.task, req.text, req.text_pair))

    def infer_batch(self, reqs: Sequence[Request]) -> list[dict]:
        """Each request on its own (sentences of a batch exit at different layers): one answer each, in order."""
        out = []
        for r in reqs:
            try:
                out.append(self.infer_request(r))
            except RequestError as exc:
                out.append(error_response(r.id, exc))
        return out

    def summary(self) -> dict:
        st = self.exit_stats
        hist = {str(k): st.exit_histogram.get(k, 0) for k in range(1, self.graph.num_layers + 1)}
        mean = sum(k * v for k, v in st.exit_histogram.items()) / st.requests if st.requests else None
        return {"requests": st.requests, "exit_layer_histogram": hist, "mean_exit_layer": mean,
                "latency_target_s": self.config.latency_target_s, "latency_target_misses": st.target_misses,
                "dvfs_switches": st.switches}
