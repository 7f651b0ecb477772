"""Drawing a compression study's results folder: the three figures and the table, from every stored row."""

from __future__ import annotations

from pathlib import Path

from edgemti.studies.compression.figures import draw_fig3, draw_fig4, draw_fig5
from edgemti.studies.compression.results import StudyResults
from edgemti.studies.compression.table import study_table


def draw_study(out: str | Path, img_dir: str | Path | None = None) -> list[str]:
    """Draw fig3/fig4/fig5 PNGs and ``table.md`` of a results folder (into ``img_dir``, default the folder)."""
    res = StudyResults.load(out)
    d = Path(img_dir) if img_dir else Path(out)
    files = [draw_fig3(res, d / "compression_fig3.png"), draw_fig4(res, d / "compression_fig4.png"),
             draw_fig5(res, d / "compression_fig5.png")]
    table = Path(out) / "table.md"
    table.write_text(study_table(res))
    return [str(f) for f in files if f is not None] + [str(table)]
