"""hwmodel.shapes: every tensor's shape equals what onnxruntime computes, for graphs of both torch exporters.

The oracle (``hw_support.ort_shapes``) is the onnxruntime probe the hardware model used before: one run of the
graph on zeros with every node output exposed. Symbolic preparation must hold on the exporters' graphs (that is what
makes a new sequence length cost microseconds); the concrete fallback must agree too.
"""

from __future__ import annotations

import functools
import io
import warnings

import onnx
import pytest
import torch
from hw_support import ort_shapes, tiny_graph
from onnx import TensorProto, helper

from edgemti.errors import ConfigError
from edgemti.hwmodel.shapes import ShapeInference

DATA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
POINTS = ((1, 5), (2, 16), (3, 33))  # (batch, seq_len)


def weight_shapes(model: onnx.ModelProto, num_labels: int = 3) -> dict[str, tuple[int, ...]]:
    """Every non-data graph input's shape, its free dims (the label axis) set to ``num_labels``."""
    return {i.name: tuple(d.dim_value if d.HasField("dim_value") else num_labels for d in i.type.tensor_type.shape.dim)
            for i in model.graph.input if i.name not in DATA_INPUTS}


@functools.lru_cache(maxsize=8)
def exported(backbone: str, exporter: str, design: str = "adapter") -> bytes:
    """``backbone``'s graph from the compiler's (dynamo, weightless) path or the legacy TorchScript exporter."""
    if exporter == "dynamo" and backbone == "albert-tiny":
        return tiny_graph(design)  # cached on disk by hw_support
    from edgemti.compiler.export import _example_inputs, export_weightless
    from edgemti.tasks.backbones import build_model

    torch.manual_seed(0)
    model = build_model(backbone, 3, design=design)
    if exporter == "dynamo":
        return export_weightless(model).SerializeToString()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _example_inputs(), f, dynamo=False, input_names=list(DATA_INPUTS),
                          output_names=["logits"], dynamic_axes={n: {0: "batch", 1: "seq"} for n in DATA_INPUTS})
    return f.getvalue()


def assert_same_shapes(model: onnx.ModelProto, si: ShapeInference, points=POINTS) -> None:
    ws = weight_shapes(model)
    for batch, seq in points:
        ours, ref = si.shapes(seq, batch, ws), ort_shapes(model, seq, DATA_INPUTS, ws, batch)
        wrong = {k: (ours.shapes.get(k), v) for k, v in ref.shapes.items() if ours.shapes.get(k) != v}
        assert not wrong, f"batch {batch} seq {seq}: {len(wrong)} shapes differ, e.g. {list(wrong.items())[:3]}"
        assert set(ours.shapes) == set(ref.shapes)
        assert ours.float_tensors == ref.float_tensors


@pytest.mark.parametrize("backbone,exporter,design", [
    ("albert-tiny", "dynamo", "adapter"), ("albert-tiny", "dynamo", "vanilla"), ("albert-tiny", "legacy", "adapter"),
    ("bert-tiny", "dynamo", "adapter"), ("bert-tiny", "legacy", "adapter"),
])
def test_shapes_equal_onnxruntime(backbone, exporter, design):
    model = onnx.load_from_string(exported(backbone, exporter, design))
    si = ShapeInference(model, DATA_INPUTS)
    assert si.symbolic, si.unsupported  # the exporters' graphs stay in monomials of (B, S)
    assert_same_shapes(model, si)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_shapes_equal_onnxruntime_albert_base(exporter):
    model = onnx.load_from_string(exported("albert-base", exporter))
    si = ShapeInference(model, DATA_INPUTS)
    assert si.symbolic, si.unsupported
    assert_same_shapes(model, si, ((1, 128), (2, 64), (4, 7)))


def _concat_graph() -> onnx.ModelProto:
    """x [B, S, 4] ++ y [B, 1, 4] along the sequence: S + 1 is no monomial, so the graph is evaluated concretely."""
    x = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["batch", "seq", 4])
    y = helper.make_tensor_value_info("cls", TensorProto.FLOAT, [1, 1, 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Shape", ["input_ids"], ["sh"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.INT64, [1], [0])),
        helper.make_node("Gather", ["sh", "zero"], ["b"], axis=0),
        helper.make_node("Constant", [], ["rest"], value=helper.make_tensor("rest", TensorProto.INT64, [2], [1, 4])),
        helper.make_node("Concat", ["b", "rest"], ["target"], axis=0),
        helper.make_node("Expand", ["cls", "target"], ["cls_b"]),
        helper.make_node("Concat", ["cls_b", "input_ids"], ["cat"], axis=1),
        helper.make_node("Softmax", ["cat"], ["z"], axis=-1),
    ]
    g = helper.make_graph(nodes, "g", [x, y], [z])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_concrete_fallback_agrees_with_onnxruntime():
    model = _concat_graph()
    si = ShapeInference(model, ("input_ids",))
    assert not si.symbolic and "+" in si.unsupported
    for batch, seq in POINTS:
        ours = si.shapes(seq, batch, {"cls": (1, 1, 4)})
        ref = ort_shapes(model, seq, ("input_ids",), {"cls": (1, 1, 4)}, batch)
        assert ours.shapes == ref.shapes and ours.float_tensors == ref.float_tensors
        assert ours.shapes["cat"] == (batch, seq + 1, 4)


def test_sequence_longer_than_the_position_table_is_refused():
    model = onnx.load_from_string(exported("albert-tiny", "dynamo"))
    si = ShapeInference(model, DATA_INPUTS)
    limit = max(bound for _, bound, _ in si.constraints)
    si.shapes(limit, 1, weight_shapes(model))
    with pytest.raises(ConfigError, match=f"<= {limit}"):
        si.shapes(limit + 1, 1, weight_shapes(model))


def test_unknown_node_types_are_named():
    x = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Det", ["input_ids"], ["y"])], "g", [x], [y])
    with pytest.raises(ConfigError, match="Det"):
        ShapeInference(helper.make_model(g), ("input_ids",))
