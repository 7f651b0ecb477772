"""Parameter budget of vanilla vs adapter models (the paper's Table II), counted from shapes on the meta device.

Definitions (ours, printed with the table):
* ``total``: every parameter of the deployed model for one task (backbone + that task's tensors).
* ``task_specific``: what a task pack holds and what is swapped per task: adapters + the transformer's layer
  norms + the classifier (adapter design); everything but the embeddings (vanilla design, as in the paper's
  baseline that keeps only the embeddings shared in RRAM).
* ``overhead_pct``: ``total / total(vanilla) - 1`` of the same backbone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from edgemti.errors import ConfigError
from edgemti.tasks.backbones import preset_config
from edgemti.tasks.model import AdapterModel, AdapterSpec, BackboneInfo, encoder_class

# The paper's Table II (ALBERT-base rows), printed beside ours; never used as a result.
PAPER_TABLE_II = {
    ("albert-base", "vanilla"): {"total": "11.6M", "trainable": "11.6M", "overhead": "0%"},
    ("albert-base", "64"): {"total": "11.88M", "trainable": "200.4K", "overhead": "2.4%"},
    ("albert-base", "32"): {"total": "11.77M (32~128 low end)", "trainable": "100K", "overhead": "1.4%"},
    ("albert-base", "128"): {"total": "12.06M (32~128 high end)", "trainable": "400K", "overhead": "3.9%"},
}

_NOTES = {
    "vanilla": "paper counts every weight as trainable; our vanilla pack excludes the shared (frozen) embeddings",
    "adapter": "paper's overhead % is total/11.6M-1 with ALBERT rounded down from 11.68M; ours divides by the "
               "exact vanilla total",
}


@dataclass(frozen=True)
class ParamRow:
    """One model configuration's parameter counts."""

    backbone: str
    design: str
    adapter: str  # "-" for vanilla, "64", "32,128", ...
    num_labels: int
    total: int
    task_specific: int
    trainable: int
    adapters: int
    overhead_pct: float
    paper: dict[str, str]
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def count_model(backbone: str, design: str, adapter: AdapterSpec | None, num_labels: int = 3) -> dict[str, int]:
    """Counts of a model built on the meta device (no weights are allocated or loaded)."""
    family, cfg, pooling = preset_config(backbone)
    info = BackboneInfo(name=backbone, family=family, pretrained=False, source="meta", pooling=pooling)
    with torch.device("meta"):
        enc = encoder_class(family)(cfg, add_pooling_layer=(pooling == "pooler"))
        model = AdapterModel(enc, info, num_labels=num_labels, adapter=adapter, design=design)
    params = dict(model.named_parameters())
    task = model.task_names()
    return {
        "total": sum(p.numel() for p in params.values()),
        "task_specific": sum(params[n].numel() for n in task),
        "adapters": sum(p.numel() for n, p in params.items() if ".adapters." in n),
        "embeddings": sum(p.numel() for n, p in params.items() if n.startswith("encoder.embeddings.")),
    }


def param_table(backbones: tuple[str, ...] = ("albert-base", "minilm"), sizes: tuple[str, ...] = ("64", "32", "128",
                "32,128", "8"), num_labels: int = 3) -> list[ParamRow]:
    """Vanilla + adapter rows per backbone (MNLI-sized head by default), with the paper's values beside.

    Size 8 is the shipped MiniLM packs' bottleneck (docs/RESULTS.md); the paper has no row for it.
    """
    if num_labels <= 0:
        raise ConfigError(f"num_labels must be > 0, got {num_labels}")
    rows = []
    for bb in backbones:
        van = count_model(bb, "vanilla", None, num_labels)
        rows.append(ParamRow(bb, "vanilla", "-", num_labels, van["total"], van["task_specific"], van["task_specific"],
                             0, 0.0, PAPER_TABLE_II.get((bb, "vanilla"), {}), _NOTES["vanilla"]))
        for size in sizes:
            c = count_model(bb, "adapter", AdapterSpec.parse(size), num_labels)
            rows.append(ParamRow(bb, "adapter", size, num_labels, c["total"], c["task_specific"], c["task_specific"],
                                 c["adapters"], 100.0 * (c["total"] / van["total"] - 1.0),
                                 PAPER_TABLE_II.get((bb, size), {}), _NOTES["adapter"]))
    return rows


def _h(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def format_param_table(rows: list[ParamRow]) -> str:
    """A fixed-width table: ours, then the paper's value in brackets where the paper has one."""
    head = f"{'backbone':<12} {'design':<8} {'adapter':<7} {'total':>16} {'task-specific':>15} {'overhead':>9}   " \
           f"paper (total / trainable / overhead)"
    lines = [head, "-" * len(head)]
    for r in rows:
        paper = " / ".join(r.paper[k] for k in ("total", "trainable", "overhead")) if r.paper else "-"
        lines.append(f"{r.backbone:<12} {r.design:<8} {r.adapter:<7} {r.total:>10,} {_h(r.total):>6}"
                     f" {_h(r.task_specific):>15} {r.overhead_pct:>8.2f}%   {paper}")
    lines.append("")
    lines.append(f"head: {rows[0].num_labels} labels (MNLI-sized). task-specific = what a task pack holds (adapter: "
                 "adapters + transformer layer norms + classifier; vanilla: all but the shared embeddings).")
    for key, note in _NOTES.items():
        lines.append(f"{key} vs paper: {note}")
    lines.append("minilm (BERT, 6 x 384, not shared across layers) has no paper values; ALBERT shares one layer, so "
                 "its adapters are counted once (per_depth=False).")
    return "\n".join(lines)
