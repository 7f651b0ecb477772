"""Training and evaluation of one task: adapters on a frozen backbone, or the vanilla full fine-tuning baseline.

``design='adapter'`` trains only the task-specific tensors (adapters, the transformer's layer norms, the
classifier); ``design='vanilla'`` (``--full-finetune``) trains every transformer weight and the head with the
embeddings frozen. Either way :func:`train_task` hashes the backbone before and after training and refuses to
write a pack unless the two hashes are identical (the proof that the shared backbone was not touched).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from edgemti.errors import ConfigError, EdgemtiError
from edgemti.tasks.data import Example, load_custom, load_glue, load_hf, subsample
from edgemti.tasks.features import MAX_SEQ_LEN, Encoded, batches, encode, load_tokenizer, num_batches
from edgemti.tasks.glue import TaskSpec, custom_task, get_task
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.metrics import compute_metrics
from edgemti.tasks.model import AdapterModel, AdapterSpec
from edgemti.tasks.pack import TaskPack, load_pack, save_pack
from edgemti.tasks.pack_model import model_for_pack, pack_from_model
from edgemti.tasks.served import BackboneOverride, load_into

log = logging.getLogger(__name__)
DEFAULT_LR = {"adapter": 1e-3, "vanilla": 3e-5}
_TYPES: dict[str, type] = {"epochs": int, "batch_size": int, "max_seq_len": int, "seed": int, "lr": float,
                           "warmup_ratio": float, "weight_decay": float, "regression": bool,
                           "max_train_examples": int, "max_eval_examples": int, "threads": int,
                           "lora_rank": int, "lora_alpha": float, "lora_targets": str}


def _type_ok(v: Any, t: type) -> bool:
    if isinstance(v, bool):
        return t is bool
    return isinstance(v, t) or (t is float and isinstance(v, int))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved into the pack as ``train_config``)."""

    task: str
    backbone: str = "minilm"
    checkpoint: str | None = None
    design: str = "adapter"
    adapter_size: str = "64"
    epochs: int = 3
    lr: float | None = None  # None: 1e-3 for adapters, 3e-5 for full fine-tuning
    batch_size: int = 32
    max_seq_len: int = MAX_SEQ_LEN
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    seed: int = 0
    threads: int | None = None
    source: str = "tsv"  # "tsv" (GLUE folder) or "hf" (Hugging Face datasets)
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    regression: bool = False
    lora_rank: int | None = None  # set: a LoRA pack of this rank instead of Houlsby adapters (tasks/lora.py)
    lora_alpha: float | None = None  # None: PEFT's default, alpha = rank
    lora_targets: str | None = None  # comma-separated module names; None: PEFT's default of the family

    def __post_init__(self) -> None:
        if self.design not in ("adapter", "vanilla"):
            raise ConfigError(f"TrainConfig: design must be 'adapter' or 'vanilla', got {self.design!r}")
        if self.design == "adapter":
            AdapterSpec.parse(self.adapter_size)
        if self.lora_rank is not None:
            if self.design != "adapter":
                raise ConfigError("TrainConfig: lora_rank trains a LoRA pack on the frozen backbone, not a full "
                                  "fine-tune: leave design 'adapter'", options=("lora_rank",))
            LoraSpec.for_family("bert", self.lora_rank, self.lora_alpha, self._targets or ("query",))
        elif self.lora_alpha is not None or self.lora_targets is not None:
            raise ConfigError("TrainConfig: lora_alpha and lora_targets need lora_rank", options=("lora_rank",))
        for name in ("epochs", "batch_size", "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"TrainConfig: {name} must be a positive int, got {v!r}")
        for name in ("max_train_examples", "max_eval_examples", "threads"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"TrainConfig: {name} must be > 0 or unset, got {v!r}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise ConfigError(f"TrainConfig: lr must be in (0, 1), got {self.lr!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"TrainConfig: warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.source not in ("tsv", "hf"):
            raise ConfigError(f"TrainConfig: source must be 'tsv' or 'hf', got {self.source!r}")
        if (self.train_file is None) != (self.dev_file is None):
            raise ConfigError("TrainConfig: a custom task needs both train_file and dev_file",
                              options=("train_file", "dev_file"))

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.design]

    @property
    def adapter(self) -> AdapterSpec | None:
        return AdapterSpec.parse(self.adapter_size) if self.design == "adapter" else None

    @property
    def _targets(self) -> tuple[str, ...] | None:
        return tuple(t.strip() for t in self.lora_targets.split(",")) if self.lora_targets else None

    def adapter_for(self, family: str) -> AdapterSpec | LoraSpec | None:
        """The pack's adapter spec on a backbone of ``family`` (LoRA's default targets depend on it)."""
        if self.lora_rank is None:
            return self.adapter
        try:
            return LoraSpec.for_family(family, self.lora_rank, self.lora_alpha, self._targets)
        except ConfigError as exc:
            raise ConfigError(str(exc), options=("lora_targets",)) from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr"] = self.resolved_lr
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown keys {unknown} (known: {sorted(names)})")
        bad = [f"{k}={v!r} (want {_TYPES[k].__name__})" for k, v in d.items()
               if k in _TYPES and v is not None and not _type_ok(v, _TYPES[k])]
        if bad:
            raise ConfigError(f"TrainConfig: wrong types: {', '.join(bad)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A config from a JSON or YAML file (unknown keys are an error), with ``overrides`` applied on top."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the train config ({exc.strerror})") from None
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:
            raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.').upper() or 'JSON'} ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a train config is a mapping of TrainConfig fields, got {type(raw).__name__}")
        return cls.from_dict({**raw, **overrides})


@dataclass(frozen=True)
class TaskData:
    """A task's spec and its train/dev examples."""

    spec: TaskSpec
    train: list[Example]
    dev: list[Example]


@dataclass(frozen=True)
class TrainResult:
    pack: TaskPack
    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EvalResult:
    task: str
    split: str
    num_examples: int
    metrics: dict[str, float]
    metric_names: tuple[str, ...]
    backbone: str
    design: str
    paper: dict[str, float] = field(default_factory=dict)


def load_task_data(cfg: TrainConfig, splits: tuple[str, ...] = ("train", "dev")) -> TaskData:
    """Resolve the task (GLUE name or custom files) and load the requested splits."""
    if cfg.train_file is not None:
        assert cfg.dev_file is not None  # TrainConfig requires both files or neither
        train, labels = load_custom(cfg.train_file, cfg.text_column, cfg.text_pair_column, cfg.label_column,
                                    regression=cfg.regression)
        dev, _ = load_custom(cfg.dev_file, cfg.text_column, cfg.text_pair_column, cfg.label_column,
                             labels=labels, regression=cfg.regression)
        spec = custom_task(cfg.task, labels, cfg.text_pair_column is not None)
        return TaskData(spec, train if "train" in splits else [], dev if "dev" in splits else [])
    spec = get_task(cfg.task)

    def load(split: str) -> list[Example]:
        if split not in splits:
            return []
        return load_hf(spec, split) if cfg.source == "hf" else load_glue(spec, split, cfg.data_dir)

    return TaskData(spec, load("train"), load("dev"))


def predict(model: AdapterModel, items: list[Encoded], pad_id: int, regression: bool, batch_size: int = 64,
            progress: bool = False, forward: Callable[..., torch.Tensor] | None = None) -> np.ndarray:
    """Label indices (or regression scores) of ``items``, in order; ``forward`` (default: the model itself) is
    what computes the logits, e.g. :meth:`BackboneOverride.forward_fn` (the pack quantized as served)."""
    model.eval()
    run = forward or model
    out = []
    with torch.no_grad():
        for b in tqdm(batches(items, batch_size, pad_id, regression), total=num_batches(len(items), batch_size),
                      desc="eval", disable=not progress, leave=False):
            logits = run(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            out.append(logits[:, 0] if regression else logits.argmax(-1))
    return torch.cat(out).numpy() if out else np.zeros(0)


def _scheduler(opt: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def train_task(cfg: TrainConfig, out_dir: str | Path, progress: bool = True,
               override: BackboneOverride | None = None) -> TrainResult:
    """Train ``cfg`` and write its task pack to ``out_dir``; returns the pack and the per-epoch dev metrics.

    With ``override`` (from ``edgemti.compiler.served``) the frozen backbone is the compressed one the chip serves
    (loaded bit for bit), the pack's tensors are fake-quantized at the pack format in every forward pass
    (straight-through estimator), dev scores are of that served model, and the pack records ``trained_on``; its
    ``backbone.hash`` stays the float backbone's (the backbone the build is compiled from)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_task_data(cfg)
    spec = data.spec
    train_ex = subsample(data.train, cfg.max_train_examples, cfg.seed)
    dev_ex = subsample(data.dev, cfg.max_eval_examples, cfg.seed)

    from edgemti.tasks.backbones import build_model

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    from edgemti.tasks.backbones import backbone_family

    adapter = cfg.adapter_for(backbone_family(cfg.backbone, cfg.checkpoint)) if cfg.lora_rank else cfg.adapter
    model = build_model(cfg.backbone, num_labels=spec.num_labels, adapter=adapter, design=cfg.design,
                        checkpoint=cfg.checkpoint)
    torch.manual_seed(cfg.seed)
    if model.info.warning:
        log.warning(model.info.warning)
    tok = load_tokenizer(model.info)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    train_items = encode(tok, train_ex, cfg.max_seq_len)
    dev_items = encode(tok, dev_ex, cfg.max_seq_len)

    model.freeze_backbone()
    float_hash = model.backbone_hash()
    task_names = model.task_names()
    if override is not None:
        load_into(model, model.backbone_names(), override.tensors)
    hash_before = model.backbone_hash()
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.resolved_lr)
    steps_per_epoch = num_batches(len(train_items), cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = _scheduler(opt, total, int(math.ceil(cfg.warmup_ratio * total)))

    history: list[dict[str, Any]] = []
    train_s = 0.0
    bar = tqdm(total=total, desc=f"train {spec.name} ({cfg.design}{', served backbone' if override else ''})",
               disable=not progress)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        losses = []
        for b in batches(train_items, cfg.batch_size, pad_id, spec.is_regression, shuffle=True,
                         seed=cfg.seed * 1000 + epoch):
            run = model if override is None else override.forward_fn(model, task_names, step=step)
            logits = run(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            step += 1
            if spec.is_regression:
                loss = F.mse_loss(logits[:, 0], b["labels"])
            else:
                loss = F.cross_entropy(logits, b["labels"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        train_s += time.perf_counter() - t0
        served = None if override is None else override.forward_fn(model, task_names)
        pred = predict(model, dev_items, pad_id, spec.is_regression, forward=served)
        gold = np.array([e.label for e in dev_items])
        metrics = compute_metrics(spec, pred, gold)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None,
                        **{f"dev_{k}": v for k, v in metrics.items()}})
        log.info("epoch %d: %s", epoch + 1, history[-1])
    bar.close()
    model.eval()

    hash_after = model.backbone_hash()
    if hash_after != hash_before:
        raise EdgemtiError(f"training changed the frozen backbone of task {spec.name} (hash {hash_before[:8]} -> "
                           f"{hash_after[:8]}): the pack is not written; this is a bug in the freezing")
    n_task = sum(p.numel() for p in trainable)
    n_backbone = sum(p.numel() for p in model.parameters()) - n_task
    frozen = {"backbone_hash_before": hash_before, "backbone_hash_after": hash_after, "bit_identical": True,
              "trainable_params": int(n_task), "frozen_params": int(n_backbone)}
    if override is not None:
        frozen["float_backbone_hash"] = float_hash  # the before/after hashes are of the served backbone
    pack = pack_from_model(
        model, task=spec.name, labels=spec.labels, is_regression=spec.is_regression,
        text_fields=tuple(str(c) for c in spec.text_columns), max_seq_len=cfg.max_seq_len,
        metrics={**(history[-1] if history else {}), "num_dev_examples": len(dev_items),
                 "num_train_examples": len(train_items)},
        train_config=cfg.to_dict(), train_time_s=round(train_s, 2), frozen_check=frozen, backbone_hash=float_hash,
        trained_on=override.trained_on if override is not None else None)
    path = save_pack(pack, out_dir)
    return TrainResult(pack=load_pack(path), path=path, history=history)


def evaluate_pack(pack_dir: str | Path, split: str = "dev", data_dir: str | None = None,
                  dev_file: str | None = None, checkpoint: str | None = None, max_examples: int | None = None,
                  batch_size: int = 64, progress: bool = False) -> EvalResult:
    """The official metric(s) of a pack on a split of its task (GLUE folder, or the custom file it names)."""
    from edgemti.tasks.glue import PAPER_TABLE_I

    pack = load_pack(pack_dir)
    tc = dict(pack.train_config)
    base = TrainConfig.from_dict(tc) if tc else TrainConfig(task=pack.task)
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if dev_file is not None:
        overrides["dev_file"] = dev_file
        overrides["train_file"] = overrides.get("train_file", base.train_file or dev_file)
    cfg = TrainConfig.from_dict({**asdict(base), **overrides})
    if split not in ("train", "dev"):
        raise ConfigError(f"unknown split {split!r}: use 'dev' or 'train'")
    if cfg.train_file is not None:  # a custom task: score its file with the pack's own label list
        path = cfg.dev_file if split == "dev" else cfg.train_file
        assert path is not None  # TrainConfig requires both files or neither
        examples, _ = load_custom(path, cfg.text_column, cfg.text_pair_column, cfg.label_column,
                                  labels=pack.labels, regression=pack.is_regression)
        spec = custom_task(pack.task, pack.labels, cfg.text_pair_column is not None)
    else:
        data = load_task_data(cfg, splits=(split,))
        examples, spec = (data.train if split == "train" else data.dev), data.spec
    examples = subsample(examples, max_examples, 0)
    model = model_for_pack(pack, checkpoint=checkpoint or cfg.checkpoint)
    tok = load_tokenizer(model.info)
    items = encode(tok, examples, pack.max_seq_len)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    pred = predict(model, items, pad_id, pack.is_regression, batch_size, progress=progress)
    metrics = compute_metrics(spec, pred, np.array([e.label for e in items]))
    paper = {k: v[spec.name] for k, v in PAPER_TABLE_I.items() if spec.name in v}
    return EvalResult(task=pack.task, split=split, num_examples=len(items), metrics=metrics,
                      metric_names=spec.metrics, backbone=pack.backbone["name"], design=pack.design, paper=paper)
