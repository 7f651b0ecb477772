"""The fault sweep end to end on a tiny build with real GLUE dev data (synthetic packs: numbers meaningless)."""

import json

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.studies.faults import FaultSweepConfig, sweep_faults
from edgemti.tasks.backbones import default_data_dir

GLUE = default_data_dir() / "glue"
pytestmark = pytest.mark.skipif(not (GLUE / "SST-2" / "dev.tsv").is_file(), reason="needs shared/data/glue")


def test_sweep_reports_both_placements_and_plot(build, tmp_path):
    cfg = FaultSweepConfig(rates=(0.0, 0.05), tasks=("sst2", "stsb"), max_examples=24)
    r = sweep_faults(build, config=cfg, plot_path=tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert set(r.baselines) == {"sst2", "stsb"} and r.metrics == {"sst2": "accuracy", "stsb": "pearson"}
    assert len(r.points) == 2 * 2 * 2
    # at rate 0 both placements reproduce the fault-free build exactly
    for t in ("sst2", "stsb"):
        assert r.mean_score(t, 0.0, "slc") == pytest.approx(r.baselines[t])
        assert r.mean_score(t, 0.0, "mlc") == pytest.approx(r.baselines[t])
    assert any("SYNTHETIC" in w for w in r.warnings)


def test_faults_cli(build, tmp_path):
    res = CliRunner().invoke(main, ["faults", str(build), "--rates", "1e-3", "--task", "sst2", "--max-examples", "8",
                                    "--plot", str(tmp_path / "p.png"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["points"] and out["plot"].endswith("p.png")
    bad = CliRunner().invoke(main, ["faults", str(build), "--rates", "x"])
    assert bad.exit_code != 0 and "comma-separated" in bad.output
