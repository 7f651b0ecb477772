"""Evaluating a point: :class:`Evaluator` prices a :class:`SweepPoint` from its analytic workload
(:mod:`edgemti.compiler.analytic`) with :class:`edgemti.hwmodel.HwModel` into one result row.

Per point: area by level, energy and latency per inference and per task switch (under the point's energy
convention), the multi-task per-inference cost ``inference + switch_rate * switch``, the bytes each level must
hold and whether they fit the spec's capacities. A point that does not fit is still priced, on the same chip
provisioned for what it needs (auto-provisioned levels), and flagged ``fits = false``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from edgemti.errors import EdgemtiError
from edgemti.hwmodel.spec import BUFFERS
from edgemti.studies.sweep.assets import SweepAssets
from edgemti.studies.sweep.point import CONVENTIONS, SPEC_AXES, SweepPoint

if TYPE_CHECKING:
    import onnx

    from edgemti.hwmodel.spec import ArchSpec

log = logging.getLogger(__name__)


# capacity of auto-provisioned levels while pricing: the provisioner covers the need, the fit is judged apart
_EVAL_CAPACITY_BYTES = 1 << 40


class Evaluator:
    """Prices points against one :class:`SweepAssets`; caches specs, graphs and hardware models (per process)."""

    def __init__(self, assets: SweepAssets, max_models: int = 8) -> None:
        self.assets = assets
        self.max_models = max_models
        self._base: dict[str, ArchSpec] = {}
        self._specs: dict[tuple, ArchSpec] = {}
        self._graphs: dict[str, onnx.ModelProto] = {}
        self._models: dict[tuple, tuple] = {}  # -> (HwModel, requirements, activation peak, area)
        self._pricing: dict[tuple, tuple] = {}  # spec axes -> (pricing spec, its hash)
        self._builds: dict[tuple, tuple] = {}  # workload axes -> (structure key, AnalyticBuild)

    def spec(self, p: SweepPoint) -> ArchSpec:
        """The point's architecture: its design's spec with the point's spec axes applied."""
        from edgemti.hwmodel.spec import load_spec

        key = (p.design, *(getattr(p, a) for a in SPEC_AXES))
        if key not in self._specs:
            if p.design not in self._base:
                self._base[p.design] = load_spec(self.assets.specs.get(p.design) or None, design=p.design)
            ov: dict[str, Any] = {"technology.node_nm": p.node_nm, "dram.read_pj_per_bit": p.dram_pj_per_bit,
                                  "dram.write_pj_per_bit": p.dram_pj_per_bit, "clock.freq_hz": p.clock_hz,
                                  "dram.bandwidth_bytes_per_s": p.dram_bandwidth_bytes_per_s,
                                  "pe_array.vector": p.pe_vector, "pe_array.macs": p.pe_vector * p.pe_vector}
            ov.update({f"{lv}.objective": p.macro_objective for lv in ("sram", "rram_slc", "rram_mlc")})
            self._specs[key] = self._base[p.design].with_overrides(ov)
        return self._specs[key]

    def _pricing_spec(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` with auto-provisioned capacities lifted, and (when inference never touches DRAM) DRAM fixed,
        so points that differ only in DRAM share one hardware model: DRAM then only prices task switches."""
        ov: dict[str, Any] = {f"{lv}.capacity_bytes": _EVAL_CAPACITY_BYTES for lv in ("sram", "rram_slc", "rram_mlc")
                              if spec.on_chip_memory(lv).provision == "auto"}
        if spec.execution.dram_pack_passes_per_inference == 0:
            base = self._base[spec.design]
            ov.update({f"dram.{k}": getattr(base.dram, k) for k in ("read_pj_per_bit", "write_pj_per_bit",
                                                                    "bandwidth_bytes_per_s")})
        return spec.with_overrides(ov)

    def graph(self, key: str) -> onnx.ModelProto:
        if key not in self._graphs:
            from edgemti.formats.graph import load_graph

            self._graphs[key] = load_graph(self.assets.structures[key].graph)
        return self._graphs[key]

    def row(self, p: SweepPoint) -> dict:
        """The result row of one point; an error becomes a row with ``status = "error"`` (never raised)."""
        t0 = time.perf_counter()
        row: dict[str, Any] = {"id": p.point_id, **asdict(p)}
        try:
            row.update(self._evaluate(p))
            row.update(status="ok", error=None)
        except (EdgemtiError, ArithmeticError, ValueError, KeyError) as exc:
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
        except Exception as exc:  # a sweep goes on past one broken point; the row says what happened
            log.exception("point %s failed", p.point_id)
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
        row["eval_s"] = time.perf_counter() - t0
        return row

    def _evaluate(self, p: SweepPoint) -> dict:
        from edgemti.compiler.analytic import analytic_build, structure_key
        from edgemti.hwmodel import HwModel
        from edgemti.hwmodel.cost import ActionCounts, price

        bkey = (p.backbone, p.design, p.adapter, p.num_tasks, p.quant, p.sparsity_embedding, p.sparsity_transformer,
                p.seq_len)
        if bkey not in self._builds:
            cfg = p.compile_config()
            skey = structure_key(cfg)
            if len(self._builds) >= 64:
                self._builds.pop(next(iter(self._builds)))
            self._builds[bkey] = (skey, analytic_build(cfg, self.assets.stats[p.backbone], self.assets.structures[skey]))
        skey, ab = self._builds[bkey]
        spec = self.spec(p)
        skey_spec = (p.design, *(getattr(p, a) for a in SPEC_AXES))
        if skey_spec not in self._pricing:
            pspec = self._pricing_spec(spec)
            self._pricing[skey_spec] = (pspec, pspec.spec_hash())
        pspec, phash = self._pricing[skey_spec]
        mkey = (skey, p.quant, p.sparsity_embedding, p.sparsity_transformer, p.seq_len, phash)
        if mkey not in self._models:
            hw = HwModel(ab.workload, self.graph(skey), pspec)
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))
            self._models[mkey] = (hw, hw.requirements(), int(hw.activation_peak_bytes()), hw.area())
        hw, req, act_peak, area = self._models[mkey]
        inf = hw.inference(p.seq_len)
        largest = ab.workload.largest_task
        pack = ab.workload.task(largest).pack_bytes
        moved = hw.sram_set_bytes(largest)  # what HwModel.swap moves
        # HwModel.swap priced with the point's DRAM (the shared model may have another; see _pricing_spec)
        swap = price(ActionCounts(read_bits={"dram": 8.0 * moved}, write_bits={"sram": 8.0 * moved}), spec, hw.levels)
        keep = CONVENTIONS[p.energy_convention]
        e_inf = math.fsum(v for k, v in inf.energy_by_component_j.items() if keep(k))
        e_swap = math.fsum(v for k, v in swap.energy_by_component_j.items() if keep(k))
        need = {"rram_mlc": int(req["rram_mlc"]), "rram_slc": int(req["rram_slc"]), "sram": int(req["sram"]),
                "dram": ab.footprint.dram_bytes}
        cap = {lv: int(spec.memory(lv).capacity_bytes) for lv in need}
        over = [f"{lv} {need[lv]} > {cap[lv]} B" for lv in need if need[lv] > cap[lv]]
        return {
            "fits": not over, "overflow": "; ".join(over) or None, "cumulative_sparsity": ab.cumulative_sparsity,
            **{f"need_{lv}_bytes": n for lv, n in need.items()}, "pack_bytes": pack,
            "activation_peak_bytes": act_peak,
            "area_mm2": area.total_mm2, **{f"area_{lv}_mm2": area.levels[lv].area_mm2 for lv in area.levels},
            "area_pe_mm2": area.pe_array_mm2, "area_logic_mm2": area.logic_mm2,
            "area_buffers_mm2": sum(area.levels[lv].area_mm2 for lv in BUFFERS if lv in area.levels),
            "inference_energy_j": e_inf, "inference_latency_s": inf.latency_s, "macs": int(inf.macs),
            "switch_energy_j": e_swap, "switch_latency_s": swap.latency_s,
            "energy_per_inference_j": e_inf + p.switch_rate * e_swap,
            "latency_per_inference_s": inf.latency_s + p.switch_rate * swap.latency_s,
        }
