"""Trace export (CSV + Chrome trace) round trips and rejects corruption; MTI scenarios count switches."""

from __future__ import annotations

import json

import pytest
from hw_support import tiny_hw

from edgemti.errors import ConfigError, FormatError
from edgemti.hwmodel.scenario import Scenario, per_inference, run_scenario
from edgemti.hwmodel.trace import read_chrome, read_csv, to_chrome, to_csv


@pytest.fixture(scope="module")
def hw():
    return tiny_hw()


def test_csv_round_trip_and_corruption(hw):
    c = hw.inference(16, "mrpc")
    text = to_csv(c, {"build_id": "x"})
    rows = read_csv(text)
    assert len(rows) == len(c.records)
    assert sum(float(r["energy_j"]) for r in rows) == pytest.approx(c.energy_j, rel=1e-12)
    with pytest.raises(FormatError, match="body_sha256 mismatch"):
        read_csv(text[:-20])  # truncated
    assert {r["group_kind"] for r in rows} >= {"matmul", "attention", "adapter", "add_layernorm"}
    assert all(int(r["tiles"]) >= 1 for r in rows if r["kind"] == "matmul")
    with pytest.raises(FormatError, match="format_version"):
        read_csv(text.replace("# format_version: 3", "# format_version: 2"))


def test_chrome_trace_is_loadable_and_checked(hw):
    c = hw.inference(16, "mrpc")
    d = to_chrome(c)
    xs = [e for e in d["traceEvents"] if e["ph"] == "X"]
    assert xs and all(e["dur"] >= 0 and "ts" in e for e in xs)
    ops = [e for e in xs if e["cat"] not in ("group", "tile")]
    assert sum(e["dur"] for e in ops) == pytest.approx(c.latency_s * 1e6, rel=1e-9)
    # fused groups tile the timeline exactly once; each matmul stage is cut into its tiles
    groups = [e for e in xs if e["cat"] == "group"]
    assert len(groups) == len({r.group for r in c.records})
    assert sum(e["dur"] for e in groups) == pytest.approx(c.latency_s * 1e6, rel=1e-9)
    assert {e["args"]["kind"] for e in groups} >= {"attention", "adapter", "matmul", "add_layernorm"}
    for r in c.records:
        if r.kind == "matmul":
            tiles = [e for e in xs if e["cat"] == "tile" and e["args"]["stage"] == r.node]
            assert sum(e["args"]["tiles"] for e in tiles) == r.tiles
            assert sum(e["dur"] for e in tiles) == pytest.approx(r.latency_s * 1e6, rel=1e-9)
    text = json.dumps(d)
    assert read_chrome(text)["otherData"]["seq_len"] == 16
    d["traceEvents"][-1]["dur"] += 1
    with pytest.raises(FormatError, match="events_sha256 mismatch"):
        read_chrome(json.dumps(d))


def test_scenarios_count_switches(hw):
    tasks = ("mnli", "mrpc", "qnli")
    rr = run_scenario(hw, Scenario(tasks, "round_robin", n_requests=12, seq_len=8))
    bl = run_scenario(hw, Scenario(tasks, "blocked", n_requests=12, seq_len=8, block=4))
    assert rr.n_switches == 12 and bl.n_switches == 3
    assert rr.inference_energy_j == pytest.approx(bl.inference_energy_j, rel=1e-12)
    assert rr.swap_energy_j > bl.swap_energy_j
    # round robin over equal-size-ish packs = inference + 1 swap per request
    est = sum(per_inference(hw, 8, 1.0, t).energy_j for t in tasks) / 3
    assert rr.energy_per_inference_j == pytest.approx(est, rel=1e-9)
    rnd = run_scenario(hw, Scenario(tasks, "random", n_requests=50, seq_len=8, mix=(1, 0, 0)))
    assert rnd.n_switches == 1 and rnd.requests_by_task == {"mnli": 50}


def test_bad_scenarios_are_rejected(hw):
    with pytest.raises(ConfigError, match="pattern must be one of"):
        Scenario(("mnli",), "zigzag")
    with pytest.raises(ConfigError, match="not in the build"):
        run_scenario(hw, Scenario(("cola",)))
    with pytest.raises(ConfigError, match="switch_rate"):
        per_inference(hw, 8, 1.5)
