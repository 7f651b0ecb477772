"""report build/ (CLI smoke, traces); the paper comparison is tested in test_hw_paper.py."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.hwmodel.trace import read_chrome, read_csv


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


def test_report_plot_and_layer_rollup(tiny_build, tmp_path):
    png = tmp_path / "energy.png"
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--seq-len", "16", "--json", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layers = d["layers"]
    passes = [x for x in layers if x["pass"].startswith("layer")]
    assert len(passes) == 3  # albert-tiny: its one shared layer, three passes
    assert len({(x["groups"], x["macs"]) for x in passes}) == 1  # the passes are alike
    w = d["inference_worst_task"]
    assert sum(x["energy_j"] for x in layers) == pytest.approx(w["energy_j"], rel=1e-9)
    assert sum(x["macs"] for x in layers) == w["macs"]
    assert d["fusion"]["unknown_ops"] == [] and d["fusion"]["groups"]["attention"] == 3
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--seq-len", "16"])
    assert r.exit_code == 0 and "per layer pass (3 passes)" in r.output and "fusion groups:" in r.output


def test_report_cli_text_and_errors(tiny_build, tmp_path):
    r = CliRunner().invoke(main, ["report", str(tiny_build)])
    assert r.exit_code == 0 and "area" in r.output and "rram_mlc" in r.output and "MTI round robin" in r.output
    r = CliRunner().invoke(main, ["report"])
    assert r.exit_code == 2 and "give a BUILD folder" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('format = "edgemti-arch-spec"\nformat_version = 1\nname = "x"\ndesign = "adapter"\n')
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--spec", str(bad)])
    assert r.exit_code == 1 and "SpecError" in r.output and "clock section is missing" in r.output


def test_report_cli_accelergy_and_ert(tiny_build, tmp_path):
    """--accelergy writes Accelergy's files; --ert re-prices with an ERT (ours re-prices to itself); a bad ERT
    is one FormatError (the format is tested in test_hw_accelergy.py)."""
    out = tmp_path / "acc"
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--seq-len", "16", "--accelergy", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert sorted(p.rsplit("/", 1)[-1] for p in d["export"]["files"]) == [
        "ART.yaml", "ERT.yaml", "action_counts.yaml", "action_counts_switch.yaml"]
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--seq-len", "16", "--ert", str(out / "ERT.yaml")])
    assert r.exit_code == 0 and "re-priced with" in r.output, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("ERT: {version: '0.4', tables: [{name: x.sram, actions: [{name: read, energy: nan}]}]}")
    r = CliRunner().invoke(main, ["report", str(tiny_build), "--ert", str(bad)])
    assert r.exit_code == 1 and "FormatError" in r.output and "energy must be a number >= 0" in r.output
