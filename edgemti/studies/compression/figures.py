"""The compression study's figures, in the paper's layout (arXiv 2303.16100 s III), drawn from a results folder:

* ``compression_fig3.png``: score vs cumulative sparsity (Eq. 1, measured on each build): embedding-only (blue) and
  transformer-only (orange) lines, combined levels (gray dots), the best combination that holds the baseline
  (green star), the unpruned baseline (dashed); one panel per pack kind (trained on the float backbone then
  compressed / retrained on the compressed backbone);
* ``compression_fig4.png``: one panel per task, the backbones on x; x = the float-trained pack compressed, o = VASE's choice
  among the retrained packs (small dots: every adapter size), dashed = our unpruned score, dotted = the
  paper's Table I value;
* ``compression_fig5.png``: one group of bars per task, one bar per value format and pack kind, on fig5's backbone.

Points not measured (yet) are left out of the figure and counted in its title; nothing is interpolated.
"""

from __future__ import annotations

from pathlib import Path

from edgemti.studies.compression.paper import paper_section3
from edgemti.studies.compression.results import CSP_TOLERANCE_POINTS, StudyResults, critical_sparsity

_KIND = {"float": "trained on the float backbone, then compressed", "compressed": "retrained on the compressed backbone"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig3_lines(res: StudyResults, trained_on: str) -> dict:
    """The lines of Fig. 3 for one pack kind: ``embedding`` / ``transformer`` / ``both`` lists of
    (cumulative %, score, S_embd, S_tf), the ``baseline`` score and ``missing`` (levels not measured)."""
    f3 = res.config.fig3
    assert f3 is not None
    base = res.get(f3.task, 0.0, 0.0, f3.quant, f3.adapter, "float")
    out: dict = {"baseline": None if base is None else float(base["score"]), "missing": 0,
                 "embedding": [], "transformer": [], "both": []}
    if base is not None:
        out["embedding"].append((100 * base["cumulative_sparsity"], float(base["score"]), 0.0, 0.0))
        out["transformer"].append(out["embedding"][0])
    levels = ([("embedding", s, 0.0) for s in f3.embedding] + [("transformer", 0.0, s) for s in f3.transformer]
              + [("both", se, st) for se, st in f3.both])
    for line, se, st in levels:
        r = res.get(f3.task, se, st, f3.quant, f3.adapter, trained_on)
        if r is None:
            out["missing"] += 1
            continue
        out[line].append((100 * r["cumulative_sparsity"], float(r["score"]), se, st))
    for line in ("embedding", "transformer", "both"):
        out[line].sort()
    return out


def fig3_csp(lines: dict, tolerance: float = CSP_TOLERANCE_POINTS) -> dict:
    """Measured CSPs (cumulative %): of each isolated line, and the best combination holding the baseline."""
    b = lines["baseline"]
    if b is None:
        return {"embedding": None, "transformer": None, "both": None, "both_point": None}
    best = max((p for p in lines["both"] if p[1] >= b - tolerance), default=None)

    def line_csp(line: str) -> float | None:  # None: no level of the line measured beyond the baseline
        pts = [(x, s) for x, s, *_ in lines[line]]
        return critical_sparsity(pts, b, tolerance) if len(pts) > 1 else None

    return {"embedding": line_csp("embedding"), "transformer": line_csp("transformer"),
            "both": None if best is None else best[0], "both_point": best}


def draw_fig3(res: StudyResults, png: Path) -> Path | None:
    f3 = res.config.fig3
    if f3 is None:
        return None
    plt = _plt()
    kinds = [k for k in ("float", "compressed") if k in f3.trained_on]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False, sharey=True)
    paper = paper_section3().fig3
    for ax, kind in zip(axes[0], kinds, strict=True):
        lines = fig3_lines(res, kind)
        csp = fig3_csp(lines)
        for line, color in (("embedding", "tab:blue"), ("transformer", "tab:orange")):
            pts = lines[line]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=f"{line} only")
        both = [p for p in lines["both"] if p is not csp["both_point"]]
        ax.scatter([p[0] for p in both], [p[1] for p in both], color="gray", s=25, label="embedding + transformer")
        for p in lines["both"]:
            ax.annotate(f"{p[2]:g}/{p[3]:g}", (p[0], p[1]), fontsize=6, color="gray", xytext=(3, 3),
                        textcoords="offset points")
        if csp["both_point"] is not None:
            ax.scatter([csp["both_point"][0]], [csp["both_point"][1]], marker="*", s=250, color="tab:green",
                       edgecolors="k", zorder=5, label=f"best combination holding the baseline "
                                                       f"({csp['both_point'][0]:.1f} %)")
        if lines["baseline"] is not None:
            ax.axhline(lines["baseline"], ls="--", color="k", lw=0.8, label="unpruned baseline")
            ax.axhspan(lines["baseline"] - CSP_TOLERANCE_POINTS, lines["baseline"], color="k", alpha=0.05)
        for key, color in (("csp_cumulative_embedding", "tab:blue"), ("csp_cumulative_transformer", "tab:orange"),
                           ("csp_cumulative_both", "tab:green")):
            ax.axvline(100 * paper[key], ls=":", color=color, lw=1)
        ax.set_xlabel("cumulative sparsity, Eq. 1 (%)  [dotted: the paper's CSPs]")
        ax.set_title(f"{_KIND[kind]}" + (f" ({lines['missing']} levels not measured)" if lines["missing"] else ""),
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    axes[0][0].set_ylabel(f"{f3.task} dev score (%)")
    fig.suptitle(f"Fig. 3 on {res.config.backbone}: {f3.task}, adapter {f3.adapter}, {f3.quant} "
                 f"(the paper: MNLI on ALBERT-base)", fontsize=10)
    return _save(fig, plt, png)


def fig4_cells(res: StudyResults, task: str) -> list[dict]:
    """Per fig4 backbone of ``task``: the float-trained score at each adapter size, the retrained ones, VASE's
    choice of each kind."""
    f4 = res.config.fig4
    assert f4 is not None
    out = []
    for c in f4.backbones:
        key = (task, c.sparsity_embedding, c.sparsity_transformer, f4.quant)
        out.append({"backbone": c.name, "sparsity_embedding": c.sparsity_embedding,
                    "sparsity_transformer": c.sparsity_transformer,
                    "float": {a: res.score(*key, a, "float") for a in f4.adapters},
                    "compressed": {a: res.score(*key, a, "compressed") for a in f4.adapters},
                    "vase_float": res.vase(*key, f4.adapters, "float"),
                    "vase_compressed": res.vase(*key, f4.adapters, "compressed")})
    return out


def draw_fig4(res: StudyResults, png: Path) -> Path | None:
    f4 = res.config.fig4
    if f4 is None:
        return None
    plt = _plt()
    tasks = res.config.tasks
    paper = paper_section3()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 4), squeeze=False)
    missing = 0
    for ax, task in zip(axes[0], tasks, strict=True):
        cells = fig4_cells(res, task)
        xs = range(len(cells))
        for i, c in enumerate(cells):
            for kind, dx in (("float", -0.08), ("compressed", 0.08))[:1 if i == 0 else 2]:  # unpruned: one pack
                vals = [v for v in c[kind].values() if v is not None]
                missing += sum(v is None for v in c[kind].values())
                ax.scatter([i + dx] * len(vals), vals, s=8, color="tab:gray" if kind == "float" else "tab:red",
                           alpha=0.6)
            if c["vase_float"]:
                ax.scatter([i - 0.08], [c["vase_float"][1]], marker="x", s=70, color="k",
                           label="float-trained pack, compressed" if i == 0 else None)
            if c["vase_compressed"] and c["backbone"] != cells[0]["backbone"]:
                ax.scatter([i + 0.08], [c["vase_compressed"][1]], marker="o", s=70, facecolors="none",
                           edgecolors="tab:red", lw=1.5, label="retrained, VASE's size" if i == 1 else None)
                ax.annotate(c["vase_compressed"][0], (i + 0.08, c["vase_compressed"][1]), fontsize=7,
                            xytext=(5, -3), textcoords="offset points", color="tab:red")
        base = cells[0]["vase_float"]
        if base is not None:
            ax.axhline(base[1], ls="--", color="k", lw=0.8, label="ours unpruned (VASE)")
        p = paper.baseline(task)
        if p is not None:
            ax.axhline(p, ls=":", color="tab:blue", lw=1, label="paper Table I (ALBERT-base)")
        ax.set_xticks(list(xs), [c["backbone"] for c in cells], fontsize=8)
        ax.set_title(task, fontsize=10)
        ax.set_ylabel("dev score (%)", fontsize=8)
        ax.margins(y=0.15)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Fig. 4 on {res.config.backbone}: adapters {'/'.join(f4.adapters)}, {f4.quant}; x = trained on "
                 f"float then compressed, o = retrained on the compressed backbone"
                 + (f" ({missing} points not measured)" if missing else ""), fontsize=9)
    return _save(fig, plt, png)


def fig5_cells(res: StudyResults, task: str) -> dict:
    f5 = res.config.fig5
    assert f5 is not None
    c = res.config.compression(f5.backbone)
    return {kind: {q: res.vase(task, c.sparsity_embedding, c.sparsity_transformer, q, f5.adapters, kind)
                   for q in f5.quants} for kind in ("float", "compressed")}


def draw_fig5(res: StudyResults, png: Path) -> Path | None:
    f5 = res.config.fig5
    if f5 is None:
        return None
    plt = _plt()
    tasks = res.config.tasks
    fig, ax = plt.subplots(figsize=(2.2 * len(tasks) * len(f5.quants) / 2 + 2, 4))
    width = 0.8 / (2 * len(f5.quants))
    colors = {"fp32": "#4c72b0", "q3.13": "#55a868", "q3.5": "#c44e52"}
    missing = 0
    for t, task in enumerate(tasks):
        cells = fig5_cells(res, task)
        for j, q in enumerate(f5.quants):
            for k, kind in enumerate(("float", "compressed")):
                v = cells[kind][q]
                x = t + (2 * j + k - len(f5.quants) + 0.5) * width
                if v is None:
                    missing += 1
                    continue
                ax.bar(x, v[1], width, color=colors.get(q, "gray"), hatch="//" if kind == "float" else None,
                       edgecolor="k", lw=0.4, label=f"{q}, {'float-trained' if kind == 'float' else 'retrained'}"
                       if t == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("dev score (%)")
    ax.legend(fontsize=7, ncol=len(f5.quants), loc="lower left")
    c = res.config.compression(f5.backbone)
    ax.set_title(f"Fig. 5 on {res.config.backbone}: {f5.backbone} backbone ({c.sparsity_embedding:g}/"
                 f"{c.sparsity_transformer:g}), adapters {'/'.join(f5.adapters)}; hatched = float-trained pack"
                 + (f" ({missing} bars not measured)" if missing else ""), fontsize=9)
    return _save(fig, plt, png)


def _save(fig, plt, png: Path) -> Path:
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
