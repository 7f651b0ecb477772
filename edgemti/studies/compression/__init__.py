"""``edgemti study compression``: the paper's compression study (arXiv 2303.16100 s III, Figs. 3-5) measured on
a real backbone and real GLUE data, each point scored on its compiled build as served.

One module per idea: ``config`` (the study file, :class:`StudyConfig`), ``point`` (:class:`StudyPoint` and the
run order), ``store`` (:class:`StudyStore`: the sweep's checksummed part store with the study's columns), ``run``
(:func:`run_study`: train, compile, score, resume), ``results`` (:class:`StudyResults`, CSPs, VASE's choice),
``figures`` (the PNGs), ``table`` (the Markdown table) and ``paper`` (the paper's numbers, from
``data/paper_section3.toml``).
"""

from pathlib import Path

from edgemti.studies.compression.config import (
    STUDY_FORMAT,
    STUDY_VERSION,
    TRAINED_ON,
    Budget,
    Compression,
    StudyConfig,
    load_study,
    study_from_dict,
)
from edgemti.studies.compression.draw import draw_study
from edgemti.studies.compression.paper import PaperSection3, paper_section3
from edgemti.studies.compression.point import StudyPoint, study_points
from edgemti.studies.compression.results import StudyResults, critical_sparsity, recovered_fraction
from edgemti.studies.compression.run import StudySummary, run_study
from edgemti.studies.compression.store import STUDY_COLUMNS, STUDY_INDEX, StudyStore

DEFAULT_STUDY = Path(__file__).resolve().parent.parent.parent / "sweeps" / "compression_minilm.toml"

__all__ = [
    "DEFAULT_STUDY", "STUDY_COLUMNS", "STUDY_FORMAT", "STUDY_INDEX", "STUDY_VERSION", "TRAINED_ON", "Budget",
    "Compression", "PaperSection3", "StudyConfig", "StudyPoint", "StudyResults", "StudyStore", "StudySummary",
    "critical_sparsity", "draw_study", "load_study", "paper_section3", "recovered_fraction", "run_study",
    "study_from_dict", "study_points",
]
