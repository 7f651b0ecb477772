"""Pricing an inference's stages in bulk: the stage table (one row of action counts per charged stage) times the
technology tables, with numpy, instead of one :class:`~edgemti.hwmodel.cost.Cost` per stage.

The rules are :func:`edgemti.hwmodel.cost.price`'s and :func:`edgemti.hwmodel.graph.price_charges`'s, vectorised
(docs/HWMODEL.md, composition rules): energy = counts x energy per action; a level's time = bits / bandwidth +
access latency when touched, the levels in parallel (max); a stage takes compute + memory, or max(compute, memory)
when it overlaps (after its prologue, which is serial); leakage = leakage power x the stage's latency.
``tests/test_hw_bulk.py`` checks the table against the per-stage path, stage by stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgemti.errors import ConfigError
from edgemti.hwmodel.cost import LEAKING_LEVELS, ActionCounts
from edgemti.hwmodel.macros import LevelProvision
from edgemti.hwmodel.spec import BUFFERS, LEVELS, PRECISIONS, PRICED_LEVELS, SFU_KINDS, ArchSpec

_LV = {lv: i for i, lv in enumerate(PRICED_LEVELS)}
_PR = {p: i for i, p in enumerate(PRECISIONS)}
_SK = {k: i for i, k in enumerate(SFU_KINDS)}


@dataclass(frozen=True)
class StageTable:
    """Per stage (rows) energy by component (columns ``components``) in J, and latency / compute / memory in s."""

    components: tuple[str, ...]
    energy_j: np.ndarray  # [stages, components]
    latency_s: np.ndarray  # [stages]
    compute_s: np.ndarray
    memory_s: np.ndarray

    def total_by_component_j(self) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.components, self.energy_j.sum(axis=0), strict=True)}


def _fill(charges: Sequence, prologue: bool = False) -> tuple[np.ndarray, ...]:
    n = len(charges)
    rd, wr = np.zeros((n, len(PRICED_LEVELS))), np.zeros((n, len(PRICED_LEVELS)))
    macs, gated = np.zeros((n, len(PRECISIONS))), np.zeros((n, len(PRECISIONS)))
    cyc, sfu_el, sfu_mac = np.zeros(n), np.zeros((n, len(SFU_KINDS))), np.full(n, -1, dtype=int)
    dec, enc = np.zeros(n), np.zeros(n)
    for i, ch in enumerate(charges):
        c: ActionCounts | None = ch.prologue if prologue else ch.counts
        if c is None:
            continue
        for lv, v in c.read_bits.items():
            rd[i, _LV[lv]] = v
        for lv, v in c.write_bits.items():
            wr[i, _LV[lv]] = v
        for p, v in c.macs.items():
            macs[i, _PR[p]] = v
        for p, v in c.gated_macs.items():
            gated[i, _PR[p]] = v
        cyc[i] = c.pe_cycles + sum(c.sfu_cycles.values())
        for k, v in c.sfu_elements.items():
            sfu_el[i, _SK[k]] = v
        if c.sfu_precision:
            sfu_mac[i] = _PR[c.sfu_precision]
        dec[i], enc[i] = c.bitmask_decode_vectors, c.bitmask_encode_vectors
    return rd, wr, macs, gated, cyc, sfu_el, sfu_mac, dec, enc


def _memory_s(rd: np.ndarray, wr: np.ndarray, spec: ArchSpec, levels: Mapping[str, LevelProvision]) -> np.ndarray:
    """Per row: max over the levels of their transfer time (the buffers take none of their own)."""
    t = np.zeros(rd.shape[0])
    for lv in LEVELS:
        r, w = rd[:, _LV[lv]], wr[:, _LV[lv]]
        if lv == "dram":
            d = spec.dram
            tl = np.where(r + w > 0, (r + w) / 8 / d.bandwidth_bytes_per_s + d.latency_s, 0.0)
        else:
            if lv not in levels:
                if np.any(r + w > 0):
                    raise ConfigError(f"price: counts touch {lv} but the architecture provisions no {lv}")
                continue
            if not (r.any() or w.any()):
                continue  # untouched (maybe unprovisioned: a zero-capacity level has no bandwidth)
            p = levels[lv]
            tl = (np.where(r > 0, r / 8 / p.read_bytes_per_s + p.read_latency_s, 0.0)
                  + np.where(w > 0, w / 8 / p.write_bytes_per_s + p.write_latency_s, 0.0))
        t = np.maximum(t, tl)
    return t


def price_stages(charges: Sequence, spec: ArchSpec, levels: Mapping[str, LevelProvision]) -> StageTable:
    """The stage table of ``charges`` (:class:`edgemti.hwmodel.graph.OpCharge`) on ``spec`` and ``levels``."""
    ex, pe = spec.execution, spec.pe_array
    rd, wr, macs, gated, cyc, sfu_el, sfu_mac, dec, enc = _fill(charges)
    mac_j = np.array([pe.mac_energy_pj[p] for p in PRECISIONS]) * 1e-12
    cols: dict[str, np.ndarray] = {}
    if ex.include_compute_energy:
        cols["pe_array"] = ((macs - gated) + gated * pe.gated_energy_fraction) @ mac_j
        equiv = np.array([spec.sfu.mac_equiv_per_element[k] for k in SFU_KINDS])
        cols["sfu"] = (sfu_el @ equiv) * np.where(sfu_mac >= 0, mac_j[np.maximum(sfu_mac, 0)], 0.0)
        cols["bitmask"] = (dec * spec.bitmask.decode_pj_per_vector + enc * spec.bitmask.encode_pj_per_vector) * 1e-12
    for lv in PRICED_LEVELS:
        r, w = rd[:, _LV[lv]], wr[:, _LV[lv]]
        if lv == "dram":
            cols[lv] = (r * spec.dram.read_pj_per_bit + w * spec.dram.write_pj_per_bit) * 1e-12
        elif lv in levels:
            cols[lv] = r * levels[lv].read_j_per_bit + w * levels[lv].write_j_per_bit
        elif lv not in BUFFERS:
            cols[lv] = np.zeros(len(charges))
    t_comp = cyc * spec.cycle_s
    t_mem = _memory_s(rd, wr, spec, levels)
    over = np.array([bool(ch.overlap) for ch in charges], dtype=bool)
    has_pro = np.array([ch.overlap and ch.prologue is not None for ch in charges], dtype=bool)
    latency = np.maximum(t_comp, t_mem) if ex.overlap else t_comp + t_mem
    if not ex.overlap and over.any():
        p_rd, p_wr, *_ = _fill(charges, prologue=True)
        t_pro = _memory_s(p_rd, p_wr, spec, levels)
        t_rest = _memory_s(np.maximum(rd - p_rd, 0.0), wr, spec, levels)
        lat_over = np.where(has_pro, t_pro + np.maximum(t_comp, t_rest), np.maximum(t_comp, t_mem))
        latency = np.where(over, lat_over, latency)
    if ex.include_leakage:
        for lv in LEAKING_LEVELS:
            if lv in levels:
                cols[f"leak_{lv}"] = levels[lv].leak_w * latency
    comps = tuple(cols)
    energy = np.stack([cols[c] for c in comps], axis=1) if comps else np.zeros((len(charges), 0))
    return StageTable(comps, energy, latency, t_comp, t_mem)
