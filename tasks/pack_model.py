"""A task pack and its model: a pack made from a trained model (:func:`pack_from_model`, its backbone recorded
without this machine's paths) and a model rebuilt from a pack (:func:`apply_pack`, :func:`model_for_pack`, the
backbones proven the same tensors). The pack format itself (files, versions, checks) is :mod:`edgemti.tasks.pack`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemti.errors import BackboneMismatchError, ConfigError
from edgemti.tasks.backbones import build_model
from edgemti.tasks.model import AdapterModel
from edgemti.tasks.pack import TaskPack


def pack_from_model(model: AdapterModel, task: str, labels: list[str] | tuple[str, ...], is_regression: bool,
                    backbone_hash: str | None = None, **provenance: Any) -> TaskPack:
    """A :class:`TaskPack` holding ``model``'s task-specific tensors (``provenance``: metrics, train_config, ...).

    ``backbone_hash`` (default: ``model.backbone_hash()``) is the float backbone's hash; a model that holds a
    compressed backbone passes the float one it was decoded from (the pack applies to that backbone)."""
    info = model.info
    backbone = {"name": info.name, "family": info.family,
                "hash": backbone_hash if backbone_hash is not None else model.backbone_hash(),
                "hf_config": portable_hf_config(info.name, info.hf_config), "pooling": info.pooling,
                "pretrained": info.pretrained, "source": portable_source(info.name, info.source)}
    tensors = {n: t.cpu().float().numpy() for n, t in model.task_state().items()}
    return TaskPack(task=task, labels=tuple(labels), is_regression=is_regression, design=model.design,
                    adapter=model.adapter_spec, backbone=backbone, tensors=tensors, **provenance)


def portable_source(name: str, source: str) -> str:
    """Where a backbone's weights came from, without this machine's paths (a pack is copied between machines):
    ``preset:<name>`` for the presets (whose weights come from an installed package or a seed), ``hub:<name>`` and
    ``random-init(...)`` as they are, and only the last path component of a folder or config file."""
    from edgemti.tasks.backbones import PRESETS

    if source.startswith(("hub:", "random-init")):
        return source
    if name in PRESETS:
        return f"preset:{name}"
    kind, sep, rest = source.partition(":")
    if sep and kind == "config":
        return f"config:{Path(rest).name}"
    return f"folder:{Path(source).name}"


def portable_hf_config(name: str, hf_config: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face config without this machine's paths: ``_name_or_path`` (where transformers loaded it
    from) becomes the backbone's name when it is a local path."""
    where = hf_config.get("_name_or_path")
    if isinstance(where, str) and Path(where).is_absolute():
        return dict(hf_config, _name_or_path=name)
    return dict(hf_config)


def apply_pack(model: AdapterModel, pack: TaskPack) -> AdapterModel:
    """Load ``pack``'s tensors into ``model`` (in place; returns it). The backbones must be the same tensors."""
    here = model.backbone_hash()
    if here != pack.backbone["hash"]:
        raise BackboneMismatchError(
            f"pack '{pack.task}' was trained on backbone {pack.backbone['hash'][:8]} ({pack.backbone['name']}), "
            f"this model's backbone is {here[:8]} ({model.info.name}): retrain or use the matching backbone")
    if model.design != pack.design or model.adapter_spec != pack.adapter:
        raise ConfigError(f"pack '{pack.task}' is design {pack.design!r} with adapter {pack.adapter}, the model is "
                          f"{model.design!r} with {model.adapter_spec}: build the model with the pack's settings "
                          "(model_for_pack does)")
    params = dict(model.named_parameters())
    want = {n: tuple(params[n].shape) for n in model.task_names()}
    have = {n: tuple(a.shape) for n, a in pack.tensors.items()}
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:4]
        raise ConfigError(f"pack '{pack.task}' tensors do not fit the model's task-specific tensors (e.g. {diff}): "
                          f"num_labels {pack.num_labels} vs model {model.num_labels}?")
    with torch.no_grad():
        for name, a in pack.tensors.items():
            params[name].copy_(torch.from_numpy(np.array(a, dtype=np.float32)))
    return model


def model_for_pack(pack: TaskPack, checkpoint: str | None = None) -> AdapterModel:
    """Build the backbone named in ``pack`` (with its design/adapters/head, and off-ramps when it has them) and
    apply the pack, in eval mode."""
    model = build_model(pack.backbone["name"], num_labels=pack.num_labels, adapter=pack.adapter, design=pack.design,
                        checkpoint=checkpoint, pooling=pack.backbone.get("pooling"))
    if pack.off_ramps is not None:
        from edgemti.tasks.offramp_model import attach_off_ramps

        attach_off_ramps(model)
    return apply_pack(model, pack).eval()
