"""The six design points (adapter/vanilla x FP32/Q3.13/Q3.5, albert-base, seq 128) on the hwmodel dataflow:
energy, latency, latency / roofline and what remains above it per category, SRAM need, area, MTI per request;
writes the energy-by-component plot. A benchmark (full-size builds), not a test.

    python tools/hw_dataflow.py --builds /tmp/builds [--plot docs/img/hwmodel_energy_breakdown.png] [--json out.json]

Builds missing under ``--builds`` (``<design>_<quant>``) are compiled first (synthetic mnli/mrpc/qnli packs,
50 % sparsity, as ``report --paper``).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

DESIGNS = ("adapter", "vanilla")
QUANTS = ("fp32", "q3.13", "q3.5")
TASKS = ("mnli", "mrpc", "qnli")


def design_point(folder: Path, design: str, seq_len: int) -> dict:
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.hwmodel import HwModel, load_spec
    from edgemti.runtime.workload import workload_of

    b = open_build(folder, verify=False)
    hw = HwModel(workload_of(b.manifest), load_graph(b.graph_bytes()), load_spec(design=design))
    c = hw.inference(seq_len, "mnli")
    f = hw.spec.clock.freq_hz
    roof = c.macs / hw.spec.pe_array.macs / f
    above: collections.Counter = collections.Counter()
    for r in c.records:
        comp = r.cycles / f
        above["matmul padding + fill" if r.kind == "matmul" else f"{r.kind} compute"] += comp / roof
        above[f"{r.kind} memory not hidden"] += (r.latency_s - comp) / roof
    above["matmul padding + fill"] -= 1.0
    ts = hw.tasks
    mti_e = sum(hw.inference(seq_len, t).energy_j + hw.swap(t).energy_j for t in ts) / len(ts)
    mti_t = sum(hw.inference(seq_len, t).latency_s + hw.swap(t).latency_s for t in ts) / len(ts)
    return {"energy_j": c.energy_j, "latency_s": c.latency_s, "macs": c.macs, "latency_over_roofline": c.latency_s / roof,
            "above_roofline": {k: v for k, v in above.most_common() if abs(v) >= 5e-4},
            "sram_need_bytes": hw.requirements()["sram"], "activation_bytes": hw.activation_peak_bytes(),
            "area_mm2": hw.area().total_mm2, "mti_energy_per_request_j": mti_e, "mti_latency_per_request_s": mti_t,
            "energy_by_component_j": dict(c.energy_by_component_j)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builds", type=Path, required=True)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from edgemti.compiler import CompileConfig, compile_build

    out = {}
    for design in DESIGNS:
        for q in QUANTS:
            folder = a.builds / f"{design}_{q}"
            if not (folder / "manifest.json").is_file():
                compile_build(CompileConfig(backbone="albert-base", synthetic_tasks=TASKS, design=design, quant=q,
                                            sparsity_embedding=0.5, sparsity_transformer=0.5,
                                            max_seq_len=a.seq_len), folder, force=True)
            d = out[f"{design}/{q}"] = design_point(folder, design, a.seq_len)
            print(f"{design}/{q:6} {d['energy_j'] * 1e3:9.3f} mJ {d['latency_s'] * 1e3:8.2f} ms  "
                  f"lat/roofline {d['latency_over_roofline']:.3f}  SRAM need {d['sram_need_bytes'] / 2**20:.3f} MiB  "
                  f"area {d['area_mm2']:.3f} mm2  MTI {d['mti_energy_per_request_j'] * 1e3:.3f} mJ "
                  f"{d['mti_latency_per_request_s'] * 1e3:.2f} ms / request")
            print("    above 1: " + ", ".join(f"{k} {v:+.3f}" for k, v in d["above_roofline"].items()))
    if a.plot:
        from edgemti.studies.report import plot_energy_breakdown

        plot_energy_breakdown({k.replace("/", "\n"): v["energy_by_component_j"] for k, v in out.items()}, a.plot,
                              f"albert-base seq {a.seq_len}, one inference (mnli), by component")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
