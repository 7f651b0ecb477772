"""The values shape inference computes with: symbolic dims and the tensors that carry them.

A dim is an ``int`` or a :class:`Sym`, a monomial ``c * prod(symbol ** power)`` over positive-int symbols: the
batch ``B``, the sequence length ``S`` and a weight's free dim (a task's ``num_labels``). Monomials are closed under
the products and exact quotients the exporters' Reshape chains compute; anything else (a sum of two different
monomials, a comparison, ``int()`` of a symbol) raises :class:`SymbolicUnsupported`, and the graph is then
evaluated concretely per (S, B) instead (:mod:`edgemti.hwmodel.shapes`).

A :class:`ShapeTensor` is one tensor during inference: its shape, its ONNX element type and, for a small integer
tensor (at most ``MAX_VALUE_ELEMENTS`` elements: shape arithmetic, Slice bounds, a Range over S positions), its
value as a numpy array (an object array while it holds symbols). Float tensors carry no values.

A comparison a symbolic dim cannot answer (a Slice bound against the 512-row position table) is assumed in the
graph's range and recorded as a constraint ``sym <= bound`` (:func:`record_constraint`), collected by
:func:`recording_constraints` and checked at evaluation.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import helper

from edgemti.errors import ConfigError

MAX_VALUE_ELEMENTS = 1 << 16  # integer tensors up to this size carry their values (a Range over S positions)


class SymbolicUnsupported(Exception):
    """A symbolic dim met an operation monomials cannot express (the graph is then evaluated per (S, B))."""


@dataclass(frozen=True)
class Sym:
    """A symbolic dim: ``c * prod(symbol ** power)`` over positive-int symbols ("B", "S", a weight's dim_param).

    Monomials are closed under the products and exact quotients the exporters' Reshape chains compute; a sum of
    two different monomials, or an int() of a symbol, raises :class:`SymbolicUnsupported`.
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
        raise SymbolicUnsupported(f"{self} * {o!r}")

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
        raise SymbolicUnsupported(f"{self} / {o!r}")

    __floordiv__ = _div
    __truediv__ = _div

    def __rfloordiv__(self, o: Any) -> int | Sym:
        return Sym.of(int(o), {})._div(self) if isinstance(o, int | np.integer) else NotImplemented  # type: ignore[union-attr]

    def __add__(self, o: Any) -> int | Sym:
        if isinstance(o, int | np.integer) and o == 0:
            return self
        if isinstance(o, Sym) and o.powers == self.powers:
            return Sym.of(self.c + o.c, dict(self.powers))
        raise SymbolicUnsupported(f"{self} + {o!r}")

    __radd__ = __add__

    def __neg__(self) -> int | Sym:
        return Sym.of(-self.c, dict(self.powers))

    def __sub__(self, o: Any) -> int | Sym:
        return self + (-o)

    def __rsub__(self, o: Any) -> int | Sym:
        return (-self) + o

    def _cmp(self, o: Any) -> Any:
        raise SymbolicUnsupported(f"comparison of {self} with {o!r}")

    __lt__ = __le__ = __gt__ = __ge__ = _cmp

    def __int__(self) -> int:
        raise SymbolicUnsupported(f"int({self})")

    __index__ = __int__

    def value(self, env: Mapping[str, int]) -> int:
        v = self.c
        for k, p in self.powers:
            v *= env[k] ** p
        return v

    def __repr__(self) -> str:
        return "*".join([str(self.c)] * (self.c != 1) + [k if p == 1 else f"{k}^{p}" for k, p in self.powers])


Dim = int | Sym


def min_positive(d: Dim) -> int:
    """The least value ``d`` takes (every symbol >= 1)."""
    return d.c if isinstance(d, Sym) else int(d)


@dataclass(frozen=True)
class ShapeTensor:
    """One tensor during inference: shape, ONNX element type, and its value when it is small and known."""

    shape: tuple[Dim, ...]
    dtype: int
    value: np.ndarray | None = None



# (symbolic dim, bound, node): the graph is valid only while dim <= bound (a Slice of the position table, ...)
_CONSTRAINTS: contextvars.ContextVar[list[tuple[Sym, int, str]]] = contextvars.ContextVar("shape_constraints")


@contextmanager
def recording_constraints() -> Iterator[list[tuple[Sym, int, str]]]:
    """Collect the constraints recorded inside the ``with`` block (the list it yields fills as they come)."""
    found: list[tuple[Sym, int, str]] = []
    token = _CONSTRAINTS.set(found)
    try:
        yield found
    finally:
        _CONSTRAINTS.reset(token)


def record_constraint(dim: Sym, bound: int, node: str) -> None:
    """The graph (at ``node``) is valid only while ``dim <= bound``; inside :func:`recording_constraints` only."""
    _CONSTRAINTS.get().append((dim, bound, node))


def _np_dtype(dtype: int) -> Any:
    return helper.tensor_dtype_to_np_dtype(dtype)


def is_int(d: Any) -> bool:
    return isinstance(d, int | np.integer)


def as_value(value: Any, dtype: int) -> np.ndarray | None:
    """``value`` as an array of ``dtype`` (an object array while it holds symbols), or None when too large."""
    arr = np.asarray(value)
    if arr.size > MAX_VALUE_ELEMENTS:
        return None
    if arr.dtype == object:
        if any(isinstance(x, Sym) for x in arr.reshape(-1)):
            return arr
        return arr.astype(_np_dtype(dtype))
    return arr.astype(_np_dtype(dtype), copy=False)


def known(t: ShapeTensor, value: Any = None) -> ShapeTensor:
    """``t`` with its value attached (when small enough to keep)."""
    return t if value is None else ShapeTensor(t.shape, t.dtype, as_value(value, t.dtype))


def tensor_of(value: Any, dtype: int) -> ShapeTensor:
    arr = np.asarray(value)
    return ShapeTensor(tuple(int(d) for d in arr.shape), dtype, as_value(arr, dtype))


def broadcast(node: str, *shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for k in range(rank):
        dims = {s[k - rank + len(s)] for s in shapes if k - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            if any(isinstance(d, Sym) for d in dims):
                raise SymbolicUnsupported(f"node {node}: broadcast of {sorted(map(str, dims))}")
            raise ConfigError(f"shapes: node {node}: operands {list(shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def all_int(shape: tuple[Dim, ...] | list[Dim]) -> bool:
    return all(is_int(d) for d in shape)


def ints_of(node: str, t: ShapeTensor | None, what: str) -> list[Dim]:
    if t is None or t.value is None:
        raise ConfigError(f"shapes: node {node}: its {what} is not a constant or shape-derived value")
    return [x if isinstance(x, Sym) else int(x) for x in np.asarray(t.value).reshape(-1)]


def norm_axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def numel(shape: tuple[Dim, ...] | list[Dim]) -> Dim:
    n: Dim = 1
    for d in shape:
        n = d * n
    return n
