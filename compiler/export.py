"""ONNX export of an :class:`AdapterModel` with its parameters as named graph inputs.

The export path that keeps names 1:1 is ``torch.onnx.export(dynamo=True, optimize=False)``: every parameter
becomes one initializer named by its PyTorch name and ALBERT's shared layer is stored once. Both alternatives break
that (see tests/test_export_traps.py): the optimised dynamo export folds/renames weights (``val_12``...), and
the legacy TorchScript export de-duplicates equal-valued tensors (all-ones LayerNorm gammas, zero adapter biases
become one initializer). :func:`export_model` checks the 1:1 property and raises otherwise.

:func:`lift_inputs` then moves initializers to graph inputs without data: the task tensors for a multi-task graph
(:func:`export_multitask`), or every parameter for a build's weightless ``graph.onnx`` (:func:`export_weightless`).
Dimensions that differ between tasks (labels, adapter bottlenecks) become symbolic, so one graph serves all tasks.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping

import onnx
import torch

from edgemti.errors import FormatError
from edgemti.formats.graph import DATA_INPUTS

log = logging.getLogger(__name__)
OUTPUT = "logits"
EXIT_OUTPUT_PREFIX = "exit_logits_"  # exit_logits_<i>: off-ramp logits after layer i (1-based; runtime/early_exit.py)
NUM_LABELS_DIM = "num_labels"


def _example_inputs(batch: int = 2, seq: int = 8) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2:] = 0
    return ids, mask, torch.zeros(batch, seq, dtype=torch.long)


def export_model(model: torch.nn.Module, max_positions: int | None = None) -> onnx.ModelProto:
    """Dynamo export (no optimisation) with dynamic batch/sequence; every parameter an initializer of its name."""
    model = model.eval()
    if max_positions is None:
        max_positions = int(getattr(getattr(getattr(model, "encoder", None), "config", None),
                                    "max_position_embeddings", 512))
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=max_positions)
    dyn = {n: {0: batch, 1: seq} for n in DATA_INPUTS}
    from edgemti.tasks.model import AdapterModel

    exits = isinstance(model, AdapterModel) and model.off_ramps is not None and model.exit_outputs
    n_exits = len(model.off_ramps) if exits else 0  # type: ignore[arg-type]  # exits implies off_ramps
    outputs = [OUTPUT] + [f"{EXIT_OUTPUT_PREFIX}{i + 1}" for i in range(n_exits)]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(model, _example_inputs(), dynamo=True, optimize=False,
                                    input_names=list(DATA_INPUTS), output_names=outputs, dynamic_shapes=dyn,
                                    verbose=False)
    if program is None:  # only the legacy (dynamo=False) exporter returns None
        raise FormatError("torch.onnx.export(dynamo=True) returned no ONNX program; check the torch version")
    proto = program.model_proto
    check_names(proto, [n for n, _ in model.named_parameters()])
    return proto


def check_names(proto: onnx.ModelProto, param_names: Iterable[str]) -> None:
    """Raise unless every parameter is exactly one initializer of the same name (the 1:1 export property)."""
    inits = [i.name for i in proto.graph.initializer]
    missing = sorted(set(param_names) - set(inits))
    dup = sorted({n for n in inits if inits.count(n) > 1})
    if missing or dup:
        raise FormatError(f"ONNX export did not keep parameter names 1:1 ({len(missing)} parameters missing, e.g. "
                          f"{missing[:2]}; duplicates {dup[:2]}): export with dynamo=True, optimize=False")


def lift_inputs(proto: onnx.ModelProto, names: Iterable[str],
                varying: Mapping[str, Iterable[int]] | None = None) -> onnx.ModelProto:
    """A copy where the named initializers become graph inputs without data.

    ``varying[name]`` lists axes whose size differs between tasks: they become symbolic (``num_labels`` for the
    classifier's first axis, ``<name>:<axis>`` otherwise), and so does the logits' label axis.
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    names = list(names)
    varying = {k: set(v) for k, v in (varying or {}).items()}
    by_name = {i.name: i for i in g.initializer}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FormatError(f"cannot lift {missing[:3]}: not initializers of the exported graph")
    lifted = []
    for n in names:
        init = by_name[n]
        dims: list[int | str] = list(init.dims)
        for axis in varying.get(n, ()):
            dims[axis] = input_dim_name(n, axis)
        lifted.append(onnx.helper.make_tensor_value_info(n, init.data_type, dims))
    keep = [i for i in g.initializer if i.name not in set(names)]
    del g.initializer[:]
    g.initializer.extend(keep)
    g.input.extend(lifted)
    if any(n.startswith("classifier.") for n in varying):
        for o in g.output:
            if (o.name == OUTPUT or o.name.startswith(EXIT_OUTPUT_PREFIX)) and len(o.type.tensor_type.shape.dim) == 2:
                o.type.tensor_type.shape.dim[1].ClearField("dim_value")
                o.type.tensor_type.shape.dim[1].dim_param = NUM_LABELS_DIM
    del g.value_info[:]  # intermediate shapes may bake in one task's sizes; onnxruntime re-infers them
    for node in g.node:  # the exporter's per-node stack traces are 90 % of the file and say nothing at run time
        del node.metadata_props[:]
        node.doc_string = ""
    return out


_PAIRED = ((".lora_A.weight", 0, ".lora_rank"), (".lora_B.weight", 1, ".lora_rank"),
           (".down.weight", 0, ".bottleneck"), (".down.bias", 0, ".bottleneck"), (".up.weight", 1, ".bottleneck"))


def input_dim_name(name: str, axis: int) -> str:
    """A lifted input's symbolic dim: ``num_labels`` for the head; one name for the two sides of a LoRA pair's rank
    or a Houlsby adapter's bottleneck (so shape inference sees A's output feed B); ``<name>:<axis>`` otherwise."""
    if name.startswith("classifier."):
        return NUM_LABELS_DIM
    for suffix, ax, dim in _PAIRED:
        if name.endswith(suffix) and axis == ax:
            return name[: -len(suffix)] + dim
    return f"{name}:{axis}"


def varying_axes(shapes_per_task: Iterable[Mapping[str, tuple[int, ...]]]) -> dict[str, list[int]]:
    """Axes of each tensor whose size is not the same for every task (plus the classifier's label axis)."""
    seen: dict[str, list[tuple[int, ...]]] = {}
    for shapes in shapes_per_task:
        for n, s in shapes.items():
            seen.setdefault(n, []).append(tuple(s))
    out = {}
    for n, ss in seen.items():
        axes = [a for a in range(len(ss[0])) if len({s[a] for s in ss}) > 1]
        if n.startswith("classifier."):
            axes = sorted(set(axes) | {0})  # labels always symbolic: any task can be served
        if axes:
            out[n] = axes
    return out


def export_multitask(model, task_shapes: Iterable[Mapping[str, tuple[int, ...]]] = (),
                     proto: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """One graph for every task: backbone tensors stay initializers, task tensors are named inputs.

    ``proto``: an :func:`export_model` result of ``model`` to reuse (exports are slow)."""
    proto = proto if proto is not None else export_model(model)
    task_names = model.task_names()
    shapes = list(task_shapes) or [{n: tuple(p.shape) for n, p in model.named_parameters() if n in task_names}]
    return lift_inputs(proto, task_names, varying_axes(shapes))


def export_weightless(model, task_shapes: Iterable[Mapping[str, tuple[int, ...]]] = (),
                      proto: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """A build's ``graph.onnx``: every parameter a named input, no parameter data in the file."""
    proto = proto if proto is not None else export_model(model)
    params = [n for n, _ in model.named_parameters()]
    task_names = set(model.task_names())
    shapes = list(task_shapes) or [{n: tuple(p.shape) for n, p in model.named_parameters() if n in task_names}]
    return lift_inputs(proto, params, varying_axes(shapes))
