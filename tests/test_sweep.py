"""edgemti sweep: the grid file, point generation, resumable storage, errors recorded, pool, plot, CLI."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.errors import ConfigError, FormatError
from edgemti.studies.sweep import (
    INDEX_FILE,
    PARTS_DIR,
    ResultStore,
    SweepPoint,
    load_sweep,
    pareto_mask,
    plot_sweep,
    run_sweep,
    sweep_from_dict,
    sweep_points,
)

HEAD = 'format = "edgemti-sweep"\nformat_version = 1\n'
TINY = HEAD + textwrap.dedent("""\
    name = "tiny"
    mode = "grid"
    [axes]
    backbone = ["albert-tiny"]
    design = ["adapter", "vanilla"]
    quant = ["q3.5"]
    adapter = ["8", "8,24"]
    num_tasks = [2]
    seq_len = [16]
    sparsity_transformer = [0.5]
    switch_rate = [0.0, 1.0]
    """)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep-cache")  # statistics + graph exports shared by this module's sweeps


def _grid(tmp_path, text=TINY, name="grid.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_grid_file_lists_every_problem(tmp_path):
    bad = HEAD + 'mode = "grid"\ncolour = "red"\n[axes]\nquant = [3]\nwidth = [1]\nseq_len = {min = 8, max = 64}\n'
    with pytest.raises(ConfigError) as e:
        load_sweep(_grid(tmp_path, bad))
    msg = str(e.value)
    for want in ("colour is not a known key", "quant: 3 is not a str", "axes.width is not a known axis",
                 "grid mode takes lists"):
        assert want in msg
    with pytest.raises(ConfigError, match="format_version 2 is not supported"):
        sweep_from_dict({"format": "edgemti-sweep", "format_version": 2})
    with pytest.raises(ConfigError, match="quant"):
        sweep_points(sweep_from_dict({"format": "edgemti-sweep", "format_version": 1, "axes": {"quant": ["q9"]}}))


def test_points_grid_random_lhs():
    cfg = sweep_from_dict(json.loads(json.dumps({"format": "edgemti-sweep", "format_version": 1,
                                                 "axes": {"design": ["adapter", "vanilla"], "adapter": ["8", "16"],
                                                          "quant": ["fp32", "q3.5"]}})))
    pts = sweep_points(cfg)
    assert len(pts) == 2 * 2 + 2  # vanilla has no adapter: its two adapter sizes are one point
    assert len({p.point_id for p in pts}) == len(pts)
    assert all(p.dram_pj_per_bit > 0 and p.node_nm > 0 for p in pts)  # spec axes resolved from the shipped spec
    for mode in ("random", "lhs"):
        d = {"format": "edgemti-sweep", "format_version": 1, "mode": mode, "samples": 40, "seed": 3,
             "axes": {"sparsity_transformer": {"min": 0.0, "max": 0.9}, "seq_len": {"min": 16, "max": 256, "log": True},
                      "quant": ["fp32", "q3.5", "q3.13"]}}
        a, b = sweep_points(sweep_from_dict(d)), sweep_points(sweep_from_dict(d))
        assert [p.point_id for p in a] == [p.point_id for p in b]  # seeded
        assert all(0.0 <= p.sparsity_transformer <= 0.9 and 16 <= p.seq_len <= 256 for p in a)
        assert {p.quant for p in a} == {"fp32", "q3.5", "q3.13"}
    lhs = sweep_points(sweep_from_dict({**d, "mode": "lhs", "samples": 10,
                                        "axes": {"sparsity_transformer": {"min": 0.0, "max": 0.9}}}))
    assert sorted(int(p.sparsity_transformer / 0.09) for p in lhs) == list(range(10))  # one sample per stratum
    with pytest.raises(ConfigError, match="switch_rate"):
        SweepPoint(switch_rate=1.5)
    assert SweepPoint(quant="Q3.5", adapter="64,64").point_id == SweepPoint(quant="q3.5", adapter="64").point_id


def test_run_resume_extend_and_errors(tmp_path, cache):
    grid = _grid(tmp_path)
    out = tmp_path / "res"
    s = run_sweep(grid, out, workers=1, cache_dir=cache)
    assert (s.points, s.evaluated, s.errors) == (6, 6, 0)
    rows = ResultStore(out).rows()
    assert {r["status"] for r in rows} == {"ok"} and all(r["fits"] for r in rows)
    for r in rows:  # the per-inference cost composes inference and switch as documented
        assert r["energy_per_inference_j"] == pytest.approx(r["inference_energy_j"] + r["switch_rate"] * r["switch_energy_j"])
        assert r["area_mm2"] == pytest.approx(r["area_sram_mm2"] + r["area_rram_slc_mm2"] + r["area_rram_mlc_mm2"]
                                              + r["area_pe_mm2"] + r["area_logic_mm2"] + r["area_buffers_mm2"])
    adapter = [r for r in rows if r["design"] == "adapter"]
    assert all(r["need_rram_slc_bytes"] == adapter[0]["need_rram_slc_bytes"] for r in adapter)
    index = json.loads((out / INDEX_FILE).read_text())
    assert index["config"]["axes"]["adapter"] == ["8", "8,24"]  # the resolved config is saved with the results
    # re-run: nothing to do; extended grid: only the new points; a point that raises is recorded, the sweep goes on
    assert run_sweep(grid, out, workers=1, cache_dir=cache).evaluated == 0
    more = TINY.replace('switch_rate = [0.0, 1.0]', 'switch_rate = [0.0, 1.0]\nnode_nm = [22, 3]')
    s = run_sweep(_grid(tmp_path, more, "more.toml"), out, workers=1, cache_dir=cache)
    assert (s.skipped, s.evaluated, s.errors) == (6, 6, 6)
    errors = [r for r in ResultStore(out).rows() if r["status"] == "error"]
    assert len(errors) == 6 and all("3 nm" in r["error"] and r["node_nm"] == 3 for r in errors)
    assert plot_sweep(out)["ok"] == 6


def test_does_not_fit_is_priced_and_flagged(tmp_path, cache):
    spec = tmp_path / "small.toml"
    from edgemti.hwmodel.spec import SPECS_DIR

    spec.write_text((SPECS_DIR / "adapter.toml").read_text().replace("capacity_bytes = 8388608", "capacity_bytes = 1024"))
    text = TINY.replace('design = ["adapter", "vanilla"]', 'design = ["adapter"]') + '[specs]\nadapter = "small.toml"\n'
    s = run_sweep(_grid(tmp_path, text), tmp_path / "res", workers=1, cache_dir=cache)
    rows = ResultStore(tmp_path / "res").rows()
    assert s.errors == 0 and rows and all(not r["fits"] and "sram" in r["overflow"] for r in rows)
    assert all(r["area_sram_mm2"] > 0 and r["inference_energy_j"] > 0 for r in rows)


def test_csv_storage_and_corruption(tmp_path, cache):
    out = tmp_path / "res"
    run_sweep(_grid(tmp_path), out, workers=1, storage="csv", cache_dir=cache, flush_rows=4)
    store = ResultStore(out)
    assert store.storage == "csv" and len(store.parts) == 2
    rows = store.rows()
    assert len(rows) == 6 and isinstance(rows[0]["fits"], bool) and isinstance(rows[0]["macs"], int)
    part = out / PARTS_DIR / store.parts[0]["file"]
    part.write_bytes(part.read_bytes().replace(b"adapter", b"adaptor", 1))
    with pytest.raises(FormatError, match="sha256"):
        ResultStore(out).rows()
    (out / INDEX_FILE).write_text((out / INDEX_FILE).read_text().replace('"csv"', '"tsv"'))
    with pytest.raises(FormatError, match="corrupt"):
        ResultStore(out)


def test_local_pool_matches_inline(tmp_path, cache):
    grid = _grid(tmp_path)
    run_sweep(grid, tmp_path / "a", workers=1, cache_dir=cache)
    s = run_sweep(grid, tmp_path / "b", workers=2, cache_dir=cache)
    assert s.executor == "pool" and s.evaluated == 6
    key = ("inference_energy_j", "latency_per_inference_s", "area_mm2", "need_sram_bytes")
    a = {r["id"]: tuple(r[k] for k in key) for r in ResultStore(tmp_path / "a").rows()}
    b = {r["id"]: tuple(r[k] for k in key) for r in ResultStore(tmp_path / "b").rows()}
    assert a == b


def test_pareto_mask():
    pts = [(1, 5, 5), (2, 2, 2), (3, 3, 3), (1, 5, 5), (5, 1, 9), (0.5, 9, 9)]
    assert pareto_mask(pts) == [True, True, False, False, True, True]
    assert pareto_mask([]) == []


def test_cli_sweep_and_plot(tmp_path, cache):
    grid = _grid(tmp_path)
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["sweep", str(grid), "--out", str(out), "--workers", "1", "--no-progress", "--json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["sweep", "--plot", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] == 6 and (out / "pareto.png").stat().st_size > 10_000
    r = CliRunner().invoke(main, ["sweep", str(tmp_path), "--plot"])
    assert r.exit_code != 0 and "not a sweep results folder" in r.output
