"""CLI smoke tests of params / train / eval on tiny configs, and their one-line error messages."""

import json

from click.testing import CliRunner

from edgemti.cli import main
from edgemti.tasks.pack import PACK_JSON


def _glue(root):
    d = root / "SST-2"
    d.mkdir(parents=True)
    rows = ["sentence\tlabel"] + [f"a {w} film\t{i % 2}" for i, w in enumerate("good bad fine awful nice poor".split() * 2)]
    (d / "train.tsv").write_text("\n".join(rows) + "\n")
    (d / "dev.tsv").write_text("\n".join(rows[:5]) + "\n")
    return root


def test_params_json_and_table():
    r = CliRunner().invoke(main, ["params", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {(x["backbone"], x["design"]) for x in rows} >= {("albert-base", "vanilla"), ("minilm", "adapter")}
    r = CliRunner().invoke(main, ["params"])
    assert r.exit_code == 0 and "11.88M / 200.4K / 2.4%" in r.output and "minilm" in r.output


def test_train_then_eval(tmp_path):
    glue = _glue(tmp_path / "glue")
    out = tmp_path / "pack"
    r = CliRunner().invoke(main, ["train", "--task", "sst2", "--backbone", "bert-tiny", "--adapter-size", "4",
                                  "--epochs", "1", "--batch-size", "4", "--data-dir", str(glue), "--out", str(out),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "task-specific params" in r.output and "unchanged" in r.output and "RANDOMLY INITIALISED" in r.output
    r = CliRunner().invoke(main, ["eval", "--pack", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["task"] == "sst2" and res["num_examples"] == 4 and 0 <= res["metrics"]["accuracy"] <= 1
    r = CliRunner().invoke(main, ["eval", "--pack", str(out)])
    assert r.exit_code == 0 and "accuracy" in r.output and "paper Adapter-ALBERT 64: 90.9" in r.output

    meta = json.loads((out / PACK_JSON).read_text())
    meta["backbone"]["hash"] = "0" * 64
    (out / PACK_JSON).write_text(json.dumps(meta))
    r = CliRunner().invoke(main, ["eval", "--pack", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "BackboneMismatchError: pack 'sst2' was trained on backbone 00000000 (bert-tiny)" in r.output


def test_bad_input_is_one_line(tmp_path):
    cases = [
        (["train", "--task", "nope", "--out", str(tmp_path / "o")], "UnknownTaskError: unknown task 'nope'"),
        (["train", "--task", "sst2", "--backbone", "bogus", "--data-dir", str(_glue(tmp_path / "g")), "--out",
          str(tmp_path / "o")], "ConfigError: unknown backbone 'bogus'"),
        (["train", "--task", "rte", "--backbone", "bert-tiny", "--data-dir", str(tmp_path / "none"), "--out",
          str(tmp_path / "o")], "DataError: GLUE data folder"),
        (["train", "--task", "sst2", "--adapter-size", "x", "--out", str(tmp_path / "o")], "adapter size must be"),
    ]
    for args, msg in cases:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, (args, r.output)
        assert msg in r.output and "Traceback" not in r.output
        assert len([line for line in r.output.splitlines() if line.startswith("Error")]) == 1


def test_train_from_config_file_with_override(tmp_path):
    glue = _glue(tmp_path / "glue")
    conf = tmp_path / "c.yaml"
    conf.write_text(f"task: sst2\nbackbone: bert-tiny\nadapter_size: '4'\nepochs: 3\nbatch_size: 4\n"
                    f"data_dir: {glue}\n")
    out = tmp_path / "p"
    r = CliRunner().invoke(main, ["train", "--config", str(conf), "--epochs", "1", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    tc = json.loads((out / PACK_JSON).read_text())["train_config"]
    assert tc["epochs"] == 1 and tc["batch_size"] == 4 and tc["backbone"] == "bert-tiny"
    conf.write_text("task: sst2\nepoch: 2\n")
    r = CliRunner().invoke(main, ["train", "--config", str(conf), "--out", str(out)])
    assert r.exit_code == 1 and "unknown keys ['epoch']" in r.output
    conf.write_text("task: sst2\nepochs: two\n")
    r = CliRunner().invoke(main, ["train", "--config", str(conf), "--out", str(out)])
    assert r.exit_code == 1 and "wrong types: epochs='two' (want int)" in r.output
