"""The independent audit of hwmodel v2 (issue 16), reproduced on albert-base adapter (mnli, seq 128, 50 % / 50 %
sparsity, analytic builds as in ``report --paper``): the numbers it recomputed from the spec and the loop nest, and
the gaps it found (overlap, unpriced operand storage, the RRAM feed, the unsized partial-sum spill, leakage).

Written against hwmodel v2 first (the audit's numbers as the tool gave them), then moved to v3 with the reason for
every change beside its assertion (docs/HWMODEL.md, "v2 -> v3").
"""

from __future__ import annotations

import math

import pytest

from edgemti.hwmodel import HwModel
from edgemti.hwmodel.graph import activation_working_set_bytes

pytestmark = pytest.mark.slow  # albert-base graph exports (~30 s)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    from edgemti.studies.paper import price_all

    torch.set_num_threads(1)
    m, _ = price_all("albert-base", 128, 0.5, 0.5, quants=("q3.5", "fp32"),
                     cache_dir=tmp_path_factory.mktemp("assets"))
    return {q: m[("default", "adapter", q)] for q in ("q3.5", "fp32")}


def _leak_share(c) -> float:
    return sum(v for k, v in c.energy_by_component_j.items() if k.startswith("leak_")) / c.energy_j


def test_audit_totals_v2(models):
    hw = models["q3.5"]
    c = hw.inference(128, "mnli")
    # the audit: 4162.5 uJ (its own recomputation, "within 0.02 % of the tool"); the tool gives 4183.7 uJ: the
    # audit's total is 0.51 % below ours in leakage alone (every other figure below matches it to its digits)
    assert c.energy_j == pytest.approx(4183.7e-6, rel=2e-4)
    assert c.latency_s == pytest.approx(49.105e-3, rel=1e-4)
    assert hw.swap("mnli").energy_j == pytest.approx(13.66e-6, rel=1e-3)
    assert _leak_share(c) == pytest.approx(0.575, abs=0.004)  # "leakage dominates (57.5 %)"
    sfu = [r for r in c.records if r.kind.startswith("sfu:")]
    assert math.fsum(r.latency_s for r in sfu) == pytest.approx(3.98e-3, rel=1e-3)
    assert math.fsum(r.energy_j for r in sfu) == pytest.approx(212e-6, rel=0.01)


def test_audit_serial_matmuls_v2(models):
    """EdgeBERT's decode_inst0/1 feed the two operands; without the double-buffer reading: +9.4 % / +5.4 %."""
    hw = models["q3.5"]
    base = hw.inference(128, "mnli")
    serial = HwModel(hw.workload, hw.graph, hw.spec.with_overrides({"scratchpad.double_buffered": False}))
    s = serial.inference(128, "mnli")
    assert s.latency_s == pytest.approx(53.7e-3, rel=1e-3)
    assert s.latency_s / base.latency_s - 1 == pytest.approx(0.094, abs=0.001)
    assert s.energy_j / base.energy_j - 1 == pytest.approx(0.054, abs=0.001)


def test_audit_unpriced_storage_v2(models):
    """Per-cycle operand reads (one 16-element vector of each operand per 16 MACs of a lane) are not priced."""
    hw = models["q3.5"]
    c = hw.inference(128, "mnli")
    macs = sum(r.macs for r in c.records if r.kind == "matmul")
    operand_bits = macs / hw.spec.pe_array.vector * 2 * hw.act_bits
    assert operand_bits == pytest.approx(11.5e9, rel=0.01)
    assert operand_bits * hw.levels["sram"].read_j_per_bit > 0  # what it would cost at the SRAM's own figure
    assert not any(k.startswith(("spad", "psum")) for k in c.energy_by_component_j)  # v2: no such levels
    # the weight block the "B once per row tile" reuse needs: 768 x 16 weights
    assert 768 * 16 * 8 // 8 == 12 * 1024 and 768 * 16 * 32 // 8 == 48 * 1024


def test_audit_sizing_v2(models):
    """The FFN-output partial-sum spill (16 bit) is traffic but not live: the audit's need is above provisioning."""
    hw = models["q3.5"]
    from edgemti.hwmodel.tiling import tile_matmul

    (w,) = [w for w in hw.workload.backbone if w.name.endswith("ffn_output.weight")]
    til = tile_matmul(1, 128, 3072, 768, 8, float(w.nnz * 8 + w.numel), 16, hw.spec.scratchpad.capacity_bytes, 16)
    assert til.tile_rows == 128 and til.partial_sum_passes > 0  # all rows, a slice of the 3072: Y spills
    spill_bytes = 128 * 768 * 16 // 8
    assert spill_bytes == 196_608
    req = hw.requirements()["sram"]
    assert req == 793_475 and hw.levels["sram"].capacity_bytes == 851_968
    shapes = hw._shapes(hw.max_seq_len, hw._task(None))
    assert activation_working_set_bytes(hw.fusion, shapes, hw.act_bits) + max(
        t.pack_bytes for t in hw.workload.tasks) == req
    # counting the 16-bit spill of FFN-out in place of its 8-bit output: the audit's 891,779 B
    assert req + spill_bytes - 128 * 768 == 891_779 > hw.levels["sram"].capacity_bytes
    assert hw.spec.pe_array.utilization == 1.0  # fixed, no source of its own


def test_audit_rram_feed_v2(models):
    """FP32: 16 weights per cycle at the MLC level's bandwidth (~16 GB/s)."""
    hw = models["fp32"]
    bw = hw.levels["rram_mlc"].read_bytes_per_s * hw.spec.cycle_s  # bytes per cycle offered
    assert bw == pytest.approx(16.16, rel=0.01)
    density = hw.workload.image_bytes["rram_mlc"] * 8 / 32 / sum(w.numel for w in hw.workload.backbone)
    need = 16 * density * 4  # bytes per cycle of FP32 non-zeros for 16 weights a cycle (masks come from SLC)
    assert need > bw
