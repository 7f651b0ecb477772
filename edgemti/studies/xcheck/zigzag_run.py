"""One zigzag run and its results: the exported accelerator/mapping/workload through zigzag's stages, read back
as a :class:`ZzResult` per matmul shape (SI units, traffic per home level in bits).

zigzag (the optional ``[xcheck]`` extra) is imported here only, lazily, inside :func:`run_zigzag`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError
from edgemti.hwmodel.zigzag_export import Matmul, write_accelerator, write_mapping, write_workload


@dataclass(frozen=True)
class ZzResult:
    """zigzag's figures for one matmul shape (one instance), SI units, with its traffic per home level in bits."""

    macs: int
    energy_j: float
    mac_energy_j: float
    latency_s: float
    ideal_cycles: float
    home_energy_j: dict[str, float]  # operand ("I", "W", "O") -> its energy at its home level (SRAM / RRAM)
    bits_read: dict[str, float]  # home level -> bits read / written there
    bits_written: dict[str, float]
    onload_s: float = 0.0  # exposed loading before compute, all operands
    offload_s: float = 0.0  # exposed draining of the outputs after compute
    onload_by_operand_s: dict[str, float] = field(default_factory=dict)
    weight_density: float = 1.0  # the density the weight level was exported at (zigzag_export.accelerator)
    loop_order: str = ""


def run_zigzag(folder: Path, matmuls: list[Matmul], spec: Any, levels: dict, precision: str, weight_level: str,
               opt: str = "energy", lpf_limit: int = 6, weight_density: float = 1.0) -> dict[str, ZzResult]:
    """Write the accelerator/mapping/workload into ``folder``, run zigzag, return one result per matmul name."""
    try:
        from zigzag.hardware.architecture.memory_port import DataDirection
        from zigzag.mapping.temporal_mapping import TemporalMappingType
        from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
        from zigzag.stages.main import MainStage
        from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
        from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
        from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
        from zigzag.stages.parser.onnx_model_parser import ONNXModelParserStage
        from zigzag.stages.results.reduce_stages import (
            MinimalEDPStage,
            MinimalEnergyStage,
            MinimalLatencyStage,
        )
        from zigzag.stages.workload_iterator import WorkloadStage
    except ImportError as exc:
        raise ConfigError(f"xcheck needs zigzag (pip install 'edgemti[xcheck]'): {exc}") from None
    reduce = {"energy": MinimalEnergyStage, "latency": MinimalLatencyStage, "EDP": MinimalEDPStage}[opt]
    act_bits = matmuls[0].act_bits
    wbits = max(m.weight_bits for m in matmuls)
    acc = write_accelerator(folder / f"accelerator_{weight_level}.yaml", spec, levels, precision, act_bits, wbits,
                            weight_level, weight_density)
    mp = write_mapping(folder / "mapping.yaml", spec)
    wl = write_workload(folder / f"workload_{weight_level}.onnx", matmuls)
    stages: list[Callable] = [ONNXModelParserStage, AcceleratorParserStage, WorkloadStage, reduce,
                              SpatialMappingGeneratorStage, reduce, TemporalMappingGeneratorStage, CostModelStage]
    main = MainStage(stages, accelerator=str(acc), workload=str(wl), mapping=str(mp), dump_folder=str(folder),
                     loma_lpf_limit=lpf_limit, loma_show_progress_bar=False, nb_mappings_generated=3,
                     enable_mix_spatial_mapping_generation=False, access_same_data_considered_as_no_access=True,
                     temporal_mapping_type=TemporalMappingType("uneven"))
    cycle_s = 1.0 / spec.clock.freq_hz
    out: dict[str, ZzResult] = {}
    for cme, _ in main.run():
        read: dict[str, float] = {}
        written: dict[str, float] = {}
        home: dict[str, float] = {}
        for layer_op, accesses in cme.memory_word_access.items():
            mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
            mem_levels = cme.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op)
            top = mem_levels[len(accesses) - 1]
            acc4 = accesses[-1]
            for dd, sink in ((DataDirection.RD_OUT_TO_LOW, read), (DataDirection.RD_OUT_TO_HIGH, read),
                             (DataDirection.WR_IN_BY_HIGH, written), (DataDirection.WR_IN_BY_LOW, written)):
                n = acc4.get(dd)
                if n:
                    sink[top.name] = sink.get(top.name, 0.0) + n * (top.get_max_bandwidth(mem_op, dd) or 0)
            home[layer_op.name] = cme.mem_energy_breakdown[layer_op][len(accesses) - 1] * 1e-12
        out[cme.layer.name] = ZzResult(
            macs=int(cme.layer.total_mac_count), energy_j=cme.energy_total * 1e-12,
            mac_energy_j=cme.mac_energy * 1e-12, latency_s=cme.latency_total2 * cycle_s,
            ideal_cycles=float(cme.ideal_temporal_cycle), home_energy_j=home, bits_read=read,
            bits_written=written, onload_s=float(cme.data_onloading_cycle) * cycle_s,
            offload_s=float(cme.data_offloading_cycle) * cycle_s,
            onload_by_operand_s={op.name: float(sum(v)) * cycle_s
                                 for op, v in cme.data_loading_cc_pair_combined_per_op.items()},
            loop_order=str(cme.temporal_mapping))
    return out
