"""The compression study's table (Markdown): every figure's measured numbers beside what the paper states
(``data/paper_section3.toml``), with the budget and what differs from the paper's setting said in the text."""

from __future__ import annotations

from edgemti.studies.compression.figures import fig3_csp, fig3_lines, fig4_cells, fig5_cells
from edgemti.studies.compression.paper import paper_section3
from edgemti.studies.compression.results import CSP_TOLERANCE_POINTS, StudyResults, recovered_fraction


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _vase(v: tuple[str, float] | None) -> str:
    return "not measured" if v is None else f"{v[1]:.1f} (a{v[0]})"


def study_table(res: StudyResults) -> str:
    cfg, paper = res.config, paper_section3()
    p_emb = next((r["p_embedding"] for r in res.ok), None)
    lines = [f"# Compression study: {cfg.name}", "",
             f"Backbone **{cfg.backbone}**; tasks {', '.join(cfg.tasks)}; budget: {cfg.budget.describe()}. "
             f"{len(res.ok)} points measured, {len(res.errors)} errors. Scores: GLUE dev, %, the headline metric "
             "(MRPC F1, STS-B Pearson, else accuracy) of the compiled build as served (decoded images, runtime "
             "engine).", "",
             "What differs from the paper: the backbone (the paper: ALBERT-base, "
             f"P_embd = {paper.eq1['p_embedding']}; here {cfg.backbone}, P_embd = {_f(p_emb, 3)} measured on the "
             "builds), the budget above (the paper: 5-10 epochs of the full train sets), the pruned backbone is "
             "not retrained (the paper retrained it on MNLI while pruning; here only the task-specific tensors "
             "are), the float-trained pack compressed afterwards stands where the paper's fine-tuned model stands "
             "in Fig. 4, and the fig4 backbones are set in the study file, not searched.", ""]
    if cfg.fig3:
        f3 = cfg.fig3
        lines += [f"## Fig. 3: {f3.task}, adapter {f3.adapter}, {f3.quant} (the paper: {paper.fig3['task']})", "",
                  "| S_embd | S_tf | cumulative (Eq. 1, %) | float-trained, compressed | retrained on it |",
                  "|---|---|---|---|---|"]
        levels = sorted({(0.0, 0.0), *((s, 0.0) for s in f3.embedding), *((0.0, s) for s in f3.transformer),
                         *f3.both})
        for se, st in levels:
            rf = res.get(f3.task, se, st, f3.quant, f3.adapter, "float")
            rc = res.get(f3.task, se, st, f3.quant, f3.adapter, "compressed")
            cum = (rf or rc or {}).get("cumulative_sparsity")
            lines.append(f"| {se:g} | {st:g} | {_f(None if cum is None else 100 * cum)} | "
                         f"{_f(None if rf is None else rf['score'])} | {_f(None if rc is None else rc['score'])} |")
        lines += ["", f"Critical sparsity points (cumulative %, the largest level of the line whose score stays "
                  f"within {CSP_TOLERANCE_POINTS:g} point of the unpruned baseline; both: the best combination that does):",
                  "", "| CSP | paper | ours, float-trained | ours, retrained |", "|---|---|---|---|"]
        csp = {k: fig3_csp(fig3_lines(res, k)) for k in ("float", "compressed")}
        for line, key in (("embedding only", "embedding"), ("transformer only", "transformer"), ("both", "both")):
            lines.append(f"| {line} | {100 * paper.fig3[f'csp_cumulative_{key}']:.1f} | "
                         f"{_f(csp['float'][key])} | {_f(csp['compressed'][key])} |")
        lines.append("")
    if cfg.fig4:
        f4 = cfg.fig4
        lines += [f"## Fig. 4: backbones x adapter sizes {'/'.join(f4.adapters)}, {f4.quant}", "",
                  "VASE's choice = the best adapter size of each (task, backbone, pack kind). Recovered = of what "
                  "compressing the float-trained pack lost against the unpruned score, the fraction retraining on "
                  "the compressed backbone won back (VASE's choices both; '-': nothing lost).", "",
                  "| task | backbone (S_embd/S_tf) | "
                  + " | ".join(f"float a{a}" for a in f4.adapters) + " | "
                  + " | ".join(f"retrained a{a}" for a in f4.adapters)
                  + " | VASE float | VASE retrained | recovered | paper Table I |",
                  "|---|---|" + "---|" * (2 * len(f4.adapters) + 4)]
        for task in cfg.tasks:
            cells = fig4_cells(res, task)
            base = cells[0]["vase_float"]
            for c in cells:
                rec = None
                if base and c["vase_float"] and c["vase_compressed"] and c is not cells[0]:
                    rec = recovered_fraction(base[1], c["vase_float"][1], c["vase_compressed"][1])
                retr = [_f(v) if c is not cells[0] else "=" for v in c["compressed"].values()]
                lines.append(f"| {task} | {c['backbone']} ({c['sparsity_embedding']:g}/{c['sparsity_transformer']:g})"
                             f" | {' | '.join(_f(v) for v in c['float'].values())} | {' | '.join(retr)} | "
                             f"{_vase(c['vase_float'])} | "
                             f"{_vase(c['vase_compressed']) if c is not cells[0] else '='} | "
                             f"{'-' if rec is None else f'{100 * rec:.0f} %'} | {_f(paper.baseline(task))} |")
        lines += ["", f"The paper (s III-B2): {paper.fig4['note']}; VASE beats fine-tuning on "
                  f"{', '.join(paper.fig4['vase_better_than_finetune'])}, similar on "
                  f"{', '.join(paper.fig4['vase_similar_to_finetune'])}; the best pruned backbone is "
                  f"{paper.fig4['best_pruned_backbone']}.", ""]
    if cfg.fig5:
        f5 = cfg.fig5
        comp = cfg.compression(f5.backbone)
        lines += [f"## Fig. 5: value formats on {f5.backbone} ({comp.sparsity_embedding:g}/"
                  f"{comp.sparsity_transformer:g}), "
                  f"adapters {'/'.join(f5.adapters)} (VASE's choice)", "",
                  "| task | " + " | ".join(f"{q} float-trained | {q} retrained" for q in f5.quants) + " |",
                  "|---|" + "---|---|" * len(f5.quants)]
        for task in cfg.tasks:
            cells5 = fig5_cells(res, task)
            lines.append(f"| {task} | " + " | ".join(f"{_vase(cells5['float'][q])} | {_vase(cells5['compressed'][q])}"
                                                      for q in f5.quants) + " |")
        lines += ["", f"The paper (s IV-A): {paper.fig5['note']}.", ""]
    if res.errors:
        lines += ["## Errors", ""] + [f"* {r['task']} {r['sparsity_embedding']:g}/{r['sparsity_transformer']:g} "
                                      f"{r['quant']} a{r['adapter']} {r['trained_on']}: {r['error']}"
                                      for r in res.errors[:20]] + [""]
    lines.append(f"Paper numbers: {paper.source} (edgemti/studies/compression/data/paper_section3.toml).")
    return "\n".join(lines) + "\n"
