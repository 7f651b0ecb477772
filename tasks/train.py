"""Training and evaluation of one task: adapters on a frozen backbone, or the vanilla full fine-tuning baseline.

``design='adapter'`` trains only the task-specific tensors (adapters, the transformer's layer norms, the
classifier); ``design='vanilla'`` (``--full-finetune``) trains every transformer weight and the head with the
embeddings frozen. Either way :func:`train_task` hashes the backbone before and after training and refuses to
write a pack unless the two hashes are identical (the proof that the shared backbone was not touched).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from edgemti.errors import ConfigError, EdgemtiError
from edgemti.tasks.data import Example, load_custom, load_glue, load_hf, subsample
from edgemti.tasks.features import Encoded, batches, encode, load_tokenizer, num_batches
from edgemti.tasks.glue import TaskSpec, custom_task, get_task
from edgemti.tasks.metrics import compute_metrics
from edgemti.tasks.model import AdapterModel
from edgemti.tasks.pack import TaskPack, load_pack, save_pack
from edgemti.tasks.pack_model import model_for_pack, pack_from_model
from edgemti.tasks.served import BackboneOverride, load_into
from edgemti.tasks.train_config import TrainConfig

log = logging.getLogger(__name__)


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
