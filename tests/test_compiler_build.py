"""compile_build end to end on tiny models: adapter (real packs, VASE sizes, regression) and vanilla designs."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from compiler_support import TASKS, trained

from edgemti.cli import main
from edgemti.compiler import CompileConfig, compile_build, plan_build
from edgemti.compiler.check import compare_logits
from edgemti.compiler.footprint import check_capacity, footprint, table3_rows
from edgemti.compiler.inspect import inspect_build
from edgemti.errors import BackboneMismatchError, CapacityError, ConfigError, FormatError
from edgemti.formats.build import decode_backbone, open_build
from edgemti.formats.quant import fake_quantize, parse_format
from edgemti.hwmodel.spec import SPECS_DIR
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.pack import save_pack
from edgemti.tasks.pack_model import pack_from_model


def _pack(root, backbone, task, labels, is_reg, adapter, seed):
    model = trained(backbone, 1 if is_reg else len(labels), adapter, seed)
    return save_pack(pack_from_model(model, task, labels, is_reg), root / task)


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("packs")
    return [_pack(root, "albert-tiny", *t) for t in TASKS]  # mnli 3 labels, mrpc VASE sizes, stsb regression


@pytest.fixture(scope="module")
def adapter_cfg(packs):
    return CompileConfig(backbone="albert-tiny", packs=tuple(packs), quant="q3.13", sparsity_embedding=0.5,
                         sparsity_transformer=0.3)


@pytest.fixture(scope="module")
def adapter_build(adapter_cfg, tmp_path_factory):
    steps = []
    out = compile_build(adapter_cfg, tmp_path_factory.mktemp("b") / "adapter", progress=steps.append)
    assert len(steps) == 8
    return out


@pytest.fixture(scope="module")
def vanilla_build(tmp_path_factory):
    """Compiled through the CLI, fp32, unpruned, over an existing empty folder with --force."""
    out = tmp_path_factory.mktemp("b") / "vanilla"
    out.mkdir()
    r = CliRunner().invoke(main, ["compile", "--backbone", "albert-tiny", "--synthetic-tasks", "sst2,stsb",
                                  "--design", "vanilla", "--quant", "fp32", "--out", str(out), "--force", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["design"] == "vanilla"
    return out


def test_adapter_build_decodes_to_the_compiled_model(adapter_build, adapter_cfg):
    res = compare_logits(adapter_build, adapter_cfg)
    assert set(res) == {"mnli", "mrpc", "stsb"}
    for task, r in res.items():
        assert r["max_abs_diff_vs_compiled_torch"] <= 1e-5, (task, r)
        assert r["max_abs_diff_vs_float"] > 0  # pruning + Q3.13 changed something, and we measure it


def test_vanilla_fp32_build_matches_pytorch(vanilla_build):
    res = compare_logits(vanilla_build)
    for task, r in res.items():
        assert r["max_abs_diff_vs_compiled_torch"] <= 1e-5, (task, r)
        assert r["max_abs_diff_vs_float"] <= 1e-4, (task, r)  # fp32, unpruned: the ONNX export itself
    m = open_build(vanilla_build).manifest
    assert m.pack("sst2").text_fields == ("text",) and m.pack("stsb").text_fields == ("text", "text_pair")


def test_manifest_content(adapter_build, packs):
    b = open_build(adapter_build)
    m = b.manifest
    assert m.design == "adapter" and not m.synthetic and m.tasks == ["mnli", "mrpc", "stsb"]
    names = {t.name for t in m.tensors}
    assert not any(".adapters." in n or n.startswith("classifier.") for n in names)
    assert "encoder.embeddings.LayerNorm.weight" in names  # the embeddings' LN stays in the backbone
    pruned = [t for t in m.tensors if t.pruned]
    for t in pruned:  # stored sparsity >= target (quantization can only add zeros)
        assert t.sparsity >= t.sparsity_target - 1e-3
    prune = m.compile.prune or {}
    assert m.compile.cumulative_sparsity == pytest.approx(0.5 * prune["p_embedding"] + 0.3 * prune["p_transformer"])
    assert m.pack("mrpc").adapter["attn_bottleneck"] == 8
    assert all(p.text_fields == ("text", "text_pair") for p in m.packs)  # mnli, mrpc, stsb read sentence pairs
    assert (adapter_build / "tokenizer").is_dir() and m.backbone["tokenizer"] == "tokenizer"
    assert not list(adapter_build.parent.glob(".adapter.tmp-*"))
    fp = footprint(m)
    assert fp.slc_bytes == sum((t.numel + 7) // 8 for t in m.tensors)
    assert fp.mlc_bytes == sum(t.nnz * 2 for t in m.tensors)  # Q3.13 = 2 bytes per value
    assert fp.sram_bytes == max(p.length for p in m.packs) and fp.dram_bytes == m.images["dram"].size_bytes


def test_graph_has_no_weights_and_names_every_parameter(adapter_build):
    import onnx

    g = onnx.load(str(adapter_build / "graph.onnx"))
    m = open_build(adapter_build).manifest
    inputs = {i.name for i in g.graph.input}
    assert {t.name for t in m.tensors} | {t.name for t in m.pack("mrpc").tensors} <= inputs
    assert all(i.name == "encoder.embeddings.position_ids" for i in g.graph.initializer)  # a buffer, not a weight


def test_odd_formats_decode_exactly_without_export():
    cfg = CompileConfig(backbone="albert-tiny", synthetic_tasks=("rte",), quant="q4.3", pack_quant="q6.9",
                        sparsity_embedding=0.3, sparsity_transformer=0.7)
    plan = plan_build(cfg)
    dec = decode_backbone(plan.manifest, plan.images["rram_mlc"], plan.images["rram_slc"])
    from edgemti.compiler.prune import prune_backbone

    state = {n: t.numpy() for n, t in plan.model.backbone_state().items()}
    pruned, _ = prune_backbone(state, 0.3, 0.7)
    for n, x in pruned.items():
        np.testing.assert_array_equal(dec[n], fake_quantize(x, parse_format("q4.3")))


def test_bad_inputs_are_clear_errors(adapter_build, packs, tmp_path):
    with pytest.raises(ConfigError, match="exists: choose another output folder or replace it"):
        compile_build(CompileConfig(backbone="albert-tiny", synthetic_tasks=("sst2",)), adapter_build)
    with pytest.raises(ConfigError, match="unknown value format 'q9'"):
        CompileConfig(backbone="albert-tiny", synthetic_tasks=("sst2",), quant="q9")
    other = _pack(tmp_path, "bert-tiny", "rte", ("entailment", "not_entailment"), False, AdapterSpec(16, 16), 4)
    with pytest.raises(BackboneMismatchError, match="different backbones"):
        compile_build(CompileConfig(backbone="albert-tiny", packs=(packs[0], other)), tmp_path / "x")
    with pytest.raises(BackboneMismatchError, match="backbone 'bert-tiny'"):
        compile_build(CompileConfig(backbone="bert-tiny", packs=(packs[0],)), tmp_path / "x")
    with pytest.raises(ConfigError, match="design 'adapter'"):
        compile_build(CompileConfig(backbone="albert-tiny", packs=(packs[0],), design="vanilla"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_capacity_error_names_the_memory_and_leaves_nothing(tmp_path):
    text = (SPECS_DIR / "adapter.toml").read_text()
    small = re.sub(r"(\[rram_mlc\][^\[]*?capacity_bytes\s*=\s*)\d+", r"\g<1>1024", text, count=1)
    spec = tmp_path / "small.toml"
    spec.write_text(small)
    cfg = CompileConfig(backbone="albert-tiny", synthetic_tasks=("sst2",), spec=spec)
    with pytest.raises(CapacityError, match=r"rram_mlc needs .* MiB, has 0.001 MiB: over by"):
        compile_build(cfg, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]
    fp = footprint(plan_build(CompileConfig(backbone="albert-tiny", synthetic_tasks=("sst2",))).manifest)
    with pytest.raises(CapacityError, match="sram needs .*largest pack 'sst2'.*over by"):
        check_capacity(fp, {"sram": 100})


def test_corrupt_build_fails_verify_and_inspect(adapter_build, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(adapter_build, copy)
    data = bytearray((copy / "rram_slc.bin").read_bytes())
    data[3] ^= 1  # one flipped mask bit
    (copy / "rram_slc.bin").write_bytes(bytes(data))
    assert inspect_build(copy)["design"] == "adapter"  # plain inspect reads the manifest only
    with pytest.raises(FormatError, match="rram_slc.bin.*sha256"):
        inspect_build(copy, verify=True)
    r = CliRunner().invoke(main, ["inspect", str(copy), "--verify"])
    assert r.exit_code != 0 and "FormatError" in r.output and "rram_slc.bin" in r.output


def test_inspect_cli_and_table3_rows(adapter_build, vanilla_build, tmp_path):
    r = CliRunner().invoke(main, ["inspect", str(adapter_build), "--verify", "--map", "--tensors", "--check-logits"])
    assert r.exit_code == 0, r.output
    assert "verify: OK" in r.output and "RRAM MLC" in r.output and "memory map" in r.output
    assert "embedding values (5 tensors)" in r.output and "pack stsb" in r.output
    assert "encoder.pooler.weight" in r.output and "vs pruned+quantized torch" in r.output
    r = CliRunner().invoke(main, ["inspect", str(vanilla_build), "--json"])
    rep = json.loads(r.output)
    assert rep["synthetic"] and rep["footprint"]["design"] == "vanilla"
    png = tmp_path / "t3.png"
    r = CliRunner().invoke(main, ["inspect", str(adapter_build), "--table3", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert "Table III" in r.output and png.stat().st_size > 10_000
    assert len(re.findall(r"^(vanilla|adapter) +(fp32|q3\.13|q3\.5) ", r.output, re.M)) == 6
    rows = table3_rows([footprint(open_build(b).manifest) for b in (vanilla_build, adapter_build)])
    assert rows[0]["paper_mlc"] == 3.73 and rows[1]["paper_slc"] == 1.4
    # vanilla keeps only the embeddings in RRAM, so its SRAM (largest pack) is far above the adapter one
    assert rows[0]["sram_mib"] > 5 * rows[1]["sram_mib"]


def test_console_script_runs(adapter_build):
    exe = shutil.which("edgemti") or f"{sys.executable} -m edgemti.cli"
    out = subprocess.run(f"{exe} inspect {adapter_build} --json", shell=True, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["build_id"] == open_build(adapter_build).manifest.build_id


def test_second_compile_of_one_architecture_reuses_the_graph(adapter_build, adapter_cfg, tmp_path):
    """The weightless graph depends on shapes only: a Q3.5 build of the same packs reuses it (no new export)
    and still decodes to its own compiled model."""
    from dataclasses import replace

    from edgemti.compiler.compile import _GRAPH_CACHE

    n_cached = len(_GRAPH_CACHE)
    cfg = replace(adapter_cfg, quant="q3.5", pack_quant="q4.12")
    out = compile_build(cfg, tmp_path / "q35")
    assert len(_GRAPH_CACHE) == n_cached
    a, b = open_build(adapter_build).manifest, open_build(out).manifest
    assert a.graph["sha256"] == b.graph["sha256"] and a.build_id != b.build_id
    assert b.pack_format.name == "q4.12" and b.value_format.bits == 8
    for r in compare_logits(out, cfg).values():
        assert r["max_abs_diff_vs_compiled_torch"] <= 1e-5
