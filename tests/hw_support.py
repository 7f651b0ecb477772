"""Shared fixtures of the hwmodel tests: a tiny exported graph and a hand-written manifest (docs/FORMATS.md).

The graph is exported by the compiler's exporter, as in a build: weightless, every parameter a named graph input.
The manifest is written by hand from the model's partition, so these tests do not depend on the compiler.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from pathlib import Path

import onnx
import torch

from edgemti.tasks.backbones import build_model

FIXED8 = {"kind": "fixed", "int_bits": 3, "frac_bits": 5, "bits": 8}
FP32 = {"kind": "float", "bits": 32}


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


def tiny_manifest(design: str = "adapter", fmt: dict = FIXED8, density: float = 0.5,
                  tasks: tuple[str, ...] = ("mnli", "mrpc", "qnli"), labels: tuple[int, ...] = (3, 2, 2)) -> dict:
    """A manifest for the tiny graph: backbone tensors with ``nnz = round(numel * density)``."""
    parts, shapes = _partition(design, 2)
    bits = fmt["bits"]
    tensors, mlc, slc = [], 0, 0
    for name, part in parts.items():
        if part != "backbone":
            continue
        numel = math.prod(shapes[name])
        nnz = int(round(numel * density))
        vlen, mlen = math.ceil(nnz * bits / 8), math.ceil(numel / 8)
        tensors.append({"name": name, "shape": list(shapes[name]), "numel": numel, "nnz": nnz, "format": fmt,
                        "group": "embedding" if "embeddings" in name else "transformer",
                        "values": {"image": "rram_mlc", "offset": mlc, "length": vlen},
                        "mask": {"image": "rram_slc", "offset": slc, "length": mlen}})
        mlc, slc = mlc + vlen, slc + mlen
    packs, off = [], 0
    for task, nl in zip(tasks, labels, strict=True):
        pt, poff = [], 0
        for name, part in parts.items():
            if part != "task":
                continue
            shape = list(shapes[name])
            if name.startswith("classifier."):
                shape[0] = nl
            numel = math.prod(shape)
            length = math.ceil(numel * bits / 8)
            pt.append({"name": name, "shape": shape, "numel": numel, "format": fmt, "offset": poff, "length": length})
            poff += length
        packs.append({"task": task, "labels": [str(i) for i in range(nl)], "is_regression": False,
                      "image": "dram", "offset": off, "length": poff, "tensors": pt})
        off += poff
    return {
        "format": "edgemti-build", "format_version": 1, "design": design, "synthetic": True,
        "compile": {"quant": "q3.5" if fmt["kind"] == "fixed" else "fp32", "value_format": fmt,
                    "activation_bits": bits, "max_seq_len": 32},
        "graph": {"file": "graph.onnx", "data_inputs": ["input_ids", "attention_mask", "token_type_ids"],
                  "output": "logits"},
        "images": {"rram_mlc": {"size_bytes": mlc}, "rram_slc": {"size_bytes": slc}, "dram": {"size_bytes": off}},
        "tensors": tensors, "packs": packs,
    }


def tiny_hw(design: str = "adapter", fmt: dict = FIXED8, density: float = 0.5, spec=None):
    from edgemti.hwmodel import HwModel

    graph = onnx.load_from_string(tiny_graph(design))
    return HwModel.from_build(tiny_manifest(design, fmt, density), graph, spec)
