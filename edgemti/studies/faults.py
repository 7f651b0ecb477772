"""``edgemti faults``: task accuracy under RRAM bit errors, masks in SLC (the paper's choice) versus masks in MLC.

For every MLC cell error rate ``r`` of the sweep and each placement of the bitmask image:

* ``masks in SLC``: values in 2-bit MLC cells at rate ``r``, masks in SLC cells at ``slc_rate`` (a fixed rate,
  SLC cells have a wide read margin; 0 by default, i.e. error-free at these rates, set it with --slc-rate);
* ``masks in MLC``: values *and* masks in 2-bit MLC cells at rate ``r`` (the counterfactual the paper avoids);

the build's backbone is re-read from the emulated RRAM through the seeded fault model, and each task's dev
subset is scored with its official metric against the fault-free build. A plot (PNG) comes with it.
This is orchestration across packages (runtime + the tasks' GLUE loaders), hence the root package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgemti.errors import ConfigError, DataError, UnknownTaskError
from edgemti.runtime.engine import Engine
from edgemti.runtime.faults import FaultModel
from edgemti.studies.sized import open_sized
from edgemti.tasks.metrics import compute_metrics, headline

log = logging.getLogger(__name__)
PLACEMENTS = ("slc", "mlc")


@dataclass(frozen=True)
class FaultSweepConfig:
    """The sweep: MLC cell error rates, the SLC rate, tasks (default: every task of the build), examples, seeds."""

    rates: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    slc_rate: float = 0.0
    tasks: tuple[str, ...] = ()
    max_examples: int = 200
    seeds: tuple[int, ...] = (0,)
    subsample_seed: int = 0

    def __post_init__(self) -> None:
        bad = [r for r in self.rates if not 0.0 <= float(r) <= 1.0]
        if not self.rates or bad:
            raise ConfigError(f"FaultSweepConfig: rates must be a non-empty list of probabilities, bad {bad}")
        if not 0.0 <= self.slc_rate <= 1.0:
            raise ConfigError(f"FaultSweepConfig: slc_rate must be in [0, 1], got {self.slc_rate}")
        if self.max_examples <= 0:
            raise ConfigError(f"FaultSweepConfig: max_examples must be > 0, got {self.max_examples}")
        if not self.seeds:
            raise ConfigError("FaultSweepConfig: seeds must not be empty")


@dataclass(frozen=True)
class FaultPoint:
    """Score of one task at one (rate, placement, seed); ``baseline`` is the fault-free build's score."""

    task: str
    metric: str
    rate: float
    masks_in: str
    seed: int
    score: float
    baseline: float
    n_examples: int

    @property
    def delta(self) -> float:
        return self.score - self.baseline


@dataclass
class FaultSweepResult:
    build_id: str
    config: FaultSweepConfig
    baselines: dict[str, float]
    metrics: dict[str, str]
    points: list[FaultPoint] = field(default_factory=list)
    plot: str | None = None
    warnings: list[str] = field(default_factory=list)
    n_examples: dict[str, int] = field(default_factory=dict)  # dev examples scored per task
    baseline_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95 % bootstrap interval, in %
    spec_fitted: list[str] = field(default_factory=list)  # the spec's capacities sized to the build (build_spec)

    def mean_score(self, task: str, rate: float, masks_in: str) -> float:
        xs = [p.score for p in self.points if p.task == task and p.rate == rate and p.masks_in == masks_in]
        return float(np.mean(xs))

    def to_dict(self) -> dict:
        return {"build_id": self.build_id, "config": asdict(self.config), "baselines": self.baselines,
                "metrics": self.metrics, "plot": self.plot, "warnings": self.warnings,
                "n_examples": self.n_examples, "baseline_ci": {t: list(ci) for t, ci in self.baseline_ci.items()},
                "spec_fitted": self.spec_fitted,
                "points": [dict(asdict(p), delta=p.delta) for p in self.points]}

    def table(self) -> list[dict]:
        """One row per (task, rate): mean score with masks in SLC and in MLC, and the baseline."""
        rows = []
        for task in self.baselines:
            for r in self.config.rates:
                rows.append({"task": task, "metric": self.metrics[task], "rate": r,
                             "masks_in_slc": self.mean_score(task, r, "slc"),
                             "masks_in_mlc": self.mean_score(task, r, "mlc"), "fault_free": self.baselines[task],
                             "fault_free_ci": self.baseline_ci[task], "n": self.n_examples[task]})
        return rows


def _dev_set(task: str, data_dir: str | Path | None, n: int, seed: int):
    from edgemti.tasks.data import load_glue, subsample
    from edgemti.tasks.glue import get_task

    spec = get_task(task)
    return spec, subsample(load_glue(spec, "dev", data_dir), n, seed)


def _predict(engine: Engine, task: str, spec, feeds: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    engine.make_resident(task)
    preds = []
    for f in feeds:
        logits = engine.session.run(task, f)[0]
        preds.append(float(logits[0]) if spec.is_regression else int(np.argmax(logits)))
    gold = np.asarray([f["_gold"] for f in feeds])
    pred = np.asarray(preds)
    if not np.all(np.isfinite(pred)):
        pred = np.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0)
    return pred, gold


def _score(engine: Engine, task: str, spec, feeds: list[dict]) -> float:
    return headline(spec, compute_metrics(spec, *_predict(engine, task, spec, feeds)))


def bootstrap_ci(spec, pred: np.ndarray, gold: np.ndarray, resamples: int = 200, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval (in %) of the task's headline metric over these examples: the sampling noise
    of a score on a dev subset, against which a fault's effect is read (any metric, F1 and correlations too)."""
    rng = np.random.default_rng(seed)
    n = len(gold)
    vals = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        with np.errstate(all="ignore"):
            v = headline(spec, compute_metrics(spec, pred[idx], gold[idx]))
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    lo, hi = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def sweep_faults(
    build: str | Path,
    data_dir: str | Path | None = None,
    config: FaultSweepConfig | None = None,
    plot_path: str | Path | None = None,
    spec: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> FaultSweepResult:
    """Run the sweep on ``build`` (see module doc); ``progress(done, total, what)`` is called per point."""
    config = config or FaultSweepConfig()
    sized = open_sized(build, spec)  # accuracy does not depend on capacities: size the chip to the build
    engine = sized.engine()
    changes = list(sized.changes)
    tasks = config.tasks or tuple(engine.rules.tasks)
    unknown = [t for t in tasks if t not in engine.rules.tasks]
    if unknown:
        raise UnknownTaskError(f"tasks {unknown} are not in the build (it has {list(engine.rules.tasks)})")
    result = FaultSweepResult(engine.build_id, config, {}, {}, spec_fitted=changes)
    for c in changes:  # capacities do not change accuracy: information, not a warning
        log.info("spec sized for this build: %s", c)
    if engine.manifest.synthetic or any(engine.manifest.pack(t).synthetic for t in tasks):
        result.warnings.append("the build's packs are SYNTHETIC (untrained): accuracies are meaningless")
    data = {}
    for t in tasks:
        try:
            tspec, examples = _dev_set(t, data_dir, config.max_examples, config.subsample_seed)
        except (DataError, UnknownTaskError) as exc:
            raise DataError(f"task {t}: no dev data for the fault sweep ({exc})") from None
        feeds = []
        for ex in examples:
            f, _ = engine.tokenize(ex.text, ex.text_pair)
            f["_gold"] = ex.label
            feeds.append(f)
        data[t] = (tspec, feeds)
        result.metrics[t] = tspec.metrics[0]
    total = len(tasks) * (1 + len(config.rates) * len(PLACEMENTS) * len(config.seeds))
    done = 0
    for t in tasks:
        tspec, feeds = data[t]
        pred, gold = _predict(engine, t, tspec, feeds)
        result.baselines[t] = headline(tspec, compute_metrics(tspec, pred, gold))
        result.baseline_ci[t] = bootstrap_ci(tspec, pred, gold)
        result.n_examples[t] = len(feeds)
        done += 1
        if progress:
            progress(done, total, f"{t} fault-free")
    for rate in config.rates:
        for masks_in in PLACEMENTS:
            for seed in config.seeds:
                slc = config.slc_rate if masks_in == "slc" else rate
                engine.set_fault(FaultModel(slc_error_rate=slc, mlc_error_rate=rate, seed=seed, masks_in=masks_in))
                for t in tasks:
                    tspec, feeds = data[t]
                    s = _score(engine, t, tspec, feeds)
                    result.points.append(FaultPoint(t, tspec.metrics[0], rate, masks_in, seed, s,
                                                    result.baselines[t], len(feeds)))
                    done += 1
                    if progress:
                        progress(done, total, f"{t} rate {rate:g} masks in {masks_in.upper()}")
    engine.set_fault(None)
    if plot_path is not None:
        result.plot = str(plot_faults(result, plot_path))
    return result


def plot_faults(result: FaultSweepResult, path: str | Path) -> Path:
    """Accuracy vs MLC cell error rate, one panel per task, masks in SLC vs MLC, fault-free dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks: Sequence[str] = list(result.baselines)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(6.0, 4.2 * len(tasks)), 3.9), squeeze=False)
    rates = list(result.config.rates)
    xs = [r if r > 0 else min([x for x in rates if x > 0] or [1e-9]) / 10 for r in rates]
    for ax, t in zip(axes[0], tasks, strict=True):
        for masks_in, style, name in (("slc", "o-", "masks in SLC (paper)"), ("mlc", "s--", "masks in MLC")):
            ax.plot(xs, [result.mean_score(t, r, masks_in) for r in rates], style, label=name)
        lo, hi = result.baseline_ci[t]
        ax.axhline(result.baselines[t], color="gray", ls=":", label="fault-free")
        ax.axhspan(lo, hi, color="gray", alpha=0.15, label="fault-free 95% CI")
        ax.set_xscale("log")
        ax.set_xlabel("MLC cell error rate")
        ax.set_ylabel(f"{result.metrics[t]} (%)")
        ax.set_title(f"{t} (n = {result.n_examples[t]} dev examples)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    slc = f"SLC rate {result.config.slc_rate:g}"
    fig.suptitle(f"RRAM bit errors: bitmask in SLC vs MLC\n({slc}, {len(result.config.seeds)} seed(s), build "
                 f"{result.build_id[:10]})", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
