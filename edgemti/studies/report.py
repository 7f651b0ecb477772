"""``edgemti report build/``: area, energy and latency of a build on the simulated accelerator.

Opens the build through :mod:`edgemti.formats` (the reader is the format's spec), prices it with
:class:`edgemti.hwmodel.HwModel` and returns one plain dict (JSON-ready); the CLI only formats it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError

log = logging.getLogger(__name__)


def build_report(build: str | Path, seq_len: int | None = None, spec: str | Path | None = None,
                 trace_json: str | Path | None = None, csv_path: str | Path | None = None,
                 overrides: dict[str, Any] | None = None, plot: str | Path | None = None, fit: bool = False) -> dict:
    """Report of ``build`` at ``seq_len`` tokens (default: the build's max_seq_len) on ``spec`` (``fit``: sized to
    the build, :func:`edgemti.runtime.hma.build_spec`); ``plot``: write the stacked energy breakdown (component x
    inference of each task, and per MTI request) as a PNG there."""
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.hwmodel.scenario import Scenario, run_scenario
    from edgemti.hwmodel.trace import write_traces
    from edgemti.runtime.hma import build_spec
    from edgemti.runtime.workload import hw_model

    b = open_build(build, verify=False)
    m = b.manifest
    arch, fitted = build_spec(b, spec, fit)
    if overrides:
        arch = arch.with_overrides(overrides)
    hw = hw_model(m, load_graph(b.graph_bytes()), arch)
    seq = int(seq_len or hw.max_seq_len)
    if seq <= 0:
        raise ConfigError(f"seq_len must be > 0, got {seq}", options=("seq_len",))
    tasks = hw.tasks
    per_task = {}
    for t in tasks:
        inf = hw.inference(seq, t)
        per_task[t] = {"inference": inf.summary(), "swap": hw.swap(t).to_dict(),
                       "pack_bytes": hw.workload.task(t).pack_bytes}
    worst = hw.inference(seq, None)
    mti = run_scenario(hw, Scenario(tuple(tasks), "round_robin", n_requests=max(30, 10 * len(tasks)), seq_len=seq))
    prov = {"build_id": m.build_id, "spec": arch.path or arch.name, "spec_hash": arch.spec_hash(), "spec_fitted": fitted,
            "design": m.design, "quant": m.compile.quant}
    if trace_json or csv_path:
        write_traces(worst, csv_path, trace_json, prov)
    prog = hw.program_rram()
    fusion = hw.fusion
    if plot:
        bars = {f"{t}\ninference": dict(hw.inference(seq, t).energy_by_component_j) for t in tasks}
        bars["MTI round robin\nper request"] = {k: v / mti.n_requests for k, v in mti.energy_by_component_j.items()}
        plot_energy_breakdown(bars, Path(plot), f"{m.design} {m.compile.quant}, seq_len {seq}")
    return {
        "build": str(build), **prov, "seq_len": seq, "synthetic": m.synthetic,
        "area": hw.area().to_dict(),
        "requirements_bytes": hw.requirements(),
        "inference_worst_task": worst.summary(),
        "tasks": per_task,
        "mti_round_robin": mti.to_dict(),
        "program_rram": {**prog.to_dict(), "cells_written": prog.cells_written},
        "layers": layer_rollup(worst),
        "fusion": {"groups": fusion.kinds(), "folded_nodes": len(fusion.folded),
                   "unknown_ops": [{"op_type": o, "node": n} for o, n in fusion.unknown]},
        "execution": {"overlap": arch.execution.overlap, "include_compute_energy": arch.execution.include_compute_energy,
                      "utilization": arch.pe_array.utilization, "dram_pj_per_bit": arch.dram.read_pj_per_bit},
    }


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(x) >= scale:
            return f"{x / scale:8.3f} {prefix}{unit}"
    return f"{x:8.3g} {unit}"


def format_report(r: dict) -> str:
    """Human-readable text of :func:`build_report`'s dict."""
    a = r["area"]
    lines = [f"build {r['build']}  ({r['design']}, {r['quant']}, spec {Path(str(r['spec'])).name}, "
             f"seq_len {r['seq_len']}){'  [synthetic packs]' if r['synthetic'] else ''}",
             f"area {a['total_mm2']:.3f} mm2  (memory {a['memory_mm2']:.3f}, PE array {a['pe_array_mm2']:.3f}, "
             f"logic {a['logic_mm2']:.3f})"]
    lines += [f"  spec sized for this build: {c}" for c in r.get("spec_fitted", ())]
    for lv, p in a["levels"].items():
        macros = " + ".join(f"{n}x{c // 1024}K" for c, n in p["macros"]) or "-"
        lines.append(f"  {lv:9} need {p['required_bytes'] / 2**20:8.3f} MiB  have {p['capacity_bytes'] / 2**20:8.3f} MiB"
                     f"  {p['area_mm2']:7.3f} mm2  leak {p['leak_w'] * 1e3:7.2f} mW  [{macros}]")
    w = r["inference_worst_task"]
    lines.append(f"inference ({w['task']}): {_si(w['energy_j'], 'J')}  {_si(w['latency_s'], 's')}  "
                 f"{w['macs'] / 1e6:.1f} MMAC")
    for k, v in sorted(w["energy_by_component_j"].items(), key=lambda kv: -kv[1]):
        if v:
            lines.append(f"    {k:14} {_si(v, 'J')}  {100 * v / w['energy_j']:5.1f} %")
    lines.append("per task:            inference energy   latency     |  switch (DRAM->SRAM) energy   latency  pack")
    for t, d in r["tasks"].items():
        i, s = d["inference"], d["swap"]
        lines.append(f"  {t:16} {_si(i['energy_j'], 'J')} {_si(i['latency_s'], 's')}  |  {_si(s['energy_j'], 'J')}"
                     f" {_si(s['latency_s'], 's')}  {d['pack_bytes'] / 1024:.1f} KiB")
    m = r["mti_round_robin"]
    lines.append(f"MTI round robin ({m['n_requests']} requests, switch rate {m['switch_rate']:.2f}): "
                 f"{_si(m['energy_per_inference_j'], 'J')} / inference, {_si(m['latency_per_inference_s'], 's')}"
                 f" / inference")
    p = r["program_rram"]
    lines.append(f"program RRAM once: {_si(p['energy_j'], 'J')}  {_si(p['latency_s'], 's')}  cells "
                 + ", ".join(f"{k} {v:,}" for k, v in p["cells_written"].items()))
    if "layers" in r:
        lines += _format_layers(r["layers"], w)
    if "fusion" in r:
        f = r["fusion"]
        lines.append("fusion groups: " + ", ".join(f"{k} {v}" for k, v in sorted(f["groups"].items()))
                     + f"; {f['folded_nodes']} layout/control nodes folded")
        if f["unknown_ops"]:
            lines.append("ops the model does not know (charged as SFU 'other'): "
                         + ", ".join(f"{u['op_type']} ({u['node']})" for u in f["unknown_ops"]))
    return "\n".join(lines)


def layer_rollup(cost: Any) -> list[dict]:
    """Per transformer layer pass of one inference (``InferenceCost``): MACs, energy, latency, stages.

    A layer pass ends at the second residual add + LayerNorm group after its attention; every pass spans as
    many groups as the second one (layers are alike), which places the first pass's start. Groups before it are
    ``embeddings``, after the last ``head``. Rows sum to the inference (records are partitioned).
    """
    runs: list[tuple[str, list]] = []  # (group kind, records) in execution order
    for r in cost.records:
        if runs and r.group and runs[-1][1][0].group == r.group:
            runs[-1][1].append(r)
        else:
            runs.append((r.group_kind, [r]))
    att = [i for i, (k, _) in enumerate(runs) if k == "attention"]
    ln = [i for i, (k, _) in enumerate(runs) if k == "add_layernorm"]
    ends = []
    for a in att:
        after = [i for i in ln if i > a]
        if len(after) < 2:
            break
        ends.append(after[1])
    bounds: list[tuple[str, int, int]] = []  # (label, first run, last run)
    if ends:
        span = ends[1] - ends[0] if len(ends) > 1 else ends[0] - max([i for i in ln if i < att[0]], default=-1)
        start = max(0, ends[0] - span + 1)
        if start > 0:
            bounds.append(("embeddings", 0, start - 1))
        for k, e in enumerate(ends):
            bounds.append((f"layer {k + 1}", start, e))
            start = e + 1
        if start < len(runs):
            bounds.append(("head", start, len(runs) - 1))
    else:
        bounds.append(("all", 0, len(runs) - 1))
    out = []
    for label, a, b in bounds:
        recs = [r for _, rs in runs[a:b + 1] for r in rs]
        out.append({"pass": label, "groups": b - a + 1, "stages": len(recs), "macs": sum(r.macs for r in recs),
                    "energy_j": sum(r.energy_j for r in recs), "latency_s": sum(r.latency_s for r in recs)})
    return out


def _format_layers(rows: list[dict], total: dict) -> list[str]:
    lines = [f"per layer pass ({len([r for r in rows if r['pass'].startswith('layer')])} passes):"
             "   groups   MMAC      energy         latency"]
    for r in rows:
        lines.append(f"  {r['pass']:12} {r['groups']:6} {r['macs'] / 1e6:8.2f} {_si(r['energy_j'], 'J')}"
                     f" {_si(r['latency_s'], 's')}")
    return lines


def plot_energy_breakdown(bars: dict[str, dict[str, float]], path: Path, title: str = "") -> None:
    """Stacked energy per component for each bar (a design, a task's inference, ...): joules on the left,
    shares on the right. Components in the order of ``edgemti.hwmodel.cost.COMPONENTS``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgemti.hwmodel.cost import COMPONENTS

    comps = [c for c in COMPONENTS if any(b.get(c, 0.0) > 0 for b in bars.values())]
    comps += sorted({c for b in bars.values() for c in b if c not in COMPONENTS and b[c] > 0})
    names = list(bars)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(names) + 3), 4.6))
    cmap = plt.get_cmap("tab20")
    for ax, share in zip(axes, (False, True), strict=True):
        bottom = [0.0] * len(names)
        for ci, c in enumerate(comps):
            vals = []
            for n in names:
                tot = sum(bars[n].values()) or 1.0
                vals.append(bars[n].get(c, 0.0) * (100.0 / tot if share else 1e3))
            ax.bar(range(len(names)), vals, bottom=bottom, color=cmap(ci % 20), label=c)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_ylabel("share of energy (%)" if share else "energy (mJ)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title or "energy by component", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accelergy_report(build: str | Path, out_dir: str | Path | None = None, ert: str | Path | None = None,
                     seq_len: int | None = None, spec: str | Path | None = None, fit: bool = False) -> dict:
    """Accelergy interop of ``build`` (``edgemti.hwmodel.accelergy``): write its action counts, ERT and ART into
    ``out_dir`` and/or re-price one inference and one switch with the Accelergy ERT ``ert``."""
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.hwmodel.accelergy import export, reprice
    from edgemti.runtime.hma import build_spec
    from edgemti.runtime.workload import hw_model

    b = open_build(build, verify=False)
    arch, _ = build_spec(b, spec, fit)
    hw = hw_model(b.manifest, load_graph(b.graph_bytes()), arch)
    seq = int(seq_len or hw.max_seq_len)
    if seq <= 0:
        raise ConfigError(f"seq_len must be > 0, got {seq}")
    out: dict[str, Any] = {"build": str(build), "build_id": b.manifest.build_id, "spec": arch.path or arch.name,
                           "seq_len": seq}
    if out_dir is not None:
        out["export"] = export(hw, seq, out_dir)
    if ert is not None:
        out["reprice"] = reprice(hw, seq, ert)
    return out


def format_accelergy(a: dict) -> str:
    lines = [f"{a['build']} ({a['build_id'][:12]}) on {a['spec']}, seq_len {a['seq_len']}"]
    if "export" in a:
        e = a["export"]
        lines.append(f"Accelergy files (task {e['task']}): " + ", ".join(e["files"]))
        for run, c in e["checks"].items():
            lines.append(f"  {run}: hwmodel {_si(c['hwmodel_energy_j'], 'J')}, counts x ERT "
                         f"{_si(c['counts_x_ert_energy_j'], 'J')}")
    if "reprice" in a:
        r = a["reprice"]
        lines.append(f"re-priced with {r['ert']} ({r['overridden']} per-action energies replaced), task {r['task']}:")
        for run in ("inference", "switch"):
            x = r[run]
            lines.append(f"  {run}: spec {_si(x['spec_energy_j'], 'J')} -> ERT {_si(x['ert_energy_j'], 'J')}")
            for comp, v in x["by_component_j"].items():
                if v["spec"] != v["ert"]:
                    lines.append(f"    {comp:14} {_si(v['spec'], 'J')} -> {_si(v['ert'], 'J')}")
    return "\n".join(lines)
