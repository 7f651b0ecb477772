"""Accuracy on the sweep's axes: :class:`AccuracyTable` looks a sweep point's accuracy up in a compression
study's results (``edgemti study compression``), by backbone, value format, sparsities and adapter size.

A point's accuracy is the mean headline score (%) over the study's tasks of the packs retrained on that
compressed backbone (the float packs where the backbone is not compressed), each scored on the build as served.
It is measured or it is absent: a point whose exact setting the study did not score, on every one of its tasks,
gets ``score = None`` and the reason; nothing is interpolated between measured settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Accuracy:
    score: float | None  # mean headline score over ``tasks``, %; None: not measured
    tasks: tuple[str, ...]
    per_task: dict[str, float]
    reason: str = ""  # why there is no score

    @property
    def measured(self) -> bool:
        return self.score is not None


class AccuracyTable:
    """The measured points of one study results folder, keyed by the sweep's axes."""

    def __init__(self, study_out: str | Path, trained_on: str = "compressed", tasks: tuple[str, ...] = ()) -> None:
        """``tasks``: the study's tasks the accuracy averages (default: all of them)."""
        from edgemti.errors import ConfigError
        from edgemti.studies.compression.results import StudyResults

        self.source = str(study_out)
        self.results = StudyResults.load(study_out)
        self.trained_on = trained_on
        unknown = [t for t in tasks if t not in self.results.config.tasks]
        if unknown:
            raise ConfigError(f"accuracy tasks {unknown} are not tasks of the study {study_out} "
                              f"({list(self.results.config.tasks)})", options=("accuracy_tasks",))
        self.tasks = tuple(tasks) or self.results.config.tasks

    def lookup(self, row: dict) -> Accuracy:
        """The accuracy of a sweep row (or ``asdict(SweepPoint)``)."""
        if row["design"] != "adapter":
            return Accuracy(None, self.tasks, {}, f"the study measured adapter designs only, not {row['design']}")
        if row["backbone"] != self.results.config.backbone:
            return Accuracy(None, self.tasks, {}, f"the study measured backbone {self.results.config.backbone}, not "
                                                  f"{row['backbone']}")
        key = (float(row["sparsity_embedding"]), float(row["sparsity_transformer"]), row["quant"], row["adapter"])
        per = {t: s for t in self.tasks if (s := self.results.score(t, *key, self.trained_on)) is not None}
        missing = [t for t in self.tasks if t not in per]
        if missing:
            return Accuracy(None, self.tasks, per, f"not measured on {', '.join(missing)} at sparsity {key[0]:g}/"
                                                   f"{key[1]:g}, {key[2]}, adapter {key[3]}")
        return Accuracy(math.fsum(per.values()) / len(per), self.tasks, per)

    def describe(self) -> str:
        kind = "retrained on the compressed backbone" if self.trained_on == "compressed" else "float-trained"
        return (f"mean dev score of {', '.join(self.tasks)} (packs {kind}, builds as served; "
                f"{self.results.config.budget.describe()}) from {self.source}")


def plot_accuracy(out: str | Path, study_out: str | Path, png: str | Path | None = None,
                  tasks: tuple[str, ...] = ()) -> dict:
    """Accuracy-vs-energy and accuracy-vs-area Pareto fronts of a sweep results folder, the accuracy looked up
    in ``study_out`` (:class:`AccuracyTable`); writes ``png`` (default ``out/accuracy.png``) and
    ``out/accuracy.json`` (every row's accuracy, or why it has none). Only points that fit are on a front (when
    none fits the spec, the front of all of them, each priced on the chip it needs: the title says so)."""
    import json
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgemti.errors import ConfigError
    from edgemti.studies.sweep.pareto import pareto_mask
    from edgemti.studies.sweep.store import INDEX_FILE, ResultStore, write_atomic

    if not (Path(out) / INDEX_FILE).is_file():
        raise ConfigError(f"{out} is not a sweep results folder (no {INDEX_FILE}): run a sweep into it first")
    table = AccuracyTable(study_out, tasks=tasks)
    rows = [r for r in ResultStore(out).rows() if r["status"] == "ok"]
    acc = {r["id"]: table.lookup(r) for r in rows}
    measured = [r for r in rows if acc[r["id"]].measured]
    reasons: dict[str, int] = {}
    for r in rows:
        if not acc[r["id"]].measured:
            reasons[acc[r["id"]].reason] = reasons.get(acc[r["id"]].reason, 0) + 1
    doc = {"study": table.source, "accuracy": table.describe(), "measured": len(measured),
           "not_measured": len(rows) - len(measured),
           "points": {i: {"score": a.score, "per_task": a.per_task, "reason": a.reason or None} for i, a in acc.items()}}
    write_atomic(Path(out) / "accuracy.json", (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    png = Path(png) if png else Path(out) / "accuracy.png"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    fronts = {}
    for ax, (key, scale, label) in zip(axes, (("energy_per_inference_j", 1e3, "energy / inference (mJ)"),
                                              ("area_mm2", 1.0, "area (mm$^2$)")), strict=True):
        for ok_fit, alpha, marker in ((True, 0.8, "o"), (False, 0.8, "x")):
            pts = [r for r in measured if bool(r["fits"]) is ok_fit]
            sc = ax.scatter([r[key] * scale for r in pts], [acc[r["id"]].score for r in pts], s=18, alpha=alpha,
                            marker=marker, c=[r["cumulative_sparsity"] for r in pts], cmap="viridis", vmin=0, vmax=1)
        fit = [r for r in measured if r["fits"]] or measured  # none fits the spec: every point, on the chip it needs
        mask = pareto_mask([(r[key], -(acc[r["id"]].score or 0.0)) for r in fit])
        front = sorted((r[key] * scale, acc[r["id"]].score) for r, m in zip(fit, mask, strict=True) if m)
        fronts[key] = [r["id"] for r, m in zip(fit, mask, strict=True) if m]
        if front:
            ax.plot(*zip(*front, strict=True), drawstyle="steps-post", color="tab:red", lw=1.4,
                    label=f"Pareto front ({len(front)} points{' that fit' if any(r['fits'] for r in measured) else ''})")
        for r, m in zip(fit, mask, strict=True):
            if m:
                ax.annotate(f"{r['quant']} a{r['adapter']} {r['sparsity_embedding']:g}/{r['sparsity_transformer']:g}",
                            (r[key] * scale, acc[r["id"]].score), fontsize=6, xytext=(3, -8),
                            textcoords="offset points")
        if measured:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.text(0.5, 0.5, "no point with a measured accuracy", ha="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy: mean dev score (%)")
        ax.legend(fontsize=7, loc="lower right")
    if measured:
        fig.colorbar(sc, ax=axes, label="cumulative sparsity (Eq. 1)", shrink=0.8)
    none_fit = bool(measured) and not any(r["fits"] for r in measured)
    fig.suptitle(f"{len(measured)} of {len(rows)} points with a measured accuracy ({len(rows) - len(measured)} "
                 f"without: not drawn, not interpolated; x = does not fit"
                 + ("; none fits the spec: fronts of all, on the chip each needs" if none_fit else "")
                 + ")\n" + textwrap.fill(table.describe(), 160), fontsize=8)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return {"png": str(png), "json": str(Path(out) / "accuracy.json"), "measured": len(measured),
            "not_measured": len(rows) - len(measured), "reasons": reasons, "pareto_ids": fronts}
