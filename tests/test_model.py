"""The adapter model: identity at init, the backbone/task partition, parameter counts by hand."""

import pytest
import torch

from edgemti.errors import ConfigError
from edgemti.tasks.backbones import build_model, preset_config
from edgemti.tasks.model import AdapterModel, AdapterSpec, BackboneInfo, encoder_class
from edgemti.tasks.params import count_model, param_table


def _encoder(name):
    family, cfg, _ = preset_config(name)
    torch.manual_seed(0)
    return family, encoder_class(family)(cfg, add_pooling_layer=True).eval()


@pytest.mark.parametrize("name,per_depth", [("albert-tiny", False), ("albert-tiny", True), ("bert-tiny", False)])
def test_zero_initialised_adapters_leave_backbone_output_unchanged(name, per_depth):
    family, enc = _encoder(name)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 1000, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        before = enc(input_ids=ids, attention_mask=mask)
    info = BackboneInfo(name=name, family=family, pretrained=False, source="test")
    model = AdapterModel(enc, info, num_labels=2, adapter=AdapterSpec(8, 16, per_depth=per_depth)).eval()
    assert any(".adapters." in n for n in model.task_names())
    with torch.no_grad():
        after = model.encoder(input_ids=ids, attention_mask=mask)
    assert torch.equal(before.last_hidden_state, after.last_hidden_state)
    assert torch.equal(before.pooler_output, after.pooler_output)
    # and a non-zero adapter does change it (the test could fail)
    with torch.no_grad():
        next(m for m in model.modules() if hasattr(m, "up")).up.bias.fill_(0.5)
        changed = model.encoder(input_ids=ids, attention_mask=mask)
    assert not torch.equal(before.last_hidden_state, changed.last_hidden_state)


def test_partition_adapter_vs_vanilla():
    m = build_model("albert-tiny", 2, AdapterSpec(4, 4))
    parts = m.partition()
    assert parts["classifier.weight"] == "task" and parts["encoder.embeddings.LayerNorm.weight"] == "backbone"
    assert all(parts[n] == "task" for n in parts if ".adapters." in n or n.endswith("full_layer_layer_norm.weight"))
    assert parts["encoder.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight"] == "backbone"
    v = build_model("albert-tiny", 2, design="vanilla")
    assert {p for n, p in v.partition().items() if n.startswith("encoder.embeddings.")} == {"backbone"}
    assert {p for n, p in v.partition().items() if not n.startswith("encoder.embeddings.")} == {"task"}
    with pytest.raises(ConfigError, match="adapter size must be"):
        AdapterSpec.parse("32,64,128")


def _albert_base_hand_count(bottleneck_attn: int, bottleneck_ffn: int, labels: int) -> dict:
    V, E, H, F, P, T = 30000, 128, 768, 3072, 512, 2  # vocab, embedding, hidden, FFN, positions, token types
    emb = V * E + P * E + T * E + 2 * E
    proj = E * H + H
    layer = 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H
    pooler = H * H + H
    head = H * labels + labels

    def adapter(b):
        return (H * b + b) + (b * H + H)

    adapters = adapter(bottleneck_attn) + adapter(bottleneck_ffn)
    return {"vanilla_total": emb + proj + layer + pooler + head,
            "total": emb + proj + layer + pooler + head + adapters,
            "task": adapters + 4 * H + head, "vanilla_task": proj + layer + pooler + head, "emb": emb}


@pytest.mark.parametrize("size", ["64", "32", "128", "32,128"])
def test_albert_base_param_counts_match_hand_count(size):
    spec = AdapterSpec.parse(size)
    hand = _albert_base_hand_count(spec.attn_bottleneck, spec.ffn_bottleneck, 3)
    c = count_model("albert-base", "adapter", spec, 3)
    assert c["total"] == hand["total"] and c["task_specific"] == hand["task"] and c["embeddings"] == hand["emb"]
    v = count_model("albert-base", "vanilla", None, 3)
    assert v["total"] == hand["vanilla_total"] and v["task_specific"] == hand["vanilla_task"]
    assert hand["vanilla_total"] - (768 * 3 + 3) == 11_683_584  # ALBERT-base, as PROVENANCE.md counts it


def test_param_table_rows_and_overhead():
    rows = param_table(backbones=("albert-base",), sizes=("64",))
    van, ada = rows
    assert van.design == "vanilla" and van.overhead_pct == 0 and ada.adapter == "64"
    assert ada.overhead_pct == pytest.approx(100 * (ada.total / van.total - 1))
    assert ada.paper["total"] == "11.88M" and 190_000 < ada.task_specific < 210_000
