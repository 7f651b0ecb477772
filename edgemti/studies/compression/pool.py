"""Running the study's points on a process pool: :func:`run_pool` keeps ``workers`` jobs in flight, each either
the training of one pack (no two workers ever train the same pack) or the scoring of one point whose pack is
ready, the earliest point of the run order first; rows come back to the caller, which alone writes them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from edgemti.studies.compression.point import StudyPoint
from edgemti.studies.compression.work import PACKS_DIR, ROW_ERRORS, ensure_pack, error_row, point_row

log = logging.getLogger(__name__)


def _train(point: StudyPoint, out: Path, data_dir: str | None) -> None:
    logging.getLogger("edgemti").setLevel(logging.WARNING)
    ensure_pack(point, out, data_dir)


def _score(point: StudyPoint, out: Path, data_dir: str | None, keep_builds: bool) -> dict:
    logging.getLogger("edgemti").setLevel(logging.WARNING)
    return point_row(point, out, data_dir, keep_builds)


def _next_job(waiting: list[StudyPoint], ready: set[str], failed: dict, in_training: set[str]):
    """The job for a free worker: the earliest waiting point whose pack is ready (score it) or not started
    (train its pack); points whose pack is in training are passed over."""
    for p in waiting:
        if p.pack_key in failed:
            return "failed", p
        if p.pack_key in ready:
            return "score", p
        if p.pack_key not in in_training:
            return "train", p
    return None


def run_pool(todo: list[StudyPoint], out: Path, data_dir: str | None, keep_builds: bool, workers: int,
             take: Callable[[dict], None]) -> None:
    import multiprocessing

    waiting = list(todo)  # run order
    ready = {p.pack_key for p in todo if (out / PACKS_DIR / p.pack_key).is_dir()}  # checked again by ensure_pack
    failed: dict[str, BaseException] = {}
    training: dict[Future, StudyPoint] = {}
    scoring: dict[Future, StudyPoint] = {}
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        while waiting or training or scoring:
            while len(training) + len(scoring) < workers:
                job = _next_job(waiting, ready, failed, {p.pack_key for p in training.values()})
                if job is None:
                    break  # every waiting point waits for a pack in training
                kind, p = job
                if kind == "train":
                    training[ex.submit(_train, p, out, data_dir)] = p
                    continue
                waiting.remove(p)
                if kind == "failed":
                    take(error_row(p, failed[p.pack_key]))
                else:
                    scoring[ex.submit(_score, p, out, data_dir, keep_builds)] = p
            done, _ = wait([*training, *scoring], return_when=FIRST_COMPLETED)
            for f in done:
                if f in scoring:
                    p = scoring.pop(f)
                    take(f.result())
                    continue
                p = training.pop(f)
                try:
                    f.result()
                    ready.add(p.pack_key)
                except ROW_ERRORS as exc:
                    failed[p.pack_key] = exc
