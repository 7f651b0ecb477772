"""Benchmark: cost of pricing a request on the hardware model, the symbolic-shape path beside the old probe path.

Usage: python tools/hw_bench.py BUILD [--lengths 16,37,64,100,128] [--repeat 10000]

Measured in one run, on one ``HwModel`` of BUILD:

* construction (``hw_model``: Workload, shape preparation, fusion, provisioning);
* first pricing of each new (task, sequence length): its shapes (``ShapeInference.shapes``) and its total;
* the same (task, length) priced the old way: an onnxruntime shape probe (tests/hw_support.py ``ort_shapes``,
  the probe the model used before) then the same charging and pricing; the two costs must be equal;
* a cached request (``inference`` + ``swap``), per call;
* hwmodel v3's bulk pricing (``hwmodel/bulk.py``: the stage table priced with numpy, records built on first use)
  beside the v2 per-stage path (one ``Cost`` per stage, summed with ``Cost.__add__``, the records built at once,
  ``old_stage_pricing`` below) on the same charges; the totals must be equal.

Targets (issues 8 and 16): first pricing of a new (task, length) <= 10 ms for albert-base; a cached one ~2 us.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from edgemti.formats.build import open_build
from edgemti.formats.graph import load_graph
from edgemti.runtime.workload import hw_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hw_support import ort_shapes  # noqa: E402  (the old path: kept in the tests as their oracle)


def old_stage_pricing(hw, seq: int, task: str):
    """The v2 path after the shapes: charge, one Cost per stage (memoised on equal counts), records, totals."""
    from edgemti.hwmodel.cost import ActionCounts, Cost
    from edgemti.hwmodel.graph import charge_graph, price_charges
    from edgemti.hwmodel.model import OpRecord
    from edgemti.hwmodel.spec import PRICED_LEVELS

    charges = charge_graph(hw.graph, hw._shapes(seq, task), hw.workload.weights(task), hw.spec, hw.precision,
                           hw.act_bits, hw.fusion, act_precision=hw.workload.activation_precision)
    total, counts, t, records = Cost.zero(), ActionCounts(), 0.0, []
    for i, (ch, c) in enumerate(zip(charges, price_charges(charges, hw.spec, hw.levels), strict=True)):
        e = c.energy_by_component_j
        nbytes = {lv: (ch.counts.read_bits.get(lv, 0) + ch.counts.write_bits.get(lv, 0)) / 8 for lv in PRICED_LEVELS}
        records.append(OpRecord(i, ch.node, ch.op_type, ch.kind, ch.macs, ch.counts.pe_cycles, nbytes, dict(e),
                                c.energy_j, 0.0, c.latency_s, t))
        t += c.latency_s
        total, counts = total + c, counts + ch.counts
    return total


def _ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1e3:.2f} ms, max {max(xs) * 1e3:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--lengths", default="16,37,64,100,128")
    ap.add_argument("--repeat", type=int, default=10000)
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    b = open_build(a.build, verify=False)
    graph = load_graph(b.graph_bytes())
    t0 = time.perf_counter()
    hw = hw_model(b.manifest, graph)
    t_build = time.perf_counter() - t0
    si = hw.shape_inference
    print(f"{a.build}: {len(graph.graph.node)} nodes; shapes {'symbolic' if si.symbolic else 'concrete'}; "
          f"construction {t_build * 1e3:.1f} ms")

    new_shapes, new_total, old_probe, old_total = [], [], [], []
    per_stage: list[float] = []
    bulk: list[float] = []
    for task in hw.tasks:
        weights = {n: w.shape for n, w in hw.workload.weights(task).items()}
        for seq in lengths:
            if (task, seq, 1) in hw._cache:  # priced during construction (max_seq_len): not new
                continue
            t0 = time.perf_counter()
            si.shapes(seq, 1, weights)
            new_shapes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fast = hw.inference(seq, task)
            new_total.append(time.perf_counter() - t0)
            # the old path on the same model: probe, then the same charging and pricing
            del hw._cache[(task, seq, 1)]
            t0 = time.perf_counter()
            hw._shape_cache[(task, seq, 1)] = ort_shapes(graph, seq, hw.data_inputs, weights)
            old_probe.append(time.perf_counter() - t0)
            slow = hw.inference(seq, task)
            old_total.append(time.perf_counter() - t0)
            assert slow.energy_j == fast.energy_j and slow.latency_s == fast.latency_s, (task, seq)
            # v2's per-stage pricing vs v3's bulk pricing, shapes cached for both (the pricing alone)
            del hw._cache[(task, seq, 1)]
            hw._shapes(seq, task)
            t0 = time.perf_counter()
            v2 = old_stage_pricing(hw, seq, task)
            per_stage.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            v3 = hw.inference(seq, task)
            bulk.append(time.perf_counter() - t0)
            assert abs(v2.energy_j / v3.energy_j - 1) < 1e-9 and abs(v2.latency_s / v3.latency_s - 1) < 1e-9
    task = hw.tasks[0]
    hw.inference(lengths[-1], task)
    t0 = time.perf_counter()
    for _ in range(a.repeat):
        hw.inference(lengths[-1], task)
        hw.swap(task)
    cached = (time.perf_counter() - t0) / a.repeat
    n = len(new_total)
    print(f"first pricing of a new (task, length), {n} of them (lengths {lengths}, tasks {hw.tasks}):")
    print(f"  symbolic shapes: shapes {_ms(new_shapes)}; total {_ms(new_total)}")
    print(f"  old ORT probe:   probe  {_ms(old_probe)}; total {_ms(old_total)}")
    print(f"  speed-up of the median first pricing: {statistics.median(old_total) / statistics.median(new_total):.1f}x "
          "(identical costs)")
    print(f"  pricing after the shapes: v2 per-stage Costs {_ms(per_stage)}; v3 bulk {_ms(bulk)}; "
          f"{statistics.median(per_stage) / statistics.median(bulk):.1f}x (equal totals)")
    print(f"cached inference+swap: {cached * 1e6:.2f} us per request; "
          f"first/cached = {statistics.median(new_total) / cached:,.0f}x")


if __name__ == "__main__":
    main()
