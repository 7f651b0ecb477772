"""GLUE's official metrics: Matthews correlation (CoLA), accuracy, F1 of the positive class (MRPC, QQP), Pearson
and Spearman correlation (STS-B). Values are fractions in [-1, 1] / [0, 1]; reports multiply by 100."""

from __future__ import annotations

import numpy as np
from scipy import stats

from edgemti.errors import ConfigError
from edgemti.tasks.glue import METRICS, TaskSpec


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(gold))) if len(gold) else 0.0


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    """F1 of class ``positive``; 0 when it is never predicted nor present (as scikit-learn's zero_division=0)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    tp = int(np.sum((pred == positive) & (gold == positive)))
    fp = int(np.sum((pred == positive) & (gold != positive)))
    fn = int(np.sum((pred != positive) & (gold == positive)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    """Matthews correlation coefficient (multi-class form of Gorodkin 2004; binary = the usual phi)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    classes = np.union1d(pred, gold)
    idx = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), dtype=np.float64)  # [gold, pred]
    for g, p in zip(gold, pred, strict=True):
        cm[idx[g], idx[p]] += 1
    t, p, c, s = cm.sum(1), cm.sum(0), np.trace(cm), cm.sum()
    denom = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denom) if denom else 0.0


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(gold) < 2 or np.std(pred) == 0 or np.std(gold) == 0:
        return 0.0
    return float(stats.pearsonr(pred, gold)[0])


def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if len(gold) < 2 or np.std(pred) == 0 or np.std(gold) == 0:
        return 0.0
    return float(stats.spearmanr(pred, gold)[0])


_FUNCS = {"mcc": mcc, "accuracy": accuracy, "f1": f1_binary, "pearson": pearson, "spearman": spearman}


def compute_metrics(task: TaskSpec, pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """The task's official metrics of predictions (label indices, or scores for regression) against gold."""
    if len(pred) != len(gold):
        raise ConfigError(f"compute_metrics({task.name}): {len(pred)} predictions for {len(gold)} gold labels")
    out = {}
    for m in task.metrics:
        if m not in METRICS:  # pragma: no cover - TaskSpec validates
            raise ConfigError(f"unknown metric {m!r}")
        out[m] = _FUNCS[m](pred, gold)
    return out


def headline(task: TaskSpec, metrics: dict[str, float]) -> float:
    """The number the paper's Table I reports for this task, in % (MRPC: F1; STS-B: Pearson)."""
    return 100.0 * metrics[task.metrics[0]]
