"""``graph.onnx`` of a build: a weightless ONNX graph whose every parameter is a named graph input.

The names are the PyTorch parameter names (= the manifest's tensor names). The runtime turns the decoded
backbone into initializers once (:func:`bind_initializers`) and feeds the active task's pack tensors per request;
:func:`run_graph` feeds everything (the decoding reference). :func:`insert_activation_qdq` emulates a fixed-point
activation precision with QuantizeLinear/DequantizeLinear pairs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgemti.errors import FormatError

DATA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def load_graph(graph: bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(graph, onnx.ModelProto):
        return graph
    try:
        return onnx.load_from_string(graph)
    except Exception as exc:  # protobuf raises DecodeError
        raise FormatError(f"graph.onnx: not a valid ONNX model ({type(exc).__name__}): recompile the build") from None


def parameter_inputs(graph: bytes | onnx.ModelProto) -> list[str]:
    """Names of the graph inputs that are parameters (everything but the data inputs)."""
    model = load_graph(graph)
    return [i.name for i in model.graph.input if i.name not in DATA_INPUTS]


def bind_initializers(graph: bytes | onnx.ModelProto, tensors: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of the graph where the given inputs become initializers (e.g. the decoded backbone)."""
    model = onnx.ModelProto()
    model.CopyFrom(load_graph(graph))
    inputs = {i.name for i in model.graph.input}
    missing = sorted(set(tensors) - inputs)
    if missing:
        raise FormatError(f"graph.onnx has no inputs {missing[:3]}: the graph does not belong to these tensors")
    keep = [i for i in model.graph.input if i.name not in tensors]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.extend(
        numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name) for name, a in tensors.items())
    return model


def session(graph: bytes | onnx.ModelProto, threads: int = 1):
    """An onnxruntime CPU session for a graph (bytes or proto)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    model = load_graph(graph)
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def data_feed(input_ids: np.ndarray, attention_mask: np.ndarray,
              token_type_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    ids = np.asarray(input_ids, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.asarray(attention_mask, dtype=np.int64),
            "token_type_ids": (np.zeros_like(ids) if token_type_ids is None
                               else np.asarray(token_type_ids, dtype=np.int64))}


def run_graph(graph: bytes | onnx.ModelProto, tensors: Mapping[str, np.ndarray], input_ids: np.ndarray,
              attention_mask: np.ndarray, token_type_ids: np.ndarray | None = None) -> np.ndarray:
    """Run the weightless graph with every parameter fed as an input; returns float32 logits."""
    sess = session(graph)
    wanted = [i.name for i in sess.get_inputs() if i.name not in DATA_INPUTS]
    missing = [n for n in wanted if n not in tensors]
    if missing:
        raise FormatError(f"graph.onnx needs tensors the build does not hold: {missing[:3]}")
    feed = data_feed(input_ids, attention_mask, token_type_ids)
    feed.update({n: np.ascontiguousarray(tensors[n], dtype=np.float32) for n in wanted})
    return sess.run(["logits"], feed)[0]


def insert_activation_qdq(graph: bytes | onnx.ModelProto, bits: int, frac_bits: int,
                          op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> onnx.ModelProto:
    """Emulate fixed-point activations: a QuantizeLinear/DequantizeLinear pair after every ``op_types`` output.

    Q(bits - frac_bits, frac_bits) symmetric: scale ``2**-frac_bits``, zero point 0, saturating to int8 (bits <= 8)
    or int16 (bits <= 16); ONNX's QuantizeLinear rounds half to even, like :func:`edgemti.formats.quant.quantize`.
    """
    if not 0 <= frac_bits < bits:
        raise FormatError(f"activation Q-format needs 0 <= frac_bits < bits, got bits={bits}, frac_bits={frac_bits}")
    if bits not in (8, 16):
        raise FormatError(f"activation bits must be 8 or 16 for the QDQ emulation (ONNX has no int{bits}), got {bits}")
    model = onnx.ModelProto()
    model.CopyFrom(load_graph(graph))
    g = model.graph
    qtype = TensorProto.INT8 if bits <= 8 else TensorProto.INT16
    scale = numpy_helper.from_array(np.array(2.0 ** -frac_bits, dtype=np.float32), "_act_q_scale")
    zero = helper.make_tensor("_act_q_zero", qtype, [], [0])
    g.initializer.extend([scale, zero])
    new_nodes = []
    for node in g.node:
        new_nodes.append(node)
        if node.op_type not in op_types:
            continue
        out = node.output[0]
        q = f"{out}__q"
        node.output[0] = f"{out}__raw"
        new_nodes.append(helper.make_node("QuantizeLinear", [node.output[0], "_act_q_scale", "_act_q_zero"], [q]))
        new_nodes.append(helper.make_node("DequantizeLinear", [q, "_act_q_scale", "_act_q_zero"], [out]))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if bits == 16 and opset < 21:
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 21
    return model
