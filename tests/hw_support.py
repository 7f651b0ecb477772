"""Shared fixtures of the hwmodel tests: a tiny exported graph and its ``Workload``, built directly.

The graph is exported by the compiler's exporter, as in a build: weightless, every parameter a named graph input.
The workload is written from the model's partition, so these tests depend on neither the compiler nor a manifest.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from edgemti.hwmodel import HwModel, load_spec
from edgemti.hwmodel.shapes import GraphShapes
from edgemti.hwmodel.workload import TaskWorkload, WeightInfo, Workload, precision_key
from edgemti.tasks.backbones import build_model

FIXED8 = ("fixed", 8)  # value format (kind, bits): Q3.5
FP32 = ("float", 32)


def tiny_graph(design: str = "adapter") -> bytes:
    """The build's graph.onnx for albert-tiny, exported by the compiler (dynamo, names 1:1, weightless).

    Exports take 5-15 s on a busy 2-core box, so they are cached in memory and on disk, keyed by the torch
    version and the sources that shape the graph.
    """
    return _tiny_graph(design)


@functools.lru_cache(maxsize=4)
def _tiny_graph(design: str) -> bytes:
    import edgemti.compiler.export as export_mod
    import edgemti.tasks.backbones as backbones_mod
    import edgemti.tasks.model as model_mod

    h = hashlib.sha256(f"{torch.__version__}|{design}".encode())
    for mod in (export_mod, backbones_mod, model_mod):
        h.update(Path(mod.__file__).read_bytes())
    cache = Path(tempfile.gettempdir()) / "edgemti-hw-test-graphs" / f"{h.hexdigest()[:24]}.onnx"
    if cache.is_file():
        return cache.read_bytes()
    data = _export(design)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(cache)
    return data


def _export(design: str) -> bytes:
    from edgemti.compiler.export import export_weightless

    torch.manual_seed(0)
    model = build_model("albert-tiny", 2, design=design)
    shapes = [{n: (nl, *s[1:]) if n.startswith("classifier.") else s for n, s in _task_shapes(model).items()}
              for nl in (3, 2)]
    return export_weightless(model, shapes).SerializeToString()


def _task_shapes(model) -> dict:
    task = set(model.task_names())
    return {n: tuple(p.shape) for n, p in model.named_parameters() if n in task}


@functools.lru_cache(maxsize=4)
def _partition(design: str, num_labels: int):
    torch.manual_seed(0)
    model = build_model("albert-tiny", num_labels, design=design)
    parts = model.partition()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return parts, shapes


def tiny_workload(design: str = "adapter", fmt: tuple[str, int] = FIXED8, density: float = 0.5,
                  tasks: tuple[str, ...] = ("mnli", "mrpc", "qnli"), labels: tuple[int, ...] = (3, 2, 2)) -> Workload:
    """The tiny graph's build as the hardware model sees it: backbone tensors with ``nnz = round(numel * density)``,
    image bytes as the compiler lays them out (values packed at ``bits``, one mask bit per element)."""
    parts, shapes = _partition(design, 2)
    kind, bits = fmt
    backbone, mlc, slc = [], 0, 0
    for name, part in parts.items():
        if part != "backbone":
            continue
        numel = math.prod(shapes[name])
        nnz = int(round(numel * density))
        backbone.append(WeightInfo(name, tuple(shapes[name]), nnz, bits, "rram"))
        mlc, slc = mlc + math.ceil(nnz * bits / 8), slc + math.ceil(numel / 8)
    packs, dram = [], 0
    for task, nl in zip(tasks, labels, strict=True):
        pt, length = [], 0
        for name, part in parts.items():
            if part != "task":
                continue
            shape = (nl, *shapes[name][1:]) if name.startswith("classifier.") else tuple(shapes[name])
            pt.append(WeightInfo(name, shape, math.prod(shape), bits, "sram"))
            length += math.ceil(math.prod(shape) * bits / 8)
        packs.append(TaskWorkload(task, length, tuple(pt)))
        dram += length
    return Workload(design=design, backbone=tuple(backbone), tasks=tuple(packs),
                    image_bytes={"rram_mlc": mlc, "rram_slc": slc, "dram": dram}, precision=precision_key(kind, bits),
                    value_bits=bits, activation_bits=bits, max_seq_len=32)


def tiny_hw(design: str = "adapter", fmt: tuple[str, int] = FIXED8, density: float = 0.5, spec=None) -> HwModel:
    graph = onnx.load_from_string(tiny_graph(design))
    return HwModel(tiny_workload(design, fmt, density), graph, spec or load_spec(design=design))


def ort_shapes(model: onnx.ModelProto, seq_len: int, data_inputs: tuple[str, ...],
               weight_shapes: dict[str, tuple[int, ...]], batch: int = 1) -> GraphShapes:
    """Concrete shape of every tensor from one onnxruntime run on zeros (ones for the data inputs)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(helper.ValueInfoProto(name=o))
                have.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (batch if k == 0 else seq_len) for k, d in enumerate(i.shape)]
        if i.name in weight_shapes:
            shape = list(weight_shapes[i.name])
        dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}.get(i.type, np.float32)
        feeds[i.name] = (np.ones if i.name in data_inputs else np.zeros)(shape, dtype=dtype)
    gs = GraphShapes()
    for o, v in zip(sess.get_outputs(), sess.run(None, feeds), strict=True):
        gs.shapes[o.name] = tuple(int(x) for x in np.shape(v))
        if np.issubdtype(np.asarray(v).dtype, np.floating):
            gs.float_tensors.add(o.name)
    for name, v in feeds.items():
        gs.shapes[name] = tuple(v.shape)
        if np.issubdtype(v.dtype, np.floating):
            gs.float_tensors.add(name)
    for init in model.graph.initializer:
        gs.shapes[init.name] = tuple(int(d) for d in init.dims)
        if init.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
            gs.float_tensors.add(init.name)
    return gs
