"""``edgemti demo`` smoke test on a tiny backbone (the MiniLM run is the slow-marked test)."""

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.runtime.log import read_log
from edgemti.studies.demo import demo_stream, run_demo


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


@pytest.mark.slow
def test_demo_minilm_full(tmp_path):
    lines = []
    r = run_demo(out_dir=tmp_path, emit=lines.append)
    assert r.adapter_summary["ok"] == 36
    assert r.comparison["rows"][0]["ratio"] > 1  # vanilla costs more energy per inference than adapter
