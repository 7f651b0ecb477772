"""Every tensor's shape for a batch ``B`` and a sequence length ``S``, inferred from the graph alone (no runtime).

:class:`ShapeInference` prepares a graph once: it folds every node that does not depend on a graph input (the
exporters' ``Constant`` / shape-arithmetic chains) and keeps the rest as a straight-line plan. ``shapes(S, B)``
then re-evaluates that plan with concrete ints (a few ms for albert-base, ~1,400 nodes); the caller caches the
result per (task, S, B). Shapes travel as int tuples; small integer tensors (``Shape`` -> ``Gather`` ->
``Concat`` -> ``Reshape`` targets, ``Slice`` bounds, ``Range`` limits) are evaluated concretely with numpy,
because the exporters compute reshape targets from runtime shapes and ONNX's own shape inference loses the dims
there. Float tensors carry no values: only their shapes matter to the cost model.

It covers the node types the torch exporters (dynamo and the legacy ``dynamo=False`` one) emit for BERT/ALBERT
encoders; a graph with any other node type is refused at construction with the types named. The onnxruntime run
it replaces is kept as the oracle of tests/test_hw_shapes.py: every tensor's shape equal, for several (B, S).
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgemti.errors import ConfigError

_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                          onnx.TensorProto.BFLOAT16})
_BOOL = onnx.TensorProto.BOOL
_INT64 = onnx.TensorProto.INT64
MAX_VALUE_ELEMENTS = 1 << 16  # integer tensors up to this size carry their values (a Range over S positions)


class _Unsupported(Exception):
    """A symbolic dim met an operation monomials cannot express (the graph is then evaluated per (S, B))."""


@dataclass(frozen=True)
class Sym:
    """A symbolic dim: ``c * prod(symbol ** power)`` over positive-int symbols ("B", "S", a weight's dim_param).

    Monomials are closed under the products and exact quotients the exporters' Reshape chains compute; a sum of
    two different monomials, or an int() of a symbol, raises :class:`_Unsupported`.
    """

    c: int
    powers: tuple[tuple[str, int], ...]

    @staticmethod
    def of(c: int, powers: dict[str, int]) -> int | Sym:
        p = tuple(sorted((k, v) for k, v in powers.items() if v))
        return int(c) if not p or c == 0 else Sym(int(c), p)

    def __mul__(self, o: Any) -> int | Sym:
        if isinstance(o, Sym):
            pw = dict(self.powers)
            for k, v in o.powers:
                pw[k] = pw.get(k, 0) + v
            return Sym.of(self.c * o.c, pw)
        if isinstance(o, int | np.integer):
            return Sym.of(self.c * int(o), dict(self.powers))
        raise _Unsupported(f"{self} * {o!r}")

    __rmul__ = __mul__

    def _div(self, o: Any) -> int | Sym:
        if isinstance(o, int | np.integer):
            o = Sym(int(o), ())
        if isinstance(o, Sym) and o.c and self.c % o.c == 0:
            pw = dict(self.powers)
            for k, v in o.powers:
                pw[k] = pw.get(k, 0) - v
            if all(v >= 0 for v in pw.values()):
                return Sym.of(self.c // o.c, pw)
        raise _Unsupported(f"{self} / {o!r}")

    __floordiv__ = _div
    __truediv__ = _div

    def __rfloordiv__(self, o: Any) -> int | Sym:
        return Sym.of(int(o), {})._div(self) if isinstance(o, int | np.integer) else NotImplemented  # type: ignore[union-attr]

    def __add__(self, o: Any) -> int | Sym:
        if isinstance(o, int | np.integer) and o == 0:
            return self
        if isinstance(o, Sym) and o.powers == self.powers:
            return Sym.of(self.c + o.c, dict(self.powers))
        raise _Unsupported(f"{self} + {o!r}")

    __radd__ = __add__

    def __neg__(self) -> int | Sym:
        return Sym.of(-self.c, dict(self.powers))

    def __sub__(self, o: Any) -> int | Sym:
        return self + (-o)

    def __rsub__(self, o: Any) -> int | Sym:
        return (-self) + o

    def _cmp(self, o: Any) -> Any:
        raise _Unsupported(f"comparison of {self} with {o!r}")

    __lt__ = __le__ = __gt__ = __ge__ = _cmp

    def __int__(self) -> int:
        raise _Unsupported(f"int({self})")

    __index__ = __int__

    def value(self, env: Mapping[str, int]) -> int:
        v = self.c
        for k, p in self.powers:
            v *= env[k] ** p
        return v

    def __repr__(self) -> str:
        return "*".join([str(self.c)] * (self.c != 1) + [k if p == 1 else f"{k}^{p}" for k, p in self.powers])


Dim = int | Sym


def _min_positive(d: Dim) -> int:
    """The least value ``d`` takes (every symbol >= 1)."""
    return d.c if isinstance(d, Sym) else int(d)


@dataclass
class GraphShapes:
    """Concrete shape of every tensor (graph inputs, initializers, node outputs) and which of them are float."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    float_tensors: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _T:
    """One tensor during inference: shape, ONNX element type, and its value when it is small and known."""

    shape: tuple[Dim, ...]
    dtype: int
    value: np.ndarray | None = None


# (symbolic dim, bound): the graph is valid only while dim <= bound (a Slice of the position table, ...)
_CONSTRAINTS: contextvars.ContextVar[list[tuple[Sym, int, str]]] = contextvars.ContextVar("shape_constraints")


def _np_dtype(dtype: int) -> Any:
    return helper.tensor_dtype_to_np_dtype(dtype)


def _is_int(d: Any) -> bool:
    return isinstance(d, int | np.integer)


def _as_value(value: Any, dtype: int) -> np.ndarray | None:
    """``value`` as an array of ``dtype`` (an object array while it holds symbols), or None when too large."""
    arr = np.asarray(value)
    if arr.size > MAX_VALUE_ELEMENTS:
        return None
    if arr.dtype == object:
        if any(isinstance(x, Sym) for x in arr.reshape(-1)):
            return arr
        return arr.astype(_np_dtype(dtype))
    return arr.astype(_np_dtype(dtype), copy=False)


def _known(t: _T, value: Any = None) -> _T:
    """``t`` with its value attached (when small enough to keep)."""
    return t if value is None else _T(t.shape, t.dtype, _as_value(value, t.dtype))


def _with_value(value: Any, dtype: int) -> _T:
    arr = np.asarray(value)
    return _T(tuple(int(d) for d in arr.shape), dtype, _as_value(arr, dtype))


def _broadcast(node: str, *shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for k in range(rank):
        dims = {s[k - rank + len(s)] for s in shapes if k - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            if any(isinstance(d, Sym) for d in dims):
                raise _Unsupported(f"node {node}: broadcast of {sorted(map(str, dims))}")
            raise ConfigError(f"shapes: node {node}: operands {list(shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _all_int(shape: tuple[Dim, ...] | list[Dim]) -> bool:
    return all(_is_int(d) for d in shape)


def _ints(node: str, t: _T | None, what: str) -> list[Dim]:
    if t is None or t.value is None:
        raise ConfigError(f"shapes: node {node}: its {what} is not a constant or shape-derived value")
    return [x if isinstance(x, Sym) else int(x) for x in np.asarray(t.value).reshape(-1)]


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _prod(shape: tuple[Dim, ...] | list[Dim]) -> Dim:
    n: Dim = 1
    for d in shape:
        n = d * n
    return n


# -- node handlers: (node name, attributes, inputs) -> outputs ------------------------------------------------------
Handler = Callable[[str, dict[str, Any], list[Any]], list[_T]]

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
    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
        a, b = ins
        out = _T(_broadcast(name, a.shape, b.shape), _BOOL if op in _COMPARE else a.dtype)
        if a.value is None or b.value is None:
            return [out]
        if op == "Div":
            v = a.value / b.value  # Sym / int is exact or unsupported
            if np.asarray(v).dtype != object and not np.issubdtype(a.value.dtype, np.floating):
                v = np.trunc(v)  # ONNX integer Div truncates
        else:
            v = _BINARY_VALUES[op](a.value, b.value)
        return [_known(out, v)]
    return run


def _unary(op: str) -> Handler:
    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
        x = ins[0]
        out = _T(x.shape, _BOOL if op in ("Not", "IsNaN", "IsInf") else x.dtype)
        if x.value is not None and op in _UNARY_VALUES:
            return [_known(out, _UNARY_VALUES[op](x.value))]
        return [out]
    return run


def _variadic(op: str) -> Handler:  # Max, Min, Sum, Mean
    fn = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}.get(op)

    def run(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
        out = _T(_broadcast(name, *(t.shape for t in ins)), ins[0].dtype)
        if fn is not None and all(t.value is not None for t in ins):
            v = ins[0].value
            for t in ins[1:]:
                v = fn(v, t.value)
            return [_known(out, v)]
        return [out]
    return run


def _constant(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    if "value" in at:
        return [_with_value(numpy_helper.to_array(at["value"]), at["value"].data_type)]
    for key, dtype in (("value_int", _INT64), ("value_ints", _INT64), ("value_float", onnx.TensorProto.FLOAT),
                       ("value_floats", onnx.TensorProto.FLOAT)):
        if key in at:
            return [_with_value(np.asarray(at[key]), dtype)]
    raise ConfigError(f"shapes: Constant node {name} has no value attribute this model reads ({sorted(at)})")


def _shape(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    s = ins[0].shape
    rank = len(s)
    start = max(0, min(rank, _axis(at.get("start", 0), rank)))
    end = max(0, min(rank, _axis(at.get("end", rank), rank)))
    dims = list(s[start:end])
    return [_T((len(dims),), _INT64, _as_value(np.array(dims, dtype=object if not _all_int(dims) else np.int64),
                                                _INT64))]


def _size(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    n = _prod(ins[0].shape)
    return [_T((), _INT64, _as_value(np.array(n, dtype=object if isinstance(n, Sym) else np.int64), _INT64))]


def _cast_to(x: _T, to: int) -> _T:
    return _known(_T(x.shape, to), None if x.value is None else x.value)


def _cast(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    return [_cast_to(ins[0], at["to"])]


def _cast_like(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    return [_cast_to(ins[0], ins[1].dtype)]


def _isnan(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    return [_known(_T(x.shape, _BOOL), None if x.value is None or x.value.dtype == object else np.isnan(x.value))]


def _where(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    c, x, y = ins
    out = _T(_broadcast(name, c.shape, x.shape, y.shape), x.dtype)
    if c.value is not None and x.value is not None and y.value is not None:
        return [_known(out, np.where(c.value.astype(bool), x.value, y.value))]
    return [out]


def _reshape(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    target = _ints(name, ins[1], "target shape")
    n = _prod(x.shape)
    dims: list[Dim] = [x.shape[i] if _is_int(d) and d == 0 and not at.get("allowzero", 0) else d
                       for i, d in enumerate(target)]
    free = [i for i, d in enumerate(dims) if _is_int(d) and d == -1]
    if free:
        k = free[0]
        rest = _prod([d for i, d in enumerate(dims) if i != k])
        dims[k] = n // rest if not (_is_int(rest) and rest == 0) else 0
    if _prod(dims) != n:
        raise ConfigError(f"shapes: node {name}: cannot reshape {x.shape} to {target}")
    out = _T(tuple(dims), x.dtype)
    return [_known(out, x.value.reshape(dims) if x.value is not None and _all_int(dims) else None)]


def _transpose(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    perm = at.get("perm") or list(range(len(x.shape)))[::-1]
    out = _T(tuple(x.shape[p] for p in perm), x.dtype)
    return [_known(out, None if x.value is None else np.transpose(x.value, perm))]


def _axes_of(name: str, at: dict[str, Any], ins: list[Any]) -> list[int] | None:
    if len(ins) > 1 and ins[1] is not None:
        return [int(a) for a in _ints(name, ins[1], "axes")]
    return at.get("axes")


def _unsqueeze(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    axes = _axes_of(name, at, ins) or []
    rank = len(x.shape) + len(axes)
    shape = list(x.shape)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    out = _T(tuple(shape), x.dtype)
    return [_known(out, x.value.reshape(shape) if x.value is not None and _all_int(shape) else None)]


def _squeeze(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    axes = _axes_of(name, at, ins)
    rank = len(x.shape)
    drop = {_axis(a, rank) for a in axes} if axes else {i for i, d in enumerate(x.shape) if _is_int(d) and d == 1}
    shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
    return [_known(_T(shape, x.dtype), x.value.reshape(shape) if x.value is not None and _all_int(shape) else None)]


def _concat(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    ins = [t for t in ins if t is not None]
    axis = _axis(at["axis"], len(ins[0].shape))
    shape = list(ins[0].shape)
    total: Dim = 0
    for t in ins:
        total = t.shape[axis] + total
    shape[axis] = total
    out = _T(tuple(shape), ins[0].dtype)
    if all(t.value is not None for t in ins):
        return [_known(out, np.concatenate([np.asarray(t.value) for t in ins], axis=axis))]
    return [out]


def _gather(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    data, idx = ins
    axis = _axis(at.get("axis", 0), len(data.shape))
    out = _T(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)
    if data.value is not None and idx.value is not None:
        return [_known(out, np.take(data.value, idx.value.astype(np.int64), axis=axis))]
    return [out]


def _gather_nd(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    data, idx = ins
    b = at.get("batch_dims", 0)
    k = idx.shape[-1]
    if not _is_int(k):
        raise _Unsupported(f"node {name}: GatherND index depth {k}")
    return [_T(idx.shape[:-1] + data.shape[b + int(k):], data.dtype)]


def _clamp(node: str, v: Dim, d: Dim) -> Dim:
    """A Slice bound (step 1) clamped to [0, d]; a symbolic comparison becomes a recorded constraint."""
    if _is_int(v) and _is_int(d):
        v, d = int(v), int(d)
        return min(max(v + d if v < 0 else v, 0), d)
    if _is_int(v):
        if v < 0:
            raise _Unsupported(f"node {node}: negative bound {v} on symbolic dim {d}")
        if v <= _min_positive(d):
            return v
        if v >= 1 << 62:  # "to the end" sentinel
            return d
        assert isinstance(d, Sym)
        _CONSTRAINTS.get().append((d, int(v), node))  # v cuts d only when d > v: assume the graph's range
        return d
    if _is_int(d):
        assert isinstance(v, Sym)
        _CONSTRAINTS.get().append((v, int(d), node))  # the bound reaches past the dim only when v > d
        return v
    if v == d:
        return v
    raise _Unsupported(f"node {node}: slice bound {v} on dim {d}")


def _slice(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    starts, ends = _ints(name, ins[1], "starts"), _ints(name, ins[2], "ends")
    rank = len(x.shape)
    axes = _ints(name, ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = _ints(name, ins[4], "steps") if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * rank
    shape = list(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a = _axis(int(a), rank)
        d = x.shape[a]
        if _is_int(s) and _is_int(e) and _is_int(st) and _is_int(d):
            sl = slice(int(s), int(e), int(st))
            shape[a] = len(range(*sl.indices(int(d))))
            index[a] = sl
        elif st == 1:
            lo, hi = _clamp(name, s, d), _clamp(name, e, d)
            shape[a] = hi - lo if lo != hi else 0
            index[a] = slice(lo, hi) if _is_int(lo) and _is_int(hi) else slice(None)
        else:
            raise _Unsupported(f"node {name}: symbolic slice with step {st}")
    out = _T(tuple(shape), x.dtype)
    return [_known(out, x.value[tuple(index)] if x.value is not None and _all_int(shape) else None)]


def _expand(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    shape = _broadcast(name, x.shape, tuple(_ints(name, ins[1], "shape")))
    out = _T(shape, x.dtype)
    if x.value is None or not _all_int(shape):
        return [out]
    return [_known(out, np.broadcast_to(x.value, tuple(int(d) for d in shape)))]


def _constant_of_shape(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    shape = tuple(_ints(name, ins[0], "shape"))
    fill = numpy_helper.to_array(at["value"]).reshape(-1) if "value" in at else np.zeros(1, np.float32)
    out = _T(shape, at["value"].data_type if "value" in at else onnx.TensorProto.FLOAT)
    if _all_int(shape) and math.prod(shape) <= MAX_VALUE_ELEMENTS:
        return [_known(out, np.full(shape, fill[0]))]
    return [out]


def _range(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    if any(t.value is None for t in ins):
        raise ConfigError(f"shapes: node {name}: Range bounds are not constant or shape-derived")
    start, limit, delta = (np.asarray(t.value).reshape(()).item() for t in ins)
    if _is_int(start) and _is_int(limit) and _is_int(delta) or all(isinstance(v, float) for v in (start, delta)) \
            and isinstance(limit, float):
        n = max(int(math.ceil((limit - start) / delta)), 0)
        return [_known(_T((n,), ins[0].dtype), np.arange(start, limit, delta))]
    if delta != 1:
        raise _Unsupported(f"node {name}: symbolic Range with step {delta}")
    return [_T((limit - start,), ins[0].dtype)]


def _matmul(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    a, b = ins[0].shape, ins[1].shape
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ConfigError(f"shapes: node {name}: MatMul operands {a} x {b} do not agree")
    shape = (*_broadcast(name, a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(a) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b) == 1:
        shape = shape[:-1]
    return [_T(shape, ins[0].dtype)]


def _gemm(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    a, b = ins[0].shape, ins[1].shape
    m = a[1] if at.get("transA", 0) else a[0]
    n = b[0] if at.get("transB", 0) else b[1]
    return [_T((m, n), ins[0].dtype)]


def _layer_norm(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    axis = _axis(at.get("axis", -1), len(x.shape))
    stat = x.shape[:axis] + (1,) * (len(x.shape) - axis)
    return [_T(x.shape, x.dtype), _T(stat, onnx.TensorProto.FLOAT), _T(stat, onnx.TensorProto.FLOAT)]


def _dropout(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    return [x, _T(x.shape, _BOOL)]


def _reduce(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    axes = _axes_of(name, at, ins)
    rank = len(x.shape)
    if not axes:
        axes = [] if at.get("noop_with_empty_axes", 0) else list(range(rank))
    red = {_axis(a, rank) for a in axes}
    keep = at.get("keepdims", 1)
    shape = tuple(1 if i in red else d for i, d in enumerate(x.shape) if keep or i not in red)
    return [_T(shape, x.dtype)]


def _split(name: str, at: dict[str, Any], ins: list[Any], n_out: int = 0) -> list[_T]:
    x = ins[0]
    axis = _axis(at.get("axis", 0), len(x.shape))
    d = x.shape[axis]
    if len(ins) > 1 and ins[1] is not None:
        parts = _ints(name, ins[1], "split")
    elif "split" in at:
        parts = list(at["split"])
    elif _is_int(d):
        k = at.get("num_outputs", n_out)
        size = -(-int(d) // k)
        parts = [min(size, int(d) - i * size) for i in range(k)]
    else:
        raise _Unsupported(f"node {name}: even Split of symbolic dim {d}")
    return [_T(x.shape[:axis] + (p,) + x.shape[axis + 1:], x.dtype) for p in parts]


def _flatten(name: str, at: dict[str, Any], ins: list[Any]) -> list[_T]:
    x = ins[0]
    axis = _axis(at.get("axis", 1), len(x.shape))
    return [_T((_prod(x.shape[:axis]), _prod(x.shape[axis:])), x.dtype)]


HANDLERS: dict[str, Handler] = {
    **{op: _binary(op) for op in (*_BINARY_VALUES, "Div")},
    **{op: _unary(op) for op in (*_UNARY_VALUES, *_UNARY_SHAPE, "IsInf")},
    **{op: _variadic(op) for op in ("Max", "Min", "Sum", "Mean")},
    "Constant": _constant, "Shape": _shape, "Size": _size, "Cast": _cast, "CastLike": _cast_like,
    "IsNaN": _isnan, "Where": _where, "Reshape": _reshape, "Transpose": _transpose, "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze, "Concat": _concat, "Gather": _gather, "GatherND": _gather_nd, "Slice": _slice,
    "Expand": _expand, "ConstantOfShape": _constant_of_shape, "Range": _range, "MatMul": _matmul, "Gemm": _gemm,
    "LayerNormalization": _layer_norm, "Dropout": _dropout, "Flatten": _flatten, "Split": _split,
    **{op: _reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2")},
}


@dataclass(frozen=True)
class _Step:
    name: str
    op: str
    handler: Handler
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class _Input:
    name: str
    dtype: int
    dims: tuple[int | str, ...]  # a static dim, or the symbol that stands for it


class ShapeInference:
    """A graph prepared once for shape inference at any (sequence length, batch); see the module docstring.

    ``data_inputs`` are the token inputs: a symbolic dim of theirs is the batch ("B") on axis 0 and the sequence
    length ("S") elsewhere. A weight input's symbolic dim (e.g. a task's ``num_labels``) is a symbol of its own,
    valued from ``weight_shapes`` at evaluation (B on axis 0 and S elsewhere when the weight is not given).

    The prepared graph is symbolic (every dim a monomial in the symbols) when the graph allows it; then
    :meth:`shapes` only evaluates the distinct shapes (tens of microseconds). A graph whose dims leave monomials
    (a concat of B- and S-sized tensors, ...) is evaluated concretely per call instead (a few ms), with the same
    results; ``symbolic`` says which.
    """

    def __init__(self, model: onnx.ModelProto, data_inputs: tuple[str, ...]) -> None:
        g = model.graph
        unknown = sorted({n.op_type for n in g.node if n.op_type not in HANDLERS or n.domain not in ("", "ai.onnx")})
        if unknown:
            raise ConfigError(f"shapes: the graph has node types the shape inference does not know: {unknown}")
        self.data_inputs = tuple(data_inputs)
        init_names = {i.name for i in g.initializer}
        self.inputs: list[_Input] = []
        for i in g.input:
            if i.name in init_names:
                continue
            dims: list[int | str] = []
            for k, d in enumerate(i.type.tensor_type.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    dims.append(int(d.dim_value))
                elif i.name in self.data_inputs:
                    dims.append("B" if k == 0 else "S")
                else:  # a weight's free dim: inputs naming the same dim_param share the symbol
                    dims.append(f"dim:{d.dim_param}" if d.dim_param else f"{i.name}:{k}")
            self.inputs.append(_Input(i.name, i.type.tensor_type.elem_type, tuple(dims)))
        static: dict[str, _T] = {}
        for init in g.initializer:
            shape = tuple(int(d) for d in init.dims)
            value = numpy_helper.to_array(init) if math.prod(shape) <= MAX_VALUE_ELEMENTS else None
            static[init.name] = _T(shape, init.data_type, value)
        dynamic = {i.name for i in self.inputs}
        self.plan: list[_Step] = []
        for idx, n in enumerate(g.node):
            step = _Step(n.name or f"{n.op_type}_{idx}", n.op_type, HANDLERS[n.op_type],
                         {a.name: helper.get_attribute_value(a) for a in n.attribute}, tuple(n.input),
                         tuple(n.output))
            if any(i in dynamic for i in n.input if i):
                self.plan.append(step)
                dynamic.update(o for o in n.output if o)
            else:  # depends on constants only: evaluated once, here
                self._run(step, static)
        self.static = static
        self.float_tensors: frozenset[str] = frozenset()
        self.symbolic = False
        self.unsupported = ""  # why the graph is evaluated concretely, when it is
        self._prepare_symbolic()

    @staticmethod
    def _run(step: _Step, env: dict[str, _T]) -> None:
        ins = [env[i] if i else None for i in step.inputs]
        if step.op == "Split":
            outs = _split(step.name, step.attrs, ins, len(step.outputs))
        else:
            outs = step.handler(step.name, step.attrs, ins)
        for o, t in zip(step.outputs, outs, strict=False):
            if o:
                env[o] = t

    def _execute(self, inputs: dict[str, _T], what: str) -> dict[str, _T]:
        env = dict(self.static)
        env.update(inputs)
        step = None
        try:
            for step in self.plan:
                self._run(step, env)
        except (ValueError, IndexError, KeyError, ZeroDivisionError, TypeError) as exc:
            at = f" at {step.name} ({step.op})" if step else ""
            raise ConfigError(f"shapes: inference at {what} failed{at}: {type(exc).__name__}: {exc}; is seq_len "
                              "within the model's max_position_embeddings?") from None
        return env

    def _prepare_symbolic(self) -> None:
        sym_in = {i.name: _T(tuple(Sym.of(1, {d: 1}) if isinstance(d, str) else d for d in i.dims), i.dtype)
                  for i in self.inputs}
        token = _CONSTRAINTS.set([])
        try:
            env = self._execute(sym_in, "symbolic dims")
            constraints = _CONSTRAINTS.get()
        except _Unsupported as exc:
            self.unsupported = str(exc)
            return
        finally:
            _CONSTRAINTS.reset(token)
        self.symbolic = True
        self.constraints = tuple(constraints)
        self.float_tensors = frozenset(self._float_names(env))
        sig_index: dict[tuple[Dim, ...], int] = {}
        self._names: list[str] = []
        self._sig_of: list[int] = []
        self._const_shapes: dict[str, tuple[int, ...]] = {}
        for name, t in env.items():
            if _all_int(t.shape):
                self._const_shapes[name] = tuple(int(d) for d in t.shape)
            else:
                self._names.append(name)
                self._sig_of.append(sig_index.setdefault(t.shape, len(sig_index)))
        self._sigs = list(sig_index)

    @staticmethod
    def _float_names(env: Mapping[str, _T]) -> set[str]:
        return {k for k, t in env.items() if t.dtype in _FLOAT_TYPES}

    def _symbols(self, seq_len: int, batch: int, weight_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        values: dict[str, int] = {"B": batch, "S": seq_len}
        for i in self.inputs:
            given = weight_shapes.get(i.name)
            if given is not None and len(given) != len(i.dims):
                raise ConfigError(f"shapes: input {i.name} has rank {len(i.dims)}, weight_shapes gives {given}")
            for k, d in enumerate(i.dims):
                if not isinstance(d, str) or d in ("B", "S"):
                    continue
                v = int(given[k]) if given is not None else (batch if k == 0 else seq_len)
                if values.setdefault(d, v) != v:
                    raise ConfigError(f"shapes: weight_shapes give {d.removeprefix('dim:')} = {values[d]} and {v}")
        return values

    def _concrete(self, seq_len: int, batch: int, weight_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, _T]:
        values = self._symbols(seq_len, batch, weight_shapes)
        inputs = {i.name: _T(tuple(values[d] if isinstance(d, str) else d for d in i.dims), i.dtype)
                  for i in self.inputs}
        return self._execute(inputs, f"seq_len={seq_len}, batch={batch}")

    def shapes(self, seq_len: int, batch: int = 1,
               weight_shapes: Mapping[str, tuple[int, ...]] | None = None) -> GraphShapes:
        """Shape of every tensor at ``batch`` x ``seq_len`` tokens (weights' free dims from ``weight_shapes``)."""
        if seq_len <= 0 or batch <= 0:
            raise ConfigError(f"shapes: seq_len and batch must be > 0, got {seq_len}, {batch}")
        weight_shapes = weight_shapes or {}
        if not self.symbolic:
            env = self._concrete(seq_len, batch, weight_shapes)
            return GraphShapes({k: tuple(int(d) for d in t.shape) for k, t in env.items()}, self._float_names(env))
        values = self._symbols(seq_len, batch, weight_shapes)
        for sym, bound, node in self.constraints:
            if sym.value(values) > bound:
                raise ConfigError(f"shapes: at seq_len={seq_len}, batch={batch} the graph needs {sym} <= {bound} "
                                  f"(node {node}); is seq_len within the model's max_position_embeddings?")
        evaluated = [tuple(d.value(values) if isinstance(d, Sym) else d for d in sig) for sig in self._sigs]
        shapes = dict(self._const_shapes)
        shapes.update(zip(self._names, [evaluated[i] for i in self._sig_of], strict=True))
        return GraphShapes(shapes, set(self.float_tensors))
