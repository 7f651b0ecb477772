"""NVSim / NVMExplorer output -> rows of the hwmodel macro CSV (replaces hand transcription), and node scaling.

Two commands:

``convert``: one row per NVSim run. Each run is a pair ``CFG OUT``: NVSim's input config (``-Capacity (KB):``,
``-WordWidth (bit):``, ``-ProcessNode:``; NVMExplorer writes one per macro) and the text NVSim printed for it
(NVMExplorer keeps it as ``*.nvout``). The run's ``Total Area``, ``Read Latency``, ``Write Latency`` (or, for
eNVMs, ``SET Latency``: NVMExplorer's write convention), ``Read/Write Bandwidth``, ``Read Dynamic Energy``,
``Write`` (or ``SET``) ``Dynamic Energy`` and ``Leakage Power`` are read with their units::

    python tools/nvsim_to_macros.py convert --tech RRAM_MLC2 --bits-per-cell 2 \\
        --source "NVSim regen @282038a, ReadEDP" --out new_rows.csv run1.cfg run1.nvout run2.cfg run2.nvout

NVSim's capacity and word width count cells (REFERENCE s3.3): an MLC row's data capacity is cells x bits.

``derive-nodes``: append to a macro CSV the rows of every capacity its base node (22 nm) has and another node
lacks, by the anchor-ratio rule of :func:`edgemti.hwmodel.macros.derive_node_rows` (documented there and in
docs/PAPER_REPRO.md), and re-checksum it::

    python tools/nvsim_to_macros.py derive-nodes hwmodel/data/nvsim_macros_v1.csv --node 28 --node 40
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from edgemti.errors import FormatError
from edgemti.hwmodel.macros import Macro, derive_node_rows, load_macro_table, macro_csv_row, write_macro_csv

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12,
          "J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12,
          "W": 1.0, "mW": 1e-3, "uW": 1e-6, "nW": 1e-9,
          "m^2": 1.0, "mm^2": 1e-6, "um^2": 1e-12,
          "B/s": 1.0, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12}
_FIELDS = {  # output line label -> Macro field; first match wins (SRAM prints Write, eNVMs SET/RESET)
    "Total Area": "area", "Read Latency": "read_s", "Write Latency": "write_s", "SET Latency": "write_s",
    "Read Bandwidth": "read_bps", "Write Bandwidth": "write_bps", "Read Dynamic Energy": "read_j",
    "Write Dynamic Energy": "write_j", "SET Dynamic Energy": "write_j", "Leakage Power": "leak_w",
}
_LINE = re.compile(r"^ ?-\s+(?P<label>[A-Za-z][A-Za-z /]*?)\s*=\s*(?P<rhs>.+)$")
_VALUE = re.compile(r"(?P<num>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z^/2]+)\s*$")


def _si(text: str, where: str) -> float:
    m = _VALUE.search(text.strip())
    if not m or m.group("unit") not in _UNITS:
        raise FormatError(f"{where}: cannot read a value with a unit from {text.strip()!r} "
                          f"(known units: {sorted(_UNITS)})")
    return float(m.group("num")) * _UNITS[m.group("unit")]


def parse_nvsim_output(text: str, origin: str = "<nvsim output>") -> dict[str, float]:
    """SI values of one NVSim report: area (m^2), latencies (s), bandwidths (B/s), energies (J), leakage (W).

    Only top-level `` - Label = value`` lines count (the ``|---`` breakdown lines are skipped). Bandwidth
    prefixes are decimal (``GB/s`` = 1e9 B/s), as in NVSim's ``TO_BPS`` and the macro CSV.
    """
    out: dict[str, float] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        m = _LINE.match(line.rstrip())
        if not m:
            continue
        key = _FIELDS.get(m.group("label").strip())
        if key is None or key in out:
            continue
        rhs = m.group("rhs").split("=")[-1]  # "Total Area = 1.0mm x 0.5mm = 0.526mm^2"
        out[key] = _si(rhs, f"{origin} line {n}")
    missing = sorted(set(_FIELDS.values()) - set(out))
    if missing:
        raise FormatError(f"{origin}: not an NVSim report, missing {missing} (expected lines like "
                          "' - Read Dynamic Energy = 6.178pJ')")
    return out


def parse_nvsim_config(text: str, origin: str = "<nvsim cfg>") -> dict[str, int]:
    """``capacity_cells_bytes``, ``word_cells`` and ``node_nm`` of an NVSim input config."""
    keys: dict[str, str | None] = {"Capacity": None, "WordWidth": None, "ProcessNode": None}
    unit = "KB"
    for line in text.splitlines():
        m = re.match(r"^-(\w+)\s*(?:\((\w+)\))?\s*:\s*(\S+)", line.strip())
        if m and m.group(1) in keys:
            keys[m.group(1)] = m.group(3)
            if m.group(1) == "Capacity":
                unit = m.group(2) or "KB"
    missing = [k for k, v in keys.items() if v is None]
    if missing:
        raise FormatError(f"{origin}: NVSim config lacks {missing} (lines like '-Capacity (KB): 2048')")
    scale = {"B": 1, "KB": 1024, "MB": 1024**2}.get(unit)
    if scale is None:
        raise FormatError(f"{origin}: capacity unit {unit!r} is not B, KB or MB")
    try:
        return {"capacity_cells_bytes": int(float(str(keys["Capacity"])) * scale),
                "word_cells": int(str(keys["WordWidth"])), "node_nm": int(str(keys["ProcessNode"]))}
    except ValueError as exc:
        raise FormatError(f"{origin}: bad number in the NVSim config ({exc})") from None


def macro_from_run(cfg_text: str, out_text: str, tech: str, bits_per_cell: int, source: str,
                   origin: str = "<run>") -> Macro:
    """One macro-CSV row from an NVSim run (config + report); energies per access of ``word_cells`` cells."""
    cfg = parse_nvsim_config(cfg_text, origin + " cfg")
    r = parse_nvsim_output(out_text, origin + " output")
    if bits_per_cell <= 0:
        raise FormatError(f"{origin}: bits_per_cell must be > 0, got {bits_per_cell}")
    return Macro(tech=tech, node_nm=cfg["node_nm"], word_cells=cfg["word_cells"], bits_per_cell=bits_per_cell,
                 data_cap_bytes=cfg["capacity_cells_bytes"] * bits_per_cell, area_mm2=r["area"] * 1e6,
                 read_s=r["read_s"], write_s=r["write_s"], read_pj_per_access=r["read_j"] * 1e12,
                 write_pj_per_access=r["write_j"] * 1e12, leak_w=r["leak_w"], read_bytes_per_s=r["read_bps"],
                 write_bytes_per_s=r["write_bps"], source=source)


def append_rows(path: Path, rows: list[Macro]) -> str:
    """Append ``rows`` to an existing macro CSV (its rows untouched) and recompute its body checksum."""
    load_macro_table(path)  # refuse to extend a corrupt table
    lines = path.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    body = "".join(lines[i:])
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=body.splitlines()[0].split(","), lineterminator="\n")
    for m in rows:
        w.writerow(macro_csv_row(m))
    body = body + buf.getvalue()
    digest = hashlib.sha256(body.encode()).hexdigest()
    head = [f"# body_sha256: {digest}\n" if ln.startswith("# body_sha256:") else ln for ln in lines[:i]]
    path.write_text("".join(head) + body)
    load_macro_table.cache_clear()
    load_macro_table(path)
    return digest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="NVSim runs (CFG OUT pairs) -> a macro CSV")
    c.add_argument("--tech", required=True, help="technology name of the rows, e.g. SRAM, RRAM_SLC, RRAM_MLC2")
    c.add_argument("--bits-per-cell", type=int, default=1)
    c.add_argument("--source", required=True, help="provenance written in every row's source column")
    c.add_argument("--out", type=Path, required=True, help="macro CSV to write (or extend with --append)")
    c.add_argument("--append", action="store_true", help="append to an existing macro CSV instead")
    c.add_argument("runs", nargs="+", type=Path, help="CFG OUT [CFG OUT ...]")
    d = sub.add_parser("derive-nodes", help="append node-scaled rows to a macro CSV")
    d.add_argument("csv", type=Path)
    d.add_argument("--node", type=int, action="append", required=True)
    d.add_argument("--base-node", type=int, default=22)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "convert":
            if len(a.runs) % 2:
                ap.error("runs must come in CFG OUT pairs")
            rows = [macro_from_run(cfg.read_text(), out.read_text(), a.tech, a.bits_per_cell, a.source, str(out))
                    for cfg, out in zip(a.runs[::2], a.runs[1::2], strict=True)]
            if a.append:
                digest = append_rows(a.out, rows)
            else:
                digest = write_macro_csv(rows, a.out, header=(f"origin: tools/nvsim_to_macros.py convert ({a.source})",))
            print(f"{a.out}: {len(rows)} row(s), body_sha256 {digest}")
        else:
            table = load_macro_table(a.csv)
            rows = [m for n in a.node for m in derive_node_rows(table, n, a.base_node)]
            digest = append_rows(a.csv, rows)
            print(f"{a.csv}: {len(rows)} derived row(s) appended, body_sha256 {digest}")
    except (FormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
