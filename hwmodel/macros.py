"""The memory macro library (NVSim/NVMExplorer rows) and the provisioning of a memory level from macros.

Provisioning (adapter-ALBERT paper s IV-C, REFERENCE s9.1), per level ``objective``:

* ``closest`` (default, the paper): the combination of at most ``max_macros`` macros whose total data capacity
  is the *closest value at or above* the requirement; ties by lower read energy per bit, then lower access
  latency, then smaller area, then fewer macros. The provisioned capacity never shrinks when the requirement
  grows, but the area can (five small macros may cover 1.9 MB with more area than one 2 MB macro).
* ``min_area``: the least total area that covers the requirement, ties by capacity, energy, latency, count.
  Area is then monotone in the requirement.

Solved exactly by a DP over multiples of the smallest macro (all costs are additive, so lexicographic
minimisation composes).

Per-bit figures of a multi-macro level are capacity-weighted (accesses spread uniformly over the address
space, REFERENCE s9.2); bandwidth is the capacity-weighted average (``bw_mode="weighted"``, the paper) or the
sum over the macros (``"parallel"``, banked).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

from edgemti.errors import CapacityError, FormatError
from edgemti.hwmodel.spec import MemorySpec

MACRO_FORMAT = "edgemti-macro-table"
MACRO_FORMAT_VERSION = 1
_COLUMNS = ("tech", "node_nm", "word_cells", "bits_per_cell", "nvsim_cap_kib", "data_cap_kib", "area_mm2",
            "read_ns", "write_ns", "read_pj_per_access", "write_pj_per_access", "leak_mw", "read_gb_per_s",
            "write_gb_per_s", "source")


@dataclass(frozen=True)
class Macro:
    """One memory macro. Energies per access of ``word_cells`` cells (``word_cells * bits_per_cell`` data bits)."""

    tech: str
    node_nm: int
    word_cells: int
    bits_per_cell: int
    data_cap_bytes: int
    area_mm2: float
    read_s: float
    write_s: float
    read_pj_per_access: float
    write_pj_per_access: float
    leak_w: float
    read_bytes_per_s: float
    write_bytes_per_s: float
    source: str

    @property
    def word_bits(self) -> int:
        return self.word_cells * self.bits_per_cell

    @property
    def read_pj_per_bit(self) -> float:
        return self.read_pj_per_access / self.word_bits

    @property
    def write_pj_per_bit(self) -> float:
        return self.write_pj_per_access / self.word_bits


@functools.lru_cache(maxsize=16)
def load_macro_table(path: str | Path) -> tuple[Macro, ...]:
    """Parse and verify a macro CSV (``# format``/``# format_version``/``# body_sha256`` header lines)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormatError(f"macro table {path}: cannot read ({exc})") from None
    meta: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, _, value = lines[i][1:].partition(":")
        meta[key.strip()] = value.strip()
        i += 1
    body = "".join(lines[i:])
    if meta.get("format") != MACRO_FORMAT:
        raise FormatError(f"macro table {path}: '# format: {MACRO_FORMAT}' header missing, got {meta.get('format')!r}")
    if meta.get("format_version") != str(MACRO_FORMAT_VERSION):
        raise FormatError(f"macro table {path}: format_version {meta.get('format_version')!r} is not supported "
                          f"(this edgemti reads {MACRO_FORMAT_VERSION})")
    digest = hashlib.sha256(body.encode()).hexdigest()
    if meta.get("body_sha256") != digest:
        raise FormatError(f"macro table {path}: body_sha256 mismatch (header {meta.get('body_sha256')!r}, "
                          f"content {digest}); the file is corrupt or was edited: run tools/hw_rehash.py on it")
    reader = csv.DictReader(io.StringIO(body))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise FormatError(f"macro table {path}: columns must be {list(_COLUMNS)}, got {reader.fieldnames}")
    out = []
    for n, row in enumerate(reader, start=i + 2):
        try:
            m = Macro(
                tech=row["tech"], node_nm=int(row["node_nm"]), word_cells=int(row["word_cells"]),
                bits_per_cell=int(row["bits_per_cell"]), data_cap_bytes=int(float(row["data_cap_kib"]) * 1024),
                area_mm2=float(row["area_mm2"]), read_s=float(row["read_ns"]) * 1e-9,
                write_s=float(row["write_ns"]) * 1e-9, read_pj_per_access=float(row["read_pj_per_access"]),
                write_pj_per_access=float(row["write_pj_per_access"]), leak_w=float(row["leak_mw"]) * 1e-3,
                read_bytes_per_s=float(row["read_gb_per_s"]) * 1e9,
                write_bytes_per_s=float(row["write_gb_per_s"]) * 1e9, source=row["source"],
            )
        except (TypeError, ValueError) as exc:
            raise FormatError(f"macro table {path} line {n}: bad number ({exc})") from None
        if not row["source"]:
            raise FormatError(f"macro table {path} line {n}: every row needs a source")
        out.append(m)
    return tuple(out)


def menu(table: tuple[Macro, ...], spec: MemorySpec, node_nm: int) -> tuple[Macro, ...]:
    """Macros usable for a level: its technology, node and word width, sorted by capacity."""
    rows = [m for m in table if m.tech == spec.technology and m.node_nm == node_nm and m.word_cells == spec.word_cells
            and m.bits_per_cell == spec.bits_per_cell]
    if not rows:
        have = sorted({(m.node_nm, m.word_cells) for m in table if m.tech == spec.technology
                       and m.bits_per_cell == spec.bits_per_cell})
        raise CapacityError(
            f"no macro in the library for {spec.technology} at {node_nm} nm, {spec.word_cells}-cell word, "
            f"{spec.bits_per_cell} b/cell; the library has (node nm, word cells) {have}: pick one of those "
            f"or add NVSim rows for this node (tools/nvsim_to_macros.py)"
        )
    best: dict[int, Macro] = {}
    for m in rows:  # one macro per capacity: the first listed
        best.setdefault(m.data_cap_bytes, m)
    return tuple(sorted(best.values(), key=lambda m: m.data_cap_bytes))


@dataclass(frozen=True)
class LevelProvision:
    """A provisioned on-chip memory level. SI units; per-bit energies in J/bit."""

    level: str
    technology: str
    required_bytes: int
    macros: tuple[tuple[int, int], ...]  # (macro data capacity in bytes, count)
    capacity_bytes: int
    area_mm2: float
    leak_w: float
    read_j_per_bit: float
    write_j_per_bit: float
    read_bytes_per_s: float
    write_bytes_per_s: float
    read_latency_s: float
    write_latency_s: float
    overridden: bool = False  # required_bytes came from the spec's required_mib, not from the build
    copies: int = 1  # physical copies (a double-buffered operand buffer: 2); area and leakage include them

    def to_dict(self) -> dict:
        return {k: (list(map(list, v)) if k == "macros" else v) for k, v in self.__dict__.items()}


def provision(level: str, spec: MemorySpec, node_nm: int, table: tuple[Macro, ...], required_bytes: int,
              check_capacity: bool = True, precision: str | None = None, copies: int = 1) -> LevelProvision:
    """Macros for ``required_bytes`` of data in ``level`` (``provision="fixed"``: for ``spec.capacity_bytes``).

    A spec with ``required_mib`` (the study's own accounting, e.g. the paper's Table III) provisions its entry
    for the build's value ``precision`` instead of ``required_bytes``.
    """
    if required_bytes < 0:
        raise CapacityError(f"{level}: required capacity must be >= 0 bytes, got {required_bytes}")
    override = None
    if spec.required_mib is not None:
        if precision is None:
            raise CapacityError(f"{level}: the spec overrides the requirement per precision (required_mib); "
                                "give the build's value precision")
        override = spec.required_override_bytes(precision)
    if override is not None:
        required_bytes = override
    if check_capacity and required_bytes > spec.capacity_bytes:
        raise CapacityError(
            f"{level} needs {required_bytes / 2**20:.2f} MiB, the spec offers {spec.capacity_bytes / 2**20:.2f} MiB: "
            f"raise {level}.capacity_bytes in the spec or compress more (sparsity, quantization)"
        )
    need = spec.capacity_bytes if spec.provision == "fixed" else required_bytes
    macros = menu(table, spec, node_nm)
    chosen = _choose(macros, need, spec.max_macros, level, spec.objective)
    counts: dict[int, int] = {}
    for m in chosen:
        counts[m.data_cap_bytes] = counts.get(m.data_cap_bytes, 0) + 1
    cap = sum(m.data_cap_bytes for m in chosen)
    margin = 1.0 + spec.periphery_area_fraction

    def weighted(get) -> float:
        return sum(m.data_cap_bytes * get(m) for m in chosen) / cap if cap else 0.0

    if spec.bw_mode == "parallel":
        rbw = sum(m.read_bytes_per_s for m in chosen)
        wbw = sum(m.write_bytes_per_s for m in chosen)
    else:
        rbw, wbw = weighted(lambda m: m.read_bytes_per_s), weighted(lambda m: m.write_bytes_per_s)
    return LevelProvision(
        level=level, technology=spec.technology, required_bytes=int(required_bytes), overridden=override is not None,
        macros=tuple(sorted(counts.items(), reverse=True)), capacity_bytes=cap,
        area_mm2=sum(m.area_mm2 for m in chosen) * margin * copies, leak_w=sum(m.leak_w for m in chosen) * copies,
        copies=copies,
        read_j_per_bit=weighted(lambda m: m.read_pj_per_bit) * 1e-12,
        write_j_per_bit=weighted(lambda m: m.write_pj_per_bit) * 1e-12,
        read_bytes_per_s=rbw, write_bytes_per_s=wbw,
        read_latency_s=weighted(lambda m: m.read_s), write_latency_s=weighted(lambda m: m.write_s),
    )


def _choose(macros: tuple[Macro, ...], need: int, max_macros: int, level: str, objective: str = "closest"
            ) -> list[Macro]:
    """Exact DP over totals t (in units of the smallest macro), best multiset per t, then the best t."""
    if need <= 0:
        return []
    unit = math.gcd(*(m.data_cap_bytes for m in macros))
    target = -(-need // unit)
    top = max_macros * macros[-1].data_cap_bytes // unit
    if top < target:
        raise CapacityError(
            f"{level}: {need / 2**20:.2f} MiB needs more than {max_macros} of the largest macro "
            f"({macros[-1].data_cap_bytes / 2**20:.0f} MiB): raise max_macros or add bigger macros to the library"
        )
    sizes = [m.data_cap_bytes // unit for m in macros]
    top = min(top, target + sizes[-1])  # the closest cover is never further than one largest macro away
    # capacity-weighted sums: energy and latency of the level times its capacity (constant for a fixed t)
    costs = [(m.data_cap_bytes * m.read_pj_per_bit, m.data_cap_bytes * m.read_s, m.area_mm2, 1) for m in macros]
    if objective == "min_area":
        costs = [(c[2], c[0], c[1], c[3]) for c in costs]
    inf = (math.inf,) * 4
    # layer k: best (cost, macro indices) per total t over multisets of <= k macros; costs add, so this is exact
    best: list[tuple] = [inf] * (top + 1)
    pick: list[tuple[int, ...] | None] = [None] * (top + 1)
    best[0], pick[0] = (0.0, 0.0, 0.0, 0), ()  # (first key, second, third, count)
    layer_best, layer_pick = list(best), list(pick)
    for _ in range(max_macros):
        nxt_best, nxt_pick = list(layer_best), list(layer_pick)
        for t in range(top + 1):
            prev = layer_pick[t]
            if prev is None:
                continue
            for j, s in enumerate(sizes):
                u = t + s
                if u > top:
                    continue
                c = tuple(a + b for a, b in zip(layer_best[t], costs[j], strict=True))
                if c < nxt_best[u]:
                    nxt_best[u], nxt_pick[u] = c, (*prev, j)
        layer_best, layer_pick = nxt_best, nxt_pick
    feasible = [t for t in range(target, top + 1) if layer_pick[t] is not None]
    if feasible:
        if objective == "min_area":
            t = min(feasible, key=lambda t: (layer_best[t][0], t, *layer_best[t][1:]))
        else:
            t = feasible[0]
        chosen = layer_pick[t]
        assert chosen is not None  # t is feasible
        return [macros[j] for j in chosen]
    raise CapacityError(f"{level}: no combination of at most {max_macros} macros covers {need} bytes")  # unreachable


# -- technology nodes: a documented scaling rule for the capacities NVSim was not run at -----------------------

_SCALED = ("area_mm2", "read_s", "write_s", "read_pj_per_access", "write_pj_per_access", "leak_w",
           "read_bytes_per_s", "write_bytes_per_s")


def derive_node_rows(table: tuple[Macro, ...], node_nm: int, base_node_nm: int = 22) -> list[Macro]:
    """Macros at ``node_nm`` for every capacity the ``base_node_nm`` menu has and ``node_nm`` lacks.

    Rule (anchor-ratio scaling): for each technology and word width, the NVSim-regenerated macro that exists
    at both nodes (the anchor; the one of largest capacity if several) gives a per-column ratio
    ``X(node, anchor) / X(base, anchor)``; a missing capacity ``c`` gets ``X(base, c) x ratio`` for area,
    latencies, energies, leakage and bandwidths. This keeps NVSim's capacity dependence (H-tree, bank
    organisation) from the base node and its node dependence from the anchor; at 28/40 nm the 2 MiB anchors'
    area ratios (1.61x, 3.29x) match the feature-size ratio squared (1.62x, 3.31x). Technologies without an
    anchor at ``node_nm`` get no rows (the node is refused for them by :func:`menu`).
    """
    out: list[Macro] = []
    keys = sorted({(m.tech, m.word_cells, m.bits_per_cell) for m in table if m.node_nm == node_nm})
    for tech, word, bpc in keys:
        here = {m.data_cap_bytes: m for m in table if (m.tech, m.node_nm, m.word_cells, m.bits_per_cell)
                == (tech, node_nm, word, bpc)}
        base = {m.data_cap_bytes: m for m in table if (m.tech, m.node_nm, m.word_cells, m.bits_per_cell)
                == (tech, base_node_nm, word, bpc)}
        anchors = sorted(set(here) & set(base))
        if not anchors:
            continue
        a = anchors[-1]
        ratio = {k: getattr(here[a], k) / getattr(base[a], k) for k in _SCALED}
        for cap in sorted(set(base) - set(here)):
            b = base[cap]
            out.append(dataclasses.replace(
                b, node_nm=node_nm, **{k: getattr(b, k) * ratio[k] for k in _SCALED},
                source=(f"[D] scaled: {tech} {base_node_nm} nm {cap // 1024} KiB row x ({node_nm} nm / "
                        f"{base_node_nm} nm) ratio of the NVSim {a // 1024} KiB macros (hwmodel.macros."
                        "derive_node_rows)")))
    return out


def macro_csv_row(m: Macro) -> dict[str, str]:
    """A macro as a row of the macro CSV (the table's units: KiB, ns, pJ per access, mW, GB/s)."""
    return {"tech": m.tech, "node_nm": str(m.node_nm), "word_cells": str(m.word_cells),
            "bits_per_cell": str(m.bits_per_cell), "nvsim_cap_kib": f"{m.data_cap_bytes / m.bits_per_cell / 1024:g}",
            "data_cap_kib": f"{m.data_cap_bytes / 1024:g}", "area_mm2": f"{m.area_mm2:.6g}",
            "read_ns": f"{m.read_s * 1e9:.6g}", "write_ns": f"{m.write_s * 1e9:.6g}",
            "read_pj_per_access": f"{m.read_pj_per_access:.6g}", "write_pj_per_access": f"{m.write_pj_per_access:.6g}",
            "leak_mw": f"{m.leak_w * 1e3:.6g}", "read_gb_per_s": f"{m.read_bytes_per_s / 1e9:.6g}",
            "write_gb_per_s": f"{m.write_bytes_per_s / 1e9:.6g}", "source": m.source}


def write_macro_csv(rows: list[Macro], path: str | Path, header: tuple[str, ...] = ()) -> str:
    """Write ``rows`` as a macro CSV (format header, ``header`` comment lines, body checksum); returns the digest."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(_COLUMNS), lineterminator="\n")
    w.writeheader()
    for m in rows:
        w.writerow(macro_csv_row(m))
    body = buf.getvalue()
    digest = hashlib.sha256(body.encode()).hexdigest()
    head = [f"# format: {MACRO_FORMAT}", f"# format_version: {MACRO_FORMAT_VERSION}", *(f"# {h}" for h in header),
            f"# body_sha256: {digest}"]
    Path(path).write_text("\n".join(head) + "\n" + body)
    return digest
