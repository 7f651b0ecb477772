"""``edgemti eval --build``: the accuracy of a build as served.

Each task of the build is scored on its GLUE dev set (or a seeded subset) through the runtime :class:`Engine`: the
backbone decoded from the emulated RRAM (faults applied when asked), the task's pack swapped in from DRAM, the
build's own graph and tokenizer, one request per example as ``serve`` answers it. The official metric(s) stand
beside the pack's own score (recorded when it was trained: on the float backbone for a float-trained pack, on the
served backbone for one trained with ``--on-build``) and the paper's Table I value. Orchestration across runtime
and tasks, hence a study.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemti.errors import ConfigError, DataError, UnknownTaskError
from edgemti.runtime.faults import FaultModel
from edgemti.studies.sized import SizedBuild, open_sized

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildEvalConfig:
    """What to score: tasks (default: every task of the build), a seeded dev subset (None: the whole dev set),
    the GLUE folder (None: ``$EDGEMTI_DATA/glue``), RRAM cell error rates and their seed."""

    tasks: tuple[str, ...] = ()
    max_examples: int | None = None
    data_dir: str | None = None
    fault_mlc_rate: float = 0.0
    fault_slc_rate: float = 0.0
    fault_seed: int = 0
    subsample_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(str(t).strip().lower() for t in self.tasks))
        problems = []
        if self.max_examples is not None and (isinstance(self.max_examples, bool)
                                              or not isinstance(self.max_examples, int) or self.max_examples <= 0):
            problems.append(f"max_examples must be an int > 0 or unset, got {self.max_examples!r}")
        for name in ("fault_mlc_rate", "fault_slc_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                problems.append(f"{name} must be a probability in [0, 1], got {v!r}")
        for name in ("fault_seed", "subsample_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                problems.append(f"{name} must be an int >= 0, got {v!r}")
        if problems:
            raise ConfigError("BuildEvalConfig: " + "; ".join(problems))

    @property
    def fault(self) -> FaultModel | None:
        if not (self.fault_mlc_rate or self.fault_slc_rate):
            return None
        return FaultModel(slc_error_rate=float(self.fault_slc_rate), mlc_error_rate=float(self.fault_mlc_rate),
                          seed=self.fault_seed)


@dataclass(frozen=True)
class TaskScore:
    """One task of the build: its served score (``metrics``, fractions, official metrics in ``metric_names``
    order; the first is the headline), the pack's own recorded dev score (``pack_metrics``, ``dev_<metric>``
    fractions, on ``pack_num_dev_examples``) and the paper's Table I values (percent, by model)."""

    task: str
    num_examples: int
    metric_names: tuple[str, ...]
    metrics: dict[str, float]
    pack_metrics: dict[str, float]
    pack_num_dev_examples: int | None
    paper: dict[str, float]
    predictions: tuple[float, ...]  # label index (or regression score) per scored example, in dev order
    synthetic: bool = False

    @property
    def headline(self) -> float:
        """The served headline metric in % (what Table I reports)."""
        return 100.0 * self.metrics[self.metric_names[0]]

    @property
    def pack_headline(self) -> float | None:
        v = self.pack_metrics.get(f"dev_{self.metric_names[0]}")
        return None if v is None else 100.0 * float(v)


@dataclass(frozen=True)
class BuildEval:
    build: str
    build_id: str
    config: BuildEvalConfig
    tasks: tuple[TaskScore, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"build": self.build, "build_id": self.build_id, "config": asdict(self.config),
                "warnings": list(self.warnings),
                "tasks": [dict(asdict(t), headline=t.headline, pack_headline=t.pack_headline,
                               predictions=list(t.predictions)) for t in self.tasks]}


def _dev(task: str, data_dir: str | None, n: int | None, seed: int):
    from edgemti.tasks.data import load_glue, subsample
    from edgemti.tasks.glue import get_task

    try:
        spec = get_task(task)
    except UnknownTaskError:
        raise DataError(f"task {task!r} is not a GLUE task: the build cannot be scored on a GLUE dev set (score a "
                        "custom task's pack on its own file instead)") from None
    return spec, subsample(load_glue(spec, "dev", data_dir), n, seed)


def evaluate_build(build: str | Path | SizedBuild, config: BuildEvalConfig | None = None,
                   spec: str | Path | None = None, progress: Progress | None = None) -> BuildEval:
    """Score every task (or ``config.tasks``) of ``build`` as served (see the module doc): a build folder, opened
    here once on ``spec`` sized to it, or a caller's :class:`SizedBuild` (then ``spec`` is already resolved);
    ``progress(done, total)`` is called after each example."""
    from edgemti.tasks.glue import PAPER_TABLE_I
    from edgemti.tasks.metrics import compute_metrics

    config = config or BuildEvalConfig()
    if isinstance(build, SizedBuild):
        if spec is not None:
            raise ConfigError("an opened build comes with its spec resolved: give a spec only with a build folder",
                              options=("spec",))
        sized, name = build, str(build.build.path)
    else:  # accuracy does not depend on capacities: a chip sized for the build
        sized, name = open_sized(build, spec), str(build)
    engine = sized.engine(fault=config.fault)
    tasks = config.tasks or tuple(engine.rules.tasks)
    unknown = [t for t in tasks if t not in engine.rules.tasks]
    if unknown:
        raise UnknownTaskError(f"tasks {unknown} are not in the build {name} (it serves {list(engine.rules.tasks)})",
                               options=("tasks",))
    warnings = [f"spec sized for this build: {c}" for c in sized.changes]
    data = {t: _dev(t, config.data_dir, config.max_examples, config.subsample_seed) for t in tasks}
    total, done = sum(len(ex) for _, ex in data.values()), 0
    scores = []
    for t in tasks:
        tspec, examples = data[t]
        pack = engine.manifest.pack(t)
        if pack.synthetic:
            warnings.append(f"task {t}: the pack is SYNTHETIC (untrained): its accuracy is meaningless")
        preds: list[float] = []
        for ex in examples:
            r = engine.infer(t, ex.text, ex.text_pair)
            preds.append(float(r.label) if pack.is_regression else float(pack.labels.index(str(r.label))))
            done += 1
            if progress:
                progress(done, total)
        pred = np.asarray(preds) if pack.is_regression else np.asarray(preds, dtype=np.int64)
        gold = np.asarray([e.label for e in examples])
        recorded = {k: float(v) for k, v in pack.metrics.items()
                    if k.startswith("dev_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        n_dev = pack.metrics.get("num_dev_examples")
        scores.append(TaskScore(task=t, num_examples=len(examples), metric_names=tuple(tspec.metrics),
                                metrics=compute_metrics(tspec, pred, gold), pack_metrics=recorded,
                                pack_num_dev_examples=int(n_dev) if isinstance(n_dev, int) else None,
                                paper={k: v[tspec.name] for k, v in PAPER_TABLE_I.items() if tspec.name in v},
                                predictions=tuple(preds), synthetic=pack.synthetic))
    return BuildEval(name, engine.build_id, config, tuple(scores), tuple(warnings))


def format_build_eval(r: BuildEval) -> str:
    """The table ``edgemti eval --build`` prints (percent)."""
    fault = r.config.fault
    head = f"build {r.build} ({r.build_id[:12]})" + (f", RRAM faults {fault.to_dict()}" if fault else "")
    lines = [head, f"{'task':8s} {'n':>5s} {'metric':9s} {'served':>7s} {'pack':>7s}  paper Table I"]
    for t in r.tasks:
        paper = ", ".join(f"{k} {v:g}" for k, v in t.paper.items()) or "-"
        for i, name in enumerate(t.metric_names):
            own = t.pack_metrics.get(f"dev_{name}")
            own_s = f"{100 * own:7.2f}" if own is not None else f"{'-':>7s}"
            lines.append(f"{t.task if i == 0 else '':8s} {t.num_examples if i == 0 else '':>5} {name:9s} "
                         f"{100 * t.metrics[name]:7.2f} {own_s}  {paper if i == 0 else ''}")
    lines.append("served: through the runtime engine (decoded RRAM images, the build's graph); pack: the pack's own "
                 "dev score recorded at training; paper: headline metric, ALBERT-base")
    return "\n".join(lines)
