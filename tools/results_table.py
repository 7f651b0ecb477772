"""Collect the dev metrics of trained packs into the markdown table and plot of docs/RESULTS.md.

    python tools/results_table.py [--adapter-root tasks/packs --adapter-root runs/minilm/adapter]
                                  [--full-root runs/minilm/full] [--png docs/results_minilm.png]

Reads every ``<root>/<task>/pack.json`` (verified with ``load_pack``), prints a markdown table of ours (adapters vs
full fine-tuning of the same backbone) beside the paper's Table I, and writes a bar chart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgemti.errors import FormatError
from edgemti.tasks.glue import PAPER_TABLE_I, get_task
from edgemti.tasks.pack import TaskPack, load_pack

ORDER = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli"]


def collect(roots: list[Path]) -> dict[str, TaskPack]:
    out: dict[str, TaskPack] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if (d / "pack.json").is_file():
                try:
                    out[d.name] = load_pack(d)
                except FormatError as exc:
                    print(f"skip {d}: {exc}")
    return out


def headline(pack: TaskPack) -> tuple[str, float, str]:
    spec = get_task(pack.task)
    metrics = {m: pack.metrics[f"dev_{m}"] for m in spec.metrics}
    main = spec.metrics[0]
    rest = ", ".join(f"{m} {100 * v:.1f}" for m, v in metrics.items() if m != main)
    return main, 100 * metrics[main], rest


def majority_baseline(task: str) -> str:
    """The headline metric of always answering the train set's most frequent label (classification only)."""
    import numpy as np

    from edgemti.errors import DataError
    from edgemti.tasks.data import load_glue
    from edgemti.tasks.metrics import compute_metrics
    from edgemti.tasks.metrics import headline as paper_metric

    spec = get_task(task)
    if spec.is_regression:
        return "-"
    try:
        train, dev = load_glue(spec, "train"), load_glue(spec, "dev")
    except DataError:
        return "?"
    top = int(np.bincount([e.label for e in train]).argmax())
    gold = np.array([e.label for e in dev])
    return f"{paper_metric(spec, compute_metrics(spec, np.full(len(gold), top), gold)):.1f}"


def table(adapters: dict[str, TaskPack], full: dict[str, TaskPack]) -> str:
    lines = ["| task | metric | adapters (ours) | full FT (ours) | adapters - full | paper Adapter-ALBERT 64 | "
             "paper ALBERT | majority class | train s (adapters / full) | task-specific params (adapters / full) | "
             "train examples |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task in [t for t in ORDER if t in adapters or t in full]:
        a, f = adapters.get(task), full.get(task)
        metric = headline(a or f)[0]
        av = headline(a) if a else None
        fv = headline(f) if f else None
        cell_a = f"**{av[1]:.1f}**" + (f" ({av[2]})" if av and av[2] else "") if av else "-"
        cell_f = f"**{fv[1]:.1f}**" + (f" ({fv[2]})" if fv and fv[2] else "") if fv else "-"
        delta = f"{av[1] - fv[1]:+.1f}" if av and fv else "-"
        times = f"{a.train_time_s:.0f}" if a else "-"
        times += f" / {f.train_time_s:.0f}" if f else " / -"
        params = f"{a.num_params:,} / {f.num_params:,}" if a and f else "-"
        n = (a or f).metrics.get("num_train_examples", "-")
        lines.append(f"| {task} | {metric} | {cell_a} | {cell_f} | {delta} | "
                     f"{PAPER_TABLE_I['Adapter-ALBERT 64'].get(task, '-')} | {PAPER_TABLE_I['ALBERT'].get(task, '-')} | "
                     f"{majority_baseline(task)} | "
                     f"{times} | {params} | {n} |")
    return "\n".join(lines)


def plot(adapters: dict[str, TaskPack], full: dict[str, TaskPack], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = [t for t in ORDER if t in adapters or t in full]
    series = [
        ("MiniLM adapters (ours)", [headline(adapters[t])[1] if t in adapters else np.nan for t in tasks]),
        ("MiniLM full FT (ours)", [headline(full[t])[1] if t in full else np.nan for t in tasks]),
        ("paper Adapter-ALBERT 64", [PAPER_TABLE_I["Adapter-ALBERT 64"].get(t, np.nan) for t in tasks]),
        ("paper ALBERT", [PAPER_TABLE_I["ALBERT"].get(t, np.nan) for t in tasks]),
    ]
    x = np.arange(len(tasks))
    w = 0.2
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for i, (label, vals) in enumerate(series):
        ax.bar(x + (i - 1.5) * w, vals, w, label=label, hatch="//" if "paper" in label else None,
               alpha=0.6 if "paper" in label else 1.0)
    ax.set_xticks(x, [f"{t}\n({headline(adapters.get(t) or full[t])[0]})" for t in tasks])
    ax.set_ylabel("dev metric (%)")
    ax.set_ylim(40, 100)
    ax.set_title("GLUE dev: adapters vs full fine-tuning (ours: MiniLM; paper: ALBERT-base)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter-root", action="append", type=Path)
    ap.add_argument("--full-root", action="append", type=Path)
    ap.add_argument("--png", type=Path, default=Path("docs/results_minilm.png"))
    args = ap.parse_args()
    adapters = collect(args.adapter_root or [Path("tasks/packs"), Path("runs/minilm/adapter")])
    full = collect(args.full_root or [Path("runs/minilm/full")])
    print(table(adapters, full))
    if adapters or full:
        plot(adapters, full, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
