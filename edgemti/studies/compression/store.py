"""The compression study's results folder: :class:`StudyStore`, the sweep's checksummed Parquet/CSV part store
(:class:`edgemti.studies.sweep.ResultStore`) with the study's own format name, index file and columns."""

from __future__ import annotations

from edgemti.studies.sweep.store import ResultStore

STUDY_RESULTS_FORMAT, STUDY_RESULTS_VERSION = "edgemti-study-compression-results", 1
STUDY_INDEX = "study.json"
STUDY_COLUMNS: dict[str, type] = {
    "id": str, "task": str, "backbone": str, "sparsity_embedding": float, "sparsity_transformer": float,
    "quant": str, "adapter": str, "trained_on": str,
    "epochs": int, "max_train_examples": int, "max_eval_examples": int, "seed": int, "lr": float,
    "status": str, "error": str,
    "metric": str,  # the headline metric's name (Table I's: MRPC f1, STS-B pearson, else accuracy)
    "score": float,  # the headline metric of the build as served, % (100 x the fraction)
    "metrics": str,  # JSON: every official metric of the task, %
    "num_eval_examples": int, "num_train_examples": int,
    "pack_score": float,  # the pack's own dev score at the end of its training (in torch, as trained), %
    "cumulative_sparsity": float,  # Eq. 1, measured on the build's backbone image
    "p_embedding": float,  # the embedding group's share of the backbone's parameters (Eq. 1's P_embd)
    "pack_key": str, "build_id": str, "backbone_image_hash": str,
    "train_s": float,  # the pack's training loop, s (recorded in the pack: the same for every point sharing it)
    "eval_s": float,  # scoring the build, s
}


class StudyStore(ResultStore):
    """``study.json`` + ``parts/``: one row per :class:`StudyPoint`, appended as points finish."""

    FORMAT, VERSION, INDEX, COLUMNS = STUDY_RESULTS_FORMAT, STUDY_RESULTS_VERSION, STUDY_INDEX, STUDY_COLUMNS
