"""The calibration table of docs/HWMODEL.md: every default technology number beside its published source and the
ratio (ours / published), with why it was chosen.

Usage: python tools/hw_calibration.py [--spec hwmodel/specs/adapter.toml] [--nvsim ../shared/hwmodel/nvsim_macros.csv]

Three parts, in Markdown:

* the macro rows NVMExplorer publishes (22 nm, ReadEDP; ``hwmodel/data/calibration_refs.toml``) against the macro
  CSV's row of the same technology and capacity;
* every row of the macro CSV at 22 nm against the NVSim regeneration it was copied from (``--nvsim``; the reference
  CSV in ../shared/hwmodel/), summarised as the largest deviation per column;
* the spec's compute, DRAM, clock and buffer values against their anchors (Horowitz, Accelergy, TETRIS, EdgeBERT).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from edgemti.hwmodel import load_spec
from edgemti.hwmodel.macros import load_macro_table
from edgemti.hwmodel.spec import DATA_DIR

REFS = DATA_DIR / "calibration_refs.toml"
MACRO_COLUMNS = (("read_pj_per_access", "read_pj_per_access", 1.0), ("write_pj_per_access", "write_pj_per_access", 1.0),
                 ("leak_mw", "leak_w", 1e3), ("area_mm2", "area_mm2", 1.0), ("read_ns", "read_s", 1e9))


def _load_refs(path: Path) -> dict:
    doc = tomllib.loads(path.read_text())
    problems = []
    if doc.get("format") != "edgemti-calibration-refs" or doc.get("format_version") != 1:
        problems.append(f"format/format_version must be edgemti-calibration-refs / 1, got {doc.get('format')!r} / "
                        f"{doc.get('format_version')!r}")
    for i, m in enumerate(doc.get("macro", [])):
        problems += [f"macro[{i}].{k} is missing" for k in ("tech", "data_cap_kib", "source", *(c[0] for c in
                                                                                               MACRO_COLUMNS))
                     if k not in m]
    for i, v in enumerate(doc.get("value", [])):
        problems += [f"value[{i}].{k} is missing" for k in ("field", "reference", "source", "why") if k not in v]
    if problems:
        raise SystemExit(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))
    return doc


def _field(spec_dict: dict, dotted: str) -> float:
    node: object = spec_dict
    for p in dotted.split("."):
        assert isinstance(node, dict), dotted
        node = node[p]
    assert isinstance(node, (int, float)), dotted
    return float(node)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=None, help="default: the shipped adapter spec")
    ap.add_argument("--nvsim", type=Path, default=Path("../shared/hwmodel/nvsim_macros.csv"))
    a = ap.parse_args()
    spec = load_spec(a.spec)
    table = load_macro_table(spec.macro_library_path())
    refs = _load_refs(REFS)
    out = ["| number | ours | published | ratio | source | why |", "|---|--:|--:|--:|---|---|"]
    for m in refs["macro"]:
        rows = [x for x in table if x.tech == m["tech"] and x.node_nm == 22 and x.word_cells == 64
                and x.data_cap_bytes == int(m["data_cap_kib"]) * 1024]
        if not rows:
            raise SystemExit(f"no 22 nm 64-cell {m['tech']} {m['data_cap_kib']} KiB row in the macro table")
        ours = [getattr(rows[0], attr) * scale for _, attr, scale in MACRO_COLUMNS]
        pub = [float(m[k]) for k, _, _ in MACRO_COLUMNS]
        out.append(f"| {m['tech']} {m['data_cap_kib'] // 1024} MiB macro: read pJ, write pJ, leak mW, mm2, read ns | "
                   + " / ".join(f"{x:.4g}" for x in ours) + " | " + " / ".join(f"{x:.4g}" for x in pub) + " | "
                   + " / ".join(f"{o / p:.3f}" for o, p in zip(ours, pub, strict=True)) + f" | {m['source']} | "
                   "the macro menu is NVMExplorer's own NVSim (ReadEDP, LOP, 350 K): its published rows are "
                   "reproduced, not fitted |")
    sd = spec.to_dict()
    for v in refs["value"]:
        ours = _field(sd, v["field"])
        out.append(f"| {v['field']} | {ours:.4g} | {v['reference']:.4g} | {ours / v['reference']:.3f} | "
                   f"{v['source']} | {v['why']} |")
    print("\n".join(out))
    if a.nvsim.is_file():
        with a.nvsim.open() as f:
            ref_rows = list(csv.DictReader(f))
        worst: dict[str, float] = {}
        n = 0
        for r in ref_rows:
            mine = [x for x in table if x.tech == r["tech"] and x.node_nm == int(r["node_nm"])
                    and x.word_cells == int(r["word_cells"]) and x.data_cap_bytes == int(float(r["data_cap_KB"]) * 1024)]
            if not mine:
                continue
            n += 1
            for col, attr, scale in (("read_pJ_per_access", "read_pj_per_access", 1.0),
                                     ("write_pJ_per_access", "write_pj_per_access", 1.0), ("leak_mW", "leak_w", 1e3),
                                     ("area_mm2", "area_mm2", 1.0), ("read_ns", "read_s", 1e9),
                                     ("read_GBps", "read_bytes_per_s", 1e-9)):
                d = abs(getattr(mine[0], attr) * scale / float(r[col]) - 1)
                worst[col] = max(worst.get(col, 0.0), d)
        print(f"\nNVSim regeneration ({a.nvsim.name}): {n} rows matched; largest |ours / NVSim - 1| per column: "
              + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    else:
        print(f"\n({a.nvsim} not found: the NVSim row check was skipped)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
