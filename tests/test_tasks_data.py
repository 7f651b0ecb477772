"""GLUE registry, TSV / CSV / JSONL loaders (quoting, BOM, headerless CoLA, malformed rows) and metrics."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from edgemti.errors import DataError, UnknownTaskError
from edgemti.tasks.data import load_custom, load_glue, read_glue_tsv, subsample
from edgemti.tasks.glue import GLUE_TASKS, get_task
from edgemti.tasks.metrics import accuracy, compute_metrics, f1_binary, headline, mcc, pearson, spearman


def _write(path, text, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_registry_has_all_nine_glue_tasks_with_official_metrics():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli"}
    assert GLUE_TASKS["cola"].metrics == ("mcc",)
    assert GLUE_TASKS["mrpc"].metrics == ("f1", "accuracy") and GLUE_TASKS["qqp"].metrics == ("f1", "accuracy")
    assert GLUE_TASKS["stsb"].is_regression and GLUE_TASKS["stsb"].metrics == ("pearson", "spearman")
    assert GLUE_TASKS["mnli"].num_labels == 3 and GLUE_TASKS["mnli-mm"].dev_file == "dev_mismatched.tsv"
    assert get_task("SST-2").name == "sst2" and get_task("sts-b").name == "stsb"
    with pytest.raises(UnknownTaskError, match="unknown task 'sst3'.*sst2"):
        get_task("sst3")


def test_sst2_quotes_are_text_not_quoting(tmp_path):
    _write(tmp_path / "SST-2" / "dev.tsv", 'sentence\tlabel\n"a " quote that never closes\t1\nplain text\t0\n')
    ex = load_glue(get_task("sst2"), "dev", tmp_path)
    assert [e.text for e in ex] == ['"a " quote that never closes', "plain text"]
    assert [e.label for e in ex] == [1, 0] and ex[0].text_pair is None


def test_mrpc_bom_header_and_pairs(tmp_path):
    _write(tmp_path / "MRPC" / "train.tsv",
           "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said \"hi\".\tHe said hello.\n", bom=True)
    (e,) = load_glue(get_task("mrpc"), "train", tmp_path)
    assert (e.text, e.text_pair, e.label) == ('He said "hi".', "He said hello.", 1)


def test_cola_has_no_header(tmp_path):
    _write(tmp_path / "CoLA" / "dev.tsv", "gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode sailors the.\n")
    ex = load_glue(get_task("cola"), "dev", tmp_path)
    assert [(e.text, e.label) for e in ex] == [("The sailors rode.", 1), ("Rode sailors the.", 0)]


def test_stsb_regression_and_rte_labels(tmp_path):
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    _write(tmp_path / "STS-B" / "dev.tsv", head + "0\tg\tf\ty\t0\tn\tn\tA man.\tA guy.\t4.250\n")
    assert load_glue(get_task("stsb"), "dev", tmp_path)[0].label == pytest.approx(4.25)
    _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n")
    assert load_glue(get_task("rte"), "dev", tmp_path)[0].label == 1


def test_malformed_row_names_file_and_line(tmp_path):
    p = _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(DataError, match=r"dev\.tsv:3: expected 4 tab-separated columns .* got 2"):
        read_glue_tsv(get_task("rte"), p)
    _write(p, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match=r"dev\.tsv:2: label 'maybe' is not one of \['entailment', 'not_entailment'\]"):
        read_glue_tsv(get_task("rte"), p)
    _write(tmp_path / "STS-B" / "dev.tsv", "sentence1\tsentence2\tscore\na\tb\tfive\n")
    with pytest.raises(DataError, match=r"dev\.tsv:2: regression target 'five' is not a number"):
        load_glue(get_task("stsb"), "dev", tmp_path)


def test_missing_folders_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist: give the folder holding"):
        load_glue(get_task("rte"), "dev", tmp_path / "nope")
    with pytest.raises(DataError, match="has no QQP/"):
        load_glue(get_task("qqp"), "dev", tmp_path)


def test_custom_csv_and_jsonl(tmp_path):
    csv_path = _write(tmp_path / "t.csv", 'q,a,y\n"hi, there",x,pos\nbye,z,neg\n')
    ex, labels = load_custom(csv_path, "q", "a", "y")
    assert labels == ("neg", "pos") and ex[0].text == "hi, there" and ex[0].label == 1 and ex[1].text_pair == "z"
    jl = _write(tmp_path / "t.jsonl", json.dumps({"s": "a", "v": 0.5}) + "\n\n" + json.dumps({"s": "b", "v": 2}) + "\n")
    ex, labels = load_custom(jl, "s", None, "v", regression=True)
    assert labels == () and [e.label for e in ex] == [0.5, 2.0]
    bad = _write(tmp_path / "b.jsonl", json.dumps({"s": "a"}) + "\n")
    with pytest.raises(DataError, match=r"b\.jsonl:1: missing column\(s\) \['v'\]"):
        load_custom(bad, "s", None, "v", regression=True)
    with pytest.raises(DataError, match="not one of"):
        load_custom(csv_path, "q", None, "y", labels=["pos", "other"])


def test_subsample_is_seeded_and_ordered():
    items = list(range(100))
    a, b = subsample(items, 10, seed=3), subsample(items, 10, seed=3)
    assert a == b == sorted(a) and len(set(a)) == 10 and subsample(items, 10, seed=4) != a
    assert subsample(items, None, 0) == items


def test_metrics_against_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, gold, 1 - gold)
    assert accuracy(pred, gold) == pytest.approx(accuracy_score(gold, pred))
    assert f1_binary(pred, gold) == pytest.approx(f1_score(gold, pred))
    assert mcc(pred, gold) == pytest.approx(matthews_corrcoef(gold, pred))
    g3, p3 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    assert mcc(p3, g3) == pytest.approx(matthews_corrcoef(g3, p3))
    assert mcc(np.ones(5, int), np.array([0, 1, 1, 0, 1])) == 0.0  # constant prediction: defined as 0
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert spearman(x, y) == pytest.approx(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    m = compute_metrics(get_task("mrpc"), np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert m == {"f1": pytest.approx(2 / 3), "accuracy": 0.75} and headline(get_task("mrpc"), m) == pytest.approx(66.67, 0.01)


def test_hf_loader_without_datasets_is_a_clear_error():
    import importlib.util

    from edgemti.errors import ConfigError
    from edgemti.tasks.data import load_hf

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("`datasets` is installed here; the HF path needs the network")
    with pytest.raises(ConfigError, match="needs the `datasets` package: pip install datasets"):
        load_hf(get_task("sst2"), "dev")


def test_albert_tokenizer_from_bare_spiece_folder():
    from edgemti.tasks.backbones import load_backbone
    from edgemti.tasks.features import batches, encode, load_tokenizer

    _, info = load_backbone("albert-tiny")
    if info.tokenizer is None:
        pytest.skip("no ALBERT tokenizer folder in the shared data")
    tok = load_tokenizer(info)
    # raw sentencepiece ids of this sentence, as checked in shared/data/PROVENANCE.md
    assert tok("Hello world, ALBERT tokenizer test. It's 1999!")["input_ids"] == [
        2, 10975, 126, 15, 2953, 20, 2853, 11907, 1289, 9, 32, 22, 18, 1247, 187, 3]
    from edgemti.tasks.data import Example

    items = encode(tok, [Example("a b c " * 100, "d", 0), Example("short", "x", 1)], max_len=16)
    assert [len(e.input_ids) for e in items] == [16, 5]
    (b,) = list(batches(items, 8, tok.pad_token_id, regression=False))
    assert b["input_ids"].shape == (2, 16) and b["attention_mask"][1].tolist() == [1] * 5 + [0] * 11
    assert b["token_type_ids"][1].tolist()[:5] == [0, 0, 0, 1, 1]
