"""The cross-check as a study: price one inference (or a build folder), run zigzag on the same matmuls and spec,
compare (:mod:`edgemti.studies.xcheck.comparison`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from edgemti.errors import ConfigError
from edgemti.hwmodel.zigzag_export import Matmul
from edgemti.studies.xcheck.comparison import CrossCheck, compare
from edgemti.studies.xcheck.matmuls import matmul_nodes, probe_shapes, shape_key
from edgemti.studies.xcheck.zigzag_run import ZzResult, run_zigzag


def cross_check(hw: Any, graph: onnx.ModelProto, weights: dict[str, Any], precision: str, act_bits: int,
                data_inputs: tuple[str, ...], seq_len: int = 128, task: str | None = None,
                workdir: str | Path | None = None, opt: str = "energy", lpf_limit: int = 6,
                progress: Callable[[str], None] | None = None) -> CrossCheck:
    """Price one inference with ``hw``, run zigzag on the same matmuls and spec, compare (see module docstring).

    ``weights``: tensor name -> an object with ``shape``, ``numel``, ``nnz``, ``bits``, ``place`` ("rram" |
    "sram"), the backbone's and ``task``'s pack tensors (``edgemti.hwmodel.workload.WeightInfo``).
    ``workdir`` keeps zigzag's inputs and outputs (default: a temporary folder, removed).
    """
    step = progress or (lambda s: None)
    inf = hw.inference(seq_len, task)
    spec = hw.spec
    levels = dict(hw.area().levels)
    step("probe shapes")
    shapes = probe_shapes(graph, seq_len, data_inputs, {k: tuple(w.shape) for k, w in weights.items()})
    nodes = matmul_nodes(list(inf.records), graph, shapes, weights, act_bits, getattr(hw, "fusion", None))
    if not nodes:
        raise ConfigError("xcheck: the inference has no matmul records")
    unique: dict[tuple, Matmul] = {}
    counts: dict[tuple, int] = {}
    for n in nodes:
        unique.setdefault(shape_key(n.matmul), n.matmul)
        counts[shape_key(n.matmul)] = counts.get(shape_key(n.matmul), 0) + 1
    zz: dict[tuple, ZzResult] = {}
    with tempfile.TemporaryDirectory(prefix="edgemti-xcheck-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for level in ("rram_mlc", "sram"):
            mine = {k: m for k, m in unique.items() if m.weight_level == level}
            if not mine:
                continue
            named = {f"mm{i}_{m.name.replace(' ', '_').replace('(', '').replace(')', '').replace('.', '_')}": k
                     for i, (k, m) in enumerate(mine.items())}
            mms = [dataclasses.replace(mine[k], name=name, count=counts[k],
                                       nodes=tuple(n.record.node for n in nodes if shape_key(n.matmul) == k))
                   for name, k in named.items()]
            step(f"zigzag: {len(mms)} matmul shapes with weights in {level}")
            mine_nodes = [n for n in nodes if n.matmul.weight_level == level]
            density = (sum(n.density * n.matmul.weight_numel for n in mine_nodes)
                       / sum(n.matmul.weight_numel for n in mine_nodes)) if level == "rram_mlc" else 1.0
            res = run_zigzag(root, mms, spec, levels, precision, level, opt=opt, lpf_limit=lpf_limit,
                             weight_density=density)
            for name, k in named.items():
                zz[k] = dataclasses.replace(res[name], weight_density=density)
    rows = compare(nodes, zz, spec, levels)
    mm_e = sum(n.record.energy_j for n in nodes)
    mm_t = sum(n.record.latency_s for n in nodes)
    return CrossCheck(design=spec.design, precision=precision, seq_len=seq_len, task=inf.task, spec=spec.name,
                      rows=tuple(rows), other_energy_j=inf.energy_j - mm_e, other_latency_s=inf.latency_s - mm_t)


def cross_check_build(build: str | Path, seq_len: int = 128, task: str | None = None, spec: Any = None,
                      workdir: str | Path | None = None, opt: str = "energy", lpf_limit: int = 6,
                      progress: Callable[[str], None] | None = None) -> CrossCheck:
    """:func:`cross_check` of a build folder on ``spec`` (default: the shipped spec of the build's design)."""
    from edgemti.formats.build import open_build
    from edgemti.formats.graph import load_graph
    from edgemti.runtime.workload import hw_model

    b = open_build(build, verify=False)
    graph = load_graph(b.graph_bytes())
    hw = hw_model(b.manifest, graph, spec)
    wl = hw.workload
    task = task or wl.largest_task
    return cross_check(hw, graph, wl.weights(task), wl.precision, wl.activation_bits, tuple(wl.data_inputs),
                       seq_len, task, workdir=workdir, opt=opt, lpf_limit=lpf_limit, progress=progress)
