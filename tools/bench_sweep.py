"""Sweep throughput, measured side by side in one run, and the analytic-vs-compiled agreement on albert-base.

    python3 tools/bench_sweep.py --out /tmp/bench_sweep [--old-points 2] [--no-ray] [--big] [--lhs]

1. a structured albert-base grid (adapter and vanilla; formats, sparsities x deployment settings): points/min
   in this process, on the local process pool (all cores) and on a local Ray (``ray.init(num_cpus=cores)``),
   each into a fresh results folder from one shared cache (statistics + graph exports: timed apart, once);
2. ``--lhs``: the all-axes Latin hypercube (edgemti/sweeps/albert_base_lhs.toml) on the pool: every point a
   new workload and architecture, the worst case for the caches;
3. the old path on ``--old-points`` points of the grid: ``compile_build`` (images written) + ``HwModel`` of
   the build, per point; and the agreement of those points' rows with the compiled builds (footprint bytes
   per level exact, energy/latency relative difference);
4. ``--big``: the 10,240-point grid (edgemti/sweeps/albert_base_10k.toml) on the pool, its Pareto plot
   written to docs/img/sweep_pareto_10k.png.

Writes ``OUT/bench_sweep.json`` and prints a table. Timings are wall-clock on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = """format = "edgemti-sweep"
format_version = 1
name = "bench: albert-base adapter/vanilla"
mode = "grid"
[axes]
backbone = ["albert-base"]
design = ["adapter", "vanilla"]
quant = ["fp32", "q3.13", "q3.5"]
sparsity_embedding = [0.5]
sparsity_transformer = [0.3, 0.5, 0.7]
switch_rate = [0.1, 1.0]
dram_pj_per_bit = [4.2, 8.0, 15.0, 40.0]
energy_convention = ["full", "no_compute"]
"""


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _run(name: str, grid, out: Path, cache: Path, **kw) -> dict:
    from edgemti.studies.sweep import run_sweep

    s = run_sweep(grid, _fresh(out), cache_dir=cache, **kw)
    d = s.to_dict()
    print(f"  {name:18s} {d['evaluated']:6d} points in {d['evaluate_s']:7.1f} s = {d['points_per_min']:8.0f} "
          f"points/min ({d['errors']} errors, {d['executor']} x{d['workers']})", flush=True)
    return d


def old_path(points, tmp: Path, cache: Path) -> dict:
    """compile_build + HwModel per point (the path before sweeps), and its agreement with the analytic rows."""
    from edgemti.compiler.compile import compile_build
    from edgemti.compiler.footprint import footprint
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.runtime.workload import hw_model, workload_of
    from edgemti.studies.sweep import Evaluator, prepare_assets

    assets = prepare_assets(points, {}, cache)
    ev = Evaluator(assets)
    per_point, agree = [], []
    for i, p in enumerate(points):
        t0 = time.perf_counter()
        out = compile_build(p.compile_config(), tmp / f"build{i}", force=True)
        b = open_build(out, verify=False)
        m = b.manifest
        hw = hw_model(m, load_graph(b.graph_bytes()), ev.spec(p))
        inf = hw.inference(p.seq_len)
        swap = hw.swap(workload_of(m).largest_task)
        hw.area()
        per_point.append(time.perf_counter() - t0)
        row = ev.row(p)
        fp = footprint(m)
        agree.append({
            "point": f"{p.design}/{p.quant}/st{p.sparsity_transformer}",
            "footprint_exact": (row["need_rram_mlc_bytes"], row["need_rram_slc_bytes"], row["pack_bytes"],
                                row["need_dram_bytes"]) == (fp.mlc_bytes, fp.slc_bytes, fp.sram_bytes, fp.dram_bytes),
            "rel_diff_inference_energy": abs(row["inference_energy_j"] / inf.energy_j - 1),
            "rel_diff_inference_latency": abs(row["inference_latency_s"] / inf.latency_s - 1),
            "rel_diff_switch_energy": abs(row["switch_energy_j"] / swap.energy_j - 1),
            "compile_price_s": per_point[-1],
        })
        print(f"  old path {agree[-1]['point']:22s} {per_point[-1]:6.1f} s; analytic footprint exact: "
              f"{agree[-1]['footprint_exact']}, energy diff {agree[-1]['rel_diff_inference_energy']:.2e}, latency diff "
              f"{agree[-1]['rel_diff_inference_latency']:.2e}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    mean = sum(per_point) / len(per_point)
    return {"points": len(points), "mean_s": mean, "points_per_min": 60.0 / mean, "agreement": agree}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "bench_sweep"))
    ap.add_argument("--old-points", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--lhs", action="store_true")
    ap.add_argument("--big", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from edgemti.hwmodel.tomlfile import tomllib
    from edgemti.studies.sweep import load_sweep, plot_sweep, prepare_assets, sweep_from_dict, sweep_points

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    cores = os.cpu_count() or 1
    grid = sweep_from_dict(tomllib.loads(GRID), origin="bench grid")
    points = sweep_points(grid)
    res: dict = {"cores": cores, "grid_points": len(points)}
    print(f"grid: {len(points)} albert-base points; {cores} cores", flush=True)
    t0 = time.perf_counter()
    prepare_assets(points, {}, cache, step=lambda s: print(f"  prepare: {s}", flush=True))
    res["prepare_s"] = time.perf_counter() - t0
    print(f"  prepare (statistics + graph exports, cached for every run below): {res['prepare_s']:.1f} s", flush=True)
    res["inline"] = _run("this process", grid, out / "inline", cache, workers=1)
    res["pool"] = _run(f"local pool x{cores}", grid, out / "pool", cache, workers=cores)
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.ERROR)
        res["ray_start_s"] = time.perf_counter() - t0
        try:
            res["ray"] = _run(f"Ray local x{cores}", grid, out / "ray", cache, ray_address="local")
        finally:
            ray.shutdown()
    if args.lhs:
        res["lhs_pool"] = _run("LHS, local pool", load_sweep(ROOT / "edgemti/sweeps/albert_base_lhs.toml"),
                               out / "lhs", cache, workers=cores)
    if args.old_points:
        pick = [p for p in points if p.switch_rate == 1.0 and p.dram_pj_per_bit == 8.0 and p.energy_convention == "full"
                and p.sparsity_transformer == 0.5]
        pick = sorted(pick, key=lambda p: (p.design != "adapter", p.quant != "q3.5"))[:args.old_points]
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            res["old_path"] = old_path(pick, Path(tmp), cache)
        print(f"  old path: {res['old_path']['mean_s']:.1f} s per point = {res['old_path']['points_per_min']:.2f} "
              "points/min", flush=True)
    if args.big:
        big = load_sweep(ROOT / "edgemti/sweeps/albert_base_10k.toml")
        res["big_pool"] = _run("10k grid, pool", big, out / "big", cache, workers=cores, progress=False)
        png = ROOT / "docs/img/sweep_pareto_10k.png"
        p = plot_sweep(out / "big", png)
        p.pop("pareto_ids")
        res["big_plot"] = p
        print(f"  plot: {p}", flush=True)
    (out / "bench_sweep.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(f"written {out / 'bench_sweep.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
