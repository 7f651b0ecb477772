"""report build/ (CLI smoke, traces) and the paper comparison flow on tiny models."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hw_support import FIXED8, FP32, tiny_hw

from edgemti.cli import main
from edgemti.hwmodel.trace import read_chrome, read_csv
from edgemti.paper import _ratios, evaluate_build, format_paper, paper_targets, sensitivity


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    from edgemti.compiler import CompileConfig, compile_build

    out = tmp_path_factory.mktemp("hw") / "build"
    cfg = CompileConfig(backbone="albert-tiny", synthetic_tasks=("mrpc", "mnli"), quant="q3.5",
                        sparsity_embedding=0.5, sparsity_transformer=0.5, max_seq_len=32)
    return compile_build(cfg, out)


def test_report_cli_json_and_traces(tiny_build, tmp_path):
    tj, tc = tmp_path / "t.json", tmp_path / "t.csv"
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--seq-len", "16", "--json", "--trace", str(tj),
                                  "--csv", str(tc)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["seq_len"] == 16 and set(d["tasks"]) == {"mrpc", "mnli"}
    assert d["area"]["total_mm2"] > 0 and d["inference_worst_task"]["energy_j"] > 0
    assert d["mti_round_robin"]["switch_rate"] == 1.0
    assert read_chrome(tj.read_text())["otherData"]["build_id"] == d["build_id"]
    rows = read_csv(tc.read_text())
    assert sum(float(x["energy_j"]) for x in rows) == pytest.approx(d["inference_worst_task"]["energy_j"], rel=1e-9)


def test_report_cli_text_and_errors(tiny_build, tmp_path):
    r = CliRunner().invoke(main, ["report", str(tiny_build)])
    assert r.exit_code == 0 and "area" in r.output and "rram_mlc" in r.output and "MTI round robin" in r.output
    r = CliRunner().invoke(main, ["report"])
    assert r.exit_code == 2 and "give a BUILD folder" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('format = "edgemti-arch-spec"\nformat_version = 1\nname = "x"\ndesign = "adapter"\n')
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--spec", str(bad)])
    assert r.exit_code == 1 and "SpecError" in r.output and "clock section is missing" in r.output


def test_paper_flow_on_tiny_models():
    models = {("vanilla", "fp32"): tiny_hw("vanilla", FP32), ("vanilla", "q3.5"): tiny_hw("vanilla", FIXED8),
              ("adapter", "fp32"): tiny_hw("adapter", FP32), ("adapter", "q3.5"): tiny_hw("adapter", FIXED8)}
    results = {f"{d}/{q}": evaluate_build(hw, 16) for (d, q), hw in models.items()}
    red = _ratios(results)
    assert red["q3.5"]["vs_vanilla_fp32"]["area"] == pytest.approx(
        results["vanilla/fp32"]["area_mm2"] / results["adapter/q3.5"]["area_mm2"])
    sens = sensitivity(models, 16)
    dyn = sens["vs_dram"]["dynamic_only"]["fp32"]
    assert dyn == sorted(dyn)  # with leakage and compute left out, dearer DRAM widens the vanilla gap
    doc = {"config": {"backbone": "albert-tiny", "tasks": ["mnli", "mrpc", "qnli"], "seq_len": 16,
                      "sparsity_embedding": 0.5, "sparsity_transformer": 0.5, "dram_pj_per_bit": 8.0},
           "results": results, "reductions": red, "sensitivity": sens,
           "paper": {"reduction": paper_targets()["reduction"]}}
    text = format_paper(doc)
    assert "[146.78]" in text and "[682]" in text and "dynamic_only" in text


@pytest.mark.slow
def test_paper_reproduction_albert_base(tmp_path):
    """The paper's qualitative claim on albert-base: adapter beats vanilla in area, energy and latency at every
    precision, and the area reduction at FP32 is within 2x of the paper's 2.04x (ours ~2.9x, docs/PAPER_REPRO.md)."""
    from edgemti.paper import paper_report

    doc = paper_report(tmp_path / "out", builds_dir=tmp_path / "builds")
    for q, row in doc["reductions"].items():
        same = row["vs_vanilla_same_quant"]
        assert same["area"] > 1 and same["energy_per_inference"] > 1 and same["latency_per_inference"] > 1, q
    area = doc["reductions"]["fp32"]["vs_vanilla_fp32"]["area"]
    assert 2.04 / 2 <= area <= 2.04 * 2
    assert (tmp_path / "out" / "fig6_area_energy_latency.png").stat().st_size > 10_000
