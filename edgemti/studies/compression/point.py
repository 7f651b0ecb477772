"""A point of the compression study: :class:`StudyPoint` = (task, backbone compression, value format, adapter
size, pack trained on the float or on the compressed backbone) -> the task's metric of the build as served; and
:func:`study_points`, the de-duplicated points of a :class:`StudyConfig` in the order they are run (the most
informative first, so a run cut short still draws every figure from what it has)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from edgemti.errors import ConfigError
from edgemti.studies.compression.config import TRAINED_ON, Budget, StudyConfig


@dataclass(frozen=True)
class StudyPoint:
    task: str
    backbone: str
    sparsity_embedding: float
    sparsity_transformer: float
    quant: str  # the build's value format (backbone and packs), canonical name
    adapter: str  # canonical bottleneck spelling ("32", "32,128")
    trained_on: str  # "float" | "compressed"
    budget: Budget

    def __post_init__(self) -> None:
        problems = []
        for f in ("sparsity_embedding", "sparsity_transformer"):
            v = getattr(self, f)
            if not isinstance(v, float) or not 0.0 <= v < 1.0:
                problems.append(f"{f} must be a float in [0, 1), got {v!r}")
        if self.trained_on not in TRAINED_ON:
            problems.append(f"trained_on must be one of {list(TRAINED_ON)}, got {self.trained_on!r}")
        if problems:
            raise ConfigError("StudyPoint: " + "; ".join(problems))

    @property
    def compressed(self) -> bool:
        """Whether the served backbone differs from the float one (else both packs are the same pack)."""
        return self.sparsity_embedding > 0 or self.sparsity_transformer > 0 or self.quant != "fp32"

    @property
    def point_id(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def pack_key(self) -> str:
        """Identity of the pack this point scores: the float pack is shared by every compression."""
        d = {"task": self.task, "backbone": self.backbone, "adapter": self.adapter, "budget": asdict(self.budget),
             "on": "float" if self.trained_on == "float" else
             [self.sparsity_embedding, self.sparsity_transformer, self.quant]}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def build_key(self) -> str:
        return hashlib.sha256(f"{self.pack_key}|{self.sparsity_embedding}|{self.sparsity_transformer}|"
                              f"{self.quant}".encode()).hexdigest()[:16]


def study_points(config: StudyConfig) -> list[StudyPoint]:
    """Every point of the study, de-duplicated, in run order: first fig4 (first adapter size) of the first task,
    both pack kinds, and every float-trained point of fig4, fig3 and fig5 (cheap: one shared float pack per
    task, then a compile and a scoring per point), then the retrained points in the same figure order, then the
    remaining adapter sizes of fig4 and fig5."""
    b, bb = config.budget, config.backbone
    stages: list[list[StudyPoint]] = [[], [], [], []]

    def add(stage: int, task: str, se: float, st: float, quant: str, adapter: str, trained_on: tuple[str, ...]):
        for on in trained_on:
            p = StudyPoint(task, bb, float(se), float(st), quant, adapter, "float" if not _is_compressed(se, st, quant)
                           else on, b)
            stages[stage].append(p)

    if config.fig4:
        f4 = config.fig4
        for i, adapter in enumerate(f4.adapters):
            for task in config.tasks:
                for c in f4.backbones:
                    add(0 if i == 0 else 3, task, c.sparsity_embedding, c.sparsity_transformer, f4.quant, adapter,
                        f4.trained_on)
    if config.fig3:
        f3 = config.fig3
        levels = sorted({(0.0, 0.0), *((s, 0.0) for s in f3.embedding), *((0.0, s) for s in f3.transformer),
                         *f3.both})
        for se, st in levels:
            add(1, f3.task, se, st, f3.quant, f3.adapter, f3.trained_on)
    if config.fig5:
        f5 = config.fig5
        c = config.compression(f5.backbone)
        for i, adapter in enumerate(f5.adapters):
            for task in config.tasks:
                for q in f5.quants:
                    add(2 if i == 0 else 3, task, c.sparsity_embedding, c.sparsity_transformer, q, adapter,
                        f5.trained_on)
    out: dict[str, StudyPoint] = {}
    first = config.tasks[0] if config.tasks else ""
    ranked = [(i == 3, p.trained_on != "float" and not (i == 0 and p.task == first), i, p)
              for i, stage in enumerate(stages) for p in stage]
    for *_, p in sorted(ranked, key=lambda x: x[:3]):  # stable: within a rank, the figure's own order
        out.setdefault(p.point_id, p)
    return list(out.values())


def _is_compressed(se: float, st: float, quant: str) -> bool:
    return se > 0 or st > 0 or quant != "fp32"
