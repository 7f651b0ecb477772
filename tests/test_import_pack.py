"""import-pack: a PEFT LoRA adapter saved by PEFT itself and an AdapterHub-layout Houlsby adapter become packs
whose logits equal the source library's forward pass; every problem of a bad folder is listed; pickles refused."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from edgemti.compiler.import_pack import ImportConfig, import_pack
from edgemti.errors import FormatError
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.pack_model import model_for_pack

peft = pytest.importorskip("peft")  # the dev extra installs it
from lora_support import TINY, copy_tokenizer, inputs, peft_adapter  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

_inputs = inputs


@pytest.fixture(scope="module")
def peft_folder(tmp_path_factory):
    """A tiny BERT saved as a Hugging Face folder, and a LoRA adapter on it trained-looking and saved by PEFT."""
    root = tmp_path_factory.mktemp("peft")
    _, _, model = peft_adapter(root)
    ids, mask = _inputs()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    return root, ref


def test_peft_lora_imports_with_the_logits_of_peft(peft_folder, tmp_path):
    root, ref = peft_folder
    res = import_pack(ImportConfig(source=root / "sst2", backbone=str(root / "tiny-bert")), tmp_path / "pack")
    pack = res.pack
    assert res.library == "peft" and res.weights_file == "adapter_model.safetensors"
    assert pack.adapter == LoraSpec(rank=4, alpha=8.0, target_modules=("query", "value"))
    assert pack.task == "sst2" and pack.labels == ("negative", "positive")
    assert pack.imported["library"] == "peft" and pack.imported["base_model"].endswith("tiny-bert")
    model = model_for_pack(pack)
    ids, mask = _inputs()
    with torch.no_grad():
        got = model(ids, mask)
    assert torch.allclose(got, ref, atol=1e-6), (got, ref)
    assert ref.abs().max() > 0.1  # the logits are not trivially zero


def test_every_problem_of_a_bad_peft_folder_is_listed(peft_folder, tmp_path):
    root, _ = peft_folder
    bad = tmp_path / "bad"
    shutil.copytree(root / "sst2", bad)
    cfg = json.loads((bad / "adapter_config.json").read_text())
    cfg.update(use_dora=True, r=8, base_model_name_or_path="someone/other-bert")
    (bad / "adapter_config.json").write_text(json.dumps(cfg))
    w = load_file(str(bad / "adapter_model.safetensors"))
    k = "base_model.model.bert.encoder.layer.0.attention.self.value.lora_A.weight"
    w[k] = w[k].to(torch.int32)
    w["base_model.model.bert.pooler.dense.weight"] = torch.zeros(32, 32)
    del w["base_model.model.bert.encoder.layer.1.attention.self.query.lora_B.weight"]
    save_file(w, str(bad / "adapter_model.safetensors"))
    with pytest.raises(FormatError) as err:
        import_pack(ImportConfig(source=bad, backbone=str(root / "tiny-bert"), task="sst2"), tmp_path / "out")
    msg = str(err.value)
    for want in ("use_dora = True is not supported", "dtype torch.int32 is not a float type",
                 "pooler.dense.weight' is a backbone tensor", "missing encoder.encoder.layer.1.attention.self.query."
                 "lora_B.weight", "lora_A.weight: shape [4, 32], the backbone's", "base model 'someone/other-bert'"):
        assert want in msg, (want, msg)
    assert not (tmp_path / "out").exists()


def test_pickles_are_refused_unless_allowed_and_then_load_weights_only(peft_folder, tmp_path):
    root, ref = peft_folder
    folder = tmp_path / "sst2"
    shutil.copytree(root / "sst2", folder)
    w = load_file(str(folder / "adapter_model.safetensors"))
    (folder / "adapter_model.safetensors").unlink()
    torch.save(w, folder / "adapter_model.bin")
    cfg = ImportConfig(source=folder, backbone=str(root / "tiny-bert"))
    with pytest.raises(FormatError, match="refusing to unpickle.*weights_only=True"):
        import_pack(cfg, tmp_path / "p")
    pack = import_pack(ImportConfig(source=folder, backbone=str(root / "tiny-bert"), allow_pickle=True),
                       tmp_path / "p").pack
    ids, mask = _inputs()
    with torch.no_grad():
        assert torch.allclose(model_for_pack(pack)(ids, mask), ref, atol=1e-6)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Evil()}, folder / "adapter_model.bin")
    with pytest.raises(FormatError, match="not a plain tensor dict under torch.load"):
        import_pack(ImportConfig(source=folder, backbone=str(root / "tiny-bert"), allow_pickle=True), tmp_path / "q")


def _adapterhub_folder(root, name="mrpc"):
    """A Houlsby adapter in AdapterHub's documented save_adapter layout (the adapters library pins transformers
    4.x, which this project cannot install beside 5.x) and the reference forward pass written from its
    DoubleSeqBnConfig semantics: h = dense(x); LN(h + up(swish(down(h))) + residual)."""
    torch.manual_seed(1)
    bert = BertForSequenceClassification(BertConfig(**TINY)).eval()
    bert.save_pretrained(root / "tiny-bert")
    copy_tokenizer(root / "tiny-bert")
    folder = root / name
    folder.mkdir()
    config = {"config": {"architecture": "bottleneck", "mh_adapter": True, "output_adapter": True,
                         "reduction_factor": 8, "non_linearity": "swish", "original_ln_before": False,
                         "original_ln_after": True, "residual_before_ln": True, "ln_before": False, "ln_after": False,
                         "scaling": 1.0, "use_gating": False, "is_parallel": False, "leave_out": []},
              "hidden_size": 32, "model_class": "BertAdapterModel", "model_name": str(root / "tiny-bert"),
              "model_type": "bert", "name": name, "version": "adapters.1.3.0"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(2)
    w = {}
    for i in range(2):
        for place in ("attention.output", "output"):
            p = f"bert.encoder.layer.{i}.{place}.adapters.{name}"
            w[f"{p}.adapter_down.0.weight"] = torch.randn(4, 32, generator=g) * 0.3
            w[f"{p}.adapter_down.0.bias"] = torch.randn(4, generator=g) * 0.1
            w[f"{p}.adapter_up.weight"] = torch.randn(32, 4, generator=g) * 0.3
            w[f"{p}.adapter_up.bias"] = torch.randn(32, generator=g) * 0.1
    save_file(w, str(folder / "adapter.safetensors"))
    head = {"config": {"head_type": "classification", "num_labels": 2, "layers": 1, "activation_function": "tanh",
                       "label2id": {"not_equivalent": 0, "equivalent": 1}, "use_pooler": True, "bias": True},
            "hidden_size": 32, "model_class": "BertAdapterModel", "model_type": "bert", "name": name}
    (folder / "head_config.json").write_text(json.dumps(head))
    hw = {f"heads.{name}.1.weight": torch.randn(2, 32, generator=g), f"heads.{name}.1.bias": torch.randn(2, generator=g)}
    save_file(hw, str(folder / "model_head.safetensors"))

    def reference(ids, mask):
        hooks = []
        for i, layer in enumerate(bert.bert.encoder.layer):
            for place, mod in (("attention.output", layer.attention.output), ("output", layer.output)):
                p = f"bert.encoder.layer.{i}.{place}.adapters.{name}"

                def fwd(h, x, mod=mod, p=p):
                    h = mod.dense(h)
                    down = torch.nn.functional.silu(h @ w[f"{p}.adapter_down.0.weight"].T + w[f"{p}.adapter_down.0.bias"])
                    up = down @ w[f"{p}.adapter_up.weight"].T + w[f"{p}.adapter_up.bias"]
                    return mod.LayerNorm(up + h + x)

                hooks.append((mod, mod.forward))
                mod.forward = fwd
        try:
            pooled = bert.bert(input_ids=ids, attention_mask=mask).pooler_output
        finally:
            for mod, f in hooks:
                mod.forward = f
        return pooled @ hw[f"heads.{name}.1.weight"].T + hw[f"heads.{name}.1.bias"]

    return folder, reference


def test_adapterhub_houlsby_imports_with_the_reference_logits(tmp_path):
    folder, reference = _adapterhub_folder(tmp_path)
    res = import_pack(ImportConfig(source=folder), tmp_path / "pack")  # backbone: the config's model_name
    assert res.library == "adapterhub" and res.pack.adapter == AdapterSpec(4, 4, activation="swish")
    assert res.pack.labels == ("not_equivalent", "equivalent")
    ids, mask = _inputs()
    with torch.no_grad():
        want = reference(ids, mask)
        got = model_for_pack(res.pack)(ids, mask)
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert np.abs(want.numpy()).max() > 0.1
    # and it compiles and serves with those logits (fp32 build)
    from edgemti.compiler.compile import compile_build
    from edgemti.compiler.config import CompileConfig
    from edgemti.runtime.engine import Engine

    compile_build(CompileConfig(backbone=str(tmp_path / "tiny-bert"), packs=(tmp_path / "pack",), quant="fp32"),
                  tmp_path / "build")
    engine = Engine.open(tmp_path / "build")
    n = int(mask[0].sum())
    served = engine.infer_ids("mrpc", {"input_ids": ids[:1, :n].numpy(), "attention_mask": mask[:1, :n].numpy(),
                                       "token_type_ids": np.zeros((1, n), dtype=np.int64)}).logits
    assert np.allclose(served, want[0].numpy(), atol=1e-5), (served, want[0])


def test_adapterhub_problems_are_listed(tmp_path):
    folder, _ = _adapterhub_folder(tmp_path)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["config"].update(scaling=2.0, original_ln_before=True)
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    head = json.loads((folder / "head_config.json").read_text())
    head["config"].update(layers=2, use_pooler=False)
    (folder / "head_config.json").write_text(json.dumps(head))
    with pytest.raises(FormatError) as err:
        import_pack(ImportConfig(source=folder), tmp_path / "pack")
    msg = str(err.value)
    assert "config.scaling = 2.0" in msg and "config.original_ln_before = True" in msg and "layers = 2" in msg, msg


def test_cli_import_pack_and_its_pickle_hint(peft_folder, tmp_path):
    from click.testing import CliRunner

    from edgemti.cli import main

    root, _ = peft_folder
    run = CliRunner().invoke(main, ["import-pack", str(root / "sst2"), "--out", str(tmp_path / "p"),
                                    "--backbone", str(root / "tiny-bert")])
    assert run.exit_code == 0 and "peft LoraSpec" in run.output, run.output
    folder = tmp_path / "pickled"
    shutil.copytree(root / "sst2", folder)
    torch.save(load_file(str(folder / "adapter_model.safetensors")), folder / "adapter_model.bin")
    (folder / "adapter_model.safetensors").unlink()
    run = CliRunner().invoke(main, ["import-pack", str(folder), "--out", str(tmp_path / "q"), "--task", "sst2",
                                    "--backbone", str(root / "tiny-bert")])
    assert run.exit_code != 0 and "--allow-pickle" in run.output, run.output
