"""Early exit on a tiny ALBERT (3 passes of one shared layer): off-ramps train alone, the policy round-trips through
pack and build, the staged graph computes what the whole graph computes, and a layer skipped is a layer not charged."""

import dataclasses
import json

import numpy as np
import pytest

from edgemti.errors import ConfigError, FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.tasks.pack import PACK_JSON, load_pack, save_pack
from edgemti.tasks.train_config import TrainConfig

WORDS = "good bad fine awful great poor nice terrible happy sad".split()


def make_sst2(root, n_train=120, n_dev=16):
    rng = np.random.default_rng(0)
    d = root / "SST-2"
    d.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for _ in range(n):
            w = WORDS[rng.integers(len(WORDS))]
            rows.append(f"the film was {w} .\t{WORDS.index(w) % 2}")
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    from edgemti.tasks.offramp import OffRampConfig, train_with_off_ramps
    from edgemti.tasks.offramp_calibrate import calibrate_exit

    root = tmp_path_factory.mktemp("ee")
    glue = make_sst2(root / "glue")
    cfg = TrainConfig(task="sst2", backbone="albert-tiny", adapter_size="8", epochs=1, batch_size=16, lr=5e-3,
                      data_dir=str(glue), seed=0)
    p = train_with_off_ramps(cfg, root / "pack", OffRampConfig(epochs=2, holdout_examples=40), progress=False)
    cal = calibrate_exit(root / "pack", 0.05, out_dir=root / "cal")
    return root, glue, p, cal


@pytest.fixture(scope="module")
def build(packs):
    from edgemti.compiler import CompileConfig, compile_build

    root, _, _, _ = packs
    return compile_build(CompileConfig(backbone="albert-tiny", packs=(root / "cal",)), root / "build")


@pytest.fixture(scope="module")
def engine(build):
    from edgemti.runtime.engine import Engine

    return Engine.open(build)


def test_stage2_trains_only_off_ramps(packs):
    root, _, p, _ = packs
    first = json.loads((root / "pack" / PACK_JSON).read_text())
    assert first["format_version"] == 4 and first["off_ramps"]["num_layers"] == 3 and first["exit"] is None
    ramps = sorted(n for n in p.tensors if n.startswith("off_ramps."))
    assert len(ramps) == 8  # 2 off-ramps (after layers 1, 2) x dense/classifier x weight/bias
    assert p.off_ramps["train"]["frozen_bit_identical"]
    # initialised from ALBERT's pooler and the task head, then trained: they moved away from the head
    assert not np.array_equal(p.tensors["off_ramps.0.classifier.weight"], p.tensors["classifier.weight"])


def test_policy_round_trips_and_is_validated(packs, tmp_path):
    _, _, _, cal = packs
    pol = cal.exit
    assert isinstance(pol, ExitPolicy) and pol.num_layers == 3 and 1 <= len(pol.lut_entropy) <= 100
    c = pol.calibration
    assert c["full_depth_accuracy"] - c["accuracy"] <= 0.05 + 1e-9 and sum(c["exit_histogram"]) == c["num_examples"]
    again = load_pack(save_pack(cal, tmp_path / "copy"))
    assert again.exit == pol
    with pytest.raises(ConfigError, match="lut_exit_layer must hold layers in"):
        ExitPolicy(3, 0.5, (0.1, 0.2), (1, 4))
    with pytest.raises(ConfigError, match="threshold must be"):
        ExitPolicy(3, -1.0, (0.1,), (1,))
    meta = json.loads((tmp_path / "copy" / PACK_JSON).read_text())
    meta["exit"]["lut_entropy"] = [0.3, 0.1]
    meta["exit"]["lut_exit_layer"] = [1, 2]
    (tmp_path / "copy" / PACK_JSON).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="sorted ascending"):
        load_pack(tmp_path / "copy")
    meta["format_version"] = 1
    (tmp_path / "copy" / PACK_JSON).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="need format_version 4"):
        load_pack(tmp_path / "copy")


def test_threshold_choice_and_predictor_rules():
    from edgemti.tasks.offramp_calibrate import LayerOutputs, choose_threshold, exit_layers, fit_predictor

    ent = np.array([[0.1, 0.5, 0.6], [0.9, 0.2, 0.6], [0.9, 0.8, 0.6]])
    assert exit_layers(ent, 0.3).tolist() == [1, 2, 3]
    assert exit_layers(ent, 0.0).tolist() == [3, 3, 3]  # threshold 0: full depth for everyone
    # layer 1 of sentence 0 is wrong (label 1 vs gold 0): a drop of 1/3 is needed to exit it early
    logits = np.zeros((3, 3, 2))
    logits[:, :, 0] = 1.0
    logits[0, 0] = [0.0, 1.0]
    out = LayerOutputs(logits, np.zeros(3, dtype=int))
    t_strict, s_strict = choose_threshold(out, 0.0)
    t_loose, s_loose = choose_threshold(out, 0.34)
    assert s_strict["accuracy"] == 1.0 and s_loose["accuracy"] == pytest.approx(2 / 3) and t_loose > t_strict
    centres, layers = fit_predictor(ent, 0.3, rows=3)
    assert centres == sorted(centres) and layers[0] == 1 and layers[-1] in (2, 3)


def test_staged_graph_computes_the_whole_graph(engine):
    from edgemti.formats.graph import bind_initializers, load_graph
    from edgemti.runtime.stages import StagedGraph, stage_of_node

    graph = load_graph(engine.build.graph_bytes())
    sg = StagedGraph(bind_initializers(graph, engine.hma.read_backbone()))
    assert [s.answer for s in sg.stages] == ["exit_logits_1", "exit_logits_2", "logits"]
    owner = stage_of_node(graph, sg.stages)
    assert len(owner) == len(graph.graph.node)  # every node in exactly one stage
    full = engine.infer("sst2", "the film was great .")
    feeds, _ = engine.tokenize("the film was great .")
    values = dict(feeds)
    outs = [sg.run(k, values, engine.pack_tensors("sst2")) for k in (1, 2, 3)]
    np.testing.assert_allclose(outs[-1][0], full.logits, rtol=1e-5, atol=1e-6)
    # the off-ramp answers are the float model's off-ramps (same pack, quantized): close, not garbage
    assert all(o.shape == (1, 2) for o in outs)


def _with_threshold(ee, threshold, predicted=None):
    """The engine with every task's threshold set (and its predictor saying ``predicted`` for every sentence)."""
    ee.policies = {t: dataclasses.replace(p, threshold=threshold, **(
        {"lut_exit_layer": (predicted,) * len(p.lut_entropy)} if predicted else {})) for t, p in ee.policies.items()}
    return ee


def test_a_skipped_layer_is_not_charged(engine):
    from edgemti.runtime.early_exit import EarlyExitEngine

    ee = EarlyExitEngine(engine)
    text = "the film was good ."
    engine.make_resident("sst2")
    seq = engine.tokenize(text)[0]["input_ids"].shape[1]
    full = engine.hw.inference(seq, "sst2")
    layers = ee.costs.layer_costs("sst2", seq).layers
    assert len(layers) == 3 and all(c.energy_j > 0 for c in layers)
    assert sum(c.energy_j for c in layers) == pytest.approx(full.energy_j, rel=1e-9)

    deep = _with_threshold(ee, 0.0).infer("sst2", text)  # nothing is under 0 nats: every layer runs
    assert deep["exit_layer"] == 3 and len(deep["entropies"]) == 3
    assert deep["inference"]["energy_j"] == pytest.approx(full.energy_j, rel=1e-9)
    assert deep["logits"] == pytest.approx(engine.infer("sst2", text).logits, rel=1e-5, abs=1e-6)

    shallow = _with_threshold(ee, 10.0).infer("sst2", text)  # every entropy is under 10 nats: exit at layer 1
    assert shallow["exit_layer"] == 1 and len(shallow["entropies"]) == 1
    assert shallow["inference"]["energy_j"] == pytest.approx(layers[0].energy_j, rel=1e-9)
    assert shallow["inference"]["latency_s"] == pytest.approx(layers[0].latency_s, rel=1e-9)
    # layers 2 and 3 are exactly what was not charged, component by component
    for comp, joules in full.energy_by_component_j.items():
        skipped = layers[1].energy_by_component_j.get(comp, 0) + layers[2].energy_by_component_j.get(comp, 0)
        assert shallow["inference"]["energy_by_component_j"].get(comp, 0) == pytest.approx(joules - skipped,
                                                                                            rel=1e-9, abs=1e-21)
    assert ee.summary()["exit_layer_histogram"] == {"1": 1, "2": 0, "3": 1}


def test_dvfs_scaling_rules_and_the_choice():
    from edgemti.hwmodel.dvfs import DvfsSpec, OperatingPoint, choose_point, scale
    from edgemti.hwmodel.spec import load_spec

    dv = load_spec().dvfs
    assert dv is not None and len(dv.points) == 16 and dv.nominal.freq_hz == 1e9
    low = dv.points[0]
    k, v = dv.nominal.freq_hz / low.freq_hz, low.voltage_v / dv.nominal.voltage_v
    e = {"pe_array": 1.0, "rram_mlc": 1.0, "dram": 1.0, "leak_sram": 1.0}
    c = scale(e, latency_s=2.0, compute_s=1.0, overlap=False, point=low, dvfs=dv)
    assert c.latency_s == pytest.approx(k + 1.0)  # compute stretches, memory time does not
    assert c.energy_by_component_j["pe_array"] == pytest.approx(v * v)  # dynamic ~ V^2
    assert c.energy_by_component_j["rram_mlc"] == 1.0 and c.energy_by_component_j["dram"] == 1.0
    assert c.energy_by_component_j["leak_sram"] == pytest.approx(v * (k + 1.0) / 2.0)  # P ~ V, over the longer time
    same = scale(e, 2.0, 1.0, False, dv.nominal, dv)
    assert same.energy_j == pytest.approx(4.0) and same.latency_s == pytest.approx(2.0)
    p, ok = choose_point(dv, lambda pt: 1e9 / pt.freq_hz, target_s=1.5)
    assert ok and p.freq_hz >= 1e9 / 1.5 and all(q.freq_hz < 1e9 / 1.5 for q in dv.points if q.voltage_v < p.voltage_v)
    assert choose_point(dv, lambda pt: 1.0, target_s=0.5) == (dv.nominal, False)
    with pytest.raises(Exception, match="ascend in frequency"):
        DvfsSpec((OperatingPoint(0.8, 1e9), OperatingPoint(0.6, 5e8)), 0.0, 0.0)


def test_latency_target_picks_a_point_and_counts_misses(engine):
    from edgemti.runtime.early_exit import EarlyExitEngine, ExitConfig

    text = "the film was nice ."
    engine.make_resident("sst2")
    seq = engine.tokenize(text)[0]["input_ids"].shape[1]
    full = engine.hw.inference(seq, "sst2")
    loose = _with_threshold(EarlyExitEngine(engine, ExitConfig(latency_target_s=10 * full.latency_s)), 0.0, 3)
    a = loose.infer("sst2", text)
    assert a["exit_layer"] == 3 and a["latency_target_met"] and a["operating_point"]["voltage_v"] < 0.8
    assert a["inference"]["energy_j"] < full.energy_j  # lower V: less energy for the same three layers
    tight = _with_threshold(EarlyExitEngine(engine, ExitConfig(latency_target_s=0.5 * full.latency_s)), 0.0, 3)
    b = tight.infer("sst2", text)
    assert b["latency_target_met"] is False and b["operating_point"]["voltage_v"] == 0.8
    assert not b["dvfs_feasible"] and tight.summary()["latency_target_misses"] == 1
    # the predictor said layer 1, the sentence ran to 3 at the lowest point: a miss the prediction caused
    under = _with_threshold(EarlyExitEngine(engine, ExitConfig(latency_target_s=1.05 * full.latency_s)), 0.0, 1)
    c = under.infer("sst2", text)
    assert c["predicted_exit_layer"] == 1 and c["exit_layer"] == 3 and c["latency_target_met"] is False
    assert c["operating_point"]["voltage_v"] == 0.5


def test_serve_cli_with_early_exit(build, tmp_path):
    from click.testing import CliRunner

    from edgemti.cli import main

    reqs = tmp_path / "r.jsonl"
    reqs.write_text("\n".join(json.dumps({"id": i, "task": "sst2", "text": f"the film was {w} ."})
                              for i, w in enumerate(WORDS[:4])) + "\n")
    r = CliRunner().invoke(main, ["serve", str(build), "--requests", str(reqs), "--early-exit", "--json-summary",
                                  "--latency-target-ms", "1"])
    assert r.exit_code == 0, r.output
    answers = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{") and '"exit_layer"' in x]
    assert len(answers) == 4 and all(1 <= a["exit_layer"] <= 3 for a in answers)
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    assert sum(summary["early_exit"]["exit_layer_histogram"].values()) == 4
    r = CliRunner().invoke(main, ["serve", str(build), "--requests", str(reqs), "--latency-target-ms", "1"])
    assert r.exit_code != 0 and "--early-exit" in r.output


def test_build_without_off_ramps_refuses_early_exit(tmp_path):
    import onnx
    from onnx import helper

    from edgemti.runtime.stages import partition

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"], name="n")], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(FormatError, match="no exit_logits"):
        partition(helper.make_model(g))



def test_study_rows_and_ratios(build, packs, tmp_path, monkeypatch):
    from test_serve_opens import count_opens

    from edgemti.studies.early_exit import early_exit_study, format_study

    _, glue, _, _ = packs
    counts = count_opens(monkeypatch)
    doc = early_exit_study(build, tmp_path / "study", data_dir=str(glue), max_examples=6, progress=False)
    # one open (issue 19.1): its tasks listed, its spec sized and its engines made from it; the sizing's roomy model
    # + the engine's (the early-exit engine prices on the engine's)
    assert (counts["opens"], counts["specs"], counts["hw_models"]) == (1, 1, 2)
    r = doc["tasks"]["sst2"]
    names = [row["config"] for row in r["rows"]]
    assert names[:2] == ["no exit", "exit"] and len(names) == 5 and r["num_sentences"] == 6
    full, ex = r["rows"][0], r["rows"][1]
    assert full["agreement_with_full_depth"] == 1.0 and ex["energy_per_sentence_j"] <= full["energy_per_sentence_j"]
    assert r["ratios"]["no_exit_over_exit"] == pytest.approx(full["energy_per_sentence_j"] / ex["energy_per_sentence_j"])
    assert sum(r["exit_histogram"]) == 6 and (tmp_path / "study" / "early_exit.png").stat().st_size > 0
    assert "EdgeBERT" in format_study(doc)


def test_summary_and_prometheus_count_exit_layers():
    from edgemti.runtime.metrics import ServerMetrics
    from edgemti.runtime.summary import summarize

    def rec(i, layer, met):
        return {"id": i, "seq": i, "ok": True, "task": "sst2", "energy_j": 1e-6, "latency_s": 1e-4, "host_s": 1e-3,
                "inference": {"energy_j": 1e-6, "latency_s": 1e-4}, "swap": None, "swapped": False,
                "exit_layer": layer, "latency_target_met": met}

    records = [rec(0, 1, True), rec(1, 1, True), rec(2, 3, False)]
    s = summarize(records)
    assert s["early_exit"] == {"exit_layer_histogram": {"1": 2, "3": 1}, "mean_exit_layer": 5 / 3,
                               "latency_target_misses": 1}
    plain = {k: v for k, v in records[0].items() if k not in ("exit_layer", "latency_target_met")}
    assert "early_exit" not in summarize([plain])  # a full-depth server's summary is unchanged
    m = ServerMetrics(["sst2"])
    for r in records:
        m.observe(r, 200)
    text = m.render().decode()
    assert 'edgemti_exit_layer_bucket{le="1.0",task="sst2"} 2.0' in text
    assert 'edgemti_exit_layer_count{task="sst2"} 3.0' in text
    assert 'edgemti_latency_target_misses_total{task="sst2"} 1.0' in text
