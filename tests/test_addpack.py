"""Tasks added at run time: ``add_pack`` appends a pack to a build's DRAM image (RRAM images, graph and tokenizer
byte-identical), and a running engine serves it after ``load_task`` without writing RRAM."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from test_runtime_engine import tiny_build

from edgemti.cli import main
from edgemti.compiler.addpack import add_pack
from edgemti.errors import BackboneMismatchError, ConfigError, UnknownTaskError
from edgemti.formats.build import open_build, reference_logits
from edgemti.formats.quant import fake_quantize
from edgemti.runtime.engine import Engine
from edgemti.runtime.request import Request
from edgemti.tasks.backbones import build_model
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.pack import save_pack
from edgemti.tasks.pack_model import pack_from_model

RTE = ("entailment", "not_entailment")


def _pack(tmp, backbone, adapter, task="rte", labels=RTE, seed=7):
    model = build_model(backbone, len(labels), adapter=adapter)
    g = np.random.default_rng(seed)
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in model.task_names():
                p.add_(torch.from_numpy(g.standard_normal(tuple(p.shape)).astype(np.float32) * 0.05))
    pack = pack_from_model(model, task, labels, False, text_fields=("sentence1", "sentence2"))
    return save_pack(pack, tmp / f"{task}-{backbone}")


def _files(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def build(tmp_path, tmp_path_factory):
    src = tiny_build(tmp_path_factory.getbasetemp())
    dst = tmp_path / "build"
    shutil.copytree(src, dst)
    return dst


def _adapter(build):
    return AdapterSpec(**open_build(build).manifest.packs[0].adapter)


def test_add_pack_appends_to_dram_and_leaves_everything_else_byte_identical(build, tmp_path):
    before = _files(build)
    m0 = open_build(build).manifest
    old_dram = (build / "dram.bin").read_bytes()
    pack_dir = _pack(tmp_path, "bert-tiny", _adapter(build))
    res = add_pack(pack_dir, build)
    after = _files(build)
    untouched = [f for f in before if f not in ("dram.bin", "manifest.json")]
    assert untouched and all(after[f] == before[f] for f in untouched)  # RRAM images, graph, tokenizer
    assert "dram.bin" not in after and "dram.v2.bin" in after  # switched over, old image gone
    b = open_build(build)  # verifies every checksum and span
    m = b.manifest
    assert m.tasks == [*m0.tasks, "rte"] and res.task == "rte" and res.manifest_version == 2
    assert m.provenance["parent_build_id"] == m0.build_id and m.build_id == res.new_build_id != m0.build_id
    assert m.provenance["added_packs"][0]["task"] == "rte"
    dram = b.image_bytes("dram")
    old = m0.images["dram"]
    assert dram[:old.size_bytes] == old_dram  # appended: the packs already there did not move
    p = m.pack("rte")
    assert p.offset == old.size_bytes and len(dram) == old.size_bytes + p.length == res.dram_bytes
    assert p.labels == RTE and p.text_fields == ("text", "text_pair")
    from edgemti.tasks.pack import load_pack

    src = load_pack(pack_dir).tensors
    got = b.decode_pack("rte")
    for n, a in src.items():
        assert np.array_equal(got[n], fake_quantize(a, m.pack_format))
    with pytest.raises(ConfigError, match="already serves task 'rte'"):
        add_pack(pack_dir, build)


def test_a_pack_of_another_backbone_is_refused_naming_both_hashes(build, tmp_path):
    other = _pack(tmp_path, "albert-tiny", _adapter(build))
    here = open_build(build).manifest.backbone["hash"]
    theirs = json.loads((other / "pack.json").read_text())["backbone"]["hash"]
    before = _files(build)
    with pytest.raises(BackboneMismatchError) as err:
        add_pack(other, build)
    assert here in str(err.value) and theirs in str(err.value) and here != theirs
    assert _files(build) == before


def test_a_pack_of_other_adapter_sizes_is_refused(build, tmp_path):
    a = _adapter(build)
    odd = _pack(tmp_path, "bert-tiny", AdapterSpec(a.attn_bottleneck + 1, a.ffn_bottleneck + 1))
    with pytest.raises(ConfigError, match="does not fit the build's graph"):
        add_pack(odd, build)


def test_running_engine_loads_the_added_task_without_writing_rram(build, tmp_path):
    eng = Engine.open(build)
    eng.infer("sst2", "a fine film")
    with pytest.raises(UnknownTaskError):
        eng.infer("rte", "a", "b")
    rram = {lv: eng.hma.mem[lv].counts() for lv in ("RRAM_SLC", "RRAM_MLC2")}
    add_pack(_pack(tmp_path, "bert-tiny", _adapter(build)), build)
    assert "rte" in eng.known_tasks and "rte" not in eng.rules.tasks  # in the build, not served yet
    info = eng.load_task("rte")
    assert info["loaded"] and eng.build_id == open_build(build).manifest.build_id
    out = eng.infer_batch([Request(id=i, task="rte", text=t, text_pair="it rained") for i, t in
                           enumerate(["the street is wet", "the sun shone all day"])])
    assert [r["ok"] for r in out] == [True, True] and all(r["label"] in RTE for r in out)
    b = open_build(build)
    f = eng.tokenize("the street is wet", "it rained")[0]
    ref = reference_logits(b, "rte", f["input_ids"], f["attention_mask"], f["token_type_ids"])[0]
    assert np.max(np.abs(np.asarray(eng.infer("rte", "the street is wet", "it rained").logits) - ref)) <= 1e-5
    # zero RRAM writes: the counters did not move and every cell is still written exactly once
    for lv, c in rram.items():
        d = eng.hma.mem[lv].counts() - c
        assert (d.writes, d.bytes_written, d.cell_writes) == (0, 0, 0)
        assert eng.hma.mem[lv].max_cell_writes() == 1
    assert eng.memory_report()["rram_max_cell_writes"] == {"RRAM_SLC": 1, "RRAM_MLC2": 1}
    assert eng.load_task("rte")["loaded"] is False  # already served: no-op
    # unload: refused afterwards, memory freed, and loadable again
    eng.unload_task("rte")
    assert "pack:rte" not in eng.hma.mem["DRAM"] and "slot:rte" not in eng.hma.mem["SRAM"]
    with pytest.raises(UnknownTaskError):
        eng.infer("rte", "a", "b")
    eng.load_task("rte")
    assert eng.infer("rte", "a", "b").swapped


def test_load_task_refuses_unknown_tasks_and_another_build(build, tmp_path):
    eng = Engine.open(build)
    with pytest.raises(UnknownTaskError):
        eng.load_task("qnli")
    other = tiny_build(tmp_path, name="other", sparsity_embedding=0.5)
    shutil.rmtree(build)
    shutil.copytree(other, build)
    with pytest.raises(Exception, match="another build"):
        eng.load_task("sst2x")


def test_cli_add_pack(build, tmp_path):
    pack_dir = _pack(tmp_path, "bert-tiny", _adapter(build))
    r = CliRunner().invoke(main, ["compile", "--add-pack", str(pack_dir), "--into", str(build), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["task"] == "rte"
    r = CliRunner().invoke(main, ["compile", "--add-pack", str(pack_dir)])
    assert r.exit_code != 0 and "--into" in r.output
