"""LoRA packs vs Houlsby packs on one backbone: accuracy (from each pack's dev metrics), SRAM bytes, and the
hardware model's energy / latency per inference and per task switch, on one compiled build per kind.

    python tools/compare_lora.py --houlsby tasks/packs/sst2 build/cmp/mrpc-houlsby8 \
        --lora build/cmp/sst2-lora8 build/cmp/mrpc-lora8 --out build/cmp [--seq-len 32,128]

Each kind's packs are compiled together (``--backbone minilm``, the README's recipe: q3.13, sparsity 0.3/0.3,
no capacity check) into ``OUT/build-<kind>`` and served on the shipped spec fitted to it (``open_sized``); the table goes to stdout (markdown) and ``OUT/compare_lora.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgemti.compiler.compile import compile_build
from edgemti.compiler.config import CompileConfig
from edgemti.studies.sized import open_sized
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.pack import load_pack


def _kind(pack) -> str:
    a = pack.adapter
    if isinstance(a, LoraSpec):
        return f"LoRA r{a.rank} a{a.alpha:g} {'+'.join(a.target_modules)}"
    return f"Houlsby {a.attn_bottleneck},{a.ffn_bottleneck}"


def measure(kind: str, packs: list[Path], out: Path, seq_lens: list[int], backbone: str,
            reuse: bool = False) -> list[dict]:
    build = out / f"build-{kind}"
    if not (reuse and (build / "manifest.json").is_file()):
        compile_build(CompileConfig(backbone=backbone, packs=tuple(packs), sparsity_embedding=0.3,
                                    sparsity_transformer=0.3, check_capacity=False), build, force=True)
    engine = open_sized(build).engine()  # the shipped spec's on-chip memories sized to the build (serve --fit-spec)
    rows = []
    for folder in packs:
        p = load_pack(folder)
        entry = engine.manifest.pack(p.task)
        adapter_params = sum(a.size for n, a in p.tensors.items() if ".lora_" in n or ".adapters." in n)
        row = {"task": p.task, "kind": _kind(p), "pack": str(folder), "metrics": {k: v for k, v in p.metrics.items()
                                                                                  if k.startswith("dev_")},
               "train_examples": p.metrics.get("num_train_examples"), "epochs": p.train_config.get("epochs"),
               "lr": p.train_config.get("lr"), "task_params": p.num_params, "adapter_params": int(adapter_params),
               "sram_bytes": engine.hw.sram_set_bytes(p.task), "pack_dram_bytes": int(entry.length)}
        sw = engine.hw.swap(p.task)
        row["switch"] = {"energy_j": sw.energy_j, "latency_s": sw.latency_s}
        for L in seq_lens:
            inf = engine.hw.inference(L, p.task)
            adapter_recs = [r for r in inf.records if any(".lora_" in w or ".adapters." in w for w in r.weights)]
            row[f"inference_{L}"] = {"energy_j": inf.energy_j, "latency_s": inf.latency_s, "macs": inf.macs,
                                     "adapter_macs": sum(r.macs for r in adapter_recs),
                                     "adapter_energy_j": sum(r.energy_j for r in adapter_recs)}
        rows.append(row)
    return rows


def table(rows: list[dict], seq_lens: list[int]) -> str:
    head = ["task", "kind", "dev metric(s) %", "train ex x epochs", "task params (adapter)", "SRAM bytes"]
    head += [f"E / lat per inference @{L} (adapter MACs)" for L in seq_lens] + ["E / lat per switch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = ", ".join(f"{k.removeprefix('dev_')} {100 * v:.1f}" for k, v in r["metrics"].items())
        cells = [r["task"], r["kind"], m, f"{r['train_examples']} x {r['epochs']}",
                 f"{r['task_params']:,} ({r['adapter_params']:,})", f"{r['sram_bytes']:,}"]
        for L in seq_lens:
            i = r[f"inference_{L}"]
            cells.append(f"{i['energy_j'] * 1e6:.2f} uJ / {i['latency_s'] * 1e3:.3f} ms ({i['adapter_macs']:,})")
        cells.append(f"{r['switch']['energy_j'] * 1e6:.3f} uJ / {r['switch']['latency_s'] * 1e6:.2f} us")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--houlsby", nargs="+", type=Path, required=True)
    ap.add_argument("--lora", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("build/cmp"))
    ap.add_argument("--seq-len", default="32,128")
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--reuse", action="store_true", help="Reuse OUT/build-<kind> when it exists (no recompile).")
    args = ap.parse_args()
    seq_lens = [int(x) for x in args.seq_len.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure("houlsby", args.houlsby, args.out, seq_lens, args.backbone, args.reuse)
    rows += measure("lora", args.lora, args.out, seq_lens, args.backbone, args.reuse)
    (args.out / "compare_lora.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows, seq_lens))


if __name__ == "__main__":
    main()
