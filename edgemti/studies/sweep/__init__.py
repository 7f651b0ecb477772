"""``edgemti sweep``: design-space exploration over designs, formats, sparsities, adapters and the architecture.

One typed grid file (:class:`SweepConfig`, docs/SWEEP.md) names the axes; :func:`sweep_points` expands it into
:class:`SweepPoint` values (grid product, random, or Latin-hypercube); :func:`run_sweep` evaluates every point
not already in the results folder, locally on a process pool or on a Ray cluster, and streams rows to Parquet
part files (CSV without pyarrow); :func:`plot_sweep` draws the Pareto fronts. A point's footprint and hardware
workload are analytic (:mod:`edgemti.compiler.analytic`: exact, no images written), priced by
:class:`edgemti.hwmodel.HwModel`.

One module per idea: ``point`` (:class:`SweepPoint`), ``grid`` (the grid file and its expansion), ``assets``
(what every worker needs, cached on disk), ``evaluate`` (:class:`Evaluator`: one point -> one row), ``store``
(:class:`ResultStore`: part files + checksummed index), ``run`` (:func:`run_sweep`: pool / Ray execution) and
``plot`` (Pareto fronts). This package re-exports their public names (``edgemti.studies.sweep.X``).
"""

from edgemti.studies.sweep.assets import SweepAssets, prepare_assets
from edgemti.studies.sweep.evaluate import Evaluator
from edgemti.studies.sweep.grid import (
    GRID_FORMAT,
    GRID_VERSION,
    MODES,
    Axis,
    SweepConfig,
    load_sweep,
    sweep_from_dict,
    sweep_points,
)
from edgemti.studies.sweep.pareto import pareto_mask
from edgemti.studies.sweep.plot import OBJECTIVES, plot_sweep
from edgemti.studies.sweep.point import (
    COMPUTE_COMPONENTS,
    CONVENTION_NAMES,
    CONVENTIONS,
    SPEC_AXES,
    TASK_ORDER,
    SweepPoint,
)
from edgemti.studies.sweep.run import SweepSummary, evaluate_chunk, run_sweep
from edgemti.studies.sweep.store import (
    CACHE_DIR,
    COLUMNS,
    INDEX_FILE,
    PARTS_DIR,
    RESULTS_FORMAT,
    RESULTS_VERSION,
    ResultStore,
)

__all__ = [
    "CACHE_DIR", "COLUMNS", "COMPUTE_COMPONENTS", "CONVENTIONS", "CONVENTION_NAMES", "GRID_FORMAT", "GRID_VERSION",
    "INDEX_FILE", "MODES", "OBJECTIVES", "PARTS_DIR", "RESULTS_FORMAT", "RESULTS_VERSION", "SPEC_AXES", "TASK_ORDER",
    "Axis", "Evaluator", "ResultStore", "SweepAssets", "SweepConfig", "SweepPoint", "SweepSummary", "evaluate_chunk",
    "load_sweep", "pareto_mask", "plot_sweep", "prepare_assets", "run_sweep", "sweep_from_dict", "sweep_points",
]
