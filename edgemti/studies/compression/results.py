"""Reading a compression study's results: :class:`StudyResults` (the rows of a results folder, looked up by
point fields) and the derived quantities the figures and the table share: the critical sparsity point of a
line (:func:`critical_sparsity`), VASE's choice of adapter size and the fraction of the compression loss that
retraining on the compressed backbone recovers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgemti.errors import ConfigError
from edgemti.studies.compression.config import StudyConfig, study_from_dict
from edgemti.studies.compression.store import STUDY_INDEX, StudyStore

CSP_TOLERANCE_POINTS = 1.0  # a level is "not below the baseline" within this many points (noise of the budget)


def _key(task: str, se: float, st: float, quant: str, adapter: str, trained_on: str) -> tuple:
    return (task, round(float(se), 6), round(float(st), 6), quant, adapter, trained_on)


@dataclass
class StudyResults:
    config: StudyConfig
    rows: list[dict]  # every stored row (errors included)

    @classmethod
    def load(cls, out: str | Path) -> StudyResults:
        if not (Path(out) / STUDY_INDEX).is_file():
            raise ConfigError(f"{out} is not a compression-study results folder (no {STUDY_INDEX}): run the study "
                              "into it first")
        store = StudyStore(out)
        return cls(study_from_dict(store.config, origin=str(Path(out) / STUDY_INDEX)), store.rows())

    def __post_init__(self) -> None:
        self._ok = {_key(r["task"], r["sparsity_embedding"], r["sparsity_transformer"], r["quant"], r["adapter"],
                         r["trained_on"]): r for r in self.rows if r["status"] == "ok"}

    @property
    def ok(self) -> list[dict]:
        return list(self._ok.values())

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]

    def get(self, task: str, se: float, st: float, quant: str, adapter: str, trained_on: str) -> dict | None:
        """The row of that point (None: not measured). An uncompressed point has only its float pack."""
        if se == 0 and st == 0 and quant == "fp32":
            trained_on = "float"
        return self._ok.get(_key(task, se, st, quant, adapter, trained_on))

    def score(self, *key) -> float | None:
        r = self.get(*key)
        return None if r is None else float(r["score"])

    def vase(self, task: str, se: float, st: float, quant: str, adapters: tuple[str, ...],
             trained_on: str) -> tuple[str, float] | None:
        """VASE's choice: the adapter size with the best score among those measured (None: none measured)."""
        got = [(a, s) for a in adapters if (s := self.score(task, se, st, quant, a, trained_on)) is not None]
        return max(got, key=lambda x: x[1]) if got else None


def critical_sparsity(points: list[tuple[float, float]], baseline: float,
                      tolerance: float = CSP_TOLERANCE_POINTS) -> float | None:
    """The paper's CSP of a line: the largest cumulative sparsity up to which no level's score drops below the
    unpruned baseline (by more than ``tolerance`` points). ``points``: (cumulative sparsity, score) of the line;
    None when even the first level drops."""
    csp = None
    for x, s in sorted(points):
        if s < baseline - tolerance:
            break
        csp = x
    return csp


def recovered_fraction(unpruned: float, float_trained: float, retrained: float) -> float | None:
    """Of what compressing a float-trained pack lost (``unpruned - float_trained``), the fraction retraining on
    the compressed backbone won back; None when compressing lost nothing (< 0.5 points)."""
    loss = unpruned - float_trained
    if loss < 0.5:
        return None
    return (retrained - float_trained) / loss
