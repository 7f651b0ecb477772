"""Bar chart of issue 15's measurement: a float-trained pack scored in float, compiled (eval --build), and a pack
retrained on the compressed backbone (train --on-build, eval --build), per compression setting.

    python tools/plot_recovery.py --float 84.06 --point "30/30 q3.13" EVAL_FLOAT.json EVAL_RETRAINED.json \
        [--point ...] --png docs/img/retrain_recovery.png

EVAL_*.json are `edgemti eval --build BUILD --json` outputs (the first task's headline metric is plotted).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def headline(path: str) -> float:
    return float(json.loads(Path(path).read_text())["tasks"][0]["headline"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--float", dest="float_score", type=float, required=True, help="float pack's score (%%)")
    ap.add_argument("--point", nargs=3, action="append", metavar=("LABEL", "EVAL_FLOAT", "EVAL_RETRAINED"),
                    required=True)
    ap.add_argument("--title", default="SST-2 dev (872), MiniLM, adapters 8")
    ap.add_argument("--png", required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [p[0] for p in args.point]
    compiled = [headline(p[1]) for p in args.point]
    retrained = [headline(p[2]) for p in args.point]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    xs = range(len(labels))
    w = 0.38
    ax.bar([x - w / 2 for x in xs], compiled, w, label="float-trained pack, compiled (eval --build)")
    ax.bar([x + w / 2 for x in xs], retrained, w, label="retrained on the build (train --on-build)")
    ax.axhline(args.float_score, color="gray", ls="--", label=f"float-trained pack, float ({args.float_score:.2f})")
    for x, c, r in zip(xs, compiled, retrained, strict=True):
        lost = args.float_score - c
        rec = (r - c) / lost if lost else float("nan")
        ax.text(x - w / 2, c + 0.2, f"{c:.2f}", ha="center", fontsize=8)
        ax.text(x + w / 2, r + 0.2, f"{r:.2f}\n({100 * rec:.0f} % rec.)", ha="center", fontsize=8)
        print(f"{labels[x]}: float {args.float_score:.2f} compiled {c:.2f} retrained {r:.2f} lost {lost:.2f} "
              f"recovered {100 * rec:.0f} %")
    ax.set_xticks(list(xs), [f"sparsity {lb}" for lb in labels])
    lo = min(compiled + retrained + [args.float_score])
    ax.set_ylim(lo - 4, max(retrained + [args.float_score]) + 5.5)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(args.title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
