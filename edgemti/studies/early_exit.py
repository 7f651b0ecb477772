"""The early-exit study: accuracy vs energy per sentence, no exit / entropy exit / exit + DVFS at latency targets.

``edgemti report --early-exit BUILD`` serves a task's dev sentences through the build twice: full depth
(:class:`edgemti.runtime.engine.Engine`) and with early exit (:class:`edgemti.runtime.early_exit.EarlyExitEngine`,
layer by layer, charged only the layers run). Each exit answer is then priced again under each latency target with
the engine's own :meth:`EarlyExitEngine.price` (the point the answer's predicted exit picks, layer 1 nominal, the
rest at that point): the exit decisions do not depend on the target, only the V/F does. Energies are the
inference's (the one swap of a task run is left out of the per-sentence numbers and reported apart).

Beside it, EdgeBERT's headline ratios (MICRO'21 abstract: up to 7x lower energy than no early stopping, 2.5x lower
than latency-unbounded early exit) are printed as targets, never used in the numbers. ``albert_base`` repeats the
energy ratios on albert-base shapes (random weights, 12 passes of the shared layer) with synthetic exits: each
measured sentence's exit layer and predicted layer mapped to the same relative depth of the deeper model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from edgemti.errors import ConfigError
from edgemti.studies.sized import SizedBuild, open_sized

log = logging.getLogger(__name__)
EDGEBERT_RATIOS = {"no_exit_over_exit_dvfs": 7.0, "exit_over_exit_dvfs": 2.5}  # abstract, "up to"


@dataclass(frozen=True)
class Sentence:
    """One dev sentence's outcome: gold label index, full-depth answer and cost, the exit answer and decisions."""

    gold: int
    full_label: int
    full_energy_j: float
    full_latency_s: float
    seq_len: int
    exit_label: int
    exit_layer: int
    predicted: int
    exit_energy_j: float
    exit_latency_s: float


def _examples(task: str, data_dir: str | None, max_examples: int | None, seed: int):
    from edgemti.tasks.data import load_glue, subsample
    from edgemti.tasks.glue import get_task

    spec = get_task(task)
    return spec, subsample(load_glue(spec, "dev", data_dir), max_examples, seed)


def early_exit_engine(sized: SizedBuild, threads: int | None = 1):
    """The early-exit engine of an opened build on its sized spec (the chip sized to the build, as serve --fit-spec:
    MiniLM outgrows the shipped specs); it serves every task of the build, full depth through its ``engine``."""
    from edgemti.runtime.early_exit import EarlyExitEngine

    return EarlyExitEngine(sized.engine(threads=threads), threads=threads)


def serve_dev(ee, task: str, data_dir: str | None = None, max_examples: int | None = None, seed: int = 0,
              progress: bool = True) -> list[Sentence]:
    """Every dev sentence of ``task`` through full depth (``ee.engine``) and early exit (the early-exit engine
    ``ee``, :func:`early_exit_engine`)."""
    _, examples = _examples(task, data_dir, max_examples, seed)
    eng = ee.engine
    labels = list(eng.manifest.pack(task).labels)
    out = []
    for ex in tqdm(examples, desc=f"serve {task} dev", disable=not progress):
        full = eng.infer(task, ex.text, ex.text_pair)
        a = ee.infer(task, ex.text, ex.text_pair)
        out.append(Sentence(int(ex.label), labels.index(str(full.label)), float(full.inference["energy_j"]),
                            float(full.inference["latency_s"]), int(a["seq_len"]), labels.index(a["label"]),
                            int(a["exit_layer"]), int(a["predicted_exit_layer"]), float(a["inference"]["energy_j"]),
                            float(a["inference"]["latency_s"])))
    return out


def _config_row(name: str, correct: np.ndarray, agree: np.ndarray, energy: np.ndarray, latency: np.ndarray,
                target_s: float | None = None, met: np.ndarray | None = None) -> dict[str, Any]:
    return {"config": name, "accuracy": float(correct.mean()), "agreement_with_full_depth": float(agree.mean()),
            "energy_per_sentence_j": float(energy.mean()), "latency_mean_s": float(latency.mean()),
            "latency_p99_s": float(np.percentile(latency, 99)), "latency_target_s": target_s,
            "target_misses": int((~met).sum()) if met is not None else None}


@dataclass(frozen=True)
class Target:
    """A latency target: ``value`` seconds, or (``relative``) that fraction of each sentence's own full-depth
    latency at the nominal point (EdgeBERT's setting: finish no later than full depth would have)."""

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not self.value > 0:
            raise ConfigError(f"Target: value must be > 0, got {self.value!r}", options=("latency_target_s",))

    @property
    def name(self) -> str:
        return f"exit+DVFS {self.value:g}x full-depth latency" if self.relative else f"exit+DVFS {self.value * 1e3:g} ms"

    def seconds(self, full_latency_s: float) -> float:
        return self.value * full_latency_s if self.relative else self.value


DEFAULT_TARGETS = (Target(1.0, True), Target(0.75, True), Target(0.5, True))


def task_study(sentences: list[Sentence], ee, task: str, targets: tuple[Target, ...]) -> dict[str, Any]:
    """Rows no-exit / exit / exit+DVFS per target for one task's served sentences, and the ratios."""
    s = sentences
    gold = np.array([x.gold for x in s])
    full = np.array([x.full_label for x in s])
    ex = np.array([x.exit_label for x in s])
    rows = [_config_row("no exit", full == gold, full == full, np.array([x.full_energy_j for x in s]),
                        np.array([x.full_latency_s for x in s])),
            _config_row("exit", ex == gold, ex == full, np.array([x.exit_energy_j for x in s]),
                        np.array([x.exit_latency_s for x in s]))]
    for t in targets:
        priced = [ee.price(task, x.seq_len, x.exit_layer, x.predicted, t.seconds(x.full_latency_s)) for x in s]
        rows.append(_config_row(t.name, ex == gold, ex == full, np.array([p.cost.energy_j for p in priced]),
                                np.array([p.cost.latency_s for p in priced]), None if t.relative else t.value,
                                np.array([bool(p.target_met) for p in priced])))
        rows[-1]["target"] = {"value": t.value, "relative": t.relative}
    hist = np.bincount([x.exit_layer for x in s], minlength=ee.graph.num_layers + 1)[1:].tolist()
    e = {r["config"]: r["energy_per_sentence_j"] for r in rows}
    ratios = {"no_exit_over_exit": e["no exit"] / e["exit"]}
    for r in rows[2:]:
        ratios[f"no_exit_over_{r['config']}"] = e["no exit"] / r["energy_per_sentence_j"]
        ratios[f"exit_over_{r['config']}"] = e["exit"] / r["energy_per_sentence_j"]
    pol = ee.policies[task]
    return {"task": task, "dvfs_full_depth": dvfs_table(ee.costs, task, int(np.median([x.seq_len for x in s]))), "num_sentences": len(s), "num_layers": ee.graph.num_layers, "threshold": pol.threshold,
            "calibration": pol.calibration, "exit_histogram": hist,
            "mean_exit_layer": float(np.mean([x.exit_layer for x in s])),
            "predictor_mean_abs_error_layers": float(np.mean([abs(x.predicted - x.exit_layer) for x in s])),
            "rows": rows, "ratios": ratios, "edgebert_ratios": EDGEBERT_RATIOS}


def dvfs_table(cm, task: str, seq_len: int) -> list[dict[str, float]]:
    """Full depth at every operating point, relative to nominal: how much DVFS alone can save on this chip (with
    leakage-dominated energy the lowest voltage is not the lowest energy: leakage power falls with V, its time
    grows with 1/f)."""
    if cm.dvfs is None:
        return []
    n = cm.num_layers
    nom = cm.layer_costs(task, seq_len).upto(n)
    leak = sum(v for k, v in nom.energy_by_component_j.items() if k.startswith("leak_")) / nom.energy_j
    out = []
    for p in cm.dvfs.points:
        c = cm.layer_costs(task, seq_len, p).upto(n)
        out.append({"voltage_v": p.voltage_v, "freq_hz": p.freq_hz, "energy_ratio": c.energy_j / nom.energy_j,
                    "latency_ratio": c.latency_s / nom.latency_s, "seq_len": seq_len, "leakage_fraction": leak})
    return out


def albert_base(build: str | Path, sentences: list[Sentence], src_layers: int, task: str,
                targets: tuple[Target, ...]) -> dict[str, Any]:
    """The energy ratios on an albert-base build with off-ramps (``build``), the exits synthetic: each measured
    sentence's exit and predicted layers mapped to the same relative depth (``round(k * L / src_layers)``); the
    targets relative to albert-base's own full-depth latency (absolute ones as given)."""
    from edgemti.formats.graph import load_graph
    from edgemti.runtime.exit_cost import ExitCostModel
    from edgemti.runtime.workload import hw_model

    opened = open_sized(build, verify=False)  # eleven 768x768 off-ramps outgrow the shipped SRAM: sized to the build
    b, spec, sized = opened.build, opened.spec, list(opened.changes)
    graph = load_graph(b.graph_bytes())
    cm = ExitCostModel(hw_model(b.manifest, graph, spec), spec, graph)
    n = cm.num_layers
    t0 = b.manifest.tasks[0]

    def depth(k: int) -> int:
        return max(1, min(n, round(k * n / src_layers)))

    seqs = sorted({x.seq_len for x in sentences})
    full = {L: cm.layer_costs(t0, L).upto(n) for L in seqs}
    rows: dict[str, float] = {"no exit": float(np.mean([full[x.seq_len].energy_j for x in sentences]))}
    rows["exit"] = float(np.mean([cm.exit_cost(t0, x.seq_len, depth(x.exit_layer))[0].energy_j for x in sentences]))
    misses = {}
    for t in targets:
        es, miss = [], 0
        for x in sentences:
            target_s = t.seconds(full[x.seq_len].latency_s)
            point, _ = cm.choose(t0, x.seq_len, depth(x.predicted), target_s)
            c, _ = cm.exit_cost(t0, x.seq_len, depth(x.exit_layer), point)
            es.append(c.energy_j)
            miss += int(c.latency_s > target_s)
        rows[t.name] = float(np.mean(es))
        misses[t.name] = miss
    ratios = {f"no_exit_over_{k}": rows["no exit"] / v for k, v in rows.items() if k != "no exit"}
    ratios.update({f"exit_over_{k}": rows["exit"] / v for k, v in rows.items() if k.startswith("exit+")})
    return {"build": str(build), "backbone": b.manifest.backbone.get("name"), "num_layers": n, "spec_sized": sized,
            "dvfs_full_depth": dvfs_table(cm, t0, int(np.median([x.seq_len for x in sentences]))),
            "exits_from": task, "energy_per_sentence_j": rows, "target_misses": misses, "ratios": ratios,
            "full_depth_latency_s": {str(L): full[L].latency_s for L in seqs}}


def early_exit_study(build: str | Path, out_dir: str | Path, tasks: tuple[str, ...] = (), data_dir: str | None = None,
                     targets_ms: tuple[float, ...] = (), max_examples: int | None = None,
                     albert_build: str | Path | None = None, threads: int | None = 1,
                     more_builds: tuple[str | Path, ...] = (), progress: bool = True) -> dict[str, Any]:
    """The study of ``build`` (a build with off-ramps and exit policies; ``more_builds``: others whose tasks join)
    on ``tasks`` (default: all they serve); writes ``early_exit.json`` and ``early_exit.png`` into ``out_dir``.
    ``targets_ms``: absolute latency targets; default: 1.0x, 0.75x and 0.5x of each sentence's own full-depth
    latency (:data:`DEFAULT_TARGETS`; the tighter ones are met only by exiting early)."""
    opened = [open_sized(b) for b in (build, *more_builds)]  # each build opened once, its spec sized on that open
    served: dict[str, int] = {}
    for i, o in enumerate(opened):
        for t in o.build.manifest.tasks:
            served.setdefault(t, i)
    unknown = [t for t in tasks if t not in served]
    if unknown:
        raise ConfigError(f"tasks {unknown} are not in the builds (they serve {sorted(served)})", options=("tasks",))
    builds = {t: served[t] for t in (tasks or tuple(served))}
    targets = tuple(Target(t / 1e3) for t in targets_ms) if targets_ms else DEFAULT_TARGETS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    measured: tuple[list[Sentence], int, str] | None = None
    engines: dict[int, Any] = {}  # one engine per build, made when its first task is served
    for task, i in builds.items():
        if i not in engines:
            engines[i] = early_exit_engine(opened[i], threads=threads)
        ee = engines[i]
        sentences = serve_dev(ee, task, data_dir, max_examples, progress=progress)
        results[task] = task_study(sentences, ee, task, targets)
        if measured is None:
            measured = (sentences, ee.graph.num_layers, task)
    result: dict[str, Any] = {"tasks": results, "edgebert_ratios": EDGEBERT_RATIOS}
    if albert_build is not None and measured is not None:
        sentences, src_layers, task = measured
        result["albert_base"] = albert_base(albert_build, sentences, src_layers, task, targets)
    (out / "early_exit.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_study(result, out / "early_exit.png")
    return result


def plot_study(result: dict[str, Any], path: Path) -> None:
    """Accuracy vs energy per sentence, one panel per task (EdgeBERT's ratios in the legend as targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, (task, r) in zip(axes[0], tasks.items(), strict=True):
        base = r["rows"][0]["energy_per_sentence_j"]
        for row, marker in zip(r["rows"], ("s", "o", "^", "v", "D", "P"), strict=False):
            e = row["energy_per_sentence_j"] * 1e6
            ax.scatter(e, 100 * row["accuracy"], marker=marker, s=60, label=f"{row['config']}: "
                       f"{base / row['energy_per_sentence_j']:.2f}x less energy")
        ax.set_xlabel("energy per sentence (uJ, simulated)")
        ax.set_ylabel("dev accuracy (%)")
        ax.set_title(f"{task}: {r['num_sentences']} dev sentences, threshold {r['threshold']:.3f}, mean exit "
                     f"{r['mean_exit_layer']:.2f}/{r['num_layers']}", fontsize=9)
        ax.legend(fontsize=7, title=f"EdgeBERT (up to): {EDGEBERT_RATIOS['no_exit_over_exit_dvfs']}x vs no exit, "
                  f"{EDGEBERT_RATIOS['exit_over_exit_dvfs']}x vs exit", title_fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_study(doc: dict[str, Any]) -> str:
    """A table per task (the CLI prints it; the JSON has everything)."""
    lines = []
    for task, r in doc["tasks"].items():
        lines.append(f"{task}: {r['num_sentences']} dev sentences, threshold {r['threshold']:.4f} nats, mean exit "
                     f"layer {r['mean_exit_layer']:.2f}/{r['num_layers']}, histogram {r['exit_histogram']}")
        base = r["rows"][0]["energy_per_sentence_j"]
        for row in r["rows"]:
            miss = "" if row["target_misses"] is None else f", misses {row['target_misses']}"
            lines.append(f"  {row['config']:<22} acc {100 * row['accuracy']:6.2f}  agree {100 * row['agreement_with_full_depth']:6.2f}"
                         f"  {row['energy_per_sentence_j'] * 1e6:9.3f} uJ/sentence ({base / row['energy_per_sentence_j']:.2f}x)"
                         f"  latency mean {row['latency_mean_s'] * 1e3:.3f} ms{miss}")
    for task, r in doc["tasks"].items():
        lines.append(_dvfs_line(task, r["dvfs_full_depth"]))
    a = doc.get("albert_base")
    if a:
        lines.append(f"albert-base shapes ({a['num_layers']} layers), exits synthetic from {a['exits_from']}: "
                     + ", ".join(f"{k} {v:.2f}x" for k, v in a["ratios"].items()))
        lines.append(_dvfs_line("albert-base", a["dvfs_full_depth"]))
    e = doc["edgebert_ratios"]
    lines.append(f"EdgeBERT (MICRO'21, up to): {e['no_exit_over_exit_dvfs']}x vs no exit, {e['exit_over_exit_dvfs']}x vs "
                 "latency-unbounded exit")
    return "\n".join(lines)


def _dvfs_line(name: str, table: list[dict[str, float]]) -> str:
    if not table:
        return f"{name}: no DVFS points in the spec"
    best = min(table, key=lambda r: r["energy_ratio"])
    low = table[0]
    return (f"{name} full depth by DVFS alone (seq {low['seq_len']}, leakage {100 * low['leakage_fraction']:.0f}% of "
            f"the energy): {low['voltage_v']:.2f} V -> energy x{low['energy_ratio']:.3f}, latency "
            f"x{low['latency_ratio']:.2f}; least energy at {best['voltage_v']:.2f} V: x{best['energy_ratio']:.3f}")
