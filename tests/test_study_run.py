"""edgemti study compression end to end on a tiny model: a 3-point study (bert-tiny, an RTE-shaped fixture) trains
the float pack and the pack retrained on the compressed backbone, compiles each point's build and scores it as
served (the same scores `edgemti eval --build` gives), resumes without redoing a point, runs on a pool."""

from __future__ import annotations

import textwrap

from click.testing import CliRunner
from test_tasks_train import make_glue

from edgemti.cli import main
from edgemti.studies.compression import StudyResults, StudyStore, load_study, run_study, study_points
from edgemti.studies.compression.run import BUILDS_DIR, PACKS_DIR


def _study(tmp_path, glue):
    p = tmp_path / "study.toml"
    p.write_text('format = "edgemti-study-compression"\nformat_version = 1\n' + textwrap.dedent(f"""\
        backbone = "bert-tiny"
        tasks = ["rte"]
        data_dir = "{glue}"
        [budget]
        max_train_examples = 16
        max_eval_examples = 6
        batch_size = 8
        lr = 5e-3
        [fig4]
        adapters = ["8"]
        quant = "q3.5"
        [fig4.backbones]
        unpruned = [0.0, 0.0]
        pruned = [0.3, 0.5]
        """))
    return p


def test_study_scores_builds_as_served_and_resumes(tmp_path):
    from edgemti.studies.accuracy import BuildEvalConfig, evaluate_build

    glue = make_glue(tmp_path / "glue")
    grid = _study(tmp_path, glue)
    pts = study_points(load_study(grid))
    # unpruned q3.5 is compressed (quantized): float pack and retrained pack on both backbones
    assert len(pts) == 4 and {p.trained_on for p in pts} == {"float", "compressed"}
    out = tmp_path / "out"
    s = run_study(grid, out, progress=False, keep_builds=True, limit=3, plot=False)
    assert (s.evaluated, s.errors) == (3, 0)
    res = StudyResults.load(out)
    for r in res.ok:
        assert r["num_eval_examples"] == 6 and r["metric"] == "accuracy" and 0 <= r["score"] <= 100
        # the stored score is the build's served score (what eval --build reports on the same subset)
        build = out / BUILDS_DIR / next(p.build_key for p in pts if p.point_id == r["id"])
        ev = evaluate_build(build, BuildEvalConfig(max_examples=6, data_dir=str(glue)))
        assert r["score"] == ev.tasks[0].headline
    retrained = [r for r in res.ok if r["trained_on"] == "compressed"]
    assert retrained and all(r["backbone_image_hash"] for r in retrained)
    pruned = [r for r in res.ok if r["sparsity_transformer"] == 0.5]
    assert all(r["cumulative_sparsity"] > 0.3 for r in pruned)
    assert len(list((out / PACKS_DIR).iterdir())) == 2  # one float pack shared by both backbones + 1 retrained
    # resume: only the 4th point is new (its retrained pack is trained, nothing else)
    s = run_study(grid, out, progress=False, plot=False)
    assert (s.skipped, s.evaluated, s.errors) == (3, 1, 0)
    assert len(list((out / PACKS_DIR).iterdir())) == 3
    assert len(StudyStore(out).rows()) == 4
    r = CliRunner().invoke(main, ["study", "compression", "--grid", str(grid), "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "0 points scored (4 already done" in r.output and (out / "table.md").is_file()
    assert "| rte | pruned (0.3/0.5) |" in (out / "table.md").read_text()
