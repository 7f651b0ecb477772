"""Fusion groups (hwmodel/fusion.py): the same groups from the dynamo and the legacy exporter, on albert-tiny and
bert-tiny, adapter and vanilla; every node charged once or folded; unknown ops listed by name; fused
intermediates never reach SRAM."""

from __future__ import annotations

import functools
import io
import warnings

import onnx
import pytest
import torch
from hw_support import tiny_graph, tiny_hw
from onnx import TensorProto, helper

from edgemti.hwmodel.fusion import fuse
from edgemti.tasks.backbones import build_model

DATA = ("input_ids", "attention_mask", "token_type_ids")
LAYERS = {"albert-tiny": 3, "bert-tiny": 2}


@functools.lru_cache(maxsize=8)
def _legacy(backbone: str, design: str) -> bytes:
    """The TorchScript exporter's graph (weights as initializers, some folded under new names)."""
    from edgemti.compiler.export import _example_inputs

    torch.manual_seed(0)
    model = build_model(backbone, 2, design=design).eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _example_inputs(), f, dynamo=False, input_names=list(DATA),
                          output_names=["logits"], dynamic_axes={n: {0: "batch", 1: "seq"} for n in DATA},
                          opset_version=17)
    return f.getvalue()


@functools.lru_cache(maxsize=4)
def _dynamo(backbone: str, design: str) -> bytes:
    """The build's exporter (dynamo, names 1:1)."""
    from edgemti.compiler.export import export_model

    torch.manual_seed(0)
    return export_model(build_model(backbone, 2, design=design).eval()).SerializeToString()


CASES = [("dynamo", "albert-tiny", "adapter"), ("dynamo", "albert-tiny", "vanilla"),
         pytest.param("dynamo", "bert-tiny", "adapter", marks=pytest.mark.slow),  # a fresh dynamo export, ~10-25 s
         ("legacy", "albert-tiny", "adapter"), ("legacy", "bert-tiny", "adapter"), ("legacy", "bert-tiny", "vanilla")]


def _graph(exporter: str, backbone: str, design: str) -> onnx.ModelProto:
    if exporter == "legacy":
        return onnx.load_from_string(_legacy(backbone, design))
    if backbone == "albert-tiny":
        return onnx.load_from_string(tiny_graph(design))
    return onnx.load_from_string(_dynamo(backbone, design))


@pytest.mark.parametrize("exporter,backbone,design", CASES)
def test_groups_by_pattern(exporter, backbone, design):
    graph = _graph(exporter, backbone, design)
    weights = {i.name for i in graph.graph.input} | {i.name for i in graph.graph.initializer}
    f = fuse(graph, weights - set(DATA), DATA)
    layers = LAYERS[backbone]
    kinds = f.kinds()
    assert f.unknown == ()
    assert kinds["attention"] == layers
    assert kinds["add_layernorm"] == 2 * layers + 1  # two per layer + the embeddings'
    assert kinds.get("adapter", 0) == (2 * layers if design == "adapter" else 0)
    assert kinds.get("gelu", 0) == 0  # every GELU chain rides on its matmul
    # every node is charged in exactly one group or folded away
    nodes = [n for g in f.groups for n in g.nodes] + list(f.folded)
    assert sorted(nodes) == list(range(len(graph.graph.node)))
    ops = graph.graph.node
    for g in f.groups:
        roles = [o.role for o in g.ops]
        if g.kind == "attention":
            assert roles.count("matmul") == 1 and roles.count("sfu:softmax") == 1
            assert not [o for o in g.ops if ops[o.node].op_type in ("Mul", "Div", "Add") and o.role != "folded"]
        if g.kind == "adapter":
            assert roles.count("matmul") == 2 and roles.count("sfu:gelu") == 1 and roles[-1] == "sfu:elementwise"
            assert len(g.inputs) == 1 and len(g.outputs) == 1  # x in, x + up(act(down(x))) out
        if any(ops[o.node].op_type in ("Tanh", "Erf") for o in g.ops) and g.kind == "matmul":
            # tanh- or erf-GELU: one SFU op, the rest of the chain folded
            assert roles.count("sfu:gelu") == 1 and roles.count("matmul") == 1
    # the FFN of every layer: matmul + bias + one GELU op
    ffn = [g for g in f.groups if g.kind == "matmul" and "sfu:gelu" in [o.role for o in g.ops]]
    assert len(ffn) >= layers


def test_unknown_ops_are_listed_by_name():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Cos", ["h"], ["y"], name="cosine")]
    g = helper.make_model(helper.make_graph(nodes, "g", [x, w], [y]), opset_imports=[helper.make_opsetid("", 17)])
    f = fuse(g, {"w"}, ("x",))
    assert f.unknown == (("Cos", "cosine"),)
    assert [(grp.kind, [o.role for o in grp.ops]) for grp in f.groups] == [("matmul", ["matmul"]),
                                                                           ("sfu", ["sfu:other"])]


def test_fused_intermediates_stay_out_of_sram():
    """The FFN's GELU chain: its matmul's output and the chain's inner tensors never reach SRAM; the group writes
    the GELU output once and reads its input once (it fits one tile at seq 16)."""
    hw = tiny_hw()
    c = hw.inference(16, "mnli")
    groups = {g.name: g for g in hw.fusion.groups}
    ffn = [g for g in groups.values() if g.kind == "matmul" and "sfu:gelu" in [o.role for o in g.ops]][0]
    recs = [r for r in c.records if r.group == ffn.name]
    assert [r.kind for r in recs] == ["matmul", "sfu:gelu"]
    intermediate = 16 * 64  # seq x intermediate size of albert-tiny (bytes at 8 bits)
    hidden = 16 * 32
    assert recs[0].bytes_by_level["sram"] == hidden  # reads x once, writes nothing
    assert recs[1].bytes_by_level["sram"] == intermediate  # the GELU output, written once
    # GELU = one SFU op over the intermediate tensor
    assert c.counts.sfu_elements["gelu"] >= intermediate * 3  # 3 layer passes
