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
                 overrides: dict[str, Any] | None = None) -> dict:
    """Report of ``build`` at ``seq_len`` tokens (default: the build's max_seq_len) on ``spec``."""
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.formats.workload import hw_model
    from edgemti.hwmodel import load_spec
    from edgemti.hwmodel.scenario import Scenario, run_scenario
    from edgemti.hwmodel.trace import write_traces

    b = open_build(build, verify=False)
    m = b.manifest
    arch = load_spec(spec, design=m.design)
    if overrides:
        arch = arch.with_overrides(overrides)
    hw = hw_model(m, load_graph(b.graph_bytes()), arch)
    seq = int(seq_len or hw.max_seq_len)
    if seq <= 0:
        raise ConfigError(f"--seq-len must be > 0, got {seq}")
    tasks = hw.tasks
    per_task = {}
    for t in tasks:
        inf = hw.inference(seq, t)
        per_task[t] = {"inference": inf.summary(), "swap": hw.swap(t).to_dict(),
                       "pack_bytes": hw.workload.task(t).pack_bytes}
    worst = hw.inference(seq, None)
    mti = run_scenario(hw, Scenario(tuple(tasks), "round_robin", n_requests=max(30, 10 * len(tasks)), seq_len=seq))
    prov = {"build_id": m.build_id, "spec": arch.path or arch.name, "spec_hash": arch.spec_hash(),
            "design": m.design, "quant": m.compile.quant}
    if trace_json or csv_path:
        write_traces(worst, csv_path, trace_json, prov)
    prog = hw.program_rram()
    return {
        "build": str(build), **prov, "seq_len": seq, "synthetic": m.synthetic,
        "area": hw.area().to_dict(),
        "requirements_bytes": hw.requirements(),
        "inference_worst_task": worst.summary(),
        "tasks": per_task,
        "mti_round_robin": mti.to_dict(),
        "program_rram": {**prog.to_dict(), "cells_written": prog.cells_written},
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
    return "\n".join(lines)


def accelergy_report(build: str | Path, out_dir: str | Path | None = None, ert: str | Path | None = None,
                     seq_len: int | None = None, spec: str | Path | None = None) -> dict:
    """Accelergy interop of ``build`` (``edgemti.hwmodel.accelergy``): write its action counts, ERT and ART into
    ``out_dir`` and/or re-price one inference and one switch with the Accelergy ERT ``ert``."""
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.formats.workload import hw_model
    from edgemti.hwmodel import load_spec
    from edgemti.hwmodel.accelergy import export, reprice

    b = open_build(build, verify=False)
    arch = load_spec(spec, design=b.manifest.design)
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
