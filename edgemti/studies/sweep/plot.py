"""Looking at sweep results: Pareto fronts (:func:`pareto_mask`) of area, energy and latency per inference, drawn
by :func:`plot_sweep` against the paper's Fig. 6 design points."""

from __future__ import annotations

from pathlib import Path

from edgemti.errors import ConfigError
from edgemti.studies.sweep.grid import spec_defaults
from edgemti.studies.sweep.pareto import pareto_mask
from edgemti.studies.sweep.point import POINT_TYPES
from edgemti.studies.sweep.store import INDEX_FILE, ResultStore

OBJECTIVES = ("area_mm2", "energy_per_inference_j", "latency_per_inference_s")


def _paper_reference(rows: list[dict], specs: dict | None = None) -> dict | None:
    """Our vanilla FP32 point closest to the paper's setting: the normalisation of its Fig. 6 ratios."""
    cands = [r for r in rows if r["design"] == "vanilla" and r["quant"] == "fp32"]
    if not cands:
        return None
    shipped = spec_defaults("vanilla", specs or {})
    from edgemti.hwmodel.targets import paper_targets

    n_tasks = len(paper_targets().tasks)
    # the setting of `report --paper`: albert-base, the paper's tasks, switch on every request, seq 128,
    # sparsity 0.5 / 0.5 (its defaults), the paper's energy convention
    return min(cands, key=lambda r: (r["backbone"] != "albert-base", r["num_tasks"] != n_tasks, r["switch_rate"] != 1.0,
                                     abs(r["sparsity_embedding"] - 0.5) + abs(r["sparsity_transformer"] - 0.5),
                                     r["seq_len"] != 128, r["energy_convention"] != "no_compute",
                                     sum(r[a] != v for a, v in shipped.items()), r["id"]))


def plot_sweep(out: str | Path, png: str | Path | None = None, accuracy: str | Path | None = None,
               accuracy_tasks: tuple[str, ...] = ()) -> dict:
    """Pareto fronts (area, energy/inference, latency/inference) of a results folder, as one PNG; with
    ``accuracy`` (a compression-study results folder), also the accuracy-vs-energy and accuracy-vs-area fronts
    (:func:`edgemti.studies.sweep.accuracy.plot_accuracy`, under the key ``accuracy``), averaged over
    ``accuracy_tasks`` of the study (default: all its tasks).

    Marked: the non-dominated points that fit (3-D front, drawn in every 2-D projection), and the paper's
    adapter design points placed by its Fig. 6 reductions (hwmodel/data/paper_fu2023.toml) against our vanilla
    FP32 point of the same setting, when the sweep has one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    if not (Path(out) / INDEX_FILE).is_file():
        raise ConfigError(f"{out} is not a sweep results folder (no {INDEX_FILE}): run a sweep into it first")
    store = ResultStore(out)
    rows = store.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    fit = [r for r in ok if r["fits"]]
    front_mask = pareto_mask([tuple(r[k] for k in OBJECTIVES) for r in fit])
    front = [r for r, m in zip(fit, front_mask, strict=True) if m]
    png = Path(png) if png else Path(out) / "pareto.png"
    pairs = ((0, 1), (0, 2), (2, 1))
    scale = {"area_mm2": (1.0, "area (mm$^2$)"), "energy_per_inference_j": (1e3, "energy / inference (mJ)"),
             "latency_per_inference_s": (1e3, "latency / inference (ms)")}
    if not ok:
        raise ConfigError(f"{out}: no evaluated point to plot ({len(rows)} rows, all errors: "
                          f"{rows[0]['error'] if rows else 'none'})")
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    colors = {"adapter": "#d9534f", "vanilla": "#5b3fbf"}
    ref = _paper_reference(ok, store.config.get("specs"))
    marks: list[tuple[str, list[float]]] = []
    ours: list[tuple[str, dict]] = []
    if ref is not None:
        from edgemti.hwmodel.targets import paper_targets

        red = paper_targets().reduction
        for q, r in red.items():
            marks.append((f"paper adapter {q}", [ref["area_mm2"] / r["area"], ref["energy_per_inference_j"] /
                                                 r["energy_per_inference"], ref["latency_per_inference_s"] /
                                                 r["latency_per_inference"]]))
            same = [x for x in ok if x["design"] == "adapter" and x["quant"] == q and x["adapter"] == "64"
                    and all(x[k] == ref[k] for k in POINT_TYPES if k not in ("design", "quant", "adapter"))]
            if same:  # ours at the paper's setting, beside where the paper's ratios would put it
                ours.append((f"ours: adapter {q}", same[0]))
    for ax, (i, j) in zip(axes, pairs, strict=True):
        kx, ky = OBJECTIVES[i], OBJECTIVES[j]
        sx, sy = scale[kx][0], scale[ky][0]
        for design, c in colors.items():
            pts = [r for r in ok if r["design"] == design]
            ax.scatter([r[kx] * sx for r in pts if r["fits"]], [r[ky] * sy for r in pts if r["fits"]], s=4,
                       color=c, alpha=0.25, lw=0, label=f"{design} ({len(pts)})")
            ax.scatter([r[kx] * sx for r in pts if not r["fits"]], [r[ky] * sy for r in pts if not r["fits"]],
                       s=4, color=c, alpha=0.08, lw=0, marker="x")
        for design, c in colors.items():  # the 2-D front of each design in this projection
            xys = [(r[kx] * sx, r[ky] * sy) for r in fit if r["design"] == design]
            line = sorted(xy for xy, m in zip(xys, pareto_mask(xys), strict=True) if m)
            if line:
                ax.plot(*zip(*line, strict=True), drawstyle="steps-post", color=c, lw=1.2, alpha=0.9,
                        label=f"{design}: 2-D front")
        ax.scatter([r[kx] * sx for r in front], [r[ky] * sy for r in front], s=14, facecolors="none", edgecolors="k",
                   lw=0.7, label=f"3-D Pareto front ({len(front)})")
        if ref is not None:
            ax.scatter([ref[kx] * sx], [ref[ky] * sy], marker="s", s=60, color="#5b3fbf", edgecolors="k",
                       label="ours: vanilla fp32 (paper's reference)")
            for (label, v), m in zip(marks, ("*", "P", "X"), strict=False):
                ax.scatter([v[i] * sx], [v[j] * sy], marker=m, s=120, color="gold", edgecolors="k", label=label)
            for (label, r), m in zip(ours, ("*", "P", "X"), strict=False):
                ax.scatter([r[kx] * sx], [r[ky] * sy], marker=m, s=120, color="#d9534f", edgecolors="k", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(scale[kx][1])
        ax.set_ylabel(scale[ky][1])
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{store.config.get('name', '')}: {len(ok)} points ({len(fit)} fit, x = does not fit), "
                 f"{len(rows) - len(ok)} errors; paper points = our vanilla fp32 / the paper's Fig. 6 reductions",
                 fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    res = {"png": str(png), "rows": len(rows), "ok": len(ok), "fits": len(fit), "pareto": len(front),
           "pareto_ids": [r["id"] for r in front], "paper_reference": ref["id"] if ref else None}
    if accuracy is not None:
        from edgemti.studies.sweep.accuracy import plot_accuracy

        res["accuracy"] = plot_accuracy(out, accuracy, tasks=accuracy_tasks)
    return res
