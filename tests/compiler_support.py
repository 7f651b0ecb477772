"""Shared, cached fixtures of the compiler/export tests: dynamo exports take 5-15 s each on a busy 2-core box,
so the tiny "trained" models and their one raw export are built once per test session."""

from __future__ import annotations

import functools

import onnx
import torch

from edgemti.compiler.export import export_model
from edgemti.tasks.backbones import build_model
from edgemti.tasks.model import AdapterSpec

TASKS = (("mnli", ("entailment", "neutral", "contradiction"), False, AdapterSpec(16, 16), 1),
         ("mrpc", ("0", "1"), False, AdapterSpec(8, 24), 2),  # VASE: other bottleneck sizes
         ("stsb", (), True, AdapterSpec(16, 16), 3))


def trained(backbone: str, num_labels: int, adapter: AdapterSpec, seed: int):
    """A tiny model whose task tensors are all non-trivial (so a swapped or mis-named tensor shows)."""
    model = build_model(backbone, num_labels, adapter=adapter)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in model.task_names():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@functools.lru_cache(maxsize=1)
def tiny_models() -> tuple:
    return tuple(trained("albert-tiny", 1 if reg else len(labels), ad, seed) for _, labels, reg, ad, seed in TASKS)


@functools.lru_cache(maxsize=1)
def _raw_export() -> bytes:
    return export_model(tiny_models()[0]).SerializeToString()


def raw_export() -> onnx.ModelProto:
    """The first tiny model exported by the compiler's path (all parameters still initializers); a fresh copy."""
    return onnx.load_from_string(_raw_export())


def task_shapes(model) -> dict:
    names = set(model.task_names())
    return {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
