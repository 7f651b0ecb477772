"""``edgemti eval --build``: a build's accuracy as served equals the engine's answers (and the decoded images'
reference logits), with the official metric, the pack's own score and Table I beside it; faults compose."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from test_runtime_engine import tiny_build
from test_tasks_train import make_glue

from edgemti.cli import main
from edgemti.compiler.addpack import add_pack
from edgemti.errors import ConfigError, UnknownTaskError
from edgemti.formats.build import open_build, reference_logits
from edgemti.runtime.engine import Engine
from edgemti.studies.accuracy import BuildEvalConfig, evaluate_build
from edgemti.tasks.data import load_glue, subsample
from edgemti.tasks.glue import PAPER_TABLE_I, get_task
from edgemti.tasks.metrics import compute_metrics
from edgemti.tasks.train import train_task
from edgemti.tasks.train_config import TrainConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalbuild")
    glue = make_glue(root / "glue", n_train=16, n_dev=12)
    cfg = TrainConfig(task="rte", backbone="bert-tiny", adapter_size="64", epochs=1, batch_size=8, lr=5e-3,
                      data_dir=str(glue), seed=2, max_seq_len=32)
    pack = train_task(cfg, root / "rte", progress=False)
    build = root / "build"
    shutil.copytree(tiny_build(tmp_path_factory.getbasetemp()), build)
    add_pack(pack.path, build)
    return build, glue, pack


def test_eval_build_equals_the_engines_answers(setup):
    build, glue, pack = setup
    r = evaluate_build(build, BuildEvalConfig(tasks=("rte",), data_dir=str(glue), max_examples=10))
    (t,) = r.tasks
    examples = subsample(load_glue(get_task("rte"), "dev", str(glue)), 10, 0)
    assert t.num_examples == len(examples) == 10
    engine = Engine.open(build)
    b = open_build(build)
    labels = engine.manifest.pack("rte").labels
    answers, ref = [], []
    for ex in examples:
        answers.append(labels.index(engine.infer("rte", ex.text, ex.text_pair).label))
        f = engine.tokenize(ex.text, ex.text_pair)[0]
        ref.append(int(np.argmax(reference_logits(b, "rte", f["input_ids"], f["attention_mask"],
                                                  f["token_type_ids"])[0])))
    assert list(t.predictions) == answers == ref
    gold = np.array([e.label for e in examples])
    assert t.metrics == compute_metrics(get_task("rte"), np.array(answers), gold)
    assert t.pack_metrics["dev_accuracy"] == pytest.approx(pack.pack.metrics["dev_accuracy"])
    assert t.paper == {k: v["rte"] for k, v in PAPER_TABLE_I.items() if "rte" in v} and t.paper
    assert r.build_id == b.manifest.build_id and not t.synthetic


def test_eval_build_faults_and_errors(setup):
    build, glue, _ = setup
    r = evaluate_build(build, BuildEvalConfig(tasks=("rte",), data_dir=str(glue), max_examples=4,
                                              fault_mlc_rate=0.2, fault_seed=1))
    assert r.config.fault is not None and r.config.fault.mlc_error_rate == 0.2 and r.tasks[0].num_examples == 4
    with pytest.raises(UnknownTaskError, match="not in the build"):
        evaluate_build(build, BuildEvalConfig(tasks=("cola",), data_dir=str(glue)))
    with pytest.raises(ConfigError, match="fault_mlc_rate must be a probability"):
        BuildEvalConfig(fault_mlc_rate=2.0)


def test_cli_eval_build(setup):
    build, glue, _ = setup
    run = CliRunner().invoke(main, ["eval", "--build", str(build), "--task", "rte", "--data-dir", str(glue),
                                    "--max-examples", "5", "--json"])
    assert run.exit_code == 0, run.output
    doc = json.loads(run.output)
    assert doc["tasks"][0]["task"] == "rte" and len(doc["tasks"][0]["predictions"]) == 5
    run = CliRunner().invoke(main, ["eval", "--build", str(build), "--task", "rte", "--data-dir", str(glue),
                                    "--max-examples", "5"])
    assert run.exit_code == 0 and "served" in run.output and "rte" in run.output
    run = CliRunner().invoke(main, ["eval", "--build", str(build), "--pack", str(build)])
    assert run.exit_code != 0 and "one of them" in run.output
