"""edgemti sweep on Ray: a local ``ray.init(num_cpus=2)`` gives the same rows as the in-process run."""

from __future__ import annotations

import pytest

from edgemti.studies.sweep import ResultStore, run_sweep

ray = pytest.importorskip("ray")

GRID = """format = "edgemti-sweep"
format_version = 1
mode = "grid"
[axes]
backbone = ["albert-tiny"]
design = ["adapter"]
quant = ["q3.5", "fp16"]
adapter = ["8"]
num_tasks = [2]
seq_len = [16]
dram_pj_per_bit = [4.0, 15.0]
"""


@pytest.mark.slow  # Ray's local start takes 10-30 s on a busy 2-core box
def test_ray_local_matches_inline(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    cache = tmp_path / "cache"
    run_sweep(grid, tmp_path / "inline", workers=1, cache_dir=cache)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        s = run_sweep(grid, tmp_path / "ray", ray_address="local", cache_dir=cache)
    finally:
        ray.shutdown()
    assert (s.executor, s.evaluated) == ("ray", 4)
    assert s.errors == 0, [r["error"] for r in ResultStore(tmp_path / "ray").rows() if r["status"] != "ok"]
    key = ("inference_energy_j", "switch_energy_j", "area_mm2")
    a = {r["id"]: tuple(r[k] for k in key) for r in ResultStore(tmp_path / "inline").rows()}
    b = {r["id"]: tuple(r[k] for k in key) for r in ResultStore(tmp_path / "ray").rows()}
    assert a == b
