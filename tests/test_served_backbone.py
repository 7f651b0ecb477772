"""Compression-aware training: the backbone a pack trains on is the one the runtime decodes from the RRAM images,
bit for bit; the pack's forward pass is the served one; packs record the backbone image and builds of another
backbone image refuse them (compile and --add-pack), while float-trained packs go anywhere."""

import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_runtime_engine import tiny_build
from test_tasks_train import make_glue

from edgemti.cli import main
from edgemti.compiler import CompileConfig, plan_build
from edgemti.compiler.addpack import add_pack
from edgemti.compiler.compression import Compression
from edgemti.compiler.retrain import served_for, train_on_served
from edgemti.compiler.served import served_backbone_of_build
from edgemti.errors import BackboneMismatchError, ConfigError
from edgemti.formats.build import open_build
from edgemti.formats.image_hash import manifest_image_hash
from edgemti.runtime.engine import Engine
from edgemti.tasks.model import tensors_hash
from edgemti.tasks.pack import load_pack
from edgemti.tasks.served import straight_through
from edgemti.tasks.train_config import TrainConfig

TINY = Compression(sparsity_embedding=0.3, sparsity_transformer=0.3, quant="q3.13")  # tiny_build's settings


def _same_bits(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for n in a:
        x, y = np.ascontiguousarray(a[n], dtype=np.float32), np.ascontiguousarray(b[n], dtype=np.float32)
        assert x.shape == y.shape and x.tobytes() == y.tobytes(), n


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    glue = make_glue(tmp_path_factory.mktemp("glue"), n_train=16, n_dev=6)
    return TrainConfig(task="rte", backbone="bert-tiny", adapter_size="64", epochs=1, batch_size=8, lr=5e-3,
                       data_dir=str(glue), seed=3, max_seq_len=32)


@pytest.fixture(scope="module")
def retrained(cfg, build, tmp_path_factory):
    return train_on_served(cfg, tmp_path_factory.mktemp("packs") / "rte", build=build, progress=False)


def test_served_backbone_is_the_runtime_decode_bit_for_bit(cfg, build):
    engine_backbone = Engine.open(build).hma.read_backbone()
    from_build = served_backbone_of_build(build)
    from_settings = served_for(cfg, compression=TINY)  # no build: compile's own prune + quantize + encode
    _same_bits(from_build.tensors, engine_backbone)
    _same_bits(from_settings.tensors, engine_backbone)
    m = open_build(build).manifest
    assert from_build.image_hash == from_settings.image_hash == manifest_image_hash(m)
    assert from_settings.mlc == open_build(build).image_bytes("rram_mlc")
    assert from_build.float_hash == from_settings.float_hash == m.backbone["hash"]
    zeros = np.mean([np.mean(a == 0) for n, a in from_settings.tensors.items() if a.ndim >= 2])
    assert zeros > 0.25  # pruned
    other = served_for(cfg, compression=Compression(0.3, 0.5, "q3.13"))
    assert other.image_hash != from_build.image_hash


def test_pack_trained_on_build_holds_that_backbone_and_records_its_image(retrained, build):
    pack = load_pack(retrained.path)
    m = open_build(build).manifest
    assert pack.trained_on is not None and pack.trained_on.image_hash == manifest_image_hash(m)
    assert pack.trained_on.build_id == m.build_id and pack.trained_on.pack_format == m.pack_format.name
    assert pack.backbone["hash"] == m.backbone["hash"]  # the float backbone the build is compiled from
    decoded = Engine.open(build).hma.read_backbone()
    fc = pack.frozen_check
    assert fc["backbone_hash_before"] == fc["backbone_hash_after"] == tensors_hash(decoded)
    assert fc["float_backbone_hash"] == m.backbone["hash"]


def test_served_forward_is_what_the_engine_answers(retrained, build, cfg, tmp_path):
    """The training forward (served backbone, pack fake-quantized) gives the logits the build serves."""
    dst = tmp_path / "b"
    shutil.copytree(build, dst)
    add_pack(retrained.path, dst)
    engine = Engine.open(dst)
    feeds = engine.tokenize("the film was good .", "it is \"good\"")[0]
    served_logits = np.asarray(engine.infer_ids("rte", feeds).logits)

    from edgemti.compiler.retrain import override_for
    from edgemti.tasks.pack_model import model_for_pack

    pack = load_pack(retrained.path)
    model = model_for_pack(pack)
    served = served_backbone_of_build(dst, model)
    over = override_for(served)
    from edgemti.tasks.served import load_into

    load_into(model, model.backbone_names(), served.tensors)
    with torch.no_grad():
        ours = over.forward_fn(model, model.task_names())(*(torch.from_numpy(feeds[k]) for k in
                                                             ("input_ids", "attention_mask", "token_type_ids")))
    assert np.max(np.abs(ours.numpy()[0] - served_logits)) <= 1e-5


def test_other_backbone_image_is_refused_with_both_hashes(retrained, build, tmp_path_factory):
    other = tiny_build(tmp_path_factory.getbasetemp(), name="other", sparsity_transformer=0.5)
    with pytest.raises(BackboneMismatchError) as exc:
        add_pack(retrained.path, other)
    theirs = manifest_image_hash(open_build(other).manifest)
    assert retrained.pack.trained_on.image_hash in str(exc.value) and theirs in str(exc.value)
    base = dict(backbone="bert-tiny", packs=(retrained.path,), sparsity_embedding=0.3, max_seq_len=32)
    plan = plan_build(CompileConfig(**base, sparsity_transformer=0.3, quant="q3.13"))  # the same image: accepted
    assert plan.manifest.tasks == ["rte"]
    with pytest.raises(BackboneMismatchError, match=retrained.pack.trained_on.image_hash):
        plan_build(CompileConfig(**base, sparsity_transformer=0.3, quant="q3.5"))
    with pytest.raises(ConfigError, match="quantized at q3.13"):
        plan_build(CompileConfig(**base, sparsity_transformer=0.3, quant="q3.13", pack_quant="q3.5"))


def test_float_trained_pack_still_goes_anywhere(cfg, tmp_path):
    from edgemti.tasks.train import train_task

    r = train_task(cfg, tmp_path / "float", progress=False)
    assert r.pack.trained_on is None
    for q in ("q3.13", "q3.5"):
        plan_build(CompileConfig(backbone="bert-tiny", packs=(r.path,), quant=q, sparsity_transformer=0.4,
                                 max_seq_len=32))


def test_straight_through_forward_is_exact_and_gradient_passes():
    from edgemti.formats.quant import fake_quantize, parse_format

    fmt = parse_format("q3.5")
    w = torch.tensor([0.1, -0.77, 3.9, 0.016], requires_grad=True)
    q = straight_through(w, lambda a: fake_quantize(a, fmt))
    assert q.detach().numpy().tobytes() == fake_quantize(w.detach().numpy(), fmt).tobytes()
    (q * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert w.grad is not None and torch.equal(w.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_cli_train_with_compression_settings(cfg, tmp_path):
    out = tmp_path / "p"
    args = ["train", "--task", "rte", "--backbone", "bert-tiny", "--adapter-size", "64", "--epochs", "1",
            "--batch-size", "8", "--max-seq-len", "32", "--data-dir", cfg.data_dir, "--out", str(out),
            "--sparsity-transformer", "0.3", "--sparsity-embedding", "0.3", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "trained on the served backbone: image" in r.output
    assert load_pack(out).trained_on.value_format == "q3.13"
    r = CliRunner().invoke(main, [*args[:-3], "--on-build", str(out), "--quant", "q3.5"])
    assert r.exit_code != 0 and "comes with the build's compression" in r.output
    assert "[see --on-build, --quant, --sparsity-transformer]" in r.output and "Traceback" not in r.output


def test_fault_aware_training_reads_the_runtimes_faults_fresh_each_step(cfg, build, tmp_path):
    from edgemti.studies.fault_train import FaultyBackbone, train_fault_aware

    served = served_backbone_of_build(build)
    faulty = FaultyBackbone(0.05, seed=4)
    first, second = faulty(served, 0), faulty(served, 1)
    engine = Engine.open(build, fault=faulty.model(0))  # the runtime reading the same cells through the same faults
    _same_bits(first, engine.hma.read_backbone())
    changed = sum(int(np.sum(first[n] != served.tensors[n])) for n in first)
    moved = sum(int(np.sum(first[n] != second[n])) for n in first)
    assert changed > 0 and moved > 0  # faulty, and a fresh pattern per step
    r = train_fault_aware(cfg, tmp_path / "fa", 0.05, build=build, seed=4, progress=False)
    assert r.pack.trained_on.fault_mlc_rate == 0.05 and r.pack.trained_on.fault_seed == 4
    assert r.pack.trained_on.image_hash == served.image_hash  # compiles into the same builds as a fault-free pack
    assert r.pack.frozen_check["backbone_hash_before"] == served.decoded_hash  # the fault-free served backbone
