"""Magnitude pruning of the backbone, with one sparsity target per group, and the paper's cumulative sparsity.

Group rule: ``encoder.embeddings.*`` is the *embedding* group; every other backbone tensor (the shared
transformer layer, the embedding projection ``embedding_hidden_mapping_in``, the pooler) is *transformer*.
Only weight matrices (``ndim >= 2``) are pruned; biases and LayerNorm vectors (0.01 % of ALBERT-base) are kept
dense so the pruned model never loses a normalisation scale, but they still count in the group's size.
Each pruned tensor loses exactly ``round(target * numel)`` of its smallest-magnitude entries (layer-wise
magnitude pruning), so every tensor of a group reaches the group's target.

Eq. 1 of the paper: ``S_c = S_embd * P_embd + S_tf * P_tf`` with ``P_g`` = the group's share of the backbone's
parameters. :class:`PruneReport` gives it both from the targets (``nominal``) and as measured (zeros / numel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

EMBEDDING, TRANSFORMER = "embedding", "transformer"


def group_of(name: str) -> str:
    return EMBEDDING if name.startswith("encoder.embeddings.") else TRANSFORMER


def is_prunable(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2


def magnitude_prune(x: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of ``x`` with its ``round(sparsity * x.size)`` smallest-|x| entries set to zero."""
    out = np.array(x, dtype=np.float32, copy=True)
    k = int(round(float(sparsity) * out.size))
    if k <= 0:
        return out
    flat = out.reshape(-1)
    if k >= flat.size:
        flat[:] = 0.0
        return out
    idx = np.argpartition(np.abs(flat), k - 1)[:k]
    flat[idx] = 0.0
    return out


@dataclass(frozen=True)
class TensorSparsity:
    name: str
    group: str
    numel: int
    zeros: int
    pruned: bool
    target: float

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class PruneReport:
    tensors: tuple[TensorSparsity, ...]
    sparsity_embedding: float
    sparsity_transformer: float

    def _count(self, group: str | None, what: str) -> int:
        return sum(getattr(t, what) for t in self.tensors if group is None or t.group == group)

    @property
    def p_embedding(self) -> float:
        total = self._count(None, "numel")
        return self._count(EMBEDDING, "numel") / total if total else 0.0

    @property
    def p_transformer(self) -> float:
        total = self._count(None, "numel")
        return self._count(TRANSFORMER, "numel") / total if total else 0.0

    @property
    def nominal_cumulative(self) -> float:
        """Eq. 1 from the targets."""
        return self.sparsity_embedding * self.p_embedding + self.sparsity_transformer * self.p_transformer

    def measured(self, group: str | None = None) -> float:
        n = self._count(group, "numel")
        return self._count(group, "zeros") / n if n else 0.0

    @property
    def measured_cumulative(self) -> float:
        """Eq. 1 with measured group sparsities (= all zeros / all backbone parameters)."""
        return self.measured(EMBEDDING) * self.p_embedding + self.measured(TRANSFORMER) * self.p_transformer

    def to_dict(self) -> dict:
        return {
            "sparsity_embedding": self.sparsity_embedding, "sparsity_transformer": self.sparsity_transformer,
            "p_embedding": self.p_embedding, "p_transformer": self.p_transformer,
            "cumulative_sparsity": self.nominal_cumulative, "measured_embedding": self.measured(EMBEDDING),
            "measured_transformer": self.measured(TRANSFORMER), "measured_cumulative": self.measured_cumulative,
        }


def prune_backbone(tensors: Mapping[str, np.ndarray], sparsity_embedding: float,
                   sparsity_transformer: float) -> tuple[dict[str, np.ndarray], PruneReport]:
    """Prune every prunable backbone tensor to its group's target; returns (pruned tensors, report)."""
    targets = {EMBEDDING: float(sparsity_embedding), TRANSFORMER: float(sparsity_transformer)}
    out, rows = {}, []
    for name, x in tensors.items():
        group = group_of(name)
        prunable = is_prunable(name, tuple(x.shape))
        target = targets[group] if prunable else 0.0
        y = magnitude_prune(x, target) if prunable else np.array(x, dtype=np.float32, copy=True)
        out[name] = y
        rows.append(TensorSparsity(name, group, int(y.size), int(y.size - np.count_nonzero(y)), prunable, target))
    return out, PruneReport(tuple(rows), targets[EMBEDDING], targets[TRANSFORMER])
