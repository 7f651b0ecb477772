"""What exiting at layer ``k`` costs: the hardware model's per-node records grouped by the stage each node is in.

Count first, then price: :meth:`edgemti.hwmodel.model.HwModel.inference` prices one whole inference node by node;
:class:`ExitCostModel` adds each record into the stage (runtime/stages.py) its node belongs to, so stage ``i`` is
layer ``i``'s matmuls, SFU work, memory traffic and leakage (plus off-ramp ``i``; stage 1 also the embeddings,
stage ``L`` the task head). A whole-inference record that no node owns (the DRAM pack re-fetch of
``execution.dram_pack_passes_per_inference``) is spread evenly over the layers. The stages sum to the inference
exactly (asserted). At an operating point other than nominal each record is scaled by :func:`hwmodel.dvfs.scale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

from edgemti.hwmodel.cost import Cost
from edgemti.hwmodel.dvfs import OperatingPoint, choose_point, scale, switch_cost
from edgemti.runtime.stages import partition, stage_of_node


@dataclass(frozen=True)
class LayerCosts:
    """Per-layer cost of one (task, seq_len) at one operating point: ``layers[i]`` = stage ``i+1``."""

    layers: tuple[Cost, ...]

    def upto(self, k: int, start: int = 1) -> Cost:
        """Stages ``start..k`` in sequence (``Cost.__add__``)."""
        total = Cost.zero()
        for c in self.layers[start - 1:k]:
            total = total + c
        return total


class ExitCostModel:
    """Per-layer costs of a build's graph with exit outputs, on the engine's hardware model (cached)."""

    def __init__(self, hw, spec, graph: onnx.ModelProto) -> None:
        self.hw = hw
        self.spec = spec
        self.dvfs = spec.dvfs
        stages = partition(graph)
        self.num_layers = len(stages)
        self._stage = stage_of_node(graph, stages)
        self._cache: dict[tuple[str, int, OperatingPoint | None], LayerCosts] = {}

    def layer_costs(self, task: str, seq_len: int, point: OperatingPoint | None = None) -> LayerCosts:
        """Stage costs of one inference of ``task`` at ``seq_len`` tokens, at ``point`` (None: nominal)."""
        nominal = self.dvfs.nominal if self.dvfs is not None else None
        point = point if point is not None else nominal
        key = (task, seq_len, point)
        if key in self._cache:
            return self._cache[key]
        inf = self.hw.inference(seq_len, task)
        n = self.num_layers
        per = [Cost.zero() for _ in range(n)]
        cycle_s = self.spec.cycle_s
        overlap = self.spec.execution.overlap
        for r in inf.records:
            layers = [self._stage[r.node]] if r.node in self._stage else list(range(1, n + 1))
            share = 1.0 / len(layers)
            comp = {k: v * share for k, v in r.energy_by_component_j.items()}
            if self.dvfs is not None and point is not None and point != nominal:
                c = scale(comp, r.latency_s * share, r.cycles * cycle_s * share, overlap, point, self.dvfs)
            else:
                c = Cost(r.energy_j * share, r.latency_s * share, comp)
            for k in layers:
                per[k - 1] = per[k - 1] + c
        if point == nominal:  # accounting invariant: the stages close on the whole inference
            assert math.isclose(sum(c.energy_j for c in per), inf.energy_j, rel_tol=1e-9), (per, inf.energy_j)
            assert math.isclose(sum(c.latency_s for c in per), inf.latency_s, rel_tol=1e-9)
        self._cache[key] = LayerCosts(tuple(per))
        return self._cache[key]

    def choose(self, task: str, seq_len: int, predicted: int, target_s: float | None
               ) -> tuple[OperatingPoint | None, bool]:
        """The point for layers 2..: the lowest whose layer 1 (nominal) + switch + layers 2..``predicted`` finish
        within ``target_s``; ``(None, True)`` without a target or DVFS."""
        if target_s is None or self.dvfs is None:
            return None, True
        dvfs = self.dvfs
        first = self.layer_costs(task, seq_len).upto(1).latency_s

        def latency_at(p: OperatingPoint) -> float:
            if predicted <= 1:
                return first
            rest = self.layer_costs(task, seq_len, p).upto(predicted, start=2).latency_s
            return first + rest + (dvfs.switch_latency_s if p != dvfs.nominal else 0.0)

        return choose_point(dvfs, latency_at, target_s)

    def exit_cost(self, task: str, seq_len: int, exit_layer: int, point: OperatingPoint | None = None
                  ) -> tuple[Cost, bool]:
        """Cost of an inference that ran layers ``1..exit_layer``: layer 1 at nominal, the rest at ``point`` (a
        switch charged when it is not nominal); and whether a switch happened."""
        cost = self.layer_costs(task, seq_len).upto(1)
        switched = (exit_layer > 1 and point is not None and self.dvfs is not None and point != self.dvfs.nominal)
        if exit_layer > 1:
            if switched:
                assert self.dvfs is not None
                cost = cost + switch_cost(self.dvfs)
            cost = cost + self.layer_costs(task, seq_len, point).upto(exit_layer, start=2)
        return cost, switched
