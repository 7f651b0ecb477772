"""Every tensor's shape for a batch ``B`` and a sequence length ``S``, inferred from the graph alone (no runtime).

:class:`ShapeInference` prepares a graph once: it folds every node that does not depend on a graph input (the
exporters' ``Constant`` / shape-arithmetic chains) and keeps the rest as a straight-line plan. ``shapes(S, B)``
then re-evaluates that plan with concrete ints (a few ms for albert-base, ~1,400 nodes); the caller caches the
result per (task, S, B). This module is the driver: the plan, the symbolic pass and the evaluation per
(S, B); the values it computes with (symbolic dims, tensors carrying small integer values) are
:mod:`edgemti.hwmodel.shape_values`, the rule of each node type :mod:`edgemti.hwmodel.shape_ops`.

It covers the node types the torch exporters (dynamo and the legacy ``dynamo=False`` one) emit for BERT/ALBERT
encoders; a graph with any other node type is refused at construction with the types named. The onnxruntime run
it replaces is kept as the oracle of tests/test_hw_shapes.py: every tensor's shape equal, for several (B, S).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import helper, numpy_helper

from edgemti.errors import ConfigError
from edgemti.hwmodel.shape_ops import HANDLERS, Handler, split
from edgemti.hwmodel.shape_values import (
    MAX_VALUE_ELEMENTS,
    Dim,
    ShapeTensor,
    Sym,
    SymbolicUnsupported,
    all_int,
    recording_constraints,
)

_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                          onnx.TensorProto.BFLOAT16})


@dataclass
class GraphShapes:
    """Concrete shape of every tensor (graph inputs, initializers, node outputs) and which of them are float."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    float_tensors: set[str] = field(default_factory=set)


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
        static: dict[str, ShapeTensor] = {}
        for init in g.initializer:
            shape = tuple(int(d) for d in init.dims)
            value = numpy_helper.to_array(init) if math.prod(shape) <= MAX_VALUE_ELEMENTS else None
            static[init.name] = ShapeTensor(shape, init.data_type, value)
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
    def _run(step: _Step, env: dict[str, ShapeTensor]) -> None:
        ins = [env[i] if i else None for i in step.inputs]
        if step.op == "Split":
            outs = split(step.name, step.attrs, ins, len(step.outputs))
        else:
            outs = step.handler(step.name, step.attrs, ins)
        for o, t in zip(step.outputs, outs, strict=False):
            if o:
                env[o] = t

    def _execute(self, inputs: dict[str, ShapeTensor], what: str) -> dict[str, ShapeTensor]:
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
        sym_in = {i.name: ShapeTensor(tuple(Sym.of(1, {d: 1}) if isinstance(d, str) else d for d in i.dims), i.dtype)
                  for i in self.inputs}
        try:
            with recording_constraints() as constraints:
                env = self._execute(sym_in, "symbolic dims")
        except SymbolicUnsupported as exc:
            self.unsupported = str(exc)
            return
        self.symbolic = True
        self.constraints = tuple(constraints)
        self.float_tensors = frozenset(self._float_names(env))
        sig_index: dict[tuple[Dim, ...], int] = {}
        self._names: list[str] = []
        self._sig_of: list[int] = []
        self._const_shapes: dict[str, tuple[int, ...]] = {}
        for name, t in env.items():
            if all_int(t.shape):
                self._const_shapes[name] = tuple(int(d) for d in t.shape)
            else:
                self._names.append(name)
                self._sig_of.append(sig_index.setdefault(t.shape, len(sig_index)))
        self._sigs = list(sig_index)

    @staticmethod
    def _float_names(env: Mapping[str, ShapeTensor]) -> set[str]:
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

    def _concrete(self, seq_len: int, batch: int,
                  weight_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, ShapeTensor]:
        values = self._symbols(seq_len, batch, weight_shapes)
        inputs = {i.name: ShapeTensor(tuple(values[d] if isinstance(d, str) else d for d in i.dims), i.dtype)
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
