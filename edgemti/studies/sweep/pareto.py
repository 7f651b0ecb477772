"""The Pareto front of a set of points (every objective minimised): what sweep plots and accuracy fronts share."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_mask(values: Sequence[Sequence[float]]) -> list[bool]:
    """True for each point no other point dominates (<= in every objective, < in one); all minimised."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return []
    order = np.lexsort(v.T[::-1])  # by the first objective, ties by the next
    keep = np.zeros(len(v), dtype=bool)
    front = np.empty((0, v.shape[1]))
    for i in order:
        x = v[i]
        if len(front) and np.any(np.all(front <= x, axis=1)):
            continue  # sorted by the first objective, so only kept points can dominate x (equal points: first kept)
        keep[i] = True
        front = np.vstack([front, x])
    return keep.tolist()
