"""The comparison: per matmul shape rows of ours vs zigzag adjusted, the tolerance verdict, the Markdown table and
the JSON document (``format: edgemti-zigzag-xcheck``).

A row outside the tolerance after its named adjustments fails the check (:meth:`CrossCheck.failures`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgemti.hwmodel.cost import COMPONENTS
from edgemti.studies.xcheck.adjustments import ADJUSTMENTS, KNOWN_DIFFERENCES, adjust
from edgemti.studies.xcheck.matmuls import MatmulNode, matmul_group, shape_key
from edgemti.studies.xcheck.zigzag_run import ZzResult

XCHECK_FORMAT = "edgemti-zigzag-xcheck"
XCHECK_VERSION = 2  # 2: memory_ratio (MAC, decoder and leakage excluded), buffers, no array_feed
ENERGY_TOL = 0.15  # |ours / zigzag_adjusted - 1| per matmul shape and for the whole inference
LATENCY_TOL = 0.20
# a row also passes when its absolute difference (x its count) is below this fraction of the inference's matmul
# total (the classifier's 2304 MACs: a few pJ of word rounding are a large ratio of nothing)
ABS_FLOOR = 1e-3
MEMORY_TOL = 0.25  # memory energy alone (MAC, decoder and leakage out on both sides): what the counts decide
LEAK = tuple(c for c in COMPONENTS if c.startswith("leak_"))
COMPUTE = ("pe_array", "bitmask")  # our compute components of a matmul stage
# adjustments that are compute or leakage, not memory traffic (out of the memory-energy comparison)
NOT_MEMORY = ("leakage", "mac_gating", "no_compute_energy", "bitmask_decode")


@dataclass(frozen=True)
class Row:
    """One matmul shape of the inference: ``count`` graph nodes; figures per instance (ours: the mean)."""

    name: str
    shape: str
    weight_level: str
    count: int
    macs_ours: int
    macs_zz: int
    energy_ours_j: float
    leakage_ours_j: float  # the part of energy_ours_j that is leakage
    energy_zz_j: float
    latency_ours_s: float
    latency_zz_s: float
    adjust_energy_j: dict[str, float]
    adjust_latency_s: dict[str, float]
    traffic_ours_bits: dict[str, float] = field(default_factory=dict)  # level -> bits read + written
    traffic_zz_bits: dict[str, float] = field(default_factory=dict)  # home level -> bits (RRAM MLC: stored bits)
    loop_order: str = ""
    compute_ours_j: float = 0.0  # the part of energy_ours_j that is MAC and bitmask-decoder energy
    mac_zz_j: float = 0.0  # zigzag's MAC energy

    @property
    def memory_ratio(self) -> float:
        """Memory energy alone: ours without leakage and compute; zigzag's without its MACs, with the traffic
        adjustments only. At Q3.5 MACs are ~95 % of dynamic energy; this is the part the counts decide."""
        ours = self.energy_ours_j - self.leakage_ours_j - self.compute_ours_j
        zz = self.energy_zz_j - self.mac_zz_j + sum(v for k, v in self.adjust_energy_j.items() if k not in NOT_MEMORY)
        return ours / zz if zz else float("inf")

    @property
    def energy_zz_adjusted_j(self) -> float:
        return self.energy_zz_j + sum(self.adjust_energy_j.values())

    @property
    def energy_zz_dynamic_j(self) -> float:
        """zigzag's energy with every adjustment but leakage."""
        return self.energy_zz_j + sum(v for k, v in self.adjust_energy_j.items() if k != "leakage")

    @property
    def dynamic_ratio(self) -> float:
        """Energy without leakage on both sides (leakage follows latency, so this isolates counts x energies)."""
        return (self.energy_ours_j - self.leakage_ours_j) / self.energy_zz_dynamic_j

    @property
    def latency_zz_adjusted_s(self) -> float:
        return self.latency_zz_s + sum(self.adjust_latency_s.values())

    @property
    def energy_ratio(self) -> float:
        return self.energy_ours_j / self.energy_zz_adjusted_j

    @property
    def latency_ratio(self) -> float:
        return self.latency_ours_s / self.latency_zz_adjusted_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(energy_zz_adjusted_j=self.energy_zz_adjusted_j, latency_zz_adjusted_s=self.latency_zz_adjusted_s,
                 memory_ratio=self.memory_ratio,
                 energy_ratio=self.energy_ratio, dynamic_ratio=self.dynamic_ratio, latency_ratio=self.latency_ratio)
        return d


@dataclass(frozen=True)
class CrossCheck:
    """The whole comparison: one row per matmul shape and the inference totals (matmuls x count)."""

    design: str
    precision: str
    seq_len: int
    task: str
    spec: str
    rows: tuple[Row, ...]
    other_energy_j: float  # our non-matmul ops (SFUs, gathers): zigzag has no model of them
    other_latency_s: float
    energy_tol: float = ENERGY_TOL
    latency_tol: float = LATENCY_TOL
    adjustments: dict[str, str] = field(default_factory=lambda: dict(ADJUSTMENTS))

    def total(self, key: str) -> float:
        return sum(getattr(r, key) * r.count for r in self.rows)

    @property
    def total_energy_ratio(self) -> float:
        return self.total("energy_ours_j") / self.total("energy_zz_adjusted_j")

    @property
    def total_dynamic_ratio(self) -> float:
        return (self.total("energy_ours_j") - self.total("leakage_ours_j")) / self.total("energy_zz_dynamic_j")

    @property
    def total_memory_ratio(self) -> float:
        ours = sum((r.energy_ours_j - r.leakage_ours_j - r.compute_ours_j) * r.count for r in self.rows)
        zz = sum((r.energy_ours_j - r.leakage_ours_j - r.compute_ours_j) / r.memory_ratio * r.count
                 for r in self.rows if r.memory_ratio)
        return ours / zz if zz else float("inf")

    @property
    def total_latency_ratio(self) -> float:
        return self.total("latency_ours_s") / self.total("latency_zz_adjusted_s")

    def failures(self) -> list[str]:
        """Rows (and the total) outside the tolerance after their named adjustments; empty = the models agree."""
        out = []
        checks = [(r.name, r.energy_ratio, r.dynamic_ratio, r.memory_ratio, r.latency_ratio, r.macs_ours == r.macs_zz)
                  for r in self.rows]
        checks.append(("whole inference (matmuls)", self.total_energy_ratio, self.total_dynamic_ratio,
                       self.total_memory_ratio, self.total_latency_ratio,
                       self.total("macs_ours") == self.total("macs_zz")))
        floor_e = ABS_FLOOR * self.total("energy_ours_j")
        floor_t = ABS_FLOOR * self.total("latency_ours_s")
        small = {r.name for r in self.rows if r.count * abs(r.energy_ours_j - r.energy_zz_adjusted_j) <= floor_e
                 and r.count * abs(r.energy_ours_j - r.leakage_ours_j - r.energy_zz_dynamic_j) <= floor_e}
        quick = {r.name for r in self.rows if r.count * abs(r.latency_ours_s - r.latency_zz_adjusted_s) <= floor_t}
        for name, e, dyn, mem, t, macs_ok in checks:
            if not macs_ok:
                out.append(f"{name}: MACs differ")
            if name in small:
                pass
            elif abs(e - 1) > self.energy_tol:
                out.append(f"{name}: energy ours/zigzag = {e:.3f}, outside 1 +- {self.energy_tol}")
            elif abs(dyn - 1) > self.energy_tol:
                out.append(f"{name}: dynamic energy ours/zigzag = {dyn:.3f}, outside 1 +- {self.energy_tol}")
            if name not in small and abs(mem - 1) > MEMORY_TOL:
                out.append(f"{name}: memory energy (MACs, decoder, leakage out) ours/zigzag = {mem:.3f}, outside "
                           f"1 +- {MEMORY_TOL}")
            if name in quick:
                continue
            if abs(t - 1) > self.latency_tol:
                out.append(f"{name}: latency ours/zigzag = {t:.3f}, outside 1 +- {self.latency_tol}")
        return out

    def to_dict(self) -> dict:
        return {"format": XCHECK_FORMAT, "format_version": XCHECK_VERSION, "design": self.design,
                "precision": self.precision, "seq_len": self.seq_len, "task": self.task, "spec": self.spec,
                "energy_tol": self.energy_tol, "latency_tol": self.latency_tol, "abs_floor": ABS_FLOOR,
                "adjustments": self.adjustments, "known_differences": dict(KNOWN_DIFFERENCES),
                "rows": [r.to_dict() for r in self.rows],
                "total": {k: self.total(k) for k in ("macs_ours", "macs_zz", "energy_ours_j", "leakage_ours_j",
                                                      "energy_zz_j", "energy_zz_dynamic_j",
                                                      "energy_zz_adjusted_j", "latency_ours_s", "latency_zz_s",
                                                      "latency_zz_adjusted_s")}
                | {"energy_ratio": self.total_energy_ratio, "dynamic_ratio": self.total_dynamic_ratio,
                   "memory_ratio": self.total_memory_ratio, "memory_tol": MEMORY_TOL,
                   "latency_ratio": self.total_latency_ratio},
                "other_ops": {"energy_j": self.other_energy_j, "latency_s": self.other_latency_s},
                "failures": self.failures()}


def compare(nodes: list[MatmulNode], zz: dict[tuple, ZzResult], spec: Any, levels: dict) -> list[Row]:
    rows = []
    for key, group in matmul_group(nodes).items():
        m = group[0].matmul
        z = zz[shape_key(m)]
        adj_e: dict[str, float] = {}
        adj_t: dict[str, float] = {}
        for n in group:
            e, t = adjust(n, z, spec, levels)
            for name, v in e.items():
                adj_e[name] = adj_e.get(name, 0.0) + v / len(group)
            for name, v in t.items():
                adj_t[name] = adj_t.get(name, 0.0) + v / len(group)
        k = len(group)
        rows.append(Row(
            name=m.name, shape=key.split(" ")[-1], weight_level=("activation" if m.weight_is_activation
                                                                 else m.weight_level),
            count=k, macs_ours=round(sum(n.record.macs for n in group) / k), macs_zz=z.macs,
            energy_ours_j=sum(n.record.energy_j for n in group) / k,
            leakage_ours_j=sum(n.record.energy_by_component_j.get(c, 0.0) for n in group for c in LEAK) / k,
            compute_ours_j=sum(n.record.energy_by_component_j.get(c, 0.0) for n in group for c in COMPUTE) / k,
            mac_zz_j=z.mac_energy_j,
            energy_zz_j=z.energy_j,
            latency_ours_s=sum(n.record.latency_s for n in group) / k, latency_zz_s=z.latency_s,
            adjust_energy_j=adj_e, adjust_latency_s=adj_t,
            traffic_ours_bits={lv: 8 * sum(n.record.bytes_by_level.get(lv, 0.0) for n in group) / k
                               for lv in ("sram", "rram_slc", "rram_mlc", "dram")},
            traffic_zz_bits={lv: (z.bits_read.get(lv, 0.0) + z.bits_written.get(lv, 0.0))
                             * (sum(n.density for n in group) / k if lv == "rram_mlc" else 1.0)
                             for lv in sorted(set(z.bits_read) | set(z.bits_written))},
            loop_order=z.loop_order))
    return rows


def format_table(cc: CrossCheck) -> str:
    """The agreement table as Markdown (docs/HWMODEL.md): per matmul shape (per instance), then the inference's
    matmuls (x n), then the adjustments of each row."""
    lines = [f"zigzag cross-check: {cc.design} {cc.precision}, seq {cc.seq_len}, task {cc.task}, spec {cc.spec}; "
             f"tolerance: energy +-{cc.energy_tol:.0%}, latency +-{cc.latency_tol:.0%} (ratio = ours / zigzag "
             f"adjusted; dyn = without leakage; mem = memory energy alone, MACs/decoder/leakage out, "
             f"+-{MEMORY_TOL:.0%})", "",
             "| matmul | B x D x C x K | W in | n | MACs equal | E ours uJ | E zz uJ | E zz adj uJ | E ratio | "
             "dyn ratio | mem ratio | t ours us | t zz us | t zz adj us | t ratio |",
             "|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in cc.rows:
        lines.append(f"| {r.name} | {r.shape} | {r.weight_level} | {r.count} | "
                     f"{'yes' if r.macs_ours == r.macs_zz else 'NO'} ({r.macs_ours / 1e6:.2f} M) | "
                     f"{r.energy_ours_j * 1e6:.3f} | {r.energy_zz_j * 1e6:.3f} | {r.energy_zz_adjusted_j * 1e6:.3f} | "
                     f"{r.energy_ratio:.3f} | {r.dynamic_ratio:.3f} | {r.memory_ratio:.3f} | {r.latency_ours_s * 1e6:.2f} | "
                     f"{r.latency_zz_s * 1e6:.2f} | {r.latency_zz_adjusted_s * 1e6:.2f} | {r.latency_ratio:.3f} |")
    t = cc.total
    lines.append(f"| **whole inference, matmuls** | | | {sum(r.count for r in cc.rows)} | "
                 f"{'yes' if t('macs_ours') == t('macs_zz') else 'NO'} ({t('macs_ours') / 1e9:.3f} G) | "
                 f"{t('energy_ours_j') * 1e6:.1f} | {t('energy_zz_j') * 1e6:.1f} | {t('energy_zz_adjusted_j') * 1e6:.1f} | "
                 f"{cc.total_energy_ratio:.3f} | {cc.total_dynamic_ratio:.3f} | {cc.total_memory_ratio:.3f} | "
                 f"{t('latency_ours_s') * 1e6:.1f} | "
                 f"{t('latency_zz_s') * 1e6:.1f} | {t('latency_zz_adjusted_s') * 1e6:.1f} | {cc.total_latency_ratio:.3f} |")
    lines += ["", "Traffic per instance, kbit read + written at the home levels (MLC: stored non-zero bits, zigzag's "
              "dense stream x density; SLC: our mask bits, no zigzag equivalent):", "",
              "| matmul | SRAM ours | SRAM zz | MLC ours | MLC zz | SLC ours | zigzag loop order (innermost first) |",
              "|---|--:|--:|--:|--:|--:|---|"]
    for r in cc.rows:
        o, z = r.traffic_ours_bits, r.traffic_zz_bits
        lines.append(f"| {r.name} | {o.get('sram', 0) / 1e3:.0f} | {z.get('sram', 0) / 1e3:.0f} | "
                     f"{o.get('rram_mlc', 0) / 1e3:.0f} | {z.get('rram_mlc', 0) / 1e3:.0f} | "
                     f"{o.get('rram_slc', 0) / 1e3:.0f} | {r.loop_order} |")
    lines += ["", f"Non-matmul ops (ours only; zigzag models no SFU op): {cc.other_energy_j * 1e6:.1f} uJ, "
              f"{cc.other_latency_s * 1e6:.1f} us of the inference.", "", "Adjustments added to zigzag, per instance:"]
    for r in cc.rows:
        adj = [f"{k} {v * 1e6:+.4g} uJ" for k, v in r.adjust_energy_j.items() if v]
        adj += [f"{k} {v * 1e6:+.4g} us" for k, v in r.adjust_latency_s.items() if v]
        lines.append(f"- {r.name} ({r.shape}): " + ", ".join(adj))
    fails = cc.failures()
    lines += ["", "Agreement: every row and the total within tolerance after the named adjustments." if not fails
              else "DISAGREEMENT: " + "; ".join(fails)]
    return "\n".join(lines)


def write_json(cc: CrossCheck, path: str | Path) -> Path:
    """The comparison as JSON (``format: edgemti-zigzag-xcheck``, version 1, ``sha256`` of the payload)."""
    import hashlib
    import json

    payload = cc.to_dict()
    body = json.dumps(payload, sort_keys=True)
    doc = {**payload, "sha256": hashlib.sha256(body.encode()).hexdigest()}
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path
