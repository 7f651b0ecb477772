"""LoRA as a pack kind: the unmerged x.A.B path, PEFT's target rule, ALBERT's shared pair, the pack format."""

import json

import numpy as np
import pytest
import torch

from edgemti.errors import ConfigError, FormatError
from edgemti.tasks.backbones import build_model
from edgemti.tasks.lora import LoraLinear, LoraSpec, adapter_structure
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.pack import PACK_FORMAT_VERSION, load_pack, save_pack
from edgemti.tasks.pack_model import apply_pack, pack_from_model


def _inputs():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 1000, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return ids, mask


def test_fresh_lora_is_the_identity_and_a_trained_b_is_not():
    plain = build_model("bert-tiny", 2, design="vanilla")
    lora = build_model("bert-tiny", 2, adapter=LoraSpec.for_family("bert", rank=4))
    ids, mask = _inputs()
    with torch.no_grad():
        before = plain.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        after = lora.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.equal(before, after)
        next(m for m in lora.modules() if isinstance(m, LoraLinear)).lora_B.weight.fill_(0.1)
        changed = lora.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert not torch.equal(before, changed)


def test_lora_path_is_scaled_and_unmerged():
    spec = LoraSpec(rank=2, alpha=6.0, target_modules=("query",))
    assert spec.scaling == 3.0 and LoraSpec(4, 8.0, ("query",), use_rslora=True).scaling == 4.0
    base = torch.nn.Linear(5, 3)
    w = base.weight.detach().clone()
    lin = LoraLinear(base, 2, spec.scaling)
    with torch.no_grad():
        lin.lora_B.weight.normal_()
    x = torch.randn(4, 5)
    want = x @ w.T + base.bias + 3.0 * (x @ lin.lora_A.weight.T) @ lin.lora_B.weight.T
    assert torch.allclose(lin(x), want, atol=1e-6)
    assert torch.equal(lin.weight, w)  # W untouched: the pair is never merged into it


def test_partition_and_peft_default_targets():
    m = build_model("bert-tiny", 3, adapter=LoraSpec.for_family("bert", rank=4))
    parts = m.partition()
    assert m.lora_modules == [f"encoder.layer.{i}.attention.self.{t}" for i in (0, 1) for t in ("query", "value")]
    lora = [n for n in parts if ".lora_" in n]
    assert len(lora) == 8 and {parts[n] for n in lora} == {"task"}
    assert parts["encoder.encoder.layer.0.attention.self.query.weight"] == "backbone"
    assert not any(".adapters." in n for n in parts)
    # the same backbone (and hash) as a Houlsby model: layer norms + head are task tensors for both kinds
    assert m.backbone_hash() == build_model("bert-tiny", 3, adapter=AdapterSpec(4, 4)).backbone_hash()


def test_albert_needs_target_modules_and_shares_one_pair_across_depths():
    with pytest.raises(ConfigError, match="no default LoRA target modules for 'albert'"):
        LoraSpec.for_family("albert", rank=4)
    spec = LoraSpec.for_family("albert", rank=4, target_modules=("query", "value", "ffn"))
    m = build_model("albert-tiny", 2, adapter=spec)
    pairs = [n for n in m.task_names() if n.endswith("lora_A.weight")]
    assert len(pairs) == 3  # one shared layer: one pair per target, for all 3 depths
    assert m.encoder.config.num_hidden_layers == 3
    with pytest.raises(ConfigError, match=r"\['nope'\] match no linear layer"):
        build_model("albert-tiny", 2, adapter=LoraSpec(4, 4.0, ("query", "nope")))


@pytest.mark.parametrize("bad,match", [
    (dict(rank=0), "rank must be"), (dict(alpha=-1.0), "alpha must be"), (dict(target_modules=()), "target_modules"),
    (dict(target_modules=("q", "q")), "distinct"), (dict(use_rslora=1), "use_rslora")])
def test_spec_validates_every_field(bad, match):
    with pytest.raises(ConfigError, match=f"LoraSpec: .*{match}"):
        LoraSpec(**{**dict(rank=4, alpha=4.0, target_modules=("query",)), **bad})


def test_lora_pack_round_trip_and_format_checks(tmp_path):
    spec = LoraSpec(rank=3, alpha=6.0, target_modules=("query", "value"))
    m = build_model("bert-tiny", 2, adapter=spec)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if ".lora_B." in n:
                p.normal_(0, 0.1)
    pack = pack_from_model(m, "sst2", ("negative", "positive"), False)
    save_pack(pack, tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "pack.json").read_text())
    assert meta["format_version"] == PACK_FORMAT_VERSION and meta["adapter"] == spec.to_dict()
    back = load_pack(tmp_path / "p")
    assert back.adapter == spec and set(back.tensors) == set(pack.tensors)
    fresh = apply_pack(build_model("bert-tiny", 2, adapter=spec), back).eval()
    ids, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(fresh(ids, mask), m.eval()(ids, mask))
    assert adapter_structure(spec.to_dict()) != adapter_structure(AdapterSpec(3, 3).to_dict())
    # a version-1 pack cannot be LoRA; a bad LoRA object is named field by field
    for edit, match in ((dict(format_version=1), "format_version 1 does not have"),
                        (dict(adapter={**spec.to_dict(), "rank": "3"}), "rank must be an int")):
        (tmp_path / "p" / "pack.json").write_text(json.dumps({**meta, **edit}))
        with pytest.raises(FormatError, match=match):
            load_pack(tmp_path / "p")


def test_houlsby_v1_packs_still_load():
    from edgemti.tasks import packs_dir

    pack = load_pack(packs_dir() / "sst2")
    assert isinstance(pack.adapter, AdapterSpec) and pack.imported == {}
    assert all(a.dtype == np.float32 for a in pack.tensors.values())


def test_train_lora_rank_trains_only_the_pairs_head_and_norms(tmp_path):
    from test_tasks_train import make_glue

    from edgemti.tasks.train import train_task
    from edgemti.tasks.train_config import TrainConfig

    glue = make_glue(tmp_path / "glue")
    cfg = TrainConfig(task="rte", backbone="bert-tiny", lora_rank=2, lora_alpha=4.0, epochs=1, batch_size=8, lr=5e-3,
                      data_dir=str(glue), seed=1)
    pack = train_task(cfg, tmp_path / "rte", progress=False).pack
    assert pack.adapter == LoraSpec(rank=2, alpha=4.0, target_modules=("query", "value"))
    assert pack.frozen_check["bit_identical"] is True
    b = [a for n, a in pack.tensors.items() if n.endswith("lora_B.weight")]
    assert len(b) == 4 and all(np.abs(a).max() > 0 for a in b)  # B left zero: it trained
    assert load_pack(tmp_path / "rte").train_config["lora_rank"] == 2
    with pytest.raises(ConfigError, match="no default LoRA target modules for 'albert'") as err:
        train_task(TrainConfig(task="rte", backbone="albert-tiny", lora_rank=2, data_dir=str(glue)), tmp_path / "x",
                   progress=False)
    assert err.value.options == ("lora_targets",)
    with pytest.raises(ConfigError, match="lora_alpha and lora_targets need lora_rank"):
        TrainConfig(task="rte", lora_alpha=2.0)
