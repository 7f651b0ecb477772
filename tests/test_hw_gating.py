"""Power gating between requests (spec ``idle`` per level, ``HwModel.idle``) and the serve loop's idle charge."""

from __future__ import annotations

import time

import pytest
from hw_support import tiny_hw

from edgemti.errors import CapacityError
from edgemti.hwmodel import load_spec

ALL_ON = {f"{lv}.idle": "on" for lv in ("sram", "rram_slc", "rram_mlc", "spad_a", "spad_b", "psum")}


def test_idle_leaks_per_level_by_its_gating():
    hw = tiny_hw()
    spec = hw.spec
    assert (spec.sram.idle, spec.rram_mlc.idle, spec.spad_a.idle) == ("retention", "off", "off")
    c = hw.idle(0.5)
    # only SRAM leaks, at its retention fraction; RRAM (non-volatile) and the buffers are off
    want = hw.levels["sram"].leak_w * 0.5 * spec.sram.retention_leak_fraction
    assert c.energy_j == pytest.approx(want, rel=1e-12) and c.latency_s == 0.0
    assert set(k for k, v in c.energy_by_component_j.items() if v) == {"leak_sram"}
    on = tiny_hw(spec=load_spec().with_overrides(ALL_ON)).idle(0.5)
    assert on.energy_j == pytest.approx(sum(p.leak_w for p in hw.levels.values()) * 0.5, rel=1e-12)
    assert c.energy_j < 0.25 * on.energy_j
    assert hw.idle(0.0).energy_j == 0.0
    with pytest.raises(CapacityError, match="idle seconds"):
        hw.idle(-1.0)


def test_sram_off_reloads_the_task_set_on_wake_up():
    hw = tiny_hw(spec=load_spec().with_overrides({"sram.idle": "off"}))
    c = hw.idle(0.1, "mrpc")
    swap = hw.swap("mrpc")
    assert c.energy_j == pytest.approx(swap.energy_j, rel=1e-12)  # nothing leaks idle; the reload is the price
    assert c.latency_s == pytest.approx(swap.latency_s) and c.energy_by_component_j["dram"] > 0
    assert hw.idle(0.1).energy_j == 0.0  # no task to reload (the next request swaps anyway)


def test_bad_idle_mode_is_refused():
    from edgemti.errors import SpecError

    with pytest.raises(SpecError, match="idle must be one of"):
        load_spec().with_overrides({"sram.idle": "sleep"})


def test_serve_loop_charges_idle_time_between_requests(build):
    from edgemti.runtime.engine import Engine
    from edgemti.runtime.summary import SummaryAccumulator

    def serve(spec):
        eng = Engine.open(build, spec=spec)
        acc = SummaryAccumulator()
        out = []
        for i in range(3):
            r = eng.infer("sst2", "a fine film").to_dict()
            acc.add(dict(r, ok=True))
            out.append(r)
            if i < 2:
                time.sleep(0.2)  # longer than the simulated run: the accelerator idles
        return out, acc.result(replay=False)

    plain, _ = serve(load_spec(design="adapter"))
    assert all(r["idle"] is None for r in plain)  # execution.charge_idle is off by default: deterministic logs
    charged = load_spec(design="adapter").with_overrides({"execution.charge_idle": True})
    gated, s_gated = serve(charged)
    on, s_on = serve(charged.with_overrides(ALL_ON))
    for rows in (gated, on):
        assert rows[0]["idle"] is None  # nothing ran before the first request
        for r in rows[1:]:
            idle = r["idle"]
            assert idle["idle_s"] > 0.1
            # the row's energy = its idle + its inference (no swap: sst2 stays resident)
            assert r["energy_j"] == pytest.approx(idle["energy_j"] + r["inference"]["energy_j"], rel=1e-9)
    assert s_gated["idle_energy_j_total"] > 0 and s_gated["idle_s_total"] > 0.2
    # per second of idle time, gating (RRAM off, SRAM in retention) leaks a fraction of the always-on chip
    per_s = [s["idle_energy_j_total"] / s["idle_s_total"] for s in (s_gated, s_on)]
    assert per_s[0] < 0.5 * per_s[1]
