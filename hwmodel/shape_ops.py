"""Per-operation shape rules: one handler per ONNX node type, (node name, attributes, inputs) -> outputs.

Each handler takes and returns :class:`~edgemti.hwmodel.shape_values.ShapeTensor` records: the output shapes from
the input shapes (broadcasting, MatMul/Gemm, Reshape with its ``0`` and ``-1``, Slice clamping, Split, reductions,
...) and, where the inputs carry values, the output's value computed with numpy (the exporters' shape arithmetic:
``Shape`` -> ``Gather`` -> ``Concat`` -> ``Reshape`` targets, Slice bounds, Range limits). A symbolic Slice bound is
clamped under a recorded constraint; an operation monomials cannot express raises ``SymbolicUnsupported``.

``HANDLERS`` covers the node types the torch exporters (dynamo and the legacy ``dynamo=False`` one) emit for
BERT/ALBERT encoders; :class:`~edgemti.hwmodel.shapes.ShapeInference` refuses a graph with any other type. Split
needs its number of outputs when the split is even: :func:`split` takes it as ``n_out``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgemti.errors import ConfigError
from edgemti.hwmodel.shape_values import (
    MAX_VALUE_ELEMENTS,
    Dim,
    ShapeTensor,
    Sym,
    SymbolicUnsupported,
    all_int,
    as_value,
    broadcast,
    ints_of,
    is_int,
    known,
    min_positive,
    norm_axis,
    numel,
    record_constraint,
    tensor_of,
)

_BOOL = onnx.TensorProto.BOOL
_INT64 = onnx.TensorProto.INT64

Handler = Callable[[str, dict[str, Any], list[Any]], list[ShapeTensor]]

_BINARY_VALUES: dict[str, Callable[[Any, Any], Any]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power, "Mod": np.mod,
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}
_COMPARE = frozenset({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"})
_UNARY_VALUES: dict[str, Callable[[Any], Any]] = {
    "Neg": np.negative, "Abs": np.abs, "Not": np.logical_not, "Identity": lambda x: x, "Sqrt": np.sqrt,
    "Floor": np.floor, "Ceil": np.ceil, "Relu": lambda x: np.maximum(x, 0), "Sign": np.sign,
}
_UNARY_SHAPE = frozenset({"Erf", "Tanh", "Sigmoid", "Gelu", "FastGelu", "Exp", "Log", "Reciprocal", "Softmax",
                          "LogSoftmax", "Sin", "Cos", "Trilu", "CumSum", "Clip", "Round", "HardSigmoid"})


def _binary(op: str) -> Handler:
    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
        a, b = ins
        out = ShapeTensor(broadcast(name, a.shape, b.shape), _BOOL if op in _COMPARE else a.dtype)
        if a.value is None or b.value is None:
            return [out]
        if op == "Div":
            v = a.value / b.value  # Sym / int is exact or unsupported
            if np.asarray(v).dtype != object and not np.issubdtype(a.value.dtype, np.floating):
                v = np.trunc(v)  # ONNX integer Div truncates
        else:
            v = _BINARY_VALUES[op](a.value, b.value)
        return [known(out, v)]
    return run


def _unary(op: str) -> Handler:
    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
        x = ins[0]
        out = ShapeTensor(x.shape, _BOOL if op in ("Not", "IsNaN", "IsInf") else x.dtype)
        if x.value is not None and op in _UNARY_VALUES:
            return [known(out, _UNARY_VALUES[op](x.value))]
        return [out]
    return run


def _variadic(op: str) -> Handler:  # Max, Min, Sum, Mean
    fn = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}.get(op)

    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
        out = ShapeTensor(broadcast(name, *(t.shape for t in ins)), ins[0].dtype)
        if fn is not None and all(t.value is not None for t in ins):
            v = ins[0].value
            for t in ins[1:]:
                v = fn(v, t.value)
            return [known(out, v)]
        return [out]
    return run


def _constant(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    if "value" in at:
        return [tensor_of(numpy_helper.to_array(at["value"]), at["value"].data_type)]
    for key, dtype in (("value_int", _INT64), ("value_ints", _INT64), ("value_float", onnx.TensorProto.FLOAT),
                       ("value_floats", onnx.TensorProto.FLOAT)):
        if key in at:
            return [tensor_of(np.asarray(at[key]), dtype)]
    raise ConfigError(f"shapes: Constant node {name} has no value attribute this model reads ({sorted(at)})")


def _shape(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    s = ins[0].shape
    rank = len(s)
    start = max(0, min(rank, norm_axis(at.get("start", 0), rank)))
    end = max(0, min(rank, norm_axis(at.get("end", rank), rank)))
    dims = list(s[start:end])
    value = np.array(dims, dtype=object if not all_int(dims) else np.int64)
    return [ShapeTensor((len(dims),), _INT64, as_value(value, _INT64))]


def _size(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    n = numel(ins[0].shape)
    return [ShapeTensor((), _INT64, as_value(np.array(n, dtype=object if isinstance(n, Sym) else np.int64), _INT64))]


def _cast_to(x: ShapeTensor, to: int) -> ShapeTensor:
    return known(ShapeTensor(x.shape, to), None if x.value is None else x.value)


def _cast(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    return [_cast_to(ins[0], at["to"])]


def _cast_like(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    return [_cast_to(ins[0], ins[1].dtype)]


def _isnan(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    value = None if x.value is None or x.value.dtype == object else np.isnan(x.value)
    return [known(ShapeTensor(x.shape, _BOOL), value)]


def _where(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    c, x, y = ins
    out = ShapeTensor(broadcast(name, c.shape, x.shape, y.shape), x.dtype)
    if c.value is not None and x.value is not None and y.value is not None:
        return [known(out, np.where(c.value.astype(bool), x.value, y.value))]
    return [out]


def _reshape(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    target = ints_of(name, ins[1], "target shape")
    n = numel(x.shape)
    dims: list[Dim] = [x.shape[i] if is_int(d) and d == 0 and not at.get("allowzero", 0) else d
                       for i, d in enumerate(target)]
    free = [i for i, d in enumerate(dims) if is_int(d) and d == -1]
    if free:
        k = free[0]
        rest = numel([d for i, d in enumerate(dims) if i != k])
        dims[k] = n // rest if not (is_int(rest) and rest == 0) else 0
    if numel(dims) != n:
        raise ConfigError(f"shapes: node {name}: cannot reshape {x.shape} to {target}")
    out = ShapeTensor(tuple(dims), x.dtype)
    return [known(out, x.value.reshape(dims) if x.value is not None and all_int(dims) else None)]


def _transpose(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    perm = at.get("perm") or list(range(len(x.shape)))[::-1]
    out = ShapeTensor(tuple(x.shape[p] for p in perm), x.dtype)
    return [known(out, None if x.value is None else np.transpose(x.value, perm))]


def _axes_of(name: str, at: dict[str, Any], ins: list[Any]) -> list[int] | None:
    if len(ins) > 1 and ins[1] is not None:
        return [int(a) for a in ints_of(name, ins[1], "axes")]
    return at.get("axes")


def _unsqueeze(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    axes = _axes_of(name, at, ins) or []
    rank = len(x.shape) + len(axes)
    shape = list(x.shape)
    for a in sorted(norm_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    out = ShapeTensor(tuple(shape), x.dtype)
    return [known(out, x.value.reshape(shape) if x.value is not None and all_int(shape) else None)]


def _squeeze(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    axes = _axes_of(name, at, ins)
    rank = len(x.shape)
    drop = {norm_axis(a, rank) for a in axes} if axes else {i for i, d in enumerate(x.shape) if is_int(d) and d == 1}
    shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
    out = ShapeTensor(shape, x.dtype)
    return [known(out, x.value.reshape(shape) if x.value is not None and all_int(shape) else None)]


def _concat(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    ins = [t for t in ins if t is not None]
    axis = norm_axis(at["axis"], len(ins[0].shape))
    shape = list(ins[0].shape)
    total: Dim = 0
    for t in ins:
        total = t.shape[axis] + total
    shape[axis] = total
    out = ShapeTensor(tuple(shape), ins[0].dtype)
    if all(t.value is not None for t in ins):
        return [known(out, np.concatenate([np.asarray(t.value) for t in ins], axis=axis))]
    return [out]


def _gather(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    data, idx = ins
    axis = norm_axis(at.get("axis", 0), len(data.shape))
    out = ShapeTensor(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)
    if data.value is not None and idx.value is not None:
        return [known(out, np.take(data.value, idx.value.astype(np.int64), axis=axis))]
    return [out]


def _gather_nd(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    data, idx = ins
    b = at.get("batch_dims", 0)
    k = idx.shape[-1]
    if not is_int(k):
        raise SymbolicUnsupported(f"node {name}: GatherND index depth {k}")
    return [ShapeTensor(idx.shape[:-1] + data.shape[b + int(k):], data.dtype)]


def _clamp(node: str, v: Dim, d: Dim) -> Dim:
    """A Slice bound (step 1) clamped to [0, d]; a symbolic comparison becomes a recorded constraint."""
    if is_int(v) and is_int(d):
        v, d = int(v), int(d)
        return min(max(v + d if v < 0 else v, 0), d)
    if is_int(v):
        if v < 0:
            raise SymbolicUnsupported(f"node {node}: negative bound {v} on symbolic dim {d}")
        if v <= min_positive(d):
            return v
        if v >= 1 << 62:  # "to the end" sentinel
            return d
        assert isinstance(d, Sym)
        record_constraint(d, int(v), node)  # v cuts d only when d > v: assume the graph's range
        return d
    if is_int(d):
        assert isinstance(v, Sym)
        record_constraint(v, int(d), node)  # the bound reaches past the dim only when v > d
        return v
    if v == d:
        return v
    raise SymbolicUnsupported(f"node {node}: slice bound {v} on dim {d}")


def _slice(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    starts, ends = ints_of(name, ins[1], "starts"), ints_of(name, ins[2], "ends")
    rank = len(x.shape)
    axes = ints_of(name, ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = ints_of(name, ins[4], "steps") if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * rank
    shape = list(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = norm_axis(int(a), rank)
        d = x.shape[a]
        if is_int(s) and is_int(e) and is_int(st) and is_int(d):
            sl = slice(int(s), int(e), int(st))
            shape[a] = len(range(*sl.indices(int(d))))
            index[a] = sl
        elif st == 1:
            lo, hi = _clamp(name, s, d), _clamp(name, e, d)
            shape[a] = hi - lo if lo != hi else 0
            index[a] = slice(lo, hi) if is_int(lo) and is_int(hi) else slice(None)
        else:
            raise SymbolicUnsupported(f"node {name}: symbolic slice with step {st}")
    out = ShapeTensor(tuple(shape), x.dtype)
    return [known(out, x.value[tuple(index)] if x.value is not None and all_int(shape) else None)]


def _expand(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    shape = broadcast(name, x.shape, tuple(ints_of(name, ins[1], "shape")))
    out = ShapeTensor(shape, x.dtype)
    if x.value is None or not all_int(shape):
        return [out]
    return [known(out, np.broadcast_to(x.value, tuple(int(d) for d in shape)))]


def _constant_of_shape(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    shape = tuple(ints_of(name, ins[0], "shape"))
    fill = numpy_helper.to_array(at["value"]).reshape(-1) if "value" in at else np.zeros(1, np.float32)
    out = ShapeTensor(shape, at["value"].data_type if "value" in at else onnx.TensorProto.FLOAT)
    if all_int(shape) and math.prod(shape) <= MAX_VALUE_ELEMENTS:
        return [known(out, np.full(shape, fill[0]))]
    return [out]


def _range(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    if any(t.value is None for t in ins):
        raise ConfigError(f"shapes: node {name}: Range bounds are not constant or shape-derived")
    start, limit, delta = (np.asarray(t.value).reshape(()).item() for t in ins)
    if is_int(start) and is_int(limit) and is_int(delta) or all(isinstance(v, float) for v in (start, delta)) \
            and isinstance(limit, float):
        n = max(int(math.ceil((limit - start) / delta)), 0)
        return [known(ShapeTensor((n,), ins[0].dtype), np.arange(start, limit, delta))]
    if delta != 1:
        raise SymbolicUnsupported(f"node {name}: symbolic Range with step {delta}")
    return [ShapeTensor((limit - start,), ins[0].dtype)]


def _matmul(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    a, b = ins[0].shape, ins[1].shape
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ConfigError(f"shapes: node {name}: MatMul operands {a} x {b} do not agree")
    shape = (*broadcast(name, a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(a) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b) == 1:
        shape = shape[:-1]
    return [ShapeTensor(shape, ins[0].dtype)]


def _gemm(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    a, b = ins[0].shape, ins[1].shape
    m = a[1] if at.get("transA", 0) else a[0]
    n = b[0] if at.get("transB", 0) else b[1]
    return [ShapeTensor((m, n), ins[0].dtype)]


def _layer_norm(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    axis = norm_axis(at.get("axis", -1), len(x.shape))
    stat = x.shape[:axis] + (1,) * (len(x.shape) - axis)
    return [ShapeTensor(x.shape, x.dtype), ShapeTensor(stat, onnx.TensorProto.FLOAT),
            ShapeTensor(stat, onnx.TensorProto.FLOAT)]


def _dropout(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    return [x, ShapeTensor(x.shape, _BOOL)]


def _reduce(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    axes = _axes_of(name, at, ins)
    rank = len(x.shape)
    if not axes:
        axes = [] if at.get("noop_with_empty_axes", 0) else list(range(rank))
    red = {norm_axis(a, rank) for a in axes}
    keep = at.get("keepdims", 1)
    shape = tuple(1 if i in red else d for i, d in enumerate(x.shape) if keep or i not in red)
    return [ShapeTensor(shape, x.dtype)]


def split(name: str, at: dict[str, Any], ins: list[Any], n_out: int = 0) -> list[ShapeTensor]:
    x = ins[0]
    axis = norm_axis(at.get("axis", 0), len(x.shape))
    d = x.shape[axis]
    if len(ins) > 1 and ins[1] is not None:
        parts = ints_of(name, ins[1], "split")
    elif "split" in at:
        parts = list(at["split"])
    elif is_int(d):
        k = at.get("num_outputs", n_out)
        size = -(-int(d) // k)
        parts = [min(size, int(d) - i * size) for i in range(k)]
    else:
        raise SymbolicUnsupported(f"node {name}: even Split of symbolic dim {d}")
    return [ShapeTensor(x.shape[:axis] + (p,) + x.shape[axis + 1:], x.dtype) for p in parts]


def _flatten(name: str, at: dict[str, Any], ins: list[Any]) -> list[ShapeTensor]:
    x = ins[0]
    axis = norm_axis(at.get("axis", 1), len(x.shape))
    return [ShapeTensor((numel(x.shape[:axis]), numel(x.shape[axis:])), x.dtype)]


HANDLERS: dict[str, Handler] = {
    **{op: _binary(op) for op in (*_BINARY_VALUES, "Div")},
    **{op: _unary(op) for op in (*_UNARY_VALUES, *_UNARY_SHAPE, "IsInf")},
    **{op: _variadic(op) for op in ("Max", "Min", "Sum", "Mean")},
    "Constant": _constant, "Shape": _shape, "Size": _size, "Cast": _cast, "CastLike": _cast_like,
    "IsNaN": _isnan, "Where": _where, "Reshape": _reshape, "Transpose": _transpose, "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze, "Concat": _concat, "Gather": _gather, "GatherND": _gather_nd, "Slice": _slice,
    "Expand": _expand, "ConstantOfShape": _constant_of_shape, "Range": _range, "MatMul": _matmul, "Gemm": _gemm,
    "LayerNormalization": _layer_norm, "Dropout": _dropout, "Flatten": _flatten, "Split": split,
    **{op: _reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2")},
}
