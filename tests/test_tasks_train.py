"""Training on a tiny GLUE-layout fixture: only task tensors move, the backbone is bit-identical, runs reproduce;
task packs round-trip, corrupt or mismatched packs are rejected."""

import json

import numpy as np
import pytest
import torch

from edgemti.errors import BackboneMismatchError, ConfigError, FormatError, UnknownTaskError
from edgemti.tasks import packs_dir
from edgemti.tasks.backbones import build_model
from edgemti.tasks.pack import (
    PACK_FORMAT_VERSION,
    PACK_JSON,
    PACK_TENSORS,
    load_pack,
    save_pack,
)
from edgemti.tasks.pack_model import apply_pack, model_for_pack
from edgemti.tasks.train import evaluate_pack, train_task
from edgemti.tasks.train_config import TrainConfig

WORDS = "good bad fine awful great poor nice terrible happy sad".split()


def make_glue(root, n_train=24, n_dev=8):
    """An RTE-shaped folder (pairs, entailment / not_entailment) with a learnable rule."""
    rng = np.random.default_rng(0)
    d = root / "RTE"
    d.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            w = WORDS[rng.integers(len(WORDS))]
            label = "entailment" if WORDS.index(w) % 2 == 0 else "not_entailment"
            rows.append(f"{i}\tthe film was {w} .\tit is \"{w}\"\t{label}")
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    return make_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="module")
def trained(glue, tmp_path_factory):
    cfg = TrainConfig(task="rte", backbone="bert-tiny", adapter_size="8", epochs=2, batch_size=8, lr=5e-3,
                      data_dir=str(glue), seed=1)
    out = tmp_path_factory.mktemp("pack") / "rte"
    return cfg, train_task(cfg, out, progress=False)


def test_adapter_training_touches_only_task_tensors(trained):
    cfg, result = trained
    fresh = build_model("bert-tiny", 2, cfg.adapter)
    trained_model = model_for_pack(result.pack)
    before, after = dict(fresh.named_parameters()), dict(trained_model.named_parameters())
    task = set(fresh.task_names())
    for name in before:
        same = torch.equal(before[name], after[name])
        if name not in task:
            assert same, f"backbone tensor {name} changed"
    assert sum(not torch.equal(before[n], after[n]) for n in task) >= len(task) // 2
    fc = result.pack.frozen_check
    assert fc["bit_identical"] and fc["backbone_hash_before"] == fc["backbone_hash_after"] == fresh.backbone_hash()
    assert set(result.pack.tensors) == task and result.pack.backbone["hash"] == fresh.backbone_hash()


def test_full_finetune_keeps_embeddings_and_trains_transformer(glue, tmp_path):
    cfg = TrainConfig(task="rte", backbone="bert-tiny", design="vanilla", epochs=1, batch_size=8, lr=1e-3,
                      data_dir=str(glue))
    r = train_task(cfg, tmp_path / "v", progress=False)
    fresh = build_model("bert-tiny", 2, design="vanilla")
    params = dict(fresh.named_parameters())
    assert not any(n.startswith("encoder.embeddings.") for n in r.pack.tensors)
    changed = [n for n, a in r.pack.tensors.items() if not np.array_equal(a, params[n].detach().numpy())]
    assert any("attention.self.query.weight" in n for n in changed)
    assert r.pack.design == "vanilla" and r.pack.adapter is None and r.pack.frozen_check["bit_identical"]


def test_training_is_reproducible(glue, trained, tmp_path):
    cfg, first = trained
    again = train_task(cfg, tmp_path / "again", progress=False)
    assert first.pack.tensors.keys() == again.pack.tensors.keys()
    for n, a in first.pack.tensors.items():
        assert np.array_equal(a, again.pack.tensors[n]), n
    assert first.history == again.history


def test_pack_round_trip_and_metadata(trained, tmp_path):
    cfg, result = trained
    pack = load_pack(result.path)
    meta = json.loads((result.path / PACK_JSON).read_text())
    assert meta["format"] == "edgemti-pack" and meta["format_version"] == PACK_FORMAT_VERSION and meta["task"] == "rte"
    assert meta["trained_on"] is None and pack.trained_on is None  # trained on the float backbone
    assert meta["off_ramps"] is None and meta["exit"] is None  # no early exit unless trained with off-ramps
    assert meta["labels"] == ["entailment", "not_entailment"] and meta["is_regression"] is False
    assert meta["adapter"]["attn_bottleneck"] == 8 and meta["backbone"]["family"] == "bert"
    assert meta["train_config"]["lr"] == cfg.lr and "dev_accuracy" in meta["metrics"] and meta["train_time_s"] >= 0
    copy = save_pack(pack, tmp_path / "copy")
    again = load_pack(copy)
    assert again.to_json("x") == pack.to_json("x")
    for n, a in pack.tensors.items():
        assert again.tensors[n].dtype == np.float32 and np.array_equal(again.tensors[n], a)


def test_corrupt_and_unknown_packs_rejected(trained, tmp_path):
    _, result = trained
    pack = load_pack(result.path)
    d = save_pack(pack, tmp_path / "bad")
    raw = bytearray((d / PACK_TENSORS).read_bytes())
    raw[-3] ^= 0x40
    (d / PACK_TENSORS).write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="sha256 .* does not match"):
        load_pack(d)
    d = save_pack(pack, tmp_path / "ver")
    meta = json.loads((d / PACK_JSON).read_text())
    meta["format_version"] = 99
    (d / PACK_JSON).write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="format_version 99 is not supported"):
        load_pack(d)
    (d / PACK_JSON).write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_pack(d)
    with pytest.raises(FormatError, match="no such file"):
        load_pack(tmp_path / "missing")
    (d / PACK_JSON).unlink()
    d2 = save_pack(pack, tmp_path / "nofile")
    (d2 / PACK_TENSORS).unlink()
    with pytest.raises(FormatError, match="pack is incomplete"):
        load_pack(d2)


def test_backbone_mismatch_rejected(trained):
    _, result = trained
    other = build_model("bert-tiny", 2, AdapterSpec8())
    with torch.no_grad():
        other.encoder.encoder.layer[0].attention.self.query.weight[0, 0] += 1e-3
    with pytest.raises(BackboneMismatchError, match=r"pack 'rte' was trained on backbone [0-9a-f]{8} \(bert-tiny\), "
                       r"this model's backbone is [0-9a-f]{8} \(bert-tiny\): retrain or use the matching backbone"):
        apply_pack(other, result.pack)
    albert = build_model("albert-tiny", 2, AdapterSpec8())
    with pytest.raises(BackboneMismatchError, match=r"\(albert-tiny\)"):
        apply_pack(albert, result.pack)


def AdapterSpec8():
    from edgemti.tasks.model import AdapterSpec

    return AdapterSpec(8, 8)


def test_evaluate_pack_matches_training_metrics(trained):
    _, result = trained
    r = evaluate_pack(result.path)
    assert r.metrics["accuracy"] == pytest.approx(result.history[-1]["dev_accuracy"])
    assert r.num_examples == 8 and r.paper["Adapter-ALBERT 64"] == 69.7


def test_custom_csv_task(tmp_path):
    rows = ["text,label"] + [f"{w} movie,{'pos' if i % 2 == 0 else 'neg'}" for i, w in enumerate(WORDS * 2)]
    (tmp_path / "tr.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dv.csv").write_text("\n".join(rows[:7]) + "\n")
    cfg = TrainConfig(task="mine", backbone="bert-tiny", adapter_size="4", epochs=1, batch_size=8,
                      train_file=str(tmp_path / "tr.csv"), dev_file=str(tmp_path / "dv.csv"))
    r = train_task(cfg, tmp_path / "p", progress=False)
    assert r.pack.labels == ("neg", "pos") and set(r.pack.metrics) >= {"dev_accuracy", "dev_f1"}
    assert evaluate_pack(r.path).num_examples == 6


def test_bad_config_is_a_clear_error(glue, tmp_path):
    with pytest.raises(UnknownTaskError, match="unknown task 'rtee'"):
        train_task(TrainConfig(task="rtee", backbone="bert-tiny", data_dir=str(glue)), tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown backbone 'nope'"):
        train_task(TrainConfig(task="rte", backbone="nope", data_dir=str(glue)), tmp_path / "x")
    with pytest.raises(ConfigError, match="epochs must be a positive int, got 0"):
        TrainConfig(task="rte", epochs=0)
    with pytest.raises(ConfigError, match="both train_file and dev_file"):
        TrainConfig(task="x", train_file="a.csv")


def test_shipped_packs_load():
    root = packs_dir()
    shipped = sorted(p.name for p in root.iterdir() if (p / PACK_JSON).is_file()) if root.is_dir() else []
    for name in shipped:
        pack = load_pack(root / name)
        assert pack.task == name and pack.backbone["name"] == "minilm" and pack.frozen_check["bit_identical"]
        assert (root / name / PACK_TENSORS).stat().st_size < 700_000
