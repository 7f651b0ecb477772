"""A LoRA pack saved by PEFT compiles, serves with PEFT's logits and is priced per MAC and byte from the graph:
its A/B matmuls read their weights from SRAM, the backbone's W from RRAM; a second LoRA task of another rank joins
the build, one of another scaling (a graph constant) or a Houlsby pack does not."""

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
from lora_support import inputs, peft_adapter  # noqa: E402

from edgemti.compiler.addpack import add_pack  # noqa: E402
from edgemti.compiler.compile import compile_build  # noqa: E402
from edgemti.compiler.config import CompileConfig  # noqa: E402
from edgemti.compiler.import_pack import ImportConfig, import_pack  # noqa: E402
from edgemti.errors import ConfigError  # noqa: E402
from edgemti.runtime.engine import Engine  # noqa: E402


@pytest.fixture(scope="module")
def lora_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_serve")
    bb, adapter, model = peft_adapter(root)
    import_pack(ImportConfig(source=adapter, backbone=str(bb)), root / "sst2.pack")
    compile_build(CompileConfig(backbone=str(bb), packs=(root / "sst2.pack",), quant="fp32"), root / "build")
    ids, mask = inputs()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits.numpy()
    return root, bb, ref


def _feeds(ids, mask, i):
    n = int(mask[i].sum())
    return {"input_ids": ids[i:i + 1, :n].numpy(), "attention_mask": mask[i:i + 1, :n].numpy(),
            "token_type_ids": np.zeros((1, n), dtype=np.int64)}


def test_served_logits_equal_peft(lora_build):
    root, _, ref = lora_build
    engine = Engine.open(root / "build")
    ids, mask = inputs()
    got = np.array([engine.infer_ids("sst2", _feeds(ids, mask, i)).logits for i in range(ids.shape[0])])
    assert np.allclose(got, ref, atol=1e-5), (got, ref)
    assert engine.infer("sst2", "a fine film").label in ("negative", "positive")


def test_lora_matmuls_are_priced_from_sram_per_mac(lora_build):
    root, _, _ = lora_build
    engine = Engine.open(root / "build")
    seq, hidden, rank = 10, 32, 4
    cost = engine.hw.inference(seq, "sst2")
    lora = [r for r in cost.records if any(".lora_" in w for w in r.weights)]
    assert len(lora) == 8  # 2 layers x (query, value) x (A, B)
    assert all(r.macs == seq * hidden * rank for r in lora)
    assert not any(k.startswith("rram") for r in lora for k in r.bytes_by_level)  # A, B: SRAM (+ scratchpad)
    # one ``lora`` fusion group per adapted projection: base W x + B (A x), scale and Add folded into the accumulation
    assert engine.hw.fusion.kinds()["lora"] == 4 and all(r.group_kind == "lora" for r in lora)
    assert not [r for r in cost.records if r.group_kind == "lora" and r.kind.startswith("sfu")]
    query = [r for r in cost.records if "attention.self.query.weight" in " ".join(r.weights)]
    assert query and all("rram_mlc" in r.bytes_by_level for r in query)  # W stays in RRAM, unmerged
    pack = engine.manifest.pack("sst2")
    lora_bytes = sum(t.length for t in pack.tensors if ".lora_" in t.name)
    assert lora_bytes == 8 * hidden * rank * 4  # fp32 pairs in the pack's DRAM image and swapped into SRAM


def test_lora_tasks_share_a_build_when_the_graph_fits(lora_build, tmp_path):
    import shutil

    root, bb, _ = lora_build
    build = tmp_path / "build"
    shutil.copytree(root / "build", build)
    _, mrpc, _ = peft_adapter(tmp_path, task="mrpc")  # same rank and scaling: fits the built graph
    import_pack(ImportConfig(source=mrpc, backbone=str(bb)), tmp_path / "mrpc.pack")
    add_pack(tmp_path / "mrpc.pack", build)
    assert Engine.open(build).infer("mrpc", "a", "b").label in ("not_equivalent", "equivalent")
    _, rte, _ = peft_adapter(tmp_path, task="rte", rank=4, alpha=16)  # scaling 4.0: another graph constant
    import_pack(ImportConfig(source=rte, backbone=str(bb)), tmp_path / "rte.pack")
    with pytest.raises(ConfigError, match="one adapter structure"):
        add_pack(tmp_path / "rte.pack", build)
    # ranks may differ within one compile (symbolic axes) when the scaling is the same: rank 8, alpha 16
    _, qnli, _ = peft_adapter(tmp_path, task="qnli", rank=8, alpha=16)
    import_pack(ImportConfig(source=qnli, backbone=str(bb)), tmp_path / "qnli.pack")
    compile_build(CompileConfig(backbone=str(bb), packs=(root / "sst2.pack", tmp_path / "qnli.pack"), quant="fp32"),
                  tmp_path / "two")
    engine = Engine.open(tmp_path / "two")
    assert {engine.infer(t, "a", "b" if t == "qnli" else None).task for t in ("sst2", "qnli")} == {"sst2", "qnli"}
    with pytest.raises(ConfigError, match="one adapter structure"):
        compile_build(CompileConfig(backbone=str(bb), packs=(root / "sst2.pack", tmp_path / "rte.pack"),
                                    quant="fp32"), tmp_path / "bad")
