"""Task packs: the task-specific tensors of one trained task, plus what is needed to use them again.

A pack is a folder::

    pack.json          format "edgemti-pack", format_version 4 (1, 2 and 3 still read; see docs/TASKS.md)
    pack.safetensors   the task-specific tensors, float32, names = the model's PyTorch parameter names

``pack.json`` records the backbone the pack was trained on (its ``tensors_hash``), so a pack is never applied to
another backbone, and the sha256 of ``pack.safetensors``, so a corrupt file is rejected before it is read.
A pack trained on a compressed backbone (format 2) also records ``trained_on`` (:class:`TrainedOn`: the backbone
image hash, formats and sparsities); a float-trained pack has ``trained_on: null``. Format 1 packs (no
``trained_on``) load as float-trained packs.
The compiler reads packs with :func:`load_pack`; :mod:`edgemti.tasks.pack_model` makes a pack from a model and
rebuilds the model from a pack.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from edgemti import __version__
from edgemti.errors import ConfigError, FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.tasks.lora import LoraSpec, is_lora, lora_problems
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.served import TrainedOn

PACK_FORMAT = "edgemti-pack"
PACK_FORMAT_VERSION = 4  # 4: off_ramps, exit (early exit, docs/EARLY_EXIT.md)
READABLE_VERSIONS = (1, 2, 3, 4)  # 1: before trained_on (read as trained_on = None); 3: LoRA packs, imported;
# 1-3: no off-ramps
RAMP_PREFIX = "off_ramps."
PACK_JSON = "pack.json"
PACK_TENSORS = "pack.safetensors"
_BACKBONE_KEYS = ("name", "family", "hash", "hf_config", "pooling", "pretrained")
_REQUIRED = ("format", "format_version", "task", "labels", "is_regression", "design", "adapter", "backbone",
             "tensors_file", "tensors_sha256", "tensors")


@dataclass(frozen=True)
class TaskPack:
    """One task's trained task-specific tensors and their provenance.

    ``tensors`` maps PyTorch parameter names to float32 arrays; ``backbone`` holds ``name``, ``family``, ``hash``
    (``AdapterModel.backbone_hash()`` of the model it was trained with), ``hf_config``, ``pooling`` and
    ``pretrained``. ``labels`` is empty for a regression task (one output).
    """

    task: str
    labels: tuple[str, ...]
    is_regression: bool
    design: str
    adapter: AdapterSpec | LoraSpec | None
    backbone: dict[str, Any]
    tensors: dict[str, np.ndarray]
    text_fields: tuple[str, ...] = ()
    max_seq_len: int = 128
    metrics: dict[str, float] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    train_time_s: float | None = None
    frozen_check: dict[str, Any] = field(default_factory=dict)
    trained_on: TrainedOn | None = None  # None: trained on the float backbone
    imported: dict[str, Any] = field(default_factory=dict)  # v2: where an imported pack came from (else empty)
    edgemti_version: str = __version__
    path: Path | None = None
    off_ramps: dict[str, Any] | None = None  # num_layers, pooling, train (tasks/offramp.py); None: no early exit
    exit: ExitPolicy | None = None  # threshold + exit predictor (edgemti calibrate-exit); needs off_ramps

    def __post_init__(self) -> None:
        if not self.task:
            raise ConfigError("TaskPack: task must be a non-empty name")
        if self.design not in ("adapter", "vanilla"):
            raise ConfigError(f"TaskPack: design must be 'adapter' or 'vanilla', got {self.design!r}")
        if self.is_regression == bool(self.labels):
            raise ConfigError(f"TaskPack: a regression pack has no labels and a classification pack has >= 2, got "
                              f"is_regression={self.is_regression}, labels={list(self.labels)}")
        if not self.is_regression and len(self.labels) < 2:
            raise ConfigError(f"TaskPack: a classification pack needs >= 2 labels, got {list(self.labels)}")
        if (self.design == "adapter") != (self.adapter is not None):
            raise ConfigError(f"TaskPack: design {self.design!r} needs adapter "
                              f"{'set' if self.design == 'adapter' else 'None'}, got {self.adapter!r}")
        missing = [k for k in _BACKBONE_KEYS if k not in self.backbone]
        if missing:
            raise ConfigError(f"TaskPack: backbone is missing {missing}")
        if not self.tensors:
            raise ConfigError("TaskPack: tensors must not be empty")
        for name, a in self.tensors.items():
            if not isinstance(a, np.ndarray) or a.dtype != np.float32:
                raise ConfigError(f"TaskPack: tensor {name!r} must be a float32 numpy array, got "
                                  f"{type(a).__name__} {getattr(a, 'dtype', '')}")
        ramps = sorted(n for n in self.tensors if n.startswith(RAMP_PREFIX))
        if self.off_ramps is None:
            if ramps or self.exit is not None:
                raise ConfigError(f"TaskPack: off_ramps is None but the pack has off-ramp tensors {ramps[:2]} or an "
                                  "exit policy")
            return
        layers = self.off_ramps.get("num_layers")
        if not isinstance(layers, int) or isinstance(layers, bool) or layers < 2:
            raise ConfigError(f"TaskPack: off_ramps.num_layers must be an int >= 2, got {layers!r}")
        want = sorted(f"{RAMP_PREFIX}{i}.{m}.{w}" for i in range(layers - 1) for m in ("dense", "classifier")
                      for w in ("weight", "bias"))
        if ramps != want:
            raise ConfigError(f"TaskPack: off-ramp tensors {ramps[:4]}... do not match off_ramps.num_layers "
                              f"{layers} (want {want[:4]}...)")
        if self.exit is not None and self.exit.num_layers != layers:
            raise ConfigError(f"TaskPack: exit.num_layers {self.exit.num_layers} != off_ramps.num_layers {layers}")

    @property
    def num_labels(self) -> int:
        """Width of the classifier output (1 for regression)."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def num_params(self) -> int:
        return int(sum(a.size for a in self.tensors.values()))

    @property
    def size_bytes(self) -> int:
        """Bytes of the tensors stored dense in float32."""
        return int(sum(a.nbytes for a in self.tensors.values()))

    def to_json(self, tensors_sha256: str) -> dict[str, Any]:
        return {
            "format": PACK_FORMAT,
            "format_version": PACK_FORMAT_VERSION,
            "edgemti_version": self.edgemti_version,
            "task": self.task,
            "labels": list(self.labels),
            "is_regression": self.is_regression,
            "text_fields": list(self.text_fields),
            "max_seq_len": self.max_seq_len,
            "design": self.design,
            "adapter": self.adapter.to_dict() if self.adapter is not None else None,
            "backbone": self.backbone,
            "tensors_file": PACK_TENSORS,
            "tensors_sha256": tensors_sha256,
            "num_params": self.num_params,
            "tensors": [{"name": n, "shape": list(a.shape), "numel": int(a.size)}
                        for n, a in sorted(self.tensors.items())],
            "metrics": self.metrics,
            "frozen_check": self.frozen_check,
            "trained_on": self.trained_on.to_dict() if self.trained_on is not None else None,
            "train_config": self.train_config,
            "train_time_s": self.train_time_s,
            "imported": self.imported,
            "off_ramps": self.off_ramps,
            "exit": self.exit.to_dict() if self.exit is not None else None,
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    return _sha256(path)


def save_pack(pack: TaskPack, out_dir: str | Path) -> Path:
    """Write ``pack.safetensors`` then ``pack.json`` (which carries the safetensors checksum) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in pack.tensors.items()}
    save_file(tensors, str(out / PACK_TENSORS), metadata={"format": PACK_FORMAT, "task": pack.task})
    meta = pack.to_json(_sha256(out / PACK_TENSORS))
    (out / PACK_JSON).write_text(json.dumps(meta, indent=2, sort_keys=False, default=str) + "\n")
    return out


def load_pack(path: str | Path) -> TaskPack:
    """Read and verify a pack folder (or its ``pack.json``); every problem is a :class:`FormatError`."""
    p = Path(path)
    folder = p.parent if p.name == PACK_JSON else p
    jpath = folder / PACK_JSON
    if not jpath.is_file():
        raise FormatError(f"{jpath}: no such file: a task pack is a folder with {PACK_JSON} and {PACK_TENSORS} "
                          "(make one with `edgemti train`)")
    try:
        meta = json.loads(jpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{jpath}: not valid JSON ({exc}): the pack is corrupt, retrain or re-copy it") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise FormatError(f"{jpath}: format is {got!r}, expected {PACK_FORMAT!r}: not a task pack")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(f"{jpath}: format_version {version!r} is not supported (this edgemti {__version__} reads "
                          f"versions {list(READABLE_VERSIONS)}): retrain the pack or upgrade edgemti")
    missing = [k for k in _REQUIRED + (("trained_on",) if version >= 2 else ()) if k not in meta]
    if missing:
        raise FormatError(f"{jpath}: missing keys {missing}: the pack is corrupt or truncated")
    problems = pack_problems(meta)
    if problems:
        raise FormatError(f"{jpath}: {len(problems)} problem(s): " + "; ".join(problems[:30])
                          + ": the pack is corrupt or was edited, retrain or re-copy it")
    tpath = folder / meta["tensors_file"]
    if folder.resolve() not in tpath.resolve().parents:
        raise FormatError(f"{tpath}: resolves to {tpath.resolve()}, outside the pack folder {folder.resolve()} "
                          "(a symlink out): refusing to read it")
    if not tpath.is_file():
        raise FormatError(f"{tpath}: no such file (named by {jpath}): the pack is incomplete, re-copy it")
    digest = _sha256(tpath)
    if digest != meta["tensors_sha256"]:
        raise FormatError(f"{tpath}: sha256 {digest[:12]}... does not match {meta['tensors_sha256'][:12]}... in "
                          f"{PACK_JSON}: the tensor file is corrupt, re-copy or retrain the pack")
    try:
        raw = load_file(str(tpath))
    except Exception as exc:  # safetensors raises its own error types
        raise FormatError(f"{tpath}: unreadable safetensors file ({exc})") from None
    listed = {t["name"]: tuple(t["shape"]) for t in meta["tensors"]}  # checked by pack_problems
    got = {n: tuple(a.shape) for n, a in raw.items()}
    if listed != got:
        diff = sorted(set(listed.items()) ^ set(got.items()))[:4]
        raise FormatError(f"{tpath}: tensors differ from the list in {PACK_JSON} (e.g. {diff}): the pack is corrupt")
    try:
        adapter = adapter_spec(meta["adapter"])
        trained_on = TrainedOn.from_dict(meta["trained_on"]) if meta.get("trained_on") is not None else None
        return TaskPack(
            task=str(meta["task"]), labels=tuple(str(x) for x in meta["labels"]),
            is_regression=bool(meta["is_regression"]), design=str(meta["design"]), adapter=adapter,
            backbone=dict(meta["backbone"]), tensors={n: a.astype(np.float32, copy=False) for n, a in raw.items()},
            text_fields=tuple(meta.get("text_fields", ())), max_seq_len=int(meta.get("max_seq_len", 128)),
            metrics=dict(meta.get("metrics") or {}), train_config=dict(meta.get("train_config") or {}),
            train_time_s=meta.get("train_time_s"), frozen_check=dict(meta.get("frozen_check") or {}),
            imported=dict(meta.get("imported") or {}),
            trained_on=trained_on, edgemti_version=str(meta.get("edgemti_version", "?")), path=folder,
            off_ramps=dict(meta["off_ramps"]) if meta.get("off_ramps") is not None else None,
            exit=ExitPolicy.from_dict(meta["exit"]) if meta.get("exit") is not None else None,
        )
    except (ConfigError, TypeError) as exc:
        raise FormatError(f"{jpath}: invalid pack description: {exc}") from None


MAX_SEQ_LEN = 1 << 16  # tokens; no model of this project has positions anywhere near this
MAX_BOTTLENECK_PER_HIDDEN = 4  # an adapter bottleneck wider than 4x the hidden size is not a bottleneck
MAX_BOTTLENECK = 1 << 16  # when the backbone's hidden size is not recorded


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def pack_problems(meta: dict[str, Any]) -> list[str]:
    """Every problem of a ``pack.json`` object, by field (types, ranges, paths, sizes); empty when it is valid."""
    problems = []

    def bad(field: str, why: str) -> None:
        problems.append(f"{field} {why}, got {_short(meta.get(field))}")

    if not isinstance(meta["task"], str) or not meta["task"]:
        bad("task", "must be a non-empty string")
    labels = meta["labels"]
    if not isinstance(labels, list) or any(not isinstance(x, str) or not x for x in labels) \
            or len(set(labels)) != len(labels):
        bad("labels", "must be a list of distinct non-empty strings")
    if not isinstance(meta["is_regression"], bool):
        bad("is_regression", "must be true or false")
    if meta["design"] not in ("adapter", "vanilla"):
        bad("design", "must be 'adapter' or 'vanilla'")
    backbone = meta["backbone"]
    if not isinstance(backbone, dict) or any(k not in backbone for k in _BACKBONE_KEYS):
        bad("backbone", f"must be an object with {list(_BACKBONE_KEYS)}")
        backbone = {}
    elif not isinstance(backbone["hash"], str) or not isinstance(backbone["hf_config"], dict):
        bad("backbone", "must hold a string hash and an hf_config object")
    hidden = (backbone.get("hf_config") or {}).get("hidden_size") if isinstance(backbone, dict) else None
    limit = MAX_BOTTLENECK
    if isinstance(hidden, int) and not isinstance(hidden, bool) and hidden > 0:
        limit = MAX_BOTTLENECK_PER_HIDDEN * hidden
    adapter = meta["adapter"]
    if is_lora(adapter):
        problems += lora_problems(adapter)
        if meta.get("format_version") in (1, 2):
            problems.append(f"adapter is a LoRA object, which pack format_version {meta.get('format_version')} does "
                            "not have (LoRA packs are version 3)")
    elif adapter is not None:
        keys = ("attn_bottleneck", "ffn_bottleneck", "per_depth", "activation")
        if not isinstance(adapter, dict) or set(adapter) - set(keys):
            bad("adapter", f"must be null or an object with keys {list(keys)}")
        else:
            for k in ("attn_bottleneck", "ffn_bottleneck"):
                v = adapter.get(k)
                if v is not None and (not _is_int(v) or not 1 <= v <= limit):
                    problems.append(f"adapter.{k} must be an int in [1, {limit}] ({MAX_BOTTLENECK_PER_HIDDEN} x the "
                                    f"hidden size), got {_short(v)}")
            if "per_depth" in adapter and not isinstance(adapter["per_depth"], bool):
                problems.append(f"adapter.per_depth must be true or false, got {_short(adapter['per_depth'])}")
    rel = meta["tensors_file"]
    if not isinstance(rel, str) or not rel or rel.startswith(("/", "\\")) or ":" in rel or "\\" in rel \
            or ".." in rel.split("/") or "\x00" in rel:
        bad("tensors_file", "must be a file name inside the pack folder")
    if not isinstance(meta["tensors_sha256"], str) or len(meta["tensors_sha256"]) != 64:
        bad("tensors_sha256", "must be a sha256 (64 hex digits)")
    if not isinstance(meta["tensors"], list) or not meta["tensors"]:
        bad("tensors", "must be a non-empty list of {name, shape, numel}")
    else:
        names = []
        for i, t in enumerate(meta["tensors"]):
            shape = t.get("shape") if isinstance(t, dict) else None
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
                problems.append(f"tensors[{i}] must be an object with a name, got {_short(t)}")
                continue
            names.append(t["name"])
            if not isinstance(shape, list) or any(not _is_int(x) or not 0 <= x < (1 << 31) for x in shape):
                problems.append(f"tensors[{i}] ({t['name']}): shape must be a list of integers >= 0, got "
                                f"{_short(shape)}")
            elif "numel" in t and t["numel"] != int(np.prod(shape, dtype=np.int64)):
                problems.append(f"tensors[{i}] ({t['name']}): numel {_short(t['numel'])} != prod(shape {shape})")
        if len(set(names)) != len(names):
            problems.append("tensors: duplicate names")
    fields = meta.get("text_fields", [])
    if not isinstance(fields, list) or len(fields) > 2 or any(not isinstance(x, str) or not x for x in fields):
        bad("text_fields", "must be the task's 1 (single sentence) or 2 (sentence pair) input column names")
    v = meta.get("max_seq_len", 128)
    if not _is_int(v) or not 1 <= v <= MAX_SEQ_LEN:
        bad("max_seq_len", f"must be an int in [1, {MAX_SEQ_LEN}]")
    for k in ("metrics", "train_config", "frozen_check", "trained_on", "imported"):
        if meta.get(k) is not None and not isinstance(meta[k], dict):
            bad(k, "must be an object")
    t = meta.get("train_time_s")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool)):
        bad("train_time_s", "must be a number or null")
    if meta["format_version"] < 4 and ("off_ramps" in meta or "exit" in meta):
        problems.append(f"off_ramps/exit need format_version 4, the file says {meta['format_version']}")
    if meta["format_version"] >= 4 and ("off_ramps" not in meta or "exit" not in meta):
        problems.append("format_version 4 needs the keys off_ramps and exit (null when the pack has no early exit)")
    ramps = meta.get("off_ramps")
    if ramps is not None and (not isinstance(ramps, dict) or set(ramps) - {"num_layers", "pooling", "train"}):
        bad("off_ramps", "must be null or an object with num_layers, pooling, train")
    if meta.get("exit") is not None and ramps is None:
        bad("exit", "needs off_ramps (an exit policy without off-ramps has nothing to exit through)")
    return problems


def adapter_spec(adapter: dict[str, Any] | None) -> AdapterSpec | LoraSpec | None:
    """The typed spec of a stored adapter object: ``None`` (vanilla), LoRA (``kind: "lora"``) or Houlsby."""
    if adapter is None:
        return None
    return LoraSpec.from_dict(adapter) if is_lora(adapter) else AdapterSpec(**adapter)

