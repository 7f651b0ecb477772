"""The paper's compression-study numbers, loaded from ``data/paper_section3.toml``: targets printed beside the
measured study, never results. One function reads the file (:func:`paper_section3`), checks its format, version
and every field, and returns a frozen :class:`PaperSection3`."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import FormatError

SECTION3_FORMAT, SECTION3_VERSION = "edgemti-paper-section3", 1
SECTION3_PATH = Path(__file__).resolve().parent / "data" / "paper_section3.toml"
_FRACTIONS = {"eq1": ("p_embedding", "p_transformer"),
              "fig3": ("csp_cumulative_embedding", "csp_cumulative_transformer", "csp_cumulative_both"),
              "fig4": ("rram_increase_csp_tf_over_csp_all",)}


@dataclass(frozen=True)
class PaperSection3:
    """``eq1`` / ``fig3`` / ``fig4`` / ``fig5``: the tables of the file (each with its ``source``);
    ``table1[row][task]``: Table I, %, the baselines of Fig. 4."""

    source: str
    model: str
    eq1: dict[str, Any]
    fig3: dict[str, Any]
    fig4: dict[str, Any]
    fig5: dict[str, Any]
    table1: dict[str, dict[str, float]]

    def baseline(self, task: str, row: str = "adapter-albert-64") -> float | None:
        """Table I's value of ``task`` (None: the paper has none)."""
        return self.table1.get(row, {}).get(task)


@functools.lru_cache(maxsize=4)
def paper_section3(path: str | Path = SECTION3_PATH) -> PaperSection3:
    """Load and validate the file; one :class:`FormatError` lists every problem."""
    from edgemti.hwmodel.tomlfile import header_problems, read_toml

    path = Path(path)
    d = read_toml(path, FormatError, "the file of the paper's section III numbers")
    problems = header_problems(d, SECTION3_FORMAT, SECTION3_VERSION)
    for key in ("source", "model"):
        if not isinstance(d.get(key), str):
            problems.append(f"{key} must be a string")
    for table in ("eq1", "fig3", "fig4", "fig5", "table1"):
        t = d.get(table)
        if not isinstance(t, dict):
            problems.append(f"[{table}] is missing")
            continue
        if table != "table1" and not isinstance(t.get("source"), str):
            problems.append(f"{table}.source must be a string (where the paper states it)")
        for k in _FRACTIONS.get(table, ()):
            v = t.get(k)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                problems.append(f"{table}.{k} must be a fraction in [0, 1], got {v!r}")
    for row, vals in ((d.get("table1") or {}).items() if isinstance(d.get("table1"), dict) else ()):
        if row == "source":
            continue
        if not isinstance(vals, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and 0 <= v <= 100 for v in vals.values()):
            problems.append(f"table1.{row} must map tasks to percentages in [0, 100]")
    if problems:
        raise FormatError(f"{path}: " + "; ".join(problems))
    return PaperSection3(d["source"], d["model"], dict(d["eq1"]), dict(d["fig3"]), dict(d["fig4"]), dict(d["fig5"]),
                         {r: {t: float(v) for t, v in vals.items()} for r, vals in d["table1"].items() if r != "source"})
