"""Accelergy interop: our action counts and technology tables in Accelergy's formats, and an Accelergy ERT back in.

Accelergy (Wu, Emer, Sze, ICCAD'19; Accelergy-Project/accelergy, v0.4 files as Timeloop writes them) prices a
design as ``sum over components and actions of counts x energy per action`` from three YAML files:

* ``action_counts.yaml``: ``action_counts: {version, local: [{name, action_counts: [{name, arguments?, counts}]}]}``;
* ``ERT.yaml`` (energy reference table): ``ERT: {version, tables: [{name, actions: [{name, arguments, energy}]}]}``,
  energy in pJ per action of one instance;
* ``ART.yaml`` (area reference table): ``ART: {version, tables: [{name, area}]}``, area in um^2.

:func:`export` writes one inference's counts (``action_counts.yaml``), one task switch's
(``action_counts_switch.yaml``), the ERT and the ART of a priced build, so an architect can re-price them with
Accelergy's plug-ins (CACTI, NeuroSim, the table-based plug-ins) and compare. The components are the levels the
hwmodel provisioned and its compute units; a memory action is one access of the level's word (``word_cells`` x
``bits_per_cell`` bits; DRAM: 64 bits), ``leak`` is energy per clock cycle (Accelergy's convention), so
``counts x ERT`` reproduces the hwmodel's energy exactly (asserted on every export).

:func:`read_ert` reads an Accelergy ERT (validated entry by entry; one error lists every problem) and
:func:`reprice` prices the same counts with its per-action energies in place of the spec's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgemti.errors import FormatError
from edgemti.hwmodel.cost import ActionCounts
from edgemti.hwmodel.spec import PRECISIONS

log = logging.getLogger(__name__)
ACCELERGY_VERSION = "0.4"
# actions Accelergy's tables carry that this model does not count for some components (DRAM leak, buffer update,
# idle MACs): a user's ERT may list them; they are ignored (logged) instead of refused
UNPRICED = ("update", "idle", "mac_reused", "leak")
TOP = "edgemti_hma"
DRAM_WORD_BITS = 64
COMPUTE = ("pe_array", "sfu", "bitmask_codec")


@dataclass(frozen=True)
class Entry:
    """One ERT row: ``component``'s ``action`` (with ``arguments``) costs ``energy_pj`` per action."""

    component: str
    action: str
    arguments: tuple[tuple[str, str], ...]
    energy_pj: float


def _word_bits(hw, level: str) -> int:
    if level == "dram":
        return DRAM_WORD_BITS
    m = hw.spec.on_chip_memory(level)
    return int(m.word_cells * m.bits_per_cell)


def ert_entries(hw) -> list[Entry]:
    """The spec's and the provisioned levels' energy per action (pJ), in Accelergy's shape."""
    s, out = hw.spec, []
    cyc = s.cycle_s
    for lv in hw.levels:  # SRAM, RRAM and the PE array's buffers, as provisioned
        p, w = hw.levels[lv], _word_bits(hw, lv)
        out += [Entry(lv, "read", (), p.read_j_per_bit * w * 1e12), Entry(lv, "write", (), p.write_j_per_bit * w * 1e12),
                Entry(lv, "leak", (), p.leak_w * cyc * 1e12)]
    out += [Entry("dram", "read", (), s.dram.read_pj_per_bit * DRAM_WORD_BITS),
            Entry("dram", "write", (), s.dram.write_pj_per_bit * DRAM_WORD_BITS)]
    for prec in PRECISIONS:
        mac = s.pe_array.mac_energy_pj[prec]
        out += [Entry("pe_array", "mac_random", (("precision", prec),), mac),
                Entry("pe_array", "mac_gated", (("precision", prec),), mac * s.pe_array.gated_energy_fraction)]
        out += [Entry("sfu", "compute", (("kind", k), ("precision", prec)), e * mac)
                for k, e in s.sfu.mac_equiv_per_element.items()]
    out += [Entry("bitmask_codec", "decode", (), s.bitmask.decode_pj_per_vector),
            Entry("bitmask_codec", "encode", (), s.bitmask.encode_pj_per_vector)]
    return out


def action_counts(hw, counts: ActionCounts, latency_s: float) -> list[tuple[str, str, tuple, float]]:
    """(component, action, arguments, count) of ``counts`` over ``latency_s`` on ``hw``'s levels and conventions.

    Components the spec's energy conventions exclude (compute, leakage) get no counts, so the counts price to
    exactly what the hwmodel reports. SFU elements are counted at the precision they were priced at.
    """
    ex = hw.spec.execution
    out: list[tuple[str, str, tuple, float]] = []
    for lv in (*hw.levels, "dram"):
        w = _word_bits(hw, lv)
        for action, bits in (("read", counts.read_bits.get(lv, 0.0)), ("write", counts.write_bits.get(lv, 0.0))):
            if bits:
                out.append((lv, action, (), bits / w))
        if lv != "dram" and ex.include_leakage and lv in hw.levels:
            out.append((lv, "leak", (), latency_s / hw.spec.cycle_s))
    if ex.include_compute_energy:
        for prec, n in counts.macs.items():
            g = counts.gated_macs.get(prec, 0)
            out += [("pe_array", "mac_random", (("precision", prec),), n - g),
                    ("pe_array", "mac_gated", (("precision", prec),), g)]
        for kind, n in counts.sfu_elements.items():
            out.append(("sfu", "compute", (("kind", kind), ("precision", counts.sfu_precision or hw.precision)), n))
        out += [("bitmask_codec", "decode", (), counts.bitmask_decode_vectors),
                ("bitmask_codec", "encode", (), counts.bitmask_encode_vectors)]
    return [r for r in out if r[3]]


def energy_pj(rows: list[tuple[str, str, tuple, float]], entries: list[Entry]) -> dict[str, float]:
    """Accelergy's energy calculator: per component, sum of counts x energy per action (pJ)."""
    table = {(e.component, e.action, e.arguments): e.energy_pj for e in entries}
    out: dict[str, float] = {}
    for comp, action, args, n in rows:
        key = (comp, action, args)
        if key not in table:
            raise FormatError(f"no ERT entry for {comp}.{action} {dict(args)}")
        out[comp] = out.get(comp, 0.0) + n * table[key]
    return out


def _counts_doc(rows: list[tuple[str, str, tuple, float]]) -> dict:
    comps: dict[str, list] = {}
    for comp, action, args, n in rows:
        a: dict[str, Any] = {"name": action, "counts": float(n)}
        if args:
            a["arguments"] = dict(args)
        comps.setdefault(comp, []).append(a)
    return {"action_counts": {"version": ACCELERGY_VERSION,
                              "local": [{"name": f"{TOP}.{c}", "action_counts": v} for c, v in comps.items()]}}


def _write(path: Path, doc: dict, header: str) -> None:
    path.write_text("".join(f"# {ln}\n" for ln in header.splitlines()) + yaml.safe_dump(doc, sort_keys=False))


def export(hw, seq_len: int, out_dir: str | Path, task: str | None = None) -> dict:
    """Write ``action_counts.yaml`` (one inference of ``task``, default the largest pack's), ``action_counts_switch
    .yaml`` (one switch to it), ``ERT.yaml`` and ``ART.yaml`` into ``out_dir``; returns paths and energy checks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = task if task is not None else max(hw.tasks, key=hw.sram_set_bytes)
    inf = hw.inference(seq_len, task)
    sw = hw.swap(task)
    bits = 8.0 * hw.sram_set_bytes(task)
    sw_counts = ActionCounts(read_bits={"dram": bits}, write_bits={"sram": bits})
    entries = ert_entries(hw)
    runs = {"inference": (action_counts(hw, inf.counts, inf.latency_s), inf.energy_j, inf.energy_by_component_j),
            "switch": (action_counts(hw, sw_counts, sw.latency_s), sw.energy_j, sw.energy_by_component_j)}
    checks = {}
    for name, (rows, energy_j, by_j) in runs.items():
        by = energy_pj(rows, entries)
        total = sum(by.values()) * 1e-12
        checks[name] = {"hwmodel_energy_j": energy_j, "counts_x_ert_energy_j": total,
                        "closes": math.isclose(total, energy_j, rel_tol=1e-6, abs_tol=1e-18)}
        if not checks[name]["closes"]:
            raise AssertionError(f"accelergy export: counts x ERT = {total} J, hwmodel = {energy_j} J ({name}): "
                                 f"by component {by}, hwmodel {by_j}")
    head = (f"edgemti Accelergy export: spec {hw.spec.name} ({hw.spec.spec_hash()[:12]}), task {task}, seq_len "
            f"{seq_len}\nenergy conventions: compute {hw.spec.execution.include_compute_energy}, leakage "
            f"{hw.spec.execution.include_leakage} (excluded components carry no counts)")
    _write(out / "action_counts.yaml", _counts_doc(runs["inference"][0]), head + f"\none inference of {task}")
    _write(out / "action_counts_switch.yaml", _counts_doc(runs["switch"][0]),
           head + f"\none switch to {task}: its SRAM set moves DRAM -> SRAM")
    ert = {"ERT": {"version": ACCELERGY_VERSION, "tables": [
        {"name": f"{TOP}.{c}", "actions": [{"name": e.action, "arguments": dict(e.arguments), "energy": e.energy_pj}
                                           for e in entries if e.component == c]}
        for c in dict.fromkeys(e.component for e in entries)]}}
    _write(out / "ERT.yaml", ert, head + "\nenergy in pJ per action of one instance; memory actions: one word "
           "access (word_cells x bits_per_cell bits; DRAM 64 bits); leak: per clock cycle")
    area = hw.area()
    art = {"ART": {"version": ACCELERGY_VERSION, "tables": [
        *({"name": f"{TOP}.{lv}", "area": area.levels[lv].area_mm2 * 1e6} for lv in hw.levels),
        {"name": f"{TOP}.dram", "area": 0.0}, {"name": f"{TOP}.pe_array", "area": area.pe_array_mm2 * 1e6},
        {"name": f"{TOP}.logic", "area": area.logic_mm2 * 1e6}]}}
    _write(out / "ART.yaml", art, head + "\narea in um^2")
    return {"task": task, "seq_len": seq_len, "checks": checks,
            "files": [str(out / f) for f in ("action_counts.yaml", "action_counts_switch.yaml", "ERT.yaml", "ART.yaml")]}


def read_ert(path: str | Path, known: list[Entry]) -> list[Entry]:
    """Parse an Accelergy ``ERT.yaml`` and match its rows to ``known`` (:func:`ert_entries`).

    A table's name matches a component by its last dotted part without the instance range (``system.DRAM[1..1]``
    -> ``dram``, case-insensitive). A row's arguments select among our variants by the ones we price by
    (``precision``, ``kind``; others are Accelergy's own and ignored); without them it applies to every variant.
    Actions in ``UNPRICED`` that a component has no row for (a DRAM ``leak``, a buffer ``update``) are ignored.
    Every problem (not YAML, wrong shape, unknown component or action, a negative or non-numeric energy) is
    collected into one FormatError. Returns the matched rows (pJ per action).
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(f"ERT {path}: cannot read it as YAML ({exc})") from None
    tables = doc.get("ERT", {}).get("tables") if isinstance(doc, dict) and isinstance(doc.get("ERT"), dict) else None
    if not isinstance(tables, list):
        raise FormatError(f"ERT {path}: not an Accelergy ERT (expected 'ERT: {{version, tables: [...]}}')")
    comps = {e.component for e in known}
    problems: list[str] = []
    out: list[Entry] = []
    for i, t in enumerate(tables):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("actions"), list):
            problems.append(f"tables[{i}] must have a name and a list of actions")
            continue
        comp = t["name"].split("[")[0].split(".")[-1].lower()
        if comp not in comps:
            problems.append(f"tables[{i}] {t['name']!r}: no component {comp!r} (known: {sorted(comps)})")
            continue
        for j, a in enumerate(t["actions"]):
            where = f"{t['name']} actions[{j}]"
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                problems.append(f"{where} must have a name")
                continue
            e = a.get("energy")
            if not isinstance(e, (int, float)) or isinstance(e, bool) or not e >= 0 or not math.isfinite(e):
                problems.append(f"{where} ({a['name']}): energy must be a number >= 0 (pJ), got {e!r}")
                continue
            args = a.get("arguments") or {}
            if not isinstance(args, dict):
                problems.append(f"{where}: arguments must be a mapping, got {args!r}")
                continue
            # only the arguments we price by (precision, kind) select a row; Accelergy's own (global_cycle_seconds,
            # action_latency_cycles, ...) are ignored
            ours = {n for k in known if k.component == comp and k.action == a["name"] for n, _ in k.arguments}
            targs = {str(k): str(v) for k, v in args.items() if str(k) in ours}
            hits = [k for k in known if k.component == comp and k.action == a["name"]
                    and all(dict(k.arguments).get(n) == v for n, v in targs.items())]
            if not hits and a["name"] in UNPRICED and not any(k.component == comp and k.action == a["name"]
                                                             for k in known):
                log.info("ERT %s: %s.%s is not an action this model counts; ignored", path, comp, a["name"])
                continue
            if not hits:
                acts = sorted({f"{k.action} {dict(k.arguments) or ''}".strip() for k in known if k.component == comp})
                problems.append(f"{where}: {comp} has no action {a['name']!r} {args or ''} (known: {acts})")
                continue
            out += [Entry(h.component, h.action, h.arguments, float(e)) for h in hits]
    if problems:
        raise FormatError(f"ERT {path}: {len(problems)} problem(s): " + "; ".join(problems))
    return out


def reprice(hw, seq_len: int, ert_path: str | Path, task: str | None = None) -> dict:
    """One inference and one switch priced by the spec (counts x our ERT) and with ``ert_path``'s energies in
    place of the spec's; per component, in J."""
    task = task if task is not None else max(hw.tasks, key=hw.sram_set_bytes)
    ours = ert_entries(hw)
    theirs = read_ert(ert_path, ours)
    merged = {(e.component, e.action, e.arguments): e for e in ours}
    merged.update({(e.component, e.action, e.arguments): e for e in theirs})
    inf = hw.inference(seq_len, task)
    sw = hw.swap(task)
    bits = 8.0 * hw.sram_set_bytes(task)
    out: dict[str, Any] = {"task": task, "seq_len": seq_len, "ert": str(ert_path), "overridden": len(theirs)}
    for name, rows in (("inference", action_counts(hw, inf.counts, inf.latency_s)),
                       ("switch", action_counts(hw, ActionCounts(read_bits={"dram": bits}, write_bits={"sram": bits}),
                                                sw.latency_s))):
        spec_e = energy_pj(rows, ours)
        ert_e = energy_pj(rows, list(merged.values()))
        out[name] = {"spec_energy_j": sum(spec_e.values()) * 1e-12, "ert_energy_j": sum(ert_e.values()) * 1e-12,
                     "by_component_j": {c: {"spec": spec_e[c] * 1e-12, "ert": ert_e[c] * 1e-12} for c in spec_e}}
    return out
