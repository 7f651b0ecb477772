"""One point of the compression study: its pack (trained once per pack key, kept in ``OUT/packs/``), its build at
the point's compression (``OUT/builds/``), and its row: the task's official metric of that build as served, the
same scoring ``edgemti eval --build`` does. :mod:`edgemti.studies.compression.run` runs points in order and
:mod:`edgemti.studies.compression.pool` side by side; both use these.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemti.errors import EdgemtiError
from edgemti.studies.compression.point import StudyPoint

if TYPE_CHECKING:
    from edgemti.studies.sized import SizedBuild

log = logging.getLogger(__name__)
PACKS_DIR, BUILDS_DIR = "packs", "builds"


def train_fields(point: StudyPoint, data_dir: str | None) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a point's pack (the same for the float and the retrained pack)."""
    b = point.budget
    return dict(task=point.task, backbone=point.backbone, adapter_size=point.adapter, epochs=b.epochs, lr=b.lr,
                batch_size=b.batch_size, max_seq_len=b.max_seq_len, max_train_examples=b.max_train_examples,
                max_eval_examples=b.max_eval_examples, seed=b.seed, threads=b.threads, data_dir=data_dir)


def compression_of(point: StudyPoint):
    """The :class:`edgemti.compiler.compression.Compression` of a point (its build's, and a retrained pack's)."""
    from edgemti.compiler.compression import Compression

    return Compression(sparsity_embedding=point.sparsity_embedding, sparsity_transformer=point.sparsity_transformer,
                       quant=point.quant)


def _pack_matches(pack, point: StudyPoint, kw: dict[str, Any]) -> bool:
    if not all(pack.train_config.get(k) == v for k, v in kw.items()):
        return False
    on = pack.trained_on
    if point.trained_on == "float":
        return on is None
    return (on is not None and on.sparsity_embedding == point.sparsity_embedding
            and on.sparsity_transformer == point.sparsity_transformer and on.value_format == point.quant
            and on.pack_format == point.quant and on.fault_mlc_rate == 0.0)


def ensure_pack(point: StudyPoint, out: Path, data_dir: str | None, progress: bool = False) -> tuple[Path, float]:
    """The point's pack folder (trained now unless ``OUT/packs/<pack_key>`` holds it) and the training seconds
    spent now (0.0 when it was there). A float pack is trained on the float backbone (``edgemti train``), a
    retrained one on the point's compressed backbone as the chip decodes it (``edgemti train
    --sparsity-embedding/--sparsity-transformer/--quant``). A folder that does not hold that pack is retrained."""
    from edgemti.compiler.retrain import train_on_served
    from edgemti.tasks.pack import load_pack
    from edgemti.tasks.train import train_task
    from edgemti.tasks.train_config import TrainConfig

    folder = out / PACKS_DIR / point.pack_key
    kw = train_fields(point, data_dir)
    if folder.is_dir():
        try:
            if _pack_matches(load_pack(folder), point, kw):
                return folder, 0.0
            log.warning("%s: not the pack of this point: retraining", folder)
        except EdgemtiError as exc:
            log.warning("%s: %s: retraining", folder, exc)
        shutil.rmtree(folder)
    t0 = time.perf_counter()
    if point.trained_on == "float":
        train_task(TrainConfig(**kw), folder, progress=progress)
    else:
        train_on_served(TrainConfig(**kw), folder, compression=compression_of(point), progress=progress)
    return folder, time.perf_counter() - t0


def _headline(task: str, metrics: dict[str, float]) -> tuple[str, float]:
    from edgemti.tasks.glue import get_task

    name = get_task(task).metrics[0]
    return name, 100.0 * metrics[name]


def _build_sparsity(manifest) -> tuple[float, float]:
    """(Eq. 1 cumulative sparsity, P_embd) measured on a build's backbone image (all its tensors)."""
    total = sum(t.numel for t in manifest.tensors)
    zeros = sum(t.numel - t.nnz for t in manifest.tensors)
    emb = sum(t.numel for t in manifest.tensors if t.group == "embedding")
    return (zeros / total if total else 0.0), (emb / total if total else 0.0)


def score_point(point: StudyPoint, out: Path, data_dir: str | None, keep_builds: bool = False) -> dict:
    """One point's result row (raises on failure; :func:`run_study` turns that into an error row)."""
    from edgemti.compiler.compile import compile_build
    from edgemti.compiler.config import CompileConfig
    from edgemti.formats.image_hash import manifest_image_hash
    from edgemti.studies.sized import open_sized
    from edgemti.tasks.pack import load_pack

    pack_dir, _ = ensure_pack(point, out, data_dir)
    pack = load_pack(pack_dir)
    build = out / BUILDS_DIR / point.build_key
    cfg = CompileConfig(backbone=point.backbone, packs=(pack_dir,), quant=point.quant,
                        sparsity_embedding=point.sparsity_embedding, sparsity_transformer=point.sparsity_transformer,
                        max_seq_len=point.budget.max_seq_len, check_capacity=False)
    compile_build(cfg, build, force=True)
    try:
        t0 = time.perf_counter()
        sized = open_sized(build)  # one open: scored as served, then its manifest read for the row
        res = score_build(sized, point, data_dir)
        eval_s = time.perf_counter() - t0
        m = sized.build.manifest
        cum, p_emb = _build_sparsity(m)
        image_hash = manifest_image_hash(m)
        build_id = m.build_id
    finally:
        if not keep_builds:
            shutil.rmtree(build, ignore_errors=True)
    if pack.trained_on is not None and pack.trained_on.image_hash != image_hash:  # compile refuses this; say so
        raise EdgemtiError(f"the retrained pack {pack_dir} was trained on backbone image {pack.trained_on.image_hash}, "
                           f"its build holds {image_hash}")
    metric, score = _headline(point.task, res["metrics"])
    pack_metric = pack.metrics.get(f"dev_{metric}")
    return {"metric": metric, "score": score,
            "metrics": json.dumps({k: 100.0 * v for k, v in res["metrics"].items()}, sort_keys=True),
            "num_eval_examples": int(res["num_examples"]), "num_train_examples": int(pack.metrics.get(
                "num_train_examples", 0)), "pack_score": None if pack_metric is None else 100.0 * pack_metric,
            "cumulative_sparsity": cum, "p_embedding": p_emb, "pack_key": point.pack_key, "build_id": build_id,
            "backbone_image_hash": image_hash, "train_s": pack.train_time_s, "eval_s": eval_s}


def score_build(build: Path | SizedBuild, point: StudyPoint, data_dir: str | None) -> dict:
    """``{"metrics": {name: fraction}, "num_examples": n}`` of the point's task on the build as served
    (:func:`edgemti.studies.accuracy.evaluate_build`, what ``edgemti eval --build`` runs), on the budget's seeded
    dev subset (the same subset the pack's own score used)."""
    from edgemti.studies.accuracy import BuildEvalConfig, evaluate_build

    ev = evaluate_build(build, BuildEvalConfig(tasks=(point.task,), max_examples=point.budget.max_eval_examples,
                                               data_dir=data_dir, subsample_seed=point.budget.seed))
    (score,) = ev.tasks
    return {"metrics": dict(score.metrics), "num_examples": score.num_examples}


def base_row(point: StudyPoint) -> dict[str, Any]:
    """The columns of a row that name the point and its budget."""
    b = point.budget
    return {"id": point.point_id, "task": point.task, "backbone": point.backbone,
                           "sparsity_embedding": point.sparsity_embedding,
                           "sparsity_transformer": point.sparsity_transformer, "quant": point.quant,
                           "adapter": point.adapter, "trained_on": point.trained_on, "epochs": b.epochs,
                           "max_train_examples": b.max_train_examples or 0,
                           "max_eval_examples": b.max_eval_examples or 0, "seed": b.seed, "lr": b.lr}


def error_row(point: StudyPoint, exc: BaseException) -> dict[str, Any]:
    log.warning("point %s failed: %s", point.point_id, exc)
    return {**base_row(point), "status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}


ROW_ERRORS = (EdgemtiError, ArithmeticError, ValueError, KeyError, OSError)  # a point's failure, not the run's


def point_row(point: StudyPoint, out: Path, data_dir: str | None, keep_builds: bool = False) -> dict:
    """The stored row of one point: its scores, or ``status = "error"`` and why (never raised)."""
    row = base_row(point)
    try:
        row.update(score_point(point, out, data_dir, keep_builds))
        row.update(status="ok", error=None)
    except ROW_ERRORS as exc:
        return error_row(point, exc)
    return row
