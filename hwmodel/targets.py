"""The paper's reported numbers, loaded from ``data/paper_fu2023.toml``: targets to print beside ours, never results.

One place reads the file (``paper_targets()``), checks its format, version and every field, and returns a frozen
:class:`PaperTargets`. Studies (``edgemti report --paper``, the demo, Table III) compare against it; the paper
profile specs (``specs/paper/``) restate Table III as requirement overrides, and a test keeps the two equal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import FormatError
from edgemti.hwmodel.spec import DATA_DIR
from edgemti.hwmodel.tomlfile import header_problems, read_toml

TARGETS_FORMAT = "edgemti-paper-targets"
TARGETS_VERSION = 2
PAPER_TARGETS_PATH = DATA_DIR / "paper_fu2023.toml"
METRICS = ("area", "energy_per_inference", "latency_per_inference")
TABLE3_KEYS = tuple(f"{d}_{q}" for d in ("vanilla", "adapter") for q in ("fp32", "q3.13", "q3.5"))


@dataclass(frozen=True)
class PaperTargets:
    """``reduction[quant][metric]``: vanilla FP32 / adapter at ``quant`` (paper s IV-C, Fig. 6);
    ``table3_mib["adapter_q3.5"]`` = (MLC, SLC, SRAM) in the paper's units; ``abstract_reduction_same_quant``
    and ``abstract_footprint_mb`` from the workshop abstract."""

    source: str
    tasks: tuple[str, ...]
    reduction: dict[str, dict[str, float]]
    table3_mib: dict[str, tuple[float, float, float]]
    abstract_reduction_same_quant: dict[str, dict[str, float]]
    abstract_footprint_mb: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "tasks": list(self.tasks), "reduction": self.reduction,
                "table3_mb": {k: list(v) for k, v in self.table3_mib.items()},
                "abstract": {"reduction_same_quant": self.abstract_reduction_same_quant,
                             "footprint_mb": self.abstract_footprint_mb}}


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


@functools.lru_cache(maxsize=4)
def paper_targets(path: str | Path = PAPER_TARGETS_PATH) -> PaperTargets:
    """Load and validate the targets file; one FormatError lists every problem."""
    path = Path(path)
    d = read_toml(path, FormatError, "the paper targets file")
    problems = header_problems(d, TARGETS_FORMAT, TARGETS_VERSION)

    def metrics_table(where: str, t: Any) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        if not isinstance(t, dict) or not t:
            problems.append(f"{where} must be a table of quant -> metrics")
            return out
        for q, row in t.items():
            if not isinstance(row, dict) or set(row) != set(METRICS) or not all(_num(v) for v in row.values()):
                problems.append(f"{where}.{q} must have exactly {list(METRICS)} as numbers > 0, got {row!r}")
                continue
            out[q] = {k: float(v) for k, v in row.items()}
        return out

    reduction = metrics_table("reduction", d.get("reduction"))
    t3 = d.get("table3_mb")
    table3: dict[str, tuple[float, float, float]] = {}
    if not isinstance(t3, dict) or set(t3) != set(TABLE3_KEYS):
        problems.append(f"table3_mb must have exactly the rows {list(TABLE3_KEYS)}")
    else:
        for k, v in t3.items():
            if not isinstance(v, list) or len(v) != 3 or not all(_num(x) for x in v):
                problems.append(f"table3_mb.{k} must be [MLC, SLC, SRAM] numbers > 0, got {v!r}")
            else:
                table3[k] = (float(v[0]), float(v[1]), float(v[2]))
    ab = d.get("abstract", {})
    same = metrics_table("abstract.reduction_same_quant", ab.get("reduction_same_quant") if isinstance(ab, dict) else None)
    fp = ab.get("footprint_mb") if isinstance(ab, dict) else None
    foot: dict[str, dict[str, float]] = {}
    if not isinstance(fp, dict) or not fp:
        problems.append("abstract.footprint_mb must be a table of design_quant -> {rram, sram}")
    else:
        for k, v in fp.items():
            if not isinstance(v, dict) or set(v) != {"rram", "sram"} or not all(_num(x) for x in v.values()):
                problems.append(f"abstract.footprint_mb.{k} must be {{rram, sram}} numbers > 0, got {v!r}")
            else:
                foot[k] = {kk: float(x) for kk, x in v.items()}
    tasks = d.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        problems.append(f"tasks must be a list of task names, got {tasks!r}")
    if problems:
        raise FormatError(f"{path}: " + "; ".join(problems))
    assert isinstance(tasks, list)
    return PaperTargets(str(d.get("source", "")), tuple(tasks), reduction, table3, same, foot)
