"""The paper's Table III, reproduced where our accounting agrees with it (docs/FOOTPRINT.md explains the rest)."""

import pytest

from edgemti.compiler import CompileConfig, plan_build
from edgemti.compiler.footprint import MIB, footprint, format_table3, paper_table3, table3_rows


@pytest.mark.parametrize("design", ["adapter", "vanilla"])
def test_table3_rram_columns_of_albert_base(design):
    """albert-base, 3 tasks, 50 % cumulative sparsity, Q3.13: MLC (paper convention) and SLC within 1 %."""
    cfg = CompileConfig(backbone="albert-base", synthetic_tasks=("mnli", "mrpc", "qnli"), design=design,
                        quant="q3.13", sparsity_embedding=0.5, sparsity_transformer=0.5)
    fp = footprint(plan_build(cfg).manifest)
    mlc, slc, sram = fp.paper_mib()
    paper = paper_table3()[(design, "q3.13")]
    assert mlc == pytest.approx(paper[0], rel=0.01)
    assert slc == pytest.approx(paper[1], rel=0.01)
    assert fp.mlc_bytes == 2 * fp.backbone_nnz  # the physical bytes are twice the paper's "MB"
    # SRAM is the largest pack in physical bytes; the paper's column differs (FOOTPRINT.md items 4-5)
    params_mnli = (198_272 + 3_072 + 2_307) if design == "adapter" else 7_779_843
    assert fp.sram_bytes == 2 * params_mnli and fp.sram_task == "mnli"
    row = table3_rows([fp])[0]
    assert row["paper_mlc"] == paper[0] and row["sram_mib"] == pytest.approx(2 * params_mnli / MIB, abs=1e-3)
    assert "paper" in format_table3([row])
