"""Fault-aware packs (beyond the paper): train a pack on the served backbone read through faulty MLC RRAM cells,
a fresh fault pattern every training step, so the adapters learn to tolerate the read errors the chip makes.

Every step the RRAM images of the served backbone are read through the runtime's own fault model
(:class:`edgemti.runtime.faults.FaultModel`: a 2-bit MLC cell moves to an adjacent level with probability
``mlc_error_rate``; the masks sit in SLC cells, error-free unless ``slc_error_rate`` is set) with the seed
``(seed, step)`` and decoded with the runtime's faulty decoder (:func:`edgemti.runtime.hma.decode_faulty`). Dev
scores during training, and the backbone the pack is proven not to have changed, are the fault-free served ones.
Compare the result with a fault-free pack under ``edgemti faults`` (docs/RESULTS.md). A study because it joins the
compiler's served backbone and the runtime's fault model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgemti.compiler.compression import Compression
from edgemti.compiler.retrain import train_on_served
from edgemti.compiler.served import ServedBackbone
from edgemti.errors import ConfigError
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.hma import decode_faulty
from edgemti.tasks.train import TrainResult
from edgemti.tasks.train_config import TrainConfig


class FaultyBackbone:
    """``(served, step) -> backbone tensors`` read through faulty cells, a fresh pattern per step (picklable)."""

    def __init__(self, mlc_error_rate: float, seed: int = 0, slc_error_rate: float = 0.0) -> None:
        if not 0.0 < float(mlc_error_rate) <= 1.0:
            raise ConfigError(f"FaultyBackbone: mlc_error_rate must be in (0, 1], got {mlc_error_rate!r}",
                              options=("fault_mlc_rate",))
        self.mlc_error_rate = float(mlc_error_rate)
        self.slc_error_rate = float(slc_error_rate)
        self.seed = int(seed)

    def model(self, step: int) -> FaultModel:
        # one seed per (run seed, step): FaultModel seeds take one int, so the step is folded in deterministically
        return FaultModel(slc_error_rate=self.slc_error_rate, mlc_error_rate=self.mlc_error_rate,
                          seed=self.seed * 1_000_003 + step)

    def __call__(self, served: ServedBackbone, step: int) -> Mapping[str, np.ndarray]:
        fault = self.model(step)
        mlc = fault("RRAM_MLC2", 0, served.mlc)
        slc = fault("RRAM_SLC", 0, served.slc)
        return {t.name: decode_faulty(t, mlc[t.values.offset:t.values.end], slc[t.mask.offset:t.mask.end])
                for t in served.entries}


def train_fault_aware(cfg: TrainConfig, out_dir: str | Path, mlc_error_rate: float,
                      compression: Compression | None = None, build: str | Path | None = None, seed: int = 0,
                      progress: bool = True) -> TrainResult:
    """Train ``cfg`` on the served backbone (``compression`` or ``build``) with MLC faults at ``mlc_error_rate``
    injected afresh every step; the pack records the rate and seed in ``trained_on``."""
    return train_on_served(cfg, out_dir, compression=compression, build=build, progress=progress,
                           step_backbone=FaultyBackbone(mlc_error_rate, seed), fault_mlc_rate=mlc_error_rate,
                           fault_seed=seed)
