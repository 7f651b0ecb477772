"""``import_pack``: a PEFT LoRA or AdapterHub Houlsby adapter folder -> an edgemti task pack.

The folder's kind is read from its ``adapter_config.json`` (PEFT writes ``peft_type``; the ``adapters`` library
writes ``config`` + ``model_type``). Weights are read from safetensors; a pickled weight file (``*.bin``) is
refused unless ``allow_pickle``, and then loaded only through ``torch.load(weights_only=True)`` (tensors and
plain containers, no code). Everything is checked against the backbone before anything is written, and every
problem found (unsupported config values, unknown keys, missing tensors, wrong shapes, non-float dtypes, a base
model other than the backbone, a head of the wrong width) is listed in one :class:`FormatError`.

The pack's layer norms are the backbone's own (neither library changes them): a pack holds them because the
transformer's layer norms are task tensors in edgemti's partition. What cannot be checked: that the backbone's
*weights* are the ones the adapter was trained on (neither format records a hash); the base model's name is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgemti.compiler import import_adapterhub as hub
from edgemti.compiler import import_peft as peft
from edgemti.compiler.import_source import HubSource, fetch
from edgemti.errors import ConfigError, FormatError
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.model import AdapterModel, AdapterSpec
from edgemti.tasks.pack import TaskPack, sha256_file
from edgemti.tasks.pack_model import pack_from_model

log = logging.getLogger(__name__)
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # widened to float32 exactly
PEFT, ADAPTERHUB = "peft", "adapterhub"


class PickleRefusedError(FormatError):
    """A pickled weight file met without permission to load it."""


@dataclass(frozen=True)
class ImportConfig:
    """What to import and onto what: ``backbone`` defaults to the base model the adapter names.

    ``source`` is a local folder or a hub repository (:func:`edgemti.compiler.import_source.parse_source` reads
    the user's text); ``hub_cache`` is the hub cache folder a hub source is fetched into or found in offline
    (None: the hub library's own, ``HF_HUB_CACHE``)."""

    source: Path | HubSource
    backbone: str | None = None
    checkpoint: str | None = None
    task: str | None = None  # default: the source folder's name
    labels: tuple[str, ...] = ()  # default: the GLUE task's labels, or the head's label names
    allow_pickle: bool = False
    hub_cache: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, (Path, HubSource)):
            raise ConfigError(f"ImportConfig: source must be a Path or a HubSource, got {self.source!r}")
        if self.hub_cache is not None and not isinstance(self.hub_cache, Path):
            raise ConfigError(f"ImportConfig: hub_cache must be a Path or None, got {self.hub_cache!r}")
        if self.labels and (len(set(self.labels)) != len(self.labels) or len(self.labels) < 2):
            raise ConfigError(f"ImportConfig: labels must be >= 2 distinct names, got {list(self.labels)}")


@dataclass(frozen=True)
class ImportResult:
    pack: TaskPack
    library: str  # "peft" | "adapterhub"
    weights_file: str


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FormatError(f"{path}: no such file: an adapter folder has {path.name} (PEFT save_pretrained or "
                          "AdapterHub save_adapter writes it)")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    return data


def read_tensors(folder: Path, safetensors: tuple[str, ...], pickles: tuple[str, ...],
                 allow_pickle: bool) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of the first weight file present: safetensors first; a pickle only when allowed."""
    for name in safetensors:
        if (folder / name).is_file():
            from safetensors.torch import load_file

            try:
                return load_file(str(folder / name)), name
            except Exception as exc:  # safetensors raises its own error types
                raise FormatError(f"{folder / name}: unreadable safetensors file ({exc})") from None
    for name in pickles:
        if (folder / name).is_file():
            if not allow_pickle:
                raise PickleRefusedError(f"{folder / name}: refusing to unpickle it (a pickle file can run code when it is "
                                  "loaded): convert it to safetensors, or allow pickles explicitly (they are then "
                                  "loaded with torch.load(weights_only=True), tensors only)", options=("allow_pickle",))
            try:
                data = torch.load(folder / name, map_location="cpu", weights_only=True)
            except Exception as exc:  # UnpicklingError for anything but tensors and plain containers
                raise FormatError(f"{folder / name}: not a plain tensor dict under torch.load(weights_only=True) "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None
            if not isinstance(data, dict) or any(not isinstance(v, torch.Tensor) for v in data.values()):
                raise FormatError(f"{folder / name}: must hold a dict of tensors, got {type(data).__name__}")
            return data, name
    raise FormatError(f"{folder}: no weight file ({', '.join(safetensors + pickles)})")


def _dtype_problems(tensors: dict[str, torch.Tensor], problems: list[str]) -> None:
    for k, v in sorted(tensors.items()):
        if v.dtype not in FLOAT_DTYPES:
            problems.append(f"{k}: dtype {v.dtype} is not a float type ({', '.join(map(str, FLOAT_DTYPES))})")


def _base_problem(base: str | None, model: AdapterModel) -> str | None:
    """The adapter's recorded base model against the backbone's names (full name or last path component)."""
    if not base:
        return None
    info = model.info
    names = {info.name, str(info.hf_config.get("_name_or_path") or ""), info.source.split(":", 1)[-1]}
    tails = {Path(n).name.lower() for n in names if n} | {n.lower() for n in names if n}
    if base.lower() in tails or Path(base).name.lower() in tails:
        return None
    return (f"base model {base!r} (recorded by the adapter) is not the backbone {info.name!r} (source "
            f"{info.source}): import onto the backbone the adapter was trained on")


def import_pack(config: ImportConfig, out: str | Path) -> ImportResult:
    """Read, validate against the backbone and write the adapter ``config.source`` (a folder, or a hub repository
    fetched first) as a pack in ``out``."""
    from edgemti.tasks.backbones import build_model
    from edgemti.tasks.pack import save_pack

    hub_source = config.source if isinstance(config.source, HubSource) else None
    src = config.source if isinstance(config.source, Path) else fetch(config.source, config.allow_pickle,
                                                                       config.hub_cache)
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder: give a PEFT or AdapterHub adapter folder or a hub name")
    cfg = _json(src / peft.PEFT_CONFIG)
    problems: list[str] = []
    head_cfg: dict[str, Any] = {}
    head_weights: dict[str, torch.Tensor] = {}
    spec: AdapterSpec | LoraSpec | None
    if peft.is_peft(cfg):
        library = PEFT
        weights, wfile = read_tensors(src, peft.PEFT_SAFETENSORS, peft.PEFT_PICKLES, config.allow_pickle)
        spec, base = peft.peft_spec(cfg, problems), peft.peft_base_model(cfg)
    elif hub.is_adapterhub(cfg):
        library = ADAPTERHUB
        weights, wfile = read_tensors(src, hub.HUB_SAFETENSORS, hub.HUB_PICKLES, config.allow_pickle)
        head_cfg = _json(src / hub.HEAD_CONFIG)
        head_weights, _ = read_tensors(src, hub.HEAD_SAFETENSORS, hub.HEAD_PICKLES, config.allow_pickle)
        spec, base = hub.hub_spec(cfg, weights, problems), cfg.get("model_name")
    else:
        raise FormatError(f"{src / peft.PEFT_CONFIG}: neither a PEFT config (peft_type) nor an AdapterHub one "
                          "(config + model_type)")
    _dtype_problems({**weights, **head_weights}, problems)
    backbone = config.backbone or base
    if not backbone:
        problems.append("the adapter names no base model: give the backbone it was trained on")
    if spec is None or not backbone:
        raise FormatError(f"{src}: {len(problems)} problem(s): " + "; ".join(problems))

    if library == PEFT:
        head_rows = [v.shape[0] for k, v in weights.items() if k.endswith(".classifier.weight")]
    else:
        head_rows = [v.shape[0] for k, v in head_weights.items() if k.endswith(".1.weight")]
    num_labels = int(head_rows[0]) if head_rows else max(2, len(config.labels))
    model = build_model(str(backbone), num_labels=num_labels, adapter=spec, design="adapter",
                        checkpoint=config.checkpoint, pooling="pooler")
    if library == PEFT:
        names = peft.peft_names(sorted(weights), "bert" if model.info.family == "bert" else "albert", problems)
    else:
        names = hub.hub_names(sorted(weights), str(cfg.get("name")), problems)
        names.update(hub.head_names(head_cfg, sorted(head_weights), str(cfg.get("name")), problems))
        hidden = cfg.get("hidden_size")
        if hidden is not None and hidden != model.encoder.config.hidden_size:
            problems.append(f"{hub.HUB_CONFIG}: hidden_size {hidden} != the backbone's "
                            f"{model.encoder.config.hidden_size}")
    source = {**weights, **head_weights}
    params = dict(model.named_parameters())
    want = {n: tuple(params[n].shape) for n in model.task_names()}
    for key, name in sorted(names.items()):
        if name not in want:
            problems.append(f"{key} -> {name}: not a tensor of this backbone's {type(spec).__name__} model "
                            f"(targets {getattr(spec, 'target_modules', '-')})")
        elif tuple(source[key].shape) != want[name]:
            problems.append(f"{key}: shape {list(source[key].shape)}, the backbone's {name} needs {list(want[name])}")
    got = set(names.values())
    needed = [n for n in want if not _from_backbone(n) and n not in got]
    problems += [f"missing {n} (no key of the adapter maps to it)" for n in needed]
    base_problem = _base_problem(base, model)
    if base_problem:
        problems.append(base_problem)
    default_task = hub_source.repo_id.split("/")[1] if hub_source else src.name
    task, labels, is_regression, text_fields = _task(config, default_task, head_cfg, num_labels, problems)
    if problems:
        raise FormatError(f"{src}: {len(problems)} problem(s) importing the {library} adapter onto backbone "
                          f"{model.info.name}: " + "; ".join(problems))
    with torch.no_grad():
        for key, name in names.items():
            params[name].copy_(source[key].to(torch.float32))
    files = {wfile: sha256_file(src / wfile), peft.PEFT_CONFIG: sha256_file(src / peft.PEFT_CONFIG)}
    version = str(cfg.get("peft_version") or cfg.get("version") or "?")
    imported: dict[str, Any] = {"library": library, "version": version, "base_model": base, "files": files}
    if hub_source:  # the repository and the commit its snapshot resolved to (the snapshot folder's name)
        imported["hub"] = {"repo_id": hub_source.repo_id, "revision": hub_source.revision, "commit": src.name}
    pack = pack_from_model(model, task, labels, is_regression, text_fields=text_fields, imported=imported)
    save_pack(pack, out)
    log.info("imported %s adapter %s as pack %s (%d tensors)", library, src, out, len(pack.tensors))
    from edgemti.tasks.pack import load_pack

    return ImportResult(load_pack(out), library, wfile)


def _from_backbone(name: str) -> bool:
    """Task tensors neither library carries: the transformer's layer norms (an import keeps the backbone's)."""
    return not (".lora_" in name or ".adapters." in name or name.startswith("classifier."))


def _task(config: ImportConfig, default_task: str, head_cfg: dict[str, Any], num_labels: int,
          problems: list[str]) -> tuple[str, tuple[str, ...], bool, tuple[str, ...]]:
    """Task name, labels, regression flag and text fields: the GLUE registry's, else the config's / the head's."""
    from edgemti.errors import UnknownTaskError
    from edgemti.tasks.glue import get_task

    task = config.task or default_task
    try:
        spec = get_task(task)
        labels, fields = tuple(spec.labels), tuple(str(c) for c in spec.text_columns)
    except UnknownTaskError:
        labels, fields = tuple(config.labels) or (hub.hub_labels(head_cfg) or ()), ("text",)
        if not labels:
            problems.append(f"task {task!r} is not a GLUE task and no label names were given: name the labels")
            return task, (), False, fields
    if config.labels and tuple(config.labels) != labels:
        problems.append(f"labels {list(config.labels)} differ from task {task!r}'s {list(labels)}")
    if len(labels) != num_labels and not (not labels and num_labels == 1):
        problems.append(f"the head has {num_labels} outputs, task {task!r} has {len(labels) or 1} "
                        f"(labels {list(labels)})")
    return task, labels, not labels, fields
