"""export-pack --onnx-adapter: onnxruntime's own API (AdapterFormat.read_adapter, LoraAdapter, RunOptions.
add_active_adapter) activates the exported adapter on the exported base graph with the runtime's logits."""

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
import onnxruntime as ort  # noqa: E402
from lora_support import inputs, peft_adapter  # noqa: E402

from edgemti.compiler.compile import compile_build  # noqa: E402
from edgemti.compiler.config import CompileConfig  # noqa: E402
from edgemti.compiler.export_adapter import export_pack, model_version  # noqa: E402
from edgemti.compiler.import_pack import ImportConfig, import_pack  # noqa: E402
from edgemti.runtime.engine import Engine  # noqa: E402
from edgemti.tasks.backbones import build_model  # noqa: E402
from edgemti.tasks.model import AdapterSpec  # noqa: E402
from edgemti.tasks.pack import load_pack, save_pack  # noqa: E402
from edgemti.tasks.pack_model import model_for_pack, pack_from_model


def _session(graph):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # ORT warns that overridable initializers are not constant-folded: that is the point
    return ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])


def _run(sess, ids, mask, adapter=None):
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    if adapter is None:
        return sess.run(["logits"], feeds)[0]
    lora = ort.LoraAdapter()
    lora.Load(str(adapter))
    opts = ort.RunOptions()
    opts.add_active_adapter(lora)
    return sess.run(["logits"], feeds, run_options=opts)[0]


def test_lora_adapter_round_trips_to_the_runtimes_logits(tmp_path):
    bb, src, _ = peft_adapter(tmp_path)
    pack = import_pack(ImportConfig(source=src, backbone=str(bb)), tmp_path / "pack").pack
    compile_build(CompileConfig(backbone=str(bb), packs=(tmp_path / "pack",), quant="fp32"), tmp_path / "build")
    engine = Engine.open(tmp_path / "build")
    res = export_pack(tmp_path / "pack", tmp_path / "sst2.onnx_adapter", tmp_path / "base.onnx")
    assert res.parameters == len(pack.tensors) and res.model_version == model_version(pack.backbone["hash"])
    back = ort.AdapterFormat.read_adapter(str(tmp_path / "sst2.onnx_adapter"))
    assert back.get_adapter_version() == 1 and back.get_model_version() == res.model_version
    params = back.get_parameters()
    assert set(params) == set(pack.tensors)
    assert all(np.array_equal(params[n].numpy(), pack.tensors[n]) for n in pack.tensors)

    sess = _session(tmp_path / "base.onnx")
    ids, mask = (t.numpy() for t in inputs(batch=1, seq=9))
    served = np.array([engine.infer_ids("sst2", {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)}).logits])
    active = _run(sess, ids, mask, tmp_path / "sst2.onnx_adapter")
    assert np.allclose(active, served, atol=1e-5), (active, served)
    assert np.array_equal(_run(sess, ids, mask), np.zeros_like(active))  # no adapter: the neutral task


def test_houlsby_pack_and_another_rank_activate_on_their_base_graphs(tmp_path):
    model = build_model("bert-tiny", 3, adapter=AdapterSpec(4, 6))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".adapters." in n or n.startswith("classifier."):
                p.normal_(0, 0.2)
    save_pack(pack_from_model(model, "mnli", ("entailment", "neutral", "contradiction"), False), tmp_path / "p")
    export_pack(tmp_path / "p", tmp_path / "a.onnx_adapter", tmp_path / "g.onnx")
    ids, mask = (t.numpy() for t in inputs())
    with torch.no_grad():
        want = model_for_pack(load_pack(tmp_path / "p"))(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    got = _run(_session(tmp_path / "g.onnx"), ids, mask, tmp_path / "a.onnx_adapter")
    assert got.shape == (3, 3) and np.allclose(got, want, atol=1e-5)


def test_cli_export_pack(tmp_path):
    from click.testing import CliRunner

    from edgemti.cli import main

    model = build_model("bert-tiny", 2, adapter=AdapterSpec(4, 4))
    save_pack(pack_from_model(model, "sst2", ("negative", "positive"), False), tmp_path / "p")
    run = CliRunner().invoke(main, ["export-pack", str(tmp_path / "p"), "--onnx-adapter", str(tmp_path / "x.onnx_adapter")])
    assert run.exit_code == 0 and "parameters, model_version" in run.output, run.output
    assert (tmp_path / "x.onnx_adapter").stat().st_size > 0
