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


def test_audit_totals(models):
    hw = models["q3.5"]
    c = hw.inference(128, "mnli")
    # v2 (the audit): 4183.7 uJ / 49.105 ms (the audit's own recomputation: 4162.5 uJ, 0.51 % lower, in leakage).
    # v3: 5253.8 uJ / 53.166 ms. Latency +8.3 %: EdgeBERT fetches then computes per tile (was: overlapped as a
    # double buffer); the partial-sum spill no longer waits on SRAM's port (53.70 ms serial in v2). Energy +25.6 %:
    # the operand buffers' accesses (+147.7 uJ: spad_a 34.1, spad_b 106.5, psum 7.2; SRAM -7.7 uJ, the spill left
    # it) and leakage (+730 uJ of the buffers, +200 uJ of the old levels over the longer latency)
    assert c.energy_j == pytest.approx(5253.8e-6, rel=2e-4)
    assert c.latency_s == pytest.approx(53.166e-3, rel=1e-4)
    e = c.energy_by_component_j
    assert (e["spad_a"], e["spad_b"], e["psum"]) == pytest.approx((34.09e-6, 106.45e-6, 7.19e-6), rel=1e-3)
    # switch: 13.66 -> 13.81 uJ (the buffers leak during the swap too: no power gating in the default spec)
    assert hw.swap("mnli").energy_j == pytest.approx(13.81e-6, rel=1e-3)
    assert _leak_share(c) == pytest.approx(0.637, abs=0.002)  # v2 57.7 %: now 63.7 %, the buffers leak
    sfu = [r for r in c.records if r.kind.startswith("sfu:")]
    assert math.fsum(r.latency_s for r in sfu) == pytest.approx(3.98e-3, rel=1e-3)  # unchanged (serial in both)
    assert math.fsum(r.energy_j for r in sfu) == pytest.approx(268.4e-6, rel=0.01)  # 212 -> 268: more leakage


def test_audit_serial_is_the_default_and_double_buffering_costs_the_copies(models):
    """EdgeBERT's decode_inst0/1 feed the two operands: fetch-then-compute is the default (v2's serial figure,
    53.7 ms, was this model with the spill on SRAM's port); double buffering is an option with 2x buffer leakage."""
    hw = models["q3.5"]
    base = hw.inference(128, "mnli")
    assert not hw.spec.scratchpad.double_buffered
    dbl = HwModel(hw.workload, hw.graph, hw.spec.with_overrides({"scratchpad.double_buffered": True}))
    d = dbl.inference(128, "mnli")
    assert d.latency_s == pytest.approx(49.105e-3, rel=1e-4)  # v2's figure: the overlap came back, nothing else
    assert d.latency_s < base.latency_s and d.energy_j > base.energy_j  # faster, but two more 64 KB macros leak
    assert dbl.levels["spad_a"].leak_w == pytest.approx(2 * hw.levels["spad_a"].leak_w)
    assert dbl.area().total_mm2 - hw.area().total_mm2 == pytest.approx(
        hw.levels["spad_a"].area_mm2 + hw.levels["spad_b"].area_mm2)


def test_audit_storage_is_priced(models):
    """The per-cycle operand reads (one 16-element vector of each operand per block cycle) are priced: 11.5 Gbit."""
    hw = models["q3.5"]
    c = hw.inference(128, "mnli")
    macs = sum(r.macs for r in c.records if r.kind == "matmul")
    operand_bits = macs / hw.spec.pe_array.vector * 2 * hw.act_bits
    assert operand_bits == pytest.approx(11.5e9, rel=0.01)
    reads = c.counts.read_bits["spad_a"] + c.counts.read_bits["spad_b"]
    assert reads == pytest.approx(operand_bits, rel=0.002)  # padding of 1-token rows to 16 lanes: + 0.08 %
    # the weight block: 768 x 16 weights, 12 KB at 8 bit (48 KB at FP32), provisioned in operand B's buffer
    assert hw.buffer_requirements()["spad_b"] == 768 * 16
    assert models["fp32"].buffer_requirements()["spad_b"] == 768 * 16 * 4


def test_audit_sizing(models):
    """The FFN-output spill is live in the partial-sum buffer, provisioned from the tiler (196,608 B)."""
    hw = models["q3.5"]
    assert hw.requirements()["sram"] == 793_475 and hw.levels["sram"].capacity_bytes == 851_968  # spill not in SRAM
    assert hw.buffer_requirements()["psum"] == 128 * 768 * 16 // 8 == 196_608
    assert hw.levels["psum"].capacity_bytes >= 196_608
    assert hw.spec.pe_array.utilization == 1.0 and "paper" in hw.spec.pe_array.utilization_source


def test_audit_rram_feed_stalls_fp32(models):
    """FP32: the weight stream from RRAM MLC (~16 GB/s) does not hide under compute: the latency says so."""
    hw = models["fp32"]
    c = hw.inference(128, "mnli")
    mm = [r for r in c.records if r.kind == "matmul"]
    compute_s = sum(r.cycles for r in mm) * hw.spec.cycle_s
    assert compute_s == pytest.approx(44.92e-3, rel=1e-3)
    assert sum(r.latency_s for r in mm) == pytest.approx(90.17e-3, rel=1e-3)  # v2: 50.4 ms (streams "hidden")
    dbl = HwModel(hw.workload, hw.graph, hw.spec.with_overrides({"scratchpad.double_buffered": True}))
    # even overlapped, FP32 is feed-bound: the MLC stream exceeds the compute of the matmuls it feeds
    assert dbl.inference(128, "mnli").latency_s > compute_s * 1.3
