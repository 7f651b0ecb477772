"""A build's graph cut into per-layer stages at its off-ramps, each run as its own onnxruntime session.

A graph compiled from packs with off-ramps has outputs ``exit_logits_1 .. exit_logits_{L-1}`` beside ``logits``
(compiler/export.py). Stage ``i`` is every node that output ``i`` needs and no earlier output needed (stage 1: the
embeddings, layer 1 and off-ramp 1; stage ``L``: the last layer and the task head), found from the graph itself
(ancestor sets), so the cut is exact whatever the exporter named. A stage's inputs are the data inputs, pack
tensors and initializers it reads plus the activations earlier stages made; its outputs are its answer and the
activations later stages read. Running stages 1..k and stopping computes exactly what exiting at layer ``k``
needs, nothing of layers ``k+1..L``; :func:`stage_of_node` tells the cost model which stage each node is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from edgemti.errors import FormatError
from edgemti.runtime.session import DATA_INPUTS, session_options

EXIT_OUTPUT_PREFIX = "exit_logits_"
LOGITS = "logits"


@dataclass(frozen=True)
class Stage:
    """Layer ``layer``'s share of the graph: node indices, what it reads from outside, what it hands on."""

    layer: int
    answer: str  # the output this stage ends with (exit_logits_<layer>, or logits for the last)
    nodes: tuple[int, ...]
    inputs: tuple[str, ...]  # graph inputs (data, pack tensors) and earlier stages' activations it reads
    handoff: tuple[str, ...]  # activations it makes that later stages read


def exit_outputs(graph: onnx.ModelProto) -> list[str]:
    """The graph's answers in layer order: ``exit_logits_1 .. exit_logits_{L-1}, logits``; ``[]`` without exits."""
    names = [o.name for o in graph.graph.output]
    exits = sorted((n for n in names if n.startswith(EXIT_OUTPUT_PREFIX)), key=lambda n: int(n[len(EXIT_OUTPUT_PREFIX):]))
    if not exits:
        return []
    want = [f"{EXIT_OUTPUT_PREFIX}{i}" for i in range(1, len(exits) + 1)]
    if exits != want or LOGITS not in names:
        raise FormatError(f"graph.onnx: exit outputs {exits} are not exit_logits_1..{len(exits)} beside {LOGITS!r}: "
                          "recompile the build")
    return [*exits, LOGITS]


def partition(graph: onnx.ModelProto) -> list[Stage]:
    """The stages of ``graph`` (see the module docstring); a FormatError when it has no exit outputs."""
    answers = exit_outputs(graph)
    if not answers:
        raise FormatError("graph.onnx has no exit_logits_<i> outputs: the build was compiled from packs without "
                          "off-ramps, so it cannot exit early (train off-ramps and recompile)")
    nodes = graph.graph.node
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    owner: dict[int, int] = {}
    for k, ans in enumerate(answers, start=1):
        stack = [producer[ans]]
        while stack:
            i = stack.pop()
            if i in owner:
                continue
            owner[i] = k
            stack.extend(producer[t] for t in _reads(nodes[i]) if t in producer and producer[t] not in owner)
    made_in = {t: owner[i] for t, i in producer.items() if i in owner}
    stages = []
    for k, ans in enumerate(answers, start=1):
        members = tuple(i for i in range(len(nodes)) if owner.get(i) == k)
        reads = {t for i in members for t in _reads(nodes[i])}
        inputs = tuple(sorted(t for t in reads if made_in.get(t, 0) != k))
        later = {t for i, s in owner.items() if s > k for t in _reads(nodes[i])}
        handoff = tuple(sorted(t for t in later if made_in.get(t) == k))
        stages.append(Stage(k, ans, members, inputs, handoff))
    return stages


def _reads(node: onnx.NodeProto) -> list[str]:
    """Every tensor a node reads, its subgraphs' outer-scope reads included."""
    out = [t for t in node.input if t]
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            inner = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {i.name for i in g.initializer}
            out += [t for n in g.node for t in _reads(n) if t not in inner]
    return out


def stage_of_node(graph: onnx.ModelProto, stages: list[Stage]) -> dict[str, int]:
    """Node name -> its stage's layer (every node of the graph must have a unique non-empty name)."""
    names = [n.name for n in graph.graph.node]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise FormatError("graph.onnx: node names are not unique and non-empty; the per-layer cost cannot be "
                          "attributed: recompile the build")
    return {names[i]: s.layer for s in stages for i in s.nodes}


class StagedGraph:
    """One ORT session per stage over a graph with its backbone bound as initializers."""

    def __init__(self, bound: onnx.ModelProto, threads: int | None = None) -> None:
        self.stages = partition(bound)
        g = bound.graph
        inits = {i.name: i for i in g.initializer}
        graph_inputs = {i.name: i for i in g.input}
        typed = _value_types(bound)
        self.sessions: list[ort.InferenceSession] = []
        self.feeds: list[tuple[str, ...]] = []  # per stage: the names fed at run time (not initializers)
        for st in self.stages:
            ins, init = [], []
            for t in st.inputs:
                if t in inits:
                    init.append(inits[t])
                elif t in graph_inputs:
                    ins.append(graph_inputs[t])
                else:
                    ins.append(typed.get(t) or helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
            outs = [typed.get(t) or helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                    for t in (st.answer, *st.handoff)]
            sub = helper.make_graph([g.node[i] for i in st.nodes], f"stage{st.layer}", ins, outs, init)
            model = helper.make_model(sub, opset_imports=bound.opset_import, ir_version=bound.ir_version)
            try:
                sess = ort.InferenceSession(model.SerializeToString(), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own exception types
                raise FormatError(f"onnxruntime could not load stage {st.layer} of the graph: {exc}") from None
            self.sessions.append(sess)
            self.feeds.append(tuple(i.name for i in ins))

    @property
    def num_layers(self) -> int:
        return len(self.stages)

    def run(self, k: int, values: dict[str, np.ndarray], pack: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run stage ``k`` (1-based): reads data inputs and handed-on activations from ``values``, pack tensors
        from ``pack``; adds its hand-offs to ``values`` and returns its answer (logits ``[batch, labels]``)."""
        st = self.stages[k - 1]
        feeds = {n: (pack[n] if n not in values and n not in DATA_INPUTS else values[n]) for n in self.feeds[k - 1]}
        outs = self.sessions[k - 1].run([st.answer, *st.handoff], feeds)
        values.update(zip(st.handoff, outs[1:], strict=True))
        return outs[0]


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Element types (shapes where known) of the graph's tensors, by ONNX shape inference; those it cannot type
    get a FLOAT declaration without shape (every hand-off of a transformer layer is a float activation)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is best effort: ORT infers the rest at session build
        return {}
    out = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    for v in out.values():  # symbolic shapes would pin one request's dims: keep the type, drop the shape
        v.type.tensor_type.ClearField("shape")
    return out
