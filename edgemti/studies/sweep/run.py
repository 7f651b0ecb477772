"""Running a sweep: :func:`run_sweep` evaluates every point of a grid not already in the results folder, locally
(inline or a spawn process pool) or on a Ray cluster, streams rows to the :class:`ResultStore` and returns a
:class:`SweepSummary`."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgemti.errors import ConfigError
from edgemti.studies.sweep.assets import SweepAssets, prepare_assets
from edgemti.studies.sweep.evaluate import Evaluator
from edgemti.studies.sweep.grid import SweepConfig, load_sweep, sweep_points
from edgemti.studies.sweep.plot import plot_sweep
from edgemti.studies.sweep.point import SPEC_AXES, SweepPoint
from edgemti.studies.sweep.store import CACHE_DIR, ResultStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepSummary:
    out: str
    points: int  # in the grid
    skipped: int  # already in the results folder
    evaluated: int
    errors: int
    executor: str
    workers: int
    prepare_s: float
    evaluate_s: float
    plot: str | None = None  # the Pareto PNG (None: not drawn, or no point to draw)

    @property
    def points_per_min(self) -> float:
        return 60.0 * self.evaluated / self.evaluate_s if self.evaluate_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "points_per_min": self.points_per_min}


_WORKER: dict[str, Evaluator] = {}


def _evaluator(assets: SweepAssets) -> Evaluator:
    """The process's evaluator of these assets (pool and Ray workers keep theirs across chunks)."""
    if assets.digest not in _WORKER:
        _WORKER.clear()
        _WORKER[assets.digest] = Evaluator(assets)
    return _WORKER[assets.digest]


def _pool_init(assets: SweepAssets) -> None:
    logging.getLogger("edgemti").setLevel(logging.ERROR)
    _evaluator(assets)


def _pool_chunk(chunk: list[SweepPoint]) -> list[dict]:
    return [next(iter(_WORKER.values())).row(p) for p in chunk]


def evaluate_chunk(chunk: list[SweepPoint], assets: SweepAssets) -> list[dict]:
    """Rows of ``chunk`` (the unit of work of every executor)."""
    ev = _evaluator(assets)
    return [ev.row(p) for p in chunk]


def _order_key(p: SweepPoint) -> tuple:
    """Neighbours share a structure, workload and hardware model, so a worker's caches hit."""
    return (p.backbone, p.design, p.adapter, p.num_tasks, p.quant, p.sparsity_embedding, p.sparsity_transformer,
            p.seq_len, *(getattr(p, a) for a in SPEC_AXES), p.switch_rate, p.energy_convention)


def _chunks(points: list[SweepPoint], workers: int, max_chunk: int = 64) -> list[list[SweepPoint]]:
    pts = sorted(points, key=_order_key)
    size = max(1, min(max_chunk, math.ceil(len(pts) / max(1, workers * 4))))
    return [pts[i:i + size] for i in range(0, len(pts), size)]


def run_sweep(grid: SweepConfig | str | Path, out: str | Path, ray_address: str | None = None,
              workers: int | None = None, progress: bool = False, flush_rows: int = 1000,
              step: Callable[[str], None] | None = None, storage: str | None = None,
              cache_dir: str | Path | None = None, plot: bool = True,
              accuracy: str | Path | None = None) -> SweepSummary:
    """Evaluate every point of ``grid`` not yet in ``out``; rows stream to ``out/parts`` as they come.

    ``ray_address``: None = a local process pool of ``workers`` (default: the CPU count; 1 = in this process);
    ``"auto"`` / ``"HOST:PORT"`` = that Ray cluster, ``"local"`` = a Ray instance on this machine (an already
    initialised Ray is used as it is). ``storage``: "parquet" (default with pyarrow) or "csv", for a new folder.
    ``cache_dir``: backbone statistics and graph exports (default ``out/cache``; share it between sweeps).
    ``plot``: redraw ``out/pareto.png`` from every row at the end (and, with ``accuracy``, a compression-study
    results folder, ``out/accuracy.png``: accuracy-vs-energy / -area fronts).
    """
    config = grid if isinstance(grid, SweepConfig) else load_sweep(grid)
    out = Path(out)
    points = sweep_points(config)  # before the folder is made: a grid with a bad value leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out, storage)
    done = store.done_ids()
    todo = [p for p in points if p.point_id not in done]
    store.set_config(config.to_dict())
    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    assets = prepare_assets(todo, config.specs, Path(cache_dir or out / CACHE_DIR), step) if todo else SweepAssets({}, {}, {})
    t1 = time.perf_counter()
    buf: list[dict] = []
    n_err = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="pt", smoothing=0.05)

    def take(rows: list[dict]) -> None:
        nonlocal n_err
        buf.extend(rows)
        n_err += sum(r["status"] != "ok" for r in rows)
        if bar is not None:
            bar.update(len(rows))
        if len(buf) >= flush_rows:
            store.append(buf)
            buf.clear()

    chunks = _chunks(todo, workers)
    executor = "ray" if ray_address else ("pool" if workers > 1 else "inline")
    try:
        if not todo:
            pass
        elif ray_address:
            workers = _run_ray(chunks, assets, ray_address, take)
        elif workers == 1:
            for c in chunks:
                take(evaluate_chunk(c, assets))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
            with ctx.Pool(workers, initializer=_pool_init, initargs=(assets,)) as pool:
                for rows in pool.imap_unordered(_pool_chunk, chunks):
                    take(rows)
    finally:
        store.append(buf)
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    png = None
    if plot:
        try:
            png = plot_sweep(out, accuracy=accuracy)["png"]
        except ConfigError as exc:  # nothing evaluated without an error: the rows say why
            log.warning("no Pareto plot: %s", exc)
    return SweepSummary(str(out), len(points), len(points) - len(todo), len(todo), n_err, executor, workers,
                        t1 - t0, t2 - t1, png)


def _run_ray(chunks: list[list[SweepPoint]], assets: SweepAssets, address: str,
             take: Callable[[list[dict]], None]) -> int:
    try:
        import ray
    except ImportError:
        raise ConfigError("a Ray sweep needs ray: pip install 'edgemti[sweep]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, logging_level=logging.WARNING,
                 include_dashboard=False)
    ref = ray.put(assets)
    remote = ray.remote(evaluate_chunk)
    pending = [remote.remote(c, ref) for c in chunks]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        take(ray.get(ready[0]))
    return int(ray.cluster_resources().get("CPU", 0))
