"""The tasks that go into a build: trained task packs (``--pack``) or synthetic right-shaped ones.

Every pack pins the backbone it was trained on (``backbone.hash``); a pack for another backbone, another design
or another adapter structure (per-depth, activation) is refused with the numbers that differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from edgemti.compiler.config import CompileConfig
from edgemti.errors import BackboneMismatchError, ConfigError
from edgemti.tasks.lora import LoraSpec, adapter_structure
from edgemti.tasks.model import AdapterModel, AdapterSpec
from edgemti.tasks.served import TrainedOn

SYNTHETIC_SEED = 1234


@dataclass(frozen=True)
class TaskTensors:
    """One task's dense float32 tensors and what the manifest records about them."""

    task: str
    labels: tuple[str, ...]
    is_regression: bool
    adapter: AdapterSpec | LoraSpec | None
    backbone_hash: str
    synthetic: bool
    tensors: dict[str, np.ndarray]
    metrics: dict = field(default_factory=dict)
    text_fields: tuple[str, ...] = ("text",)
    trained_on: TrainedOn | None = None  # the compressed backbone the pack was trained on; None: float-trained
    exit: dict | None = None  # the pack's early-exit policy (ExitPolicy.to_dict()), carried into the manifest

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(a.shape) for n, a in self.tensors.items()}


def _structure(adapter: AdapterSpec | LoraSpec | None) -> tuple:
    return adapter_structure(adapter.to_dict() if adapter is not None else None)


def load_tasks(config: CompileConfig) -> tuple[AdapterModel, list[TaskTensors]]:
    """The float model (backbone + first task applied) and every task's tensors, all checked to belong together."""
    if config.synthetic:
        return synthetic_tasks_tensors(config)
    from edgemti.tasks.backbones import build_model
    from edgemti.tasks.pack import load_pack
    from edgemti.tasks.pack_model import apply_pack

    packs = [load_pack(p) for p in config.packs]
    names = [p.task for p in packs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two packs for the same task in {names}: give one pack per task")
    first = packs[0]
    for p in packs:
        if p.design != config.design:
            raise ConfigError(f"pack '{p.task}' ({p.path}) is design {p.design!r} but the compile is design "
                              f"{config.design!r}: compile design {p.design!r} or use {config.design} packs",
                              options=("design",))
        if p.backbone["hash"] != first.backbone["hash"]:
            raise BackboneMismatchError(
                f"packs of different backbones: '{first.task}' pins {first.backbone['hash'][:12]} "
                f"({first.backbone['name']}), '{p.task}' pins {p.backbone['hash'][:12]} ({p.backbone['name']}): "
                "compile packs trained on one backbone together")
        if (p.off_ramps is None) != (first.off_ramps is None):
            raise ConfigError(f"pack '{p.task}' {'has' if p.off_ramps else 'has no'} off-ramps, '{first.task}' "
                              f"{'has' if first.off_ramps else 'has no'}: one graph needs one structure; train "
                              "off-ramps for every pack of the build or for none")
        if _structure(p.adapter) != _structure(first.adapter):
            raise ConfigError(f"pack '{p.task}' adapters are {_structure(p.adapter)} (kind and per-depth, activation "
                              f"or LoRA targets, scaling), '{first.task}' has {_structure(first.adapter)}: one graph "
                              "needs one adapter structure")
    model = build_model(config.backbone, num_labels=first.num_labels, adapter=first.adapter, design=config.design,
                        checkpoint=config.checkpoint, pooling=first.backbone.get("pooling"))
    here = model.backbone_hash()
    if here != first.backbone["hash"]:
        raise BackboneMismatchError(
            f"pack '{first.task}' was trained on backbone {first.backbone['hash'][:12]} ({first.backbone['name']}), "
            f"backbone {config.backbone!r} is {here[:12]}: give the pack's backbone (and checkpoint) or retrain",
            options=("backbone", "checkpoint"))
    if first.off_ramps is not None:  # the graph exports every off-ramp's logits (runtime/early_exit.py)
        from edgemti.tasks.offramp import attach_off_ramps

        attach_off_ramps(model).exit_outputs = True
    apply_pack(model, first)
    tasks = [TaskTensors(p.task, tuple(p.labels), p.is_regression, p.adapter, p.backbone["hash"], False,
                         {n: np.asarray(a, dtype=np.float32) for n, a in p.tensors.items()}, dict(p.metrics),
                         pack_text_fields(p), p.trained_on, p.exit.to_dict() if p.exit is not None else None)
             for p in packs]
    return model, tasks


def check_trained_on(task: str, trained_on: TrainedOn | None, image_hash: str, pack_format: str, where: str) -> None:
    """A pack trained on a compressed backbone goes only into a build whose backbone image is that one, with the
    pack format it was quantized at in training (a float-trained pack, ``trained_on`` None, goes anywhere)."""
    if trained_on is None:
        return
    if trained_on.image_hash != image_hash:
        raise BackboneMismatchError(
            f"pack '{task}' was trained on backbone image {trained_on.image_hash} ({trained_on.describe()}), "
            f"{where} holds backbone image {image_hash}: compile with the pack's compression settings or retrain "
            "the pack on this build")
    if trained_on.pack_format != pack_format:
        raise ConfigError(f"pack '{task}' was trained with its tensors quantized at {trained_on.pack_format}, "
                          f"{where} stores packs at {pack_format}: use the pack format it was trained at or retrain")


def _task_labels(name: str) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    from edgemti.tasks.glue import get_task

    spec = get_task(name)
    return tuple(spec.labels), spec.is_regression, _request_fields(len(spec.text_columns))


def _request_fields(n_texts: int) -> tuple[str, ...]:
    """The serving request fields of a task with ``n_texts`` input texts (exactly 1: single sentence, 2: pair)."""
    if n_texts not in (1, 2):
        raise ConfigError(f"a task reads 1 text (single sentence) or 2 (a pair), got {n_texts}: a request has "
                          "'text' and, for pair tasks, 'text_pair'")
    return ("text", "text_pair") if n_texts == 2 else ("text",)


def pack_text_fields(pack) -> tuple[str, ...]:
    if pack.text_fields:
        return _request_fields(len(pack.text_fields))
    return _task_labels(pack.task)[2]  # packs without text_fields: the registry's task of that name


def synthetic_tasks_tensors(config: CompileConfig) -> tuple[AdapterModel, list[TaskTensors]]:
    """Untrained packs: adapters at their identity init, seeded random classifiers of the task's label count."""
    from edgemti.tasks.backbones import build_model

    adapter = AdapterSpec.parse(config.synthetic_adapter) if config.design == "adapter" else None
    specs = [(t, *_task_labels(t)) for t in config.synthetic_tasks]
    first_labels = 1 if specs[0][2] else len(specs[0][1])
    model = build_model(config.backbone, num_labels=first_labels, adapter=adapter, design=config.design,
                        checkpoint=config.checkpoint)
    base = {n: t.numpy().astype(np.float32) for n, t in model.task_state().items()}
    bhash = model.backbone_hash()
    hidden = model.encoder.config.hidden_size
    tasks = []
    for i, (name, labels, is_reg, fields) in enumerate(specs):
        g = np.random.default_rng(SYNTHETIC_SEED + i)
        n_out = 1 if is_reg else len(labels)
        tensors = {k: v.copy() for k, v in base.items()}
        tensors["classifier.weight"] = (g.standard_normal((n_out, hidden)) * 0.02).astype(np.float32)
        tensors["classifier.bias"] = np.zeros(n_out, dtype=np.float32)
        tasks.append(TaskTensors(name, labels, is_reg, adapter, bhash, True, tensors, text_fields=fields))
    with torch.no_grad():  # the model carries the first task, like a loaded pack would
        params = dict(model.named_parameters())
        for n, a in tasks[0].tensors.items():
            params[n].copy_(torch.from_numpy(a))
    return model, tasks
