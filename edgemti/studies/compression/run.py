"""Running the compression study: :func:`run_study` scores every point of a study file not already in its results
folder and streams one row per point to the :class:`StudyStore`, then draws the figures and the table.

Per point: the pack (trained once per pack key and kept in ``OUT/packs/``: the float pack of a (task, adapter)
is shared by every compression; a retrained pack is trained on the compressed backbone exactly as the chip
decodes it), a build compiled from it at the point's compression (``OUT/builds/``, removed once scored unless
``keep_builds``), and the task's official metric of that build as served: the engine's answers through the
decoded images, the same scoring ``edgemti eval --build`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgemti.errors import ConfigError
from edgemti.studies.compression.config import StudyConfig, load_study
from edgemti.studies.compression.point import study_points
from edgemti.studies.compression.store import StudyStore
from edgemti.studies.compression.work import BUILDS_DIR, PACKS_DIR, point_row

log = logging.getLogger(__name__)
__all__ = ["BUILDS_DIR", "PACKS_DIR", "StudySummary", "run_study"]


@dataclass(frozen=True)
class StudySummary:
    out: str
    points: int
    skipped: int
    evaluated: int
    errors: int
    budget: str
    elapsed_s: float
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def run_study(study: StudyConfig | str | Path, out: str | Path, progress: bool = True, keep_builds: bool = False,
              limit: int | None = None, step: Callable[[str], None] | None = None, plot: bool = True,
              workers: int = 1) -> StudySummary:
    """Score every point of ``study`` not yet in ``out`` (at most ``limit`` of them), in :func:`study_points`
    order; each row is stored as soon as it is scored, so an interrupted run resumes at the next point. Then
    draw the figures and the table from every row (:func:`edgemti.studies.compression.draw.draw_study`).
    ``workers`` > 1: that many processes train packs and score points side by side
    (:func:`edgemti.studies.compression.pool.run_pool`); one process (here) writes the results."""
    config = study if isinstance(study, StudyConfig) else load_study(study)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = StudyStore(out)
    if store.config and store.config.get("budget") != config.to_dict()["budget"]:
        raise ConfigError(f"{out} holds a study run with another budget ({store.config.get('budget')}): its rows "
                          "would not compare; use another output folder")
    store.set_config(config.to_dict())
    points = study_points(config)
    done = store.done_ids()
    todo = [p for p in points if p.point_id not in done]
    if limit is not None:
        todo = todo[:limit]
    say = step or (lambda s: None)
    say(f"{len(points)} points, {len(points) - len(todo) if limit is None else len(done)} done; budget: "
        f"{config.budget.describe()}")
    t0 = time.perf_counter()
    n_err = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="study", unit="pt")

    def take(row: dict) -> None:
        nonlocal n_err
        n_err += row["status"] != "ok"
        store.append([row])
        if bar is not None:
            bar.set_postfix_str(f"{row['task']} {row['sparsity_embedding']:g}/{row['sparsity_transformer']:g} "
                                f"{row['quant']} a{row['adapter']} {row['trained_on']}: {row.get('score') or '-'}")
            bar.update(1)

    if workers > 1:
        from edgemti.studies.compression.pool import run_pool

        run_pool(todo, out, config.data_dir, keep_builds, workers, take)
    else:
        for p in todo:
            take(point_row(p, out, config.data_dir, keep_builds))
    if bar is not None:
        bar.close()
    files: tuple[str, ...] = ()
    if plot:
        from edgemti.studies.compression.draw import draw_study

        files = tuple(draw_study(out))
    return StudySummary(str(out), len(points), len(points) - len(todo), len(todo), n_err, config.budget.describe(),
                        time.perf_counter() - t0, files)
