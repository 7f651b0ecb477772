"""Which training a task pack gets (``edgemti train``), decided once from typed options.

A pack is trained on the float backbone (:func:`edgemti.tasks.train.train_task`); on a served backbone, a build's
or one compressed as compile would compress it (:func:`edgemti.compiler.retrain.train_on_served`); on that backbone
with RRAM faults injected afresh every step (:func:`edgemti.studies.fault_train.train_fault_aware`); or with
EdgeBERT off-ramps added, to a pack trained here or given (:func:`edgemti.tasks.offramp.train_with_off_ramps`).
:class:`TrainPlan` checks the combinations on construction and names every problem in one error;
:func:`train_pack` runs the training it names. Orchestration across tasks, compiler and studies, hence a study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError

COMPRESSION_KEYS = ("sparsity_embedding", "sparsity_transformer", "quant", "pack_quant")


@dataclass(frozen=True)
class TrainPlan:
    """How a pack is trained beyond its ``TrainConfig``: on the backbone the build ``on_build`` serves, or on the
    float backbone compressed by ``compression`` (keys of :data:`COMPRESSION_KEYS`: what compile takes), with MLC
    faults at ``fault_mlc_rate`` (seed ``fault_seed``); or off-ramps trained with ``off_ramps`` (a
    ``tasks.offramp.OffRampConfig``) after the task, or added to the trained pack ``from_pack``."""

    on_build: str | Path | None = None
    compression: Mapping[str, Any] = field(default_factory=dict)
    fault_mlc_rate: float | None = None
    fault_seed: int = 0
    off_ramps: Any | None = None
    from_pack: str | Path | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.compression) - set(COMPRESSION_KEYS))
        if unknown:
            raise ConfigError(f"TrainPlan: compression keys must be among {list(COMPRESSION_KEYS)}, got {unknown}")
        object.__setattr__(self, "compression", dict(self.compression))
        problems: list[str] = []
        options: list[str] = []
        served = self.on_build is not None or bool(self.compression)
        if self.on_build is not None and self.compression:
            problems.append("a build's backbone comes with the build's compression: give the build or compression "
                            f"settings, not both (got {sorted(self.compression)})")
            options += ["on_build", *sorted(self.compression)]
        if self.from_pack is not None and self.off_ramps is None:
            problems.append("a trained pack given to start from only gets off-ramps added: train off-ramps too")
            options += ["from_pack", "off_ramps"]
        if self.off_ramps is not None and served:
            problems.append("off-ramps are added to a trained pack: train the pack on the served backbone first, "
                            "then add its off-ramps starting from that pack")
            options += ["off_ramps", "from_pack"]
        if self.off_ramps is None and self.fault_mlc_rate is not None and not served:
            problems.append("fault-aware training trains on a served backbone: give a build or compression settings")
            options += ["fault_mlc_rate", "on_build", "sparsity_embedding", "sparsity_transformer"]
        if problems:
            raise ConfigError("; ".join(problems), options=tuple(dict.fromkeys(options)))


def train_pack(cfg: Any, out_dir: str | Path, plan: TrainPlan | None = None, data_dir: str | None = None,
               progress: bool = True) -> Any:
    """Train the pack ``plan`` names into ``out_dir`` (``cfg``: a ``TrainConfig``; None only to add off-ramps to
    ``plan.from_pack``). Returns the ``TrainResult`` (its ``pack`` and ``path``)."""
    plan = plan or TrainPlan()
    if plan.off_ramps is not None:
        from edgemti.tasks.offramp import train_with_off_ramps
        from edgemti.tasks.train import TrainResult

        p = train_with_off_ramps(cfg, out_dir, plan.off_ramps, from_pack=plan.from_pack, data_dir=data_dir,
                                 progress=progress)
        return TrainResult(pack=p, path=Path(p.path))
    if cfg is None:
        raise ConfigError("a training needs its task's TrainConfig (only adding off-ramps to a trained pack does "
                          "without)", options=("tasks",))
    compression = None
    if plan.compression:
        from edgemti.compiler.compression import Compression

        compression = Compression(**plan.compression)
    if plan.fault_mlc_rate is not None:
        from edgemti.studies.fault_train import train_fault_aware

        return train_fault_aware(cfg, out_dir, plan.fault_mlc_rate, compression=compression, build=plan.on_build,
                                 seed=plan.fault_seed, progress=progress)
    if plan.on_build is not None or compression is not None:
        from edgemti.compiler.retrain import train_on_served

        return train_on_served(cfg, out_dir, compression=compression, build=plan.on_build, progress=progress)
    from edgemti.tasks.train import train_task

    return train_task(cfg, out_dir, progress=progress)
