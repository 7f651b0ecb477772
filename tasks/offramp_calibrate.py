"""``edgemti calibrate-exit``: a task's entropy threshold and exit-layer predictor, fitted on held-out sentences.

The held-out sentences are the part of the train split that off-ramp training kept out (tasks/offramp.py,
``split_holdout`` with the seed recorded in the pack), so neither the threshold nor the table sees the dev set the
results are reported on. On them every layer's logits are computed once (off-ramps 1..L-1, the task head at L);
then, for each candidate threshold ``t`` (every distinct entropy the off-ramps produced, plus 0), a sentence exits
at the first layer whose entropy is under ``t`` (else at L). The chosen threshold is the largest whose accuracy is
at most ``max_accuracy_drop`` under full depth's on the same sentences (EdgeBERT picks its per-task threshold for
a stated drop the same way). The predictor is EdgeBERT's 100-row lookup table, stored with the threshold
(:class:`edgemti.exit_policy.ExitPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemti.errors import ConfigError
from edgemti.exit_policy import LUT_ROWS, ExitPolicy
from edgemti.tasks.features import encode, load_tokenizer
from edgemti.tasks.offramp import OffRampConfig, entropy, exit_logits, layer_features, split_holdout


@dataclass(frozen=True)
class LayerOutputs:
    """Every layer's answer for ``n`` sentences: ``logits [n, L, labels]`` (layer L = the task head), ``gold [n]``."""

    logits: np.ndarray
    gold: np.ndarray

    @property
    def entropies(self) -> np.ndarray:
        return entropy(self.logits.reshape(-1, self.logits.shape[-1])).reshape(self.logits.shape[:2])

    @property
    def preds(self) -> np.ndarray:
        return self.logits.argmax(-1)


def layer_outputs(model, examples, max_seq_len: int, progress: bool = False) -> LayerOutputs:
    """Run ``examples`` through ``model`` (with off-ramps) once, keeping every layer's logits."""
    tok = load_tokenizer(model.info)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    items = encode(tok, examples, max_seq_len)
    feats, head = layer_features(model, items, pad_id, False, progress=progress)
    with torch.no_grad():
        ramps = exit_logits(model, feats)
    logits = torch.cat([ramps, head[:, None]], 1).numpy().astype(np.float64)
    return LayerOutputs(logits, np.array([int(e.label) for e in items]))


def exit_layers(entropies: np.ndarray, threshold: float) -> np.ndarray:
    """1-based exit layer of each sentence: the first off-ramp with entropy < ``threshold``, else the last layer."""
    n_layers = entropies.shape[1]
    below = entropies[:, :-1] < threshold
    return np.where(below.any(1), below.argmax(1) + 1, n_layers)


def choose_threshold(out: LayerOutputs, max_accuracy_drop: float) -> tuple[float, dict[str, Any]]:
    """The largest threshold within the accuracy drop, and what it measures on ``out``."""
    ent, preds = out.entropies, out.preds
    n, n_layers = ent.shape
    full = preds[:, -1]
    full_acc = float((full == out.gold).mean())
    candidates = np.unique(np.concatenate([[0.0], ent[:, :-1].ravel(), [float(ent.max()) + 1e-6]]))
    best, best_stats = 0.0, None
    for t in candidates:
        layer = exit_layers(ent, float(t))
        got = preds[np.arange(n), layer - 1]
        acc = float((got == out.gold).mean())
        if full_acc - acc <= max_accuracy_drop + 1e-12:
            best = float(t)
            best_stats = {"accuracy": acc, "agreement_with_full_depth": float((got == full).mean()),
                          "mean_exit_layer": float(layer.mean()),
                          "exit_histogram": np.bincount(layer, minlength=n_layers + 1)[1:].tolist()}
    assert best_stats is not None  # t = 0 exits nowhere early: the full-depth accuracy itself, drop 0
    return best, {"full_depth_accuracy": full_acc, **best_stats}


def fit_predictor(ent: np.ndarray, threshold: float, rows: int = LUT_ROWS) -> tuple[list[float], list[int]]:
    """EdgeBERT's table: quantile bins of layer-1 entropy; each row's predicted exit is the first layer whose mean
    entropy over the bin's sentences is under ``threshold`` (else the last layer)."""
    first = ent[:, 0]
    edges = np.unique(np.quantile(first, np.linspace(0, 1, rows + 1)))
    which = np.clip(np.searchsorted(edges, first, side="right") - 1, 0, max(0, len(edges) - 2))
    centres, layers = [], []
    for r in range(max(1, len(edges) - 1)):
        members = ent[which == r]
        if not len(members):
            continue
        mean = members.mean(0)
        below = np.nonzero(mean[:-1] < threshold)[0]
        centres.append(float(np.median(members[:, 0])))
        layers.append(int(below[0] + 1) if len(below) else int(ent.shape[1]))
    order = np.argsort(centres, kind="stable")
    return [centres[i] for i in order], [layers[i] for i in order]


def calibrate_exit(pack_dir: str | Path, max_accuracy_drop: float = 0.01, out_dir: str | Path | None = None,
                   data_dir: str | None = None, checkpoint: str | None = None, progress: bool = False):
    """Fit the threshold and predictor of a pack with off-ramps, store them in the pack (``out_dir``: a copy
    there instead of in place); returns the loaded pack (its ``exit`` set)."""
    from edgemti.tasks.pack import load_pack, save_pack
    from edgemti.tasks.pack_model import model_for_pack
    from edgemti.tasks.train import load_task_data
    from edgemti.tasks.train_config import TrainConfig

    if not 0 <= max_accuracy_drop < 1:
        raise ConfigError(f"max_accuracy_drop must be a fraction in [0, 1), got {max_accuracy_drop!r}",
                          options=("max_accuracy_drop",))
    pack = load_pack(pack_dir)
    if pack.off_ramps is None:
        raise ConfigError(f"pack '{pack.task}' ({pack.path}) has no off-ramps: train them first and calibrate "
                          "that pack", options=("off_ramps",))
    ramp_cfg = OffRampConfig(**pack.off_ramps["train"]["config"])
    tc = TrainConfig.from_dict(dict(pack.train_config)) if pack.train_config else TrainConfig(task=pack.task)
    if data_dir is not None:
        tc = replace(tc, data_dir=data_dir)
    train = load_task_data(tc, splits=("train",)).train
    _, held = split_holdout(train, ramp_cfg.holdout_examples, ramp_cfg.seed)
    model = model_for_pack(pack, checkpoint=checkpoint or tc.checkpoint)
    out = layer_outputs(model, held, pack.max_seq_len, progress=progress)
    threshold, stats = choose_threshold(out, max_accuracy_drop)
    centres, layers = fit_predictor(out.entropies, threshold)
    predicted = np.array([layers[int(np.argmin(np.abs(np.array(centres) - e)))] for e in out.entropies[:, 0]])
    actual = exit_layers(out.entropies, threshold)
    stats["predictor_mean_abs_error_layers"] = float(np.abs(predicted - actual).mean())
    stats["predictor_under_fraction"] = float((predicted < actual).mean())
    policy = ExitPolicy(num_layers=int(out.logits.shape[1]), threshold=threshold, lut_entropy=tuple(centres),
                        lut_exit_layer=tuple(layers),
                        calibration={"split": "train holdout (kept out of off-ramp training)",
                                     "num_examples": int(len(out.gold)), "max_accuracy_drop": max_accuracy_drop,
                                     **stats})
    return load_pack(save_pack(replace(pack, exit=policy), out_dir if out_dir is not None else pack_dir))
