"""One served inference as the engine answers it: :class:`InferResult`, the cost dicts it carries, the prediction.

Every answer (the log record, the stdin response, the HTTP bodies) is :meth:`InferResult.to_dict` plus the
server's fields (docs/LOGS.md); costs are the hardware model's ``Cost`` values as plain dicts in SI units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class InferResult:
    """One served inference: prediction, simulated cost (inference + the swap it caused), host timing."""

    task: str
    label: str | float
    scores: list[float]
    logits: list[float]
    seq_len: int  # tokens priced: the run's length padded up to the sequence bucket (the accelerator's tiles)
    tokens: int  # the request's own tokens
    truncated: bool
    swapped: bool
    evicted: str | None
    inference: dict  # energy_j, latency_s, energy_by_component_j of the inference alone (its share of a batch's
    # energy, split evenly; the batch run's latency)
    swap: dict | None  # the same for the swap, or None on a slot hit
    energy_j: float
    latency_s: float
    energy_by_component_j: dict
    host_s: float  # wall time of the whole call (tokenize + swap + run + charge)
    host_run_s: float  # wall time of the onnxruntime run alone
    host_swap_s: float  # wall time of the host-side swap (copy + rebind), 0 on a hit
    host_charge_s: float  # wall time spent pricing and composing the costs
    batch_size: int = 1  # requests run together in one onnxruntime run (the energy of the run split over them)
    # the pack was read from disk into DRAM first (a DRAM miss: only with a bound on the DRAM tier), the pack
    # evicted from DRAM for it, and the load's cost (a DRAM write of the pack's bytes; ``bytes``), or None
    loaded: bool = False
    dram_evicted: str | None = None
    load: dict | None = None
    # the accelerator's idle time before this run (host arrival - the previous run's simulated end) and its cost
    # under the spec's power gating (hwmodel HwModel.idle), charged to the batch's first row; None: no idle time
    idle: dict | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def cost_dict(cost: Any) -> dict:
    """A hardware-model ``Cost`` as the answers carry it: ``energy_j``, ``latency_s``, ``energy_by_component_j``."""
    return {"energy_j": float(cost.energy_j), "latency_s": float(cost.latency_s),
            "energy_by_component_j": {k: float(v) for k, v in dict(cost.energy_by_component_j).items()}}



def prediction(pack: Any, row: np.ndarray) -> tuple[str | float, list[float]]:
    """The label and scores of one row of logits for ``pack`` (a manifest ``PackEntry``): a regression task's value
    itself, else the argmax label and the softmax probabilities in label order."""
    if pack.is_regression:
        return float(row[0]), [float(row[0])]
    z = row.astype(np.float64) - float(np.max(row))
    p = np.exp(z) / np.exp(z).sum()
    return pack.labels[int(np.argmax(row))], [float(x) for x in p]
