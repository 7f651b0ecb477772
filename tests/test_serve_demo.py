"""``edgemti demo`` smoke test on a tiny backbone (the MiniLM run is the slow-marked test)."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.hwmodel.spec import load_spec
from edgemti.hwmodel.targets import paper_targets
from edgemti.runtime.log import read_log
from edgemti.studies.demo import demo_stream, run_demo
from edgemti.studies.paper import paper_spec_path


def test_demo_stream_mixes_tasks():
    lines = demo_stream(["sst2", "mrpc", "rte"], 30)
    assert len(lines) == 30 and len({line.split('"task": ')[1][:6] for line in lines}) == 3


def test_demo_cli_tiny(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--backbone", "bert-tiny", "--requests", "9", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "[4/4]" in out and "energy per inference" in out and "adapter vs vanilla" in out
    assert "SYNTHETIC" in out  # bert-tiny has no shipped packs: labelled everywhere
    assert read_log(tmp_path / "adapter-serve.jsonl").summary["ok"] == 9
    assert read_log(tmp_path / "vanilla-serve.jsonl").header["design"] == "vanilla"


def test_demo_names_and_removes_its_temporary_folder_and_explains_the_paper_gap():
    """Through the CLI, after test_demo_cli_tiny (same process: its graph exports are cached)."""
    res = CliRunner().invoke(main, ["demo", "--backbone", "bert-tiny", "--requests", "6"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = res.stdout
    tmp = re.search(r"temporary folder (\S+) \(removed at the end", out).group(1)
    assert f"removed {tmp}" in out and not Path(tmp).exists()
    assert "swap-aware answers out of arrival order" in out
    fig6 = paper_targets().reduction["fp32"]["energy_per_inference"]  # the paper's numbers, where the repo keeps them
    assert re.search(rf"paper \(albert-base, 3-task MTI .*adapter fp32: energy {fig6:g}x", out)
    pj = load_spec(paper_spec_path("vanilla")).dram.read_pj_per_bit
    assert "why ours differ" in out and f"paper profile: DRAM {pj:g} pJ/bit" in out and "report --paper" in out
    assert not re.search(r"\de[+-]\d", out)  # no 2.08e+04 KiB
    assert re.search(r"largest pack \(SRAM need\) +adapter +[\d.]+ KiB +vanilla +[\d.]+ (KiB|MiB)", out)


@pytest.mark.slow
def test_demo_minilm_full(tmp_path):
    lines = []
    r = run_demo(out_dir=tmp_path, emit=lines.append)
    assert r.adapter_summary["ok"] == 36
    assert r.comparison["rows"][0]["ratio"] > 1  # vanilla costs more energy per inference than adapter
