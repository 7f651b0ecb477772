"""EdgeBERT's off-ramps: one small classifier after every transformer layer but the last, trained in a second stage.

An off-ramp reads a layer's output the way the task head reads the last one (the [CLS] row for a pooler backbone,
as EdgeBERT's ``highway`` does; the masked mean for a mean-pooled backbone such as MiniLM) and computes
``classifier(tanh(dense(x)))``: ``dense`` is ``Linear(H -> H)`` initialised from the backbone's pooler (the
identity when the backbone has none), ``classifier`` is ``Linear(H -> labels)`` initialised from the task's head.
Layer ``L`` (the last) exits through the task's own head, so exiting there is the full-depth answer.

Stage 2 (:func:`train_off_ramps`) freezes everything else (backbone, adapters, head) and minimises the sum of the
off-ramps' cross-entropy losses (EdgeBERT/DeeBERT's highway training). The frozen part runs in eval mode and is
deterministic, so each training sentence's off-ramp inputs are computed once and cached; the ramps then train on
the cache for several epochs. A seeded part of the train split is held out of stage 2 for ``calibrate-exit``.
The off-ramps are ordinary task tensors (``off_ramps.<i>.dense.weight`` ...): they go into the pack, the build's
DRAM image and SRAM with the rest of the task, and every swap moves them.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from edgemti.errors import ConfigError, EdgemtiError
from edgemti.tasks.data import Example
from edgemti.tasks.features import batches, encode, load_tokenizer, num_batches
from edgemti.tasks.model import AdapterModel
from edgemti.tasks.offramp_model import RAMP_PREFIX, attach_off_ramps, num_layers

log = logging.getLogger(__name__)


def entropy(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """Softmax entropy in nats of each row of ``logits [n, labels]`` (EdgeBERT's ``log sum e^x - sum x e^x / sum
    e^x``, computed stably)."""
    z = np.asarray(logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    p = e / s
    return -(p * (z - np.log(s))).sum(axis=-1)


@dataclass(frozen=True)
class OffRampConfig:
    """Stage 2: which train sentences, how long, and the held-out part kept for calibration."""

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    max_train_examples: int | None = None
    holdout_examples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "holdout_examples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"OffRampConfig: {name} must be a positive int, got {v!r}")
        if self.max_train_examples is not None and self.max_train_examples <= 0:
            raise ConfigError(f"OffRampConfig: max_train_examples must be > 0 or unset, got {self.max_train_examples!r}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"OffRampConfig: lr must be in (0, 1), got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_holdout(examples: list[Example], n: int, seed: int) -> tuple[list[Example], list[Example]]:
    """``(rest, holdout)``: a seeded ``n`` examples held out (at most half of them), the rest in order."""
    n = min(n, len(examples) // 2)
    rng = random.Random(seed + 17)
    held = set(rng.sample(range(len(examples)), n))
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


@torch.no_grad()
def layer_features(model: AdapterModel, items: list, pad_id: int, regression: bool, batch_size: int = 64,
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ramp inputs [n, L-1, hidden], head logits [n, labels])`` of ``items`` through the frozen model."""
    model.eval()
    feats, heads = [], []
    for b in tqdm(batches(items, batch_size, pad_id, regression), total=num_batches(len(items), batch_size),
                  desc="features", disable=not progress, leave=False):
        out = model.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                            token_type_ids=b["token_type_ids"], output_hidden_states=True)
        pooled = model.mean_pool(out.last_hidden_state, b["attention_mask"]) if model.info.pooling == "mean" \
            else out.pooler_output
        heads.append(model.classifier(pooled))
        feats.append(torch.stack([model.ramp_input(h, b["attention_mask"]) for h in out.hidden_states[1:-1]], 1))
    for m in model._adapted:
        m.reset_depth()
    return torch.cat(feats), torch.cat(heads)


def exit_logits(model: AdapterModel, feats: torch.Tensor) -> torch.Tensor:
    """Off-ramp logits ``[n, L-1, labels]`` from cached ramp inputs ``[n, L-1, hidden]``."""
    assert model.off_ramps is not None
    return torch.stack([ramp(feats[:, i]) for i, ramp in enumerate(model.off_ramps)], 1)


def train_off_ramps(model: AdapterModel, train: list[Example], cfg: OffRampConfig, max_seq_len: int,
                    progress: bool = True) -> dict[str, Any]:
    """Stage 2 on ``model`` (a task model, trained): attach off-ramps and train only them; returns the record
    stored in the pack (``off_ramps.train``). The rest of the model is checked bit-identical afterwards."""
    if model.num_labels < 2:
        raise ConfigError("off-ramps exit on the softmax entropy of a classifier: a regression task has none")
    attach_off_ramps(model)
    assert model.off_ramps is not None
    torch.manual_seed(cfg.seed)
    rest, _ = split_holdout(train, cfg.holdout_examples, cfg.seed)
    if cfg.max_train_examples is not None and cfg.max_train_examples < len(rest):
        rng = random.Random(cfg.seed)
        rest = [rest[i] for i in sorted(rng.sample(range(len(rest)), cfg.max_train_examples))]
    tok = load_tokenizer(model.info)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    items = encode(tok, rest, max_seq_len)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith(RAMP_PREFIX)}
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(RAMP_PREFIX))
    t0 = time.perf_counter()
    feats, _ = layer_features(model, items, pad_id, False, progress=progress)
    labels = torch.tensor([int(e.label) for e in items])
    feat_s = time.perf_counter() - t0
    params = list(model.off_ramps.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = cfg.epochs * math.ceil(len(items) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / max(1, steps)))
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    bar = tqdm(total=steps, desc="train off-ramps", disable=not progress)
    t1 = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(items), generator=g)
        losses = []
        for s in range(0, len(items), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            logits = exit_logits(model, feats[idx])  # [b, L-1, labels]
            # the sum of the off-ramps' losses (each the batch mean), as EdgeBERT's highway stage trains
            loss = sum(F.cross_entropy(logits[:, i], labels[idx]) for i in range(logits.shape[1]))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]  # a sum of tensors is a tensor
            opt.step()
            sched.step()
            losses.append(float(loss.item()))  # type: ignore[union-attr]
            bar.update(1)
        with torch.no_grad():
            acc = (exit_logits(model, feats).argmax(-1) == labels[:, None]).float().mean(0)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "train_accuracy_by_layer": [round(float(a), 4) for a in acc]})
        log.info("off-ramps epoch %d: %s", epoch + 1, history[-1])
    bar.close()
    for n, p in model.named_parameters():
        p.requires_grad_(False)
        if n in frozen and not torch.equal(frozen[n], p.detach()):
            raise EdgemtiError(f"off-ramp training changed {n}: the pack is not written; this is a bug in the freezing")
    model.eval()
    return {"config": cfg.to_dict(), "num_train_examples": len(items), "feature_s": round(feat_s, 2),
            "train_s": round(time.perf_counter() - t1, 2), "history": history,
            "frozen_bit_identical": True}


def with_off_ramps(pack_dir: str | Path, out_dir: str | Path, cfg: OffRampConfig, data_dir: str | None = None,
                   checkpoint: str | None = None, progress: bool = True):
    """Stage 2 for a trained pack: load it, train its off-ramps on its task's train split, write the pack with
    them to ``out_dir`` (the input pack is not changed). Returns the loaded new pack."""
    from edgemti.tasks.pack import load_pack, save_pack
    from edgemti.tasks.pack_model import model_for_pack, pack_from_model
    from edgemti.tasks.train import load_task_data
    from edgemti.tasks.train_config import TrainConfig

    pack = load_pack(pack_dir)
    if pack.off_ramps is not None:
        raise ConfigError(f"pack '{pack.task}' ({pack.path}) already has off-ramps")
    tc = TrainConfig.from_dict(dict(pack.train_config)) if pack.train_config else TrainConfig(task=pack.task)
    if data_dir is not None:
        tc = replace(tc, data_dir=data_dir)
    model = model_for_pack(pack, checkpoint=checkpoint or tc.checkpoint)
    data = load_task_data(tc, splits=("train",))
    record = train_off_ramps(model, data.train, cfg, pack.max_seq_len, progress=progress)
    new = pack_from_model(model, task=pack.task, labels=pack.labels, is_regression=pack.is_regression,
                          text_fields=pack.text_fields, max_seq_len=pack.max_seq_len, metrics=pack.metrics,
                          train_config=pack.train_config, train_time_s=pack.train_time_s,
                          frozen_check=pack.frozen_check, trained_on=pack.trained_on,
                          off_ramps={"num_layers": num_layers(model), "pooling": model.info.pooling,
                                     "train": record})
    if new.backbone["hash"] != pack.backbone["hash"]:
        raise EdgemtiError("off-ramp training changed the backbone hash: the pack is not written")
    return load_pack(save_pack(new, out_dir))


def train_with_off_ramps(cfg, out_dir: str | Path, ramp_cfg: OffRampConfig, from_pack: str | Path | None = None,
                         data_dir: str | None = None, progress: bool = True):
    """Both stages: the task (``train_task(cfg)``, adapters or full fine-tuning), then its off-ramps; or, with
    ``from_pack``, stage 2 alone on that trained pack (``cfg`` unused). The pack in ``out_dir`` ends with both.
    Returns the loaded pack."""
    from edgemti.tasks.train import train_task

    if from_pack is not None:
        return with_off_ramps(from_pack, out_dir, ramp_cfg, data_dir=data_dir, progress=progress)
    if cfg is None:
        raise ConfigError("train_with_off_ramps: give a TrainConfig or a trained pack to start from")
    first = train_task(cfg, out_dir, progress=progress)
    return with_off_ramps(first.path, out_dir, ramp_cfg, progress=progress)
