"""Analytic builds (compiler/analytic.py) against real compiles: footprints byte for byte, workloads field by field,
energy/latency within 1 %; and the non-zero count rule against prune + quantize on adversarial tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgemti.compiler.analytic import TensorStat
from edgemti.compiler.compile import compile_build
from edgemti.compiler.footprint import footprint
from edgemti.compiler.prune import magnitude_prune
from edgemti.formats.build import open_build
from edgemti.formats.graph import load_graph
from edgemti.formats.quant import parse_format, quantize
from edgemti.runtime.workload import hw_model, workload_of
from edgemti.studies.sweep import Evaluator, SweepPoint, prepare_assets

FORMATS = ("fp32", "fp16", "q3.13", "q3.5", "q1.3", "q5.11")


@pytest.mark.parametrize("seed", range(6))
def test_nnz_rule_matches_prune_then_quantize(seed):
    """nnz = min(numel - k, non-zero codes) for any sparsity, including ties and values that quantize to 0."""
    g = np.random.default_rng(seed)
    x = (g.standard_normal((13, 17)) * 10.0 ** g.uniform(-4, 0)).astype(np.float32)
    x.flat[g.integers(0, x.size, 40)] = np.float32(0.25)  # ties at one magnitude, both signs
    x.flat[g.integers(0, x.size, 20)] = np.float32(-0.25)
    x.flat[g.integers(0, x.size, 10)] = 0.0
    stat = TensorStat("w", x.shape, "transformer", True,
                      {f: int(np.count_nonzero(quantize(x, parse_format(f)))) for f in FORMATS})
    for f in FORMATS:
        fmt = parse_format(f)
        for s in (0.0, 0.1, 0.33, 0.5, 0.77, 0.95, 0.999):
            want = int(np.count_nonzero(quantize(magnitude_prune(x, s), fmt)))
            assert stat.nnz(fmt, s) == want, (f, s)


POINTS = [
    SweepPoint(design="adapter", backbone="albert-tiny", quant="q3.5", sparsity_embedding=0.3,
               sparsity_transformer=0.6, adapter="8,24", num_tasks=3, seq_len=32),
    SweepPoint(design="vanilla", backbone="bert-tiny", quant="fp16", sparsity_embedding=0.5, num_tasks=2,
               seq_len=24),
]


def _compiled(point: SweepPoint, tmp_path):
    out = compile_build(point.compile_config(), tmp_path / "build")
    b = open_build(out, verify=False)
    return b.manifest, load_graph(b.graph_bytes())


@pytest.mark.parametrize("point", POINTS, ids=lambda p: f"{p.backbone}-{p.design}-{p.quant}")
def test_analytic_equals_compiled(point, tmp_path):
    manifest, graph = _compiled(point, tmp_path)
    assets = prepare_assets([point], {})
    ev = Evaluator(assets)
    from edgemti.compiler.analytic import analytic_build, structure_key

    cfg = point.compile_config()
    structure = assets.structures[structure_key(cfg)]
    ab = analytic_build(cfg, assets.stats[point.backbone], structure)
    assert ab.footprint == footprint(manifest)  # every level, byte for byte
    assert {k: e.size_bytes for k, e in manifest.images.items()} == ab.workload.image_bytes
    assert [p.length for p in manifest.packs] == [t.pack_bytes for t in ab.workload.tasks]
    assert ab.workload == workload_of(manifest)  # every tensor's shape, nnz, width and place
    assert structure.graph == manifest_graph_bytes(tmp_path)  # the compiler's own export, byte-identical

    row = ev.row(point)
    assert row["status"] == "ok", row["error"]
    spec = ev.spec(point)
    hw = hw_model(manifest, graph, spec)  # the compiled build's own path
    inf = hw.inference(point.seq_len)
    swap = hw.swap(workload_of(manifest).largest_task)
    for ours, theirs in ((row["inference_energy_j"], inf.energy_j), (row["inference_latency_s"], inf.latency_s),
                         (row["switch_energy_j"], swap.energy_j), (row["switch_latency_s"], swap.latency_s),
                         (row["area_mm2"], hw.area().total_mm2)):
        assert math.isclose(ours, theirs, rel_tol=0.01), (ours, theirs)
    assert row["need_rram_mlc_bytes"] == manifest.images["rram_mlc"].size_bytes
    assert row["need_dram_bytes"] == manifest.images["dram"].size_bytes


def manifest_graph_bytes(tmp_path) -> bytes:
    return open_build(tmp_path / "build", verify=False).graph_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("design,quant", [("adapter", "q3.5"), ("vanilla", "fp32")])
def test_analytic_equals_compiled_albert_base(design, quant, tmp_path):
    point = SweepPoint(design=design, backbone="albert-base", quant=quant, sparsity_embedding=0.5,
                       sparsity_transformer=0.5)
    manifest, graph = _compiled(point, tmp_path)
    assets = prepare_assets([point], {})
    from edgemti.compiler.analytic import analytic_build, structure_key

    cfg = point.compile_config()
    ab = analytic_build(cfg, assets.stats[point.backbone], assets.structures[structure_key(cfg)])
    assert ab.footprint == footprint(manifest)
    assert ab.workload == workload_of(manifest)
    row = Evaluator(assets).row(point)
    hw = hw_model(manifest, graph, Evaluator(assets).spec(point))
    inf = hw.inference(point.seq_len)
    assert math.isclose(row["inference_energy_j"], inf.energy_j, rel_tol=0.01)
    assert math.isclose(row["inference_latency_s"], inf.latency_s, rel_tol=0.01)
