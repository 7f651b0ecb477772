"""edgemti study compression: the study file, its points and run order, the paper's numbers file, the results
store, CSP / VASE / recovery arithmetic, figures and table from stored rows, and the sweep's accuracy lookup."""

from __future__ import annotations

import json
import textwrap

import pytest

from edgemti.errors import ConfigError, FormatError
from edgemti.studies.compression import (
    DEFAULT_STUDY,
    StudyResults,
    StudyStore,
    critical_sparsity,
    draw_study,
    load_study,
    paper_section3,
    recovered_fraction,
    study_from_dict,
    study_points,
)
from edgemti.studies.compression.paper import SECTION3_PATH
from edgemti.studies.compression.store import STUDY_COLUMNS

HEAD = 'format = "edgemti-study-compression"\nformat_version = 1\n'
SMALL = HEAD + textwrap.dedent("""\
    backbone = "albert-tiny"
    tasks = ["rte", "sst2"]
    [budget]
    max_train_examples = 16
    max_eval_examples = 0
    [fig3]
    task = "rte"
    adapter = "8"
    embedding = [0.3, 0.6]
    transformer = [0.3, 0.6]
    both = [[0.3, 0.3], [0.6, 0.6]]
    [fig4]
    adapters = ["8", "16"]
    [fig4.backbones]
    unpruned = [0.0, 0.0]
    csp_all = [0.3, 0.3]
    [fig5]
    backbone = "csp_all"
    quant = ["fp32", "Q3.5"]
    adapters = ["8"]
    """)


def _study(tmp_path, text=SMALL):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return load_study(p)


def test_shipped_study_file_loads_and_states_its_budget():
    cfg = load_study(DEFAULT_STUDY)
    assert cfg.backbone == "minilm" and set(cfg.tasks) == {"sst2", "mrpc", "stsb", "rte"}
    assert cfg.fig3 and len({0.0, *cfg.fig3.embedding}) >= 5 and len({0.0, *cfg.fig3.transformer}) >= 5
    assert cfg.fig4 and {c.name for c in cfg.fig4.backbones} == {"unpruned", "csp_embd", "csp_tf", "csp_all"}
    assert set(cfg.fig4.adapters) == {"8", "32", "64"}
    assert cfg.fig5 and cfg.fig5.quants == ("fp32", "q3.13", "q3.5")
    assert "1000 seeded train examples, 1 epoch(s)" in cfg.budget.describe()
    assert study_from_dict(cfg.to_dict()) == study_from_dict(cfg.to_dict())  # the saved config parses back


def test_study_file_lists_every_problem(tmp_path):
    bad = HEAD + textwrap.dedent("""\
        colour = "red"
        tasks = ["sst2", "nope"]
        [budget]
        epochs = 0
        [fig3]
        embedding = [0.3, 1.5]
        trained_on = ["float", "later"]
        [fig4]
        adapters = ["x"]
        [fig4.backbones]
        a = [0.1]
        [fig5]
        backbone = "zzz"
        quant = ["q9"]
        """)
    with pytest.raises(ConfigError) as e:
        _study(tmp_path, bad)
    msg = str(e.value)
    for want in ("colour is not a known key", "unknown task 'nope'", "Budget: epochs must be a positive int",
                 "fig3.embedding must be a non-empty list of sparsities", "fig3.trained_on must be among",
                 "fig4.adapters", "fig4.backbones.a must be [S_embd, S_tf]", "fig5.backbone must name one of",
                 "fig5.quant"):
        assert want in msg, want


def test_points_are_deduplicated_and_ordered(tmp_path):
    cfg = _study(tmp_path)
    pts = study_points(cfg)
    assert len({p.point_id for p in pts}) == len(pts)
    # the uncompressed fp32 point has one pack (float): "retrained" on it is the same pack
    unpruned = [p for p in pts if not p.compressed]
    assert {p.trained_on for p in unpruned} == {"float"}
    # fig4 at its first adapter size comes first: the first task's points of both kinds, then every float point,
    # then the retrained ones
    assert [(p.task, p.adapter, p.sparsity_embedding, p.trained_on) for p in pts[:3]] == [
        ("rte", "8", 0.0, "float"), ("rte", "8", 0.3, "float"), ("rte", "8", 0.3, "compressed")]
    kinds = [p.trained_on for p in pts[3:] if p.adapter == "8"]
    assert kinds == sorted(kinds, key=lambda k: k != "float")
    # every compressed setting has both pack kinds; float packs are shared across compressions
    comp = [p for p in pts if p.compressed]
    assert {p.trained_on for p in comp} == {"float", "compressed"}
    floats = {p.pack_key for p in pts if p.trained_on == "float"}
    assert len(floats) == len({(p.task, p.adapter) for p in pts})
    assert any(p.quant == "q3.5" for p in pts)  # fig5's format, canonical spelling


def test_paper_numbers_come_from_the_data_file(tmp_path):
    p = paper_section3()
    assert p.fig3["task"] == "mnli" and p.baseline("sst2") is not None and p.baseline("nope") is None
    assert 0 < p.eq1["p_embedding"] < 1 and "source" in p.fig4
    bad = tmp_path / "p.toml"
    bad.write_text(SECTION3_PATH.read_text().replace("csp_cumulative_both = 0.50", "csp_cumulative_both = 50"))
    with pytest.raises(FormatError, match="fig3.csp_cumulative_both must be a fraction"):
        paper_section3(bad)


def test_csp_and_recovery_arithmetic():
    line = [(0.0, 80.0), (10.0, 80.5), (20.0, 79.4), (30.0, 75.0), (40.0, 79.9)]
    assert critical_sparsity(line, 80.0, tolerance=1.0) == 20.0  # stops at the first drop, not the later rebound
    assert critical_sparsity(line, 80.0, tolerance=0.0) == 10.0
    assert critical_sparsity([(10.0, 50.0)], 80.0) is None
    assert recovered_fraction(80.0, 60.0, 75.0) == pytest.approx(0.75)
    assert recovered_fraction(80.0, 79.8, 81.0) is None  # nothing lost, nothing to recover


def _rows(cfg, score):
    """Stored rows for every point of ``cfg``, scored by ``score(point)`` (a fixture of the figure code)."""
    out = []
    for p in study_points(cfg):
        out.append({"id": p.point_id, "task": p.task, "backbone": p.backbone,
                    "sparsity_embedding": p.sparsity_embedding, "sparsity_transformer": p.sparsity_transformer,
                    "quant": p.quant, "adapter": p.adapter, "trained_on": p.trained_on, "epochs": 1,
                    "max_train_examples": 16, "max_eval_examples": 0, "seed": 0, "lr": 1e-3, "status": "ok",
                    "error": None, "metric": "accuracy", "score": score(p), "metrics": "{}",
                    "num_eval_examples": 8, "num_train_examples": 16, "pack_score": 70.0,
                    "cumulative_sparsity": 0.4 * p.sparsity_embedding + 0.6 * p.sparsity_transformer,
                    "p_embedding": 0.4, "pack_key": p.pack_key, "build_id": "b", "backbone_image_hash": "h",
                    "train_s": 0.0, "eval_s": 0.0})
    return out


def _score(p):
    loss = 20 * (p.sparsity_embedding + p.sparsity_transformer) + (10 if p.quant == "q3.5" else 0)
    return 70.0 - loss / (2 if p.trained_on == "compressed" else 1) + (1 if p.adapter == "16" else 0)


def _stored(tmp_path, cfg, rows, storage="csv"):
    out = tmp_path / "study"
    store = StudyStore(out, storage)
    store.set_config(cfg.to_dict())
    store.append(rows)
    return out


def test_figures_and_table_from_stored_rows(tmp_path):
    cfg = _study(tmp_path)
    rows = _rows(cfg, _score)
    # one point not measured (fig5's sst2 q3.5 retrained): left out and said so, never interpolated
    missing = next(r for r in rows if (r["task"], r["quant"], r["trained_on"]) == ("sst2", "q3.5", "compressed"))
    rows.remove(missing)
    out = _stored(tmp_path, cfg, rows)
    res = StudyResults.load(out)
    assert len(res.ok) == len(rows) and res.get(missing["task"], missing["sparsity_embedding"],
                                                 missing["sparsity_transformer"], missing["quant"],
                                                 missing["adapter"], missing["trained_on"]) is None
    assert res.vase("rte", 0.3, 0.3, "fp32", ("8", "16"), "compressed")[0] == "16"
    files = draw_study(out)
    assert {f.rsplit("/", 1)[-1] for f in files} == {"compression_fig3.png", "compression_fig4.png",
                                                    "compression_fig5.png", "table.md"}
    table = (out / "table.md").read_text()
    # rte on csp_all: float-trained VASE 70 - 12 + 1 = 59, retrained 70 - 6 + 1 = 65, unpruned 71: recovered 50 %
    assert "| rte | csp_all (0.3/0.3) |" in table and "| 50 % |" in table
    assert "| both | 50.0 |" in table  # the paper's CSP beside ours, from the data file
    assert "| sst2 | 58.0 (a8) | 64.0 (a8) | 48.0 (a8) | not measured |" in table


def test_store_refuses_a_corrupt_part(tmp_path):
    cfg = _study(tmp_path)
    out = _stored(tmp_path, cfg, _rows(cfg, _score)[:3])
    part = next((out / "parts").iterdir())
    part.write_text(part.read_text().replace("accuracy", "accurac"))
    with pytest.raises(FormatError, match="sha256"):
        StudyResults.load(out)
    assert list(STUDY_COLUMNS)[:2] == ["id", "task"]


def _sweep_rows(tmp_path, points):
    """A sweep results folder holding ``points`` with made-up costs (a fixture of the accuracy join and plot)."""
    from dataclasses import asdict

    from edgemti.studies.sweep import ResultStore

    store = ResultStore(tmp_path / "sweep", "csv")
    store.set_config({"name": "fixture"})
    store.append([{"id": p.point_id, **asdict(p), "status": "ok", "fits": i != 1, "cumulative_sparsity": 0.3,
                   "area_mm2": 10.0 - i, "energy_per_inference_j": 1e-3 * (1 + i), "latency_per_inference_s": 1e-3}
                  for i, p in enumerate(points)])
    return tmp_path / "sweep"


def test_sweep_points_carry_the_study_accuracy(tmp_path):
    from edgemti.studies.sweep import SweepPoint, plot_sweep
    from edgemti.studies.sweep.accuracy import AccuracyTable

    cfg = _study(tmp_path)
    out = _stored(tmp_path, cfg, _rows(cfg, _score))
    pts = [SweepPoint(backbone="albert-tiny", quant=q, adapter="8", sparsity_embedding=0.3, sparsity_transformer=st,
                      seq_len=16, num_tasks=2) for q in ("fp32", "q3.5") for st in (0.3, 0.5)]
    pts.append(SweepPoint(design="vanilla", backbone="albert-tiny", quant="fp32", seq_len=16, num_tasks=2))
    sweep_out = _sweep_rows(tmp_path, pts)
    res = plot_sweep(sweep_out, accuracy=out)["accuracy"]
    doc = json.loads((sweep_out / "accuracy.json").read_text())
    # measured: adapter 8 at 0.3/0.3 in fp32 and q3.5 (fig4 + fig5 retrained, both tasks); every other point says why
    assert res["measured"] == 2 and res["not_measured"] == 3
    got = {i: v["score"] for i, v in doc["points"].items() if v["score"] is not None}
    assert got == {pts[0].point_id: pytest.approx(_mean(cfg, 0.3, 0.3, "fp32")),
                   pts[2].point_id: pytest.approx(_mean(cfg, 0.3, 0.3, "q3.5"))}
    assert doc["points"][pts[1].point_id]["reason"] == "not measured on rte, sst2 at sparsity 0.3/0.5, fp32, adapter 8"
    assert "adapter designs only" in doc["points"][pts[4].point_id]["reason"]
    # the front: energy grows with the index and the first point (measured, fits) is the cheapest
    assert pts[0].point_id in res["pareto_ids"]["energy_per_inference_j"]
    assert (sweep_out / "accuracy.png").is_file()
    assert not AccuracyTable(out).lookup({"design": "adapter", "backbone": "minilm", "sparsity_embedding": 0.3,
                                          "sparsity_transformer": 0.3, "quant": "fp32", "adapter": "8"}).measured


def _mean(cfg, se, st, quant):
    from edgemti.studies.compression.point import StudyPoint

    return sum(_score(StudyPoint(t, "albert-tiny", se, st, quant, "8", "compressed", cfg.budget))
               for t in cfg.tasks) / len(cfg.tasks)


def test_pool_takes_the_earliest_point_and_never_trains_a_pack_twice(tmp_path):
    from edgemti.studies.compression.pool import _next_job

    pts = study_points(_study(tmp_path))
    a, b = pts[0], next(p for p in pts if p.pack_key != pts[0].pack_key)
    same_as_a = [p for p in pts if p.pack_key == a.pack_key and p is not a]
    assert _next_job(pts, set(), {}, set()) == ("train", a)  # nothing trained: the first point's pack
    # a's pack in training: its points are passed over, the next other pack is trained
    assert _next_job(pts, set(), {}, {a.pack_key}) == ("train", b)
    assert _next_job([a, *same_as_a], set(), {}, {a.pack_key}) is None  # all wait for that pack
    assert _next_job(pts, {a.pack_key}, {}, set()) == ("score", a)
    assert _next_job(pts, set(), {a.pack_key: ValueError("x")}, set()) == ("failed", a)
