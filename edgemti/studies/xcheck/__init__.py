"""Cross-check of the hardware model against KU Leuven's zigzag, matmul by matmul (docs/HWMODEL.md).

:func:`cross_check` prices one inference with :class:`edgemti.hwmodel.HwModel`, exports the spec and the
inference's matmuls with :mod:`edgemti.hwmodel.zigzag_export`, runs zigzag (the optional ``[xcheck]`` extra,
imported only in :mod:`.zigzag_run`, lazily) and compares, per matmul shape: MACs, energy, latency; and their sum
over the inference.

The two models agree on what they both model; where one models something the other does not, the difference is
a *named adjustment* (:data:`ADJUSTMENTS`), computed from the spec and the build, added to zigzag's figure and
listed per row. Nothing else bridges them: a row outside the tolerance after its adjustments fails the check.

One idea per module: ``matmuls`` (the matmuls of one inference, shapes probed with onnxruntime), ``zigzag_run``
(running zigzag, reading its results), ``adjustments`` (the named adjustments and known differences),
``comparison`` (rows, tolerance verdict, Markdown table, JSON) and ``check`` (the study: one inference or a build
folder end to end).
"""

from edgemti.studies.xcheck.adjustments import ADJUSTMENTS, KNOWN_DIFFERENCES
from edgemti.studies.xcheck.check import cross_check, cross_check_build
from edgemti.studies.xcheck.comparison import (
    ABS_FLOOR,
    ENERGY_TOL,
    LATENCY_TOL,
    LEAK,
    XCHECK_FORMAT,
    XCHECK_VERSION,
    CrossCheck,
    Row,
    compare,
    format_table,
    write_json,
)
from edgemti.studies.xcheck.matmuls import VIEW_OPS, matmul_nodes, probe_shapes
from edgemti.studies.xcheck.zigzag_run import ZzResult, run_zigzag

__all__ = ["ABS_FLOOR", "ADJUSTMENTS", "ENERGY_TOL", "KNOWN_DIFFERENCES", "LATENCY_TOL", "LEAK", "VIEW_OPS",
           "XCHECK_FORMAT", "XCHECK_VERSION", "CrossCheck", "Row", "ZzResult", "compare", "cross_check",
           "cross_check_build", "format_table", "matmul_nodes", "probe_shapes", "run_zigzag", "write_json"]
