"""Shared fixtures of the hwmodel tests: a tiny exported graph and a hand-written manifest (docs/FORMATS.md).

The graph is exported the way the build format wants it: weightless, every parameter a named graph input.
The manifest is written by hand from the model's partition, so these tests do not depend on the compiler.
"""

from __future__ import annotations

import functools
import math

import onnx
import pytest
import torch

from edgemti.tasks.backbones import build_model

FIXED8 = {"kind": "fixed", "int_bits": 3, "frac_bits": 5, "bits": 8}
FP32 = {"kind": "float", "bits": 32}


@functools.lru_cache(maxsize=4)
def tiny_graph(design: str = "adapter", num_labels: int = 2) -> bytes:
    torch.manual_seed(0)
    model = build_model("albert-tiny", num_labels, design=design)
    t = 8
    ids = torch.ones(1, t, dtype=torch.long)
    import io

    buf = io.BytesIO()
    torch.onnx.export(
        model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), buf,
        input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
        dynamic_axes={k: {1: "seq"} for k in ("input_ids", "attention_mask", "token_type_ids")},
        dynamo=False, export_params=False, do_constant_folding=False, opset_version=17,
    )
    return buf.getvalue()


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


def test_fixture_manifest_is_consistent():
    m = tiny_manifest()
    assert m["images"]["rram_slc"]["size_bytes"] == sum(math.ceil(t["numel"] / 8) for t in m["tensors"])
    names = {i.name for i in onnx.load_from_string(tiny_graph()).graph.input}
    assert all(t["name"] in names for t in m["tensors"])
    # every pack tensor is a graph input too (classifier shapes differ per task; the graph has 2 labels)
    assert all(t["name"] in names for p in m["packs"] for t in p["tensors"])


@pytest.fixture(scope="module")
def hw():
    return tiny_hw()
