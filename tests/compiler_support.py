"""Shared, cached fixtures of the compiler/export tests: dynamo exports take 5-15 s each on a busy 2-core box,
so the tiny "trained" models are built once per session and their graph comes from the compiler's in-memory graph
cache (``compiler.compile.weightless_graph``), which the adapter build of test_compiler_build shares."""

from __future__ import annotations

import functools

import onnx
import torch

from edgemti.compiler.compile import weightless_graph
from edgemti.formats.graph import bind_initializers
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


def weightless() -> bytes:
    """The build graph (every parameter an input) of the tiny models' architecture and task shapes."""
    return weightless_graph(tiny_models()[0], [task_shapes(m) for m in tiny_models()])


def raw_export() -> onnx.ModelProto:
    """The first tiny model as the compiler's export path gives it (every parameter an initializer of its name):
    the weightless graph with all of the model's parameters bound back; a fresh copy."""
    model = tiny_models()[0]
    return bind_initializers(weightless(), {n: p.detach().numpy() for n, p in model.named_parameters()})


def task_shapes(model) -> dict:
    names = set(model.task_names())
    return {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
