"""``edgemti inspect``: the memory map and footprint of a build, its verification, and the paper's Table III."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgemti.compiler.footprint import MIB, Footprint, footprint, format_table3, table3_rows
from edgemti.formats.build import open_build
from edgemti.formats.manifest import Manifest

TABLE3_QUANTS = ("fp32", "q3.13", "q3.5")
TABLE3_DESIGNS = ("vanilla", "adapter")


def memory_map(m: Manifest) -> list[dict]:
    """One row per region: image, offset, length, what it holds."""
    rows = []
    for t in m.tensors:
        rows.append({"image": "rram_mlc", "offset": t.values.offset, "length": t.values.length,
                     "what": f"{t.name} values ({t.nnz} x {t.format.name})"})
        rows.append({"image": "rram_slc", "offset": t.mask.offset, "length": t.mask.length,
                     "what": f"{t.name} mask ({t.numel} bits)"})
    for p in m.packs:
        rows.append({"image": p.image, "offset": p.offset, "length": p.length,
                     "what": f"pack {p.task} ({len(p.tensors)} tensors{', synthetic' if p.synthetic else ''})"})
    return rows


def compact_map(m: Manifest) -> list[dict]:
    """The memory map at a glance: consecutive regions of one image and one tensor group merged; packs one each."""
    rows: list[dict] = []
    for image, attr, what in (("rram_mlc", "values", "values"), ("rram_slc", "mask", "masks")):
        for t in m.tensors:
            span = getattr(t, attr)
            last = rows[-1] if rows else None
            if last and last["image"] == image and last["group"] == t.group and last["end"] == span.offset:
                last["end"] = span.end
                last["count"] += 1
            else:
                rows.append({"image": image, "group": t.group, "start": span.offset, "end": span.end, "count": 1,
                             "kind": what})
    out = [{"image": r["image"], "start": r["start"], "end": r["end"],
            "what": f"{r['group']} {r['kind']} ({r['count']} tensors)"} for r in rows]
    out += [{"image": p.image, "start": p.offset, "end": p.offset + p.length, "what": f"pack {p.task}"}
            for p in m.packs]
    return out


def inspect_build(path: str | Path, verify: bool = False, table3: bool = False, check_logits: bool = False,
                  progress: Callable[[str], None] | None = None, plot: str | Path | None = None) -> dict:
    """A JSON-able report of a build; ``verify`` checks every checksum, ``table3`` adds the Table III layout,
    ``check_logits`` compares the decoded build with the PyTorch models (:func:`compiler.check.compare_logits`);
    ``plot`` (with ``table3``) writes the Table III bars to this PNG."""
    build = open_build(path, verify=False)
    m = build.manifest
    fp = footprint(m)
    report: dict = {
        "path": str(path), "build_id": m.build_id, "design": m.design, "synthetic": m.synthetic,
        "backbone": {k: m.backbone[k] for k in ("name", "family", "pretrained", "hash", "num_params")},
        "warning": m.backbone.get("warning"), "compile": {k: v for k, v in m.compile.to_dict().items() if k != "config"},
        "images": {n: {"file": e.file, "size_bytes": e.size_bytes, "memory": e.memory, "cells": e.cells}
                   for n, e in m.images.items()},
        "footprint": fp.to_dict(),
        "tensors": [{"name": t.name, "group": t.group, "shape": list(t.shape), "nnz": t.nnz,
                     "sparsity": round(t.sparsity, 4), "format": t.format.name, "saturated": t.saturated,
                     "quant_max_abs_err": t.quant_max_abs_err} for t in m.tensors],
        "packs": [{"task": p.task, "labels": list(p.labels), "synthetic": p.synthetic, "bytes": p.length,
                   "adapter": p.adapter, "tensors": len(p.tensors),
                   "saturated": sum(t.saturated for t in p.tensors)} for p in m.packs],
        "memory_map": memory_map(m),
        "compact_map": compact_map(m),
    }
    if verify or check_logits:  # the images the logits are decoded from are checked too, on this one open
        checks = build.verify()
        if verify:
            report["verify"] = {"ok": True, "checks": checks}
    if table3:
        report["table3"] = table3_for_manifest(m, progress)
        if plot:
            from edgemti.compiler.footprint import plot_table3

            report["table3_plot"] = plot_table3(report["table3"], str(plot))
    if check_logits:
        from edgemti.compiler.check import compare_logits

        report["logits_check"] = compare_logits(build)
    return report


def table3_footprints(backbone: str, tasks: list[str], sparsity_embedding: float, sparsity_transformer: float,
                      adapter: str = "64", checkpoint: str | None = None,
                      progress: Callable[[str], None] | None = None) -> list[Footprint]:
    """Footprints of vanilla and adapter designs at FP32, Q3.13, Q3.5 (synthetic packs of ``tasks``)."""
    from edgemti.compiler.compile import plan_build
    from edgemti.compiler.config import CompileConfig

    out = []
    for design in TABLE3_DESIGNS:
        for q in TABLE3_QUANTS:
            if progress:
                progress(f"{design} {q}")
            cfg = CompileConfig(backbone=backbone, synthetic_tasks=tuple(tasks), design=design, quant=q,
                                sparsity_embedding=sparsity_embedding, sparsity_transformer=sparsity_transformer,
                                checkpoint=checkpoint, synthetic_adapter=adapter)
            out.append(footprint(plan_build(cfg).manifest))
    return out


def table3_for_manifest(m: Manifest, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Table III rows for a build's backbone, tasks and sparsities (all six design x quant combinations)."""
    sizes = [(p.adapter or {}).get(k, 64) for p in m.packs for k in ("attn_bottleneck", "ffn_bottleneck")]
    big = [p.adapter for p in m.packs if p.adapter]
    adapter = f"{max(a['attn_bottleneck'] for a in big)},{max(a['ffn_bottleneck'] for a in big)}" if big else \
        str(max(sizes or [64]))
    fps = table3_footprints(m.backbone["name"], m.tasks, m.compile.sparsity_embedding,
                            m.compile.sparsity_transformer, adapter=adapter,
                            checkpoint=(m.compile.config or {}).get("checkpoint"), progress=progress)
    return table3_rows(fps)


def format_report(r: dict, tensors: bool = False) -> str:
    """Human-readable text of :func:`inspect_build`'s report (``tensors``: one line per backbone tensor)."""
    fp = r["footprint"]
    c = r["compile"]
    lines = [f"build {r['path']}  id {r['build_id'][:16]}  design {r['design']}"
             + ("  [SYNTHETIC packs: untrained, hardware-only]" if r["synthetic"] else "")]
    if r.get("warning"):
        lines.append(r["warning"])
    b = r["backbone"]
    lines.append(f"backbone {b['name']} ({b['family']}, {b['num_params']:,} params, hash {b['hash'][:12]}, "
                 f"{'pretrained' if b['pretrained'] else 'RANDOM INIT'})")
    pr = c.get("prune", {})
    lines.append(f"quant {c['quant']} (packs {c.get('pack_quant', c['quant'])}), activations {c['activation_bits']} "
                 f"bits; sparsity targets embedding {c['sparsity_embedding']:.2f} transformer "
                 f"{c['sparsity_transformer']:.2f} -> Eq.1 cumulative {c['cumulative_sparsity']:.4f} "
                 f"(P_embd {pr.get('p_embedding', 0):.3f}, P_tf {pr.get('p_transformer', 0):.3f}); stored "
                 f"sparsity after quantization {c.get('stored_sparsity', 0):.4f}")
    lines.append("")
    lines.append(f"{'memory':10} {'bytes':>12} {'MiB':>9}  holds")
    lines.append(f"{'RRAM MLC':10} {fp['mlc_bytes']:>12,} {fp['mlc_mib']:>9.3f}  backbone non-zero values "
                 f"({fp['mlc_cells']:,} 2-bit cells; paper convention {fp['paper_convention_mib']['mlc']:.3f})")
    lines.append(f"{'RRAM SLC':10} {fp['slc_bytes']:>12,} {fp['slc_mib']:>9.3f}  backbone bitmasks "
                 f"({fp['backbone_numel']:,} bits)")
    lines.append(f"{'SRAM':10} {fp['sram_bytes']:>12,} {fp['sram_mib']:>9.3f}  largest pack ({fp['sram_task']}), "
                 "swapped in per task (+ activations, not counted)")
    lines.append(f"{'DRAM':10} {fp['dram_bytes']:>12,} {fp['dram_mib']:>9.3f}  all {len(r['packs'])} packs")
    lines.append("")
    lines.append("memory map (--map for every tensor):")
    for row in r["compact_map"]:
        lines.append(f"  {row['image']:9} [{row['start']:>11,} .. {row['end']:>11,})  {row['what']}")
    lines.append("")
    lines.append("packs: " + ", ".join(f"{p['task']} {p['bytes'] / 1024:.1f} KiB" for p in r["packs"]))
    sat = sum(t["saturated"] for t in r["tensors"])
    worst = max(r["tensors"], key=lambda t: t["quant_max_abs_err"]) if r["tensors"] else None
    if tensors:
        lines.append(f"{'tensor':58} {'group':11} {'shape':>12} {'sparsity':>8} {'sat':>5} {'max q err':>9}")
    for t in r["tensors"] if tensors else ():
        lines.append(f"{t['name'][-58:]:58} {t['group']:11} {'x'.join(map(str, t['shape'])):>12} "
                     f"{t['sparsity']:>8.3f} {t['saturated']:>5} {t['quant_max_abs_err']:>9.2e}")
    lines.append(f"backbone: {len(r['tensors'])} tensors, {sat} saturated values"
                 + (f", worst quantization error {worst['quant_max_abs_err']:.3g} ({worst['name']})" if worst else ""))
    if "verify" in r:
        lines.append("")
        lines.append("verify: OK")
        lines += [f"  {c}" for c in r["verify"]["checks"]]
    if "logits_check" in r:
        lines.append("")
        lines.append("logits of the decoded build (onnxruntime) vs PyTorch, seeded random batch:")
        for task, c in r["logits_check"].items():
            agree = c["argmax_agreement_vs_float"]
            lines.append(f"  {task:8} vs pruned+quantized torch {c['max_abs_diff_vs_compiled_torch']:.2e} | vs float "
                         f"unpruned {c['max_abs_diff_vs_float']:.3g}"
                         + (f", argmax agreement {agree:.0%}" if agree is not None else ""))
        lines += logits_note(r["logits_check"], r["compile"], r["path"])
    if "table3" in r:
        lines.append("")
        lines.append("Table III (paper) layout, this backbone and tasks, synthetic packs:")
        lines.append(format_table3(r["table3"]))
        if r.get("table3_plot"):
            lines.append(f"plot: {r['table3_plot']}")
    return "\n".join(lines)


__all__ = ["inspect_build", "format_report", "memory_map", "compact_map", "table3_footprints", "table3_for_manifest", "MIB"]


def logits_note(checks: dict[str, dict], compile_section: dict, build: str) -> list[str]:
    """What the logits check's argmax agreement means, whether its flips are expected, and what measures accuracy."""
    first = next(iter(checks.values()))
    lines = [f"  argmax agreement: how often the build picks the float model's class on {first['batch']} seeded "
             f"random-token sequences of {first['seq']} tokens (not text): one flip moves it by "
             f"{100 / first['batch']:.0f} points, so it is a smoke test, not an accuracy."]
    exact = all(c["max_abs_diff_vs_compiled_torch"] <= 1e-5 for c in checks.values())
    if exact:
        lines.append("  the decoded build equals the pruned+quantized model: the images are right, and any drift from "
                     f"the float model is pruning (embedding {compile_section['sparsity_embedding']:g}, transformer "
                     f"{compile_section['sparsity_transformer']:g}) and {compile_section['quant']} quantization.")
    for task, c in checks.items():
        m = c["float_margin_on_flips"]
        if m is None:
            continue
        d = c["max_abs_diff_vs_float"]
        verdict = (f"expected: a near tie, and logits that each move by up to {d:.3g} can shift a margin by {2 * d:.3g}"
                   if m <= 2 * d else "more than the logits' drift explains: compression changed a clear decision")
        lines.append(f"  {task}: the float model's largest top-2 margin on a flipped sequence is {m:.3g}: {verdict}.")
    lines.append(f"  accuracy of the build as served, on each task's dev set: edgemti eval --build {build}")
    return lines

