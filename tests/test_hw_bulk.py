"""Bulk pricing (hwmodel/bulk.py): the stage table equals the per-stage path (graph.price_charges) stage by stage,
under every composition rule, and an inference's totals, records and counts close on it."""

from __future__ import annotations

import math

import pytest
from hw_support import tiny_hw

from edgemti.hwmodel import load_spec
from edgemti.hwmodel.bulk import price_stages
from edgemti.hwmodel.cost import Cost
from edgemti.hwmodel.graph import charge_graph, price_charges

VARIANTS = [{}, {"scratchpad.double_buffered": True}, {"execution.overlap": True},
            {"execution.include_compute_energy": False, "execution.include_leakage": False},
            {"execution.price_buffers": False}]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_stage_table_equals_the_per_stage_path(overrides):
    hw = tiny_hw(spec=load_spec().with_overrides(overrides))
    charges = charge_graph(hw.graph, hw._shapes(16, "mnli"), hw.workload.weights("mnli"), hw.spec, hw.precision,
                           hw.act_bits, hw.fusion, act_precision=hw.workload.activation_precision)
    old = price_charges(charges, hw.spec, hw.levels)
    table = price_stages(charges, hw.spec, hw.levels)
    assert table.energy_j.shape == (len(charges), len(table.components))
    for i, c in enumerate(old):
        assert set(c.energy_by_component_j) == set(table.components)
        for j, k in enumerate(table.components):
            assert table.energy_j[i, j] == pytest.approx(c.energy_by_component_j[k], rel=1e-12, abs=1e-30), (i, k)
        assert table.latency_s[i] == pytest.approx(c.latency_s, rel=1e-12)
    total = sum(old, Cost.zero())
    inf = hw.inference(16, "mnli")
    assert inf.energy_j == pytest.approx(total.energy_j, rel=1e-12)
    assert inf.latency_s == pytest.approx(total.latency_s, rel=1e-12)
    assert inf.energy_by_component_j == pytest.approx(total.energy_by_component_j, rel=1e-12)
    # the records and the summed counts are built on first use and close on the totals
    assert math.fsum(r.energy_j for r in inf.records) == pytest.approx(inf.energy_j, rel=1e-12)
    assert inf.macs == sum(r.macs for r in inf.records) == sum(inf.counts.macs.values())
