"""Tiling through the scratchpad (hwmodel/tiling.py): tiles fit, the cheapest tile shape is taken, re-reads are
charged, the SRAM working set is the liveness peak between fused groups, overlap follows the spec."""

from __future__ import annotations

import math

import pytest
from hw_support import tiny_hw
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from edgemti.errors import ConfigError
from edgemti.hwmodel import HwModel, load_spec
from edgemti.hwmodel.graph import weight_views
from edgemti.hwmodel.tiling import tile_matmul, working_set_bytes
from edgemti.hwmodel.workload import TaskWorkload, WeightInfo, Workload


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 512), st.integers(1, 4096), st.integers(1, 4096), st.sampled_from([8, 16, 32]),
       st.sampled_from([4096, 65536]))
def test_tile_fits_and_is_cheapest(n0, m, n1, bits, buf):
    b_bits = float(m * n1 * bits)
    t = tile_matmul(1, n0, m, n1, bits, b_bits, 2 * bits, buf, 16)
    assert t.tile_rows * t.tile_k * bits <= buf * 8
    assert t.row_tiles == math.ceil(n0 / t.tile_rows) and t.k_chunks == math.ceil(m / t.tile_k)
    moved = b_bits * t.row_tiles + 2.0 * n0 * n1 * 2 * bits * t.partial_sum_passes
    # brute force over every legal tile shape: none moves fewer bits
    for rows in sorted({*range(16, n0, 16), n0}):
        for k in sorted({*range(16, m, 16), m}):
            if rows * k * bits <= buf * 8:
                other = b_bits * math.ceil(n0 / rows) + 2.0 * n0 * n1 * 2 * bits * (math.ceil(m / k) - 1)
                assert moved <= other + 1e-6


def test_tile_shapes_by_hand():
    # albert-base Q projection at 8 bits: a 128 x 768 activation (96 KB) does not fit 64 KB. Streaming the
    # 50 %-sparse weight (2.95 Mbit with masks) once more is cheaper than spilling 16-bit partial sums (3.1 Mbit)
    t = tile_matmul(1, 128, 768, 768, 8, 768 * 768 * 8 * 0.5 + 768 * 768, 16, 65536, 16)
    assert (t.tile_rows, t.tile_k, t.row_tiles, t.k_chunks) == (64, 768, 2, 1)
    # the dense FP32 weight (18.9 Mbit): 16-row tiles would stream it 8 times; half the rows x a third of M
    # streams it twice and spills twice (50.3 Mbit against 151 Mbit)
    t = tile_matmul(1, 128, 768, 768, 32, 768 * 768 * 32, 32, 65536, 16)
    assert (t.tile_rows, t.tile_k, t.row_tiles, t.k_chunks) == (64, 256, 2, 3)
    # a small weight (adapter up 64 -> 768): re-reading it is cheaper than spilling: full rows of M
    t = tile_matmul(1, 128, 64, 768, 32, 64 * 768 * 32, 32, 65536, 16)
    assert (t.tile_k, t.row_tiles, t.k_chunks) == (64, 1, 1)
    with pytest.raises(ConfigError, match="does not fit"):
        tile_matmul(1, 128, 768, 768, 32, 1.0, 32, 512, 16)


def _matmul(n0=40, m=64, n1=32, nnz=1024):
    x = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, [1, "seq", m])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [m, n1])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "seq", n1])
    g = helper.make_graph([helper.make_node("MatMul", ["input_ids", "w"], ["logits"], name="mm")], "g", [x, w], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    wl = Workload(design="adapter", backbone=(WeightInfo("w", (m, n1), nnz, 8, "rram"),),
                  tasks=(TaskWorkload("t", 100, ()),),
                  image_bytes={"rram_mlc": nnz, "rram_slc": m * n1 // 8, "dram": 100}, precision="fixed8",
                  value_bits=8, activation_bits=8, max_seq_len=n0, data_inputs=("input_ids",))
    return wl, model


def test_weight_rereads_are_charged():
    """A 40 x 64 activation in a 1 KB buffer: tiles of 16 rows; the weight is small, so it streams once per
    row tile (3 passes) rather than spilling partial sums."""
    wl, model = _matmul()
    one = HwModel(wl, model, load_spec())
    small = HwModel(wl, model, load_spec().with_overrides({"spad_a.capacity_bytes": 1024}))
    (r1,) = one.inference(40).records
    (r3,) = small.inference(40).records
    assert r1.tiles == 1 and r3.tiles == 3
    for lv in ("rram_mlc", "rram_slc"):
        assert r3.bytes_by_level[lv] == pytest.approx(3 * r1.bytes_by_level[lv])
    assert r3.bytes_by_level["sram"] == r1.bytes_by_level["sram"]  # x once, y once either way
    assert r3.weights == ("w",) and r3.macs == r1.macs == 40 * 64 * 32


def test_working_set_is_the_liveness_peak():
    # a -> g0 -> b ; b -> g1 -> c ; (a, c) -> g2 -> d : a stays alive across g1
    sched = [(("a",), ("b",)), (("b",), ("c",)), (("a", "c"), ("d",))]
    sizes = {"a": 10, "b": 100, "c": 1, "d": 1000}
    assert working_set_bytes(sched, sizes) == 10 + 1 + 1000
    assert working_set_bytes(sched[:2], sizes) == 10 + 100  # a dies after g0: peak at g0 (a + b)


def test_sram_requirement_is_largest_pack_plus_working_set():
    hw = tiny_hw()
    req = hw.requirements()["sram"]
    pack = max(t.pack_bytes for t in hw.workload.tasks)
    assert req == pack + hw.activation_peak_bytes()
    # the working set holds every group boundary tensor at its peak, never a fused intermediate
    shapes = hw._shapes(hw.workload.max_seq_len, hw.workload.largest_task)
    inner = {t for g in hw.fusion.groups for o in g.ops for t in hw.graph.graph.node[o.node].output
             if t not in g.outputs}
    biggest_boundary = max(math.prod(shapes.shapes[t]) for g in hw.fusion.groups for t in g.outputs)
    assert hw.activation_peak_bytes() >= biggest_boundary  # 8-bit activations: bytes == elements
    assert inner  # there are fused intermediates (GELU chain, scores, ...)
    # never above v1's rule, the largest inputs + outputs of one unfused node (albert-tiny at seq 32: a tie,
    # 6144 B, the attention's live set against the GELU chain's Mul; albert-base Q3.5: 0.56 vs 1.13 MiB)
    views = weight_views(hw.graph, {w.name for w in hw.workload.backbone}
                         | {w.name for t in hw.workload.tasks for w in t.tensors})
    unfused = max(sum(math.prod(shapes.shapes[x]) for x in (*n.input, *n.output)
                      if x and x in shapes.float_tensors and x not in views) for n in hw.graph.graph.node)
    assert hw.activation_peak_bytes() <= unfused


def test_overlap_follows_the_spec():
    base = tiny_hw(spec=load_spec().with_overrides({"scratchpad.double_buffered": True})).inference(16, "mrpc")
    single = tiny_hw().inference(16, "mrpc")  # EdgeBERT: fetch, then compute (the default)
    everything = tiny_hw(spec=load_spec().with_overrides({"execution.overlap": True})).inference(16, "mrpc")
    assert everything.latency_s <= single.latency_s and base.latency_s < single.latency_s
    assert base.macs == single.macs == everything.macs
    # dynamic energy is the same work whatever overlaps; only leakage (x time, x buffer copies) moves
    dyn = [sum(v for k, v in c.energy_by_component_j.items() if not k.startswith("leak_"))
           for c in (base, single, everything)]
    assert dyn[0] == pytest.approx(dyn[1], rel=1e-12) and dyn[0] == pytest.approx(dyn[2], rel=1e-12)
