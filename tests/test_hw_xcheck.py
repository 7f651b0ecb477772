"""Cross-check against zigzag: the exporter's files carry the spec's numbers; the two models agree on a tiny build
within the stated tolerance after the named adjustments, and a disagreement is reported (docs/HWMODEL.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import onnx
import pytest
import yaml
from hw_support import tiny_graph, tiny_hw

from edgemti.errors import ConfigError
from edgemti.hwmodel.zigzag_export import (
    Matmul,
    accelerator,
    array_dims,
    mapping,
    workload,
    write_accelerator,
    write_mapping,
)

SEQ = 32


@pytest.fixture(scope="module")
def hw():
    return tiny_hw()


def _levels(hw):
    return dict(hw.area().levels)


def _bits_per_cycle(bytes_per_s: float, hz: float) -> int:
    return max(1, round(bytes_per_s * 8 / hz))


@pytest.mark.parametrize("weight_level", ["rram_mlc", "sram", "dram"])
def test_accelerator_yaml_carries_the_spec_numbers(hw, tmp_path, weight_level):
    spec, lv = hw.spec, _levels(hw)
    path = write_accelerator(tmp_path / "acc.yaml", spec, lv, "fixed8", 8, 8, weight_level)
    text = path.read_text()
    assert text.startswith("# edgemti zigzag export v1") and spec.spec_hash()[:16] in text
    acc = yaml.safe_load(text)
    assert acc == accelerator(spec, lv, "fixed8", 8, 8, weight_level)
    oa = acc["operational_array"]
    assert oa["sizes"] == list(array_dims(spec)) and math.prod(oa["sizes"]) == spec.pe_array.macs
    assert oa["unit_energy"] == spec.pe_array.mac_energy_pj["fixed8"]
    mem = acc["memories"]
    hz = spec.clock.freq_hz
    for name in ("sram", "rram_mlc"):
        if name not in mem:
            continue
        p, m = lv[name], mem[name]
        rd = next(x for x in m["ports"] if x["type"] == "read")
        wr = next(x for x in m["ports"] if x["type"] == "write")
        assert rd["bandwidth_max"] == _bits_per_cycle(p.read_bytes_per_s, hz)
        assert wr["bandwidth_max"] == _bits_per_cycle(p.write_bytes_per_s, hz)
        # zigzag charges r_cost per access of bandwidth_max bits: the per-bit energy is the provisioned level's
        assert m["r_cost"] / rd["bandwidth_max"] == pytest.approx(p.read_j_per_bit * 1e12, rel=1e-12)
        assert m["w_cost"] / wr["bandwidth_max"] == pytest.approx(p.write_j_per_bit * 1e12, rel=1e-12)
        assert m["size"] == p.capacity_bytes * 8
    if weight_level == "dram":
        rd = next(x for x in mem["dram"]["ports"] if x["type"] == "read")
        assert rd["bandwidth_max"] == _bits_per_cycle(spec.dram.bandwidth_bytes_per_s, hz)
        assert mem["dram"]["r_cost"] / rd["bandwidth_max"] == pytest.approx(spec.dram.read_pj_per_bit)
    # the weights live where asked, the activations and outputs in SRAM, through operand A's scratchpad; the
    # weights through operand B's (the weight block); both at their provisioned per-bit energies
    assert "I2" in mem[weight_level]["operands"] and {"I1", "O"} <= set(mem["sram"]["operands"])
    assert set(mem["spad_a"]["operands"]) == {"I1", "O"} and mem["spad_b"]["operands"] == ["I2"]
    for name in ("spad_a", "spad_b"):
        sp = mem[name]
        assert sp["size"] == spec.on_chip_memory(name).capacity_bytes * 8 * spec.buffer_copies(name)
        assert sp["force_double_buffering"] == spec.scratchpad.double_buffered
        rd = next(x for x in sp["ports"] if x["type"] == "read")
        assert sp["r_cost"] / rd["bandwidth_max"] == pytest.approx(lv[name].read_j_per_bit * 1e12, rel=1e-12)
    m = yaml.safe_load(write_mapping(tmp_path / "map.yaml", spec).read_text())
    assert m == mapping(spec) and m[0]["spatial_mapping"] == {"D1": [f"K, {oa['sizes'][0]}"],
                                                              "D2": [f"D, {oa['sizes'][1]}"]}


def test_sparse_weights_are_exported_as_the_dense_stream_they_deliver(hw):
    lv = _levels(hw)
    dense = accelerator(hw.spec, lv, "fixed8", 8, 8, "rram_mlc")["memories"]["rram_mlc"]
    half = accelerator(hw.spec, lv, "fixed8", 8, 8, "rram_mlc", weight_density=0.5)["memories"]["rram_mlc"]
    bw = next(x for x in dense["ports"] if x["type"] == "read")["bandwidth_max"]
    bw_half = next(x for x in half["ports"] if x["type"] == "read")["bandwidth_max"]
    assert bw_half == 2 * bw and half["size"] == 2 * dense["size"]
    # per dense bit: half the energy of a stored bit (one stored bit per two dense weights' worth)
    assert half["r_cost"] / bw_half == pytest.approx(0.5 * dense["r_cost"] / bw, rel=1e-12)
    with pytest.raises(ConfigError, match="weight_density"):
        accelerator(hw.spec, lv, "fixed8", 8, 8, "rram_mlc", weight_density=0.0)


def test_accelerator_refuses_unknown_levels_and_precisions(hw):
    with pytest.raises(ConfigError, match="weight_level"):
        accelerator(hw.spec, _levels(hw), "fixed8", 8, 8, "rram_slc")
    with pytest.raises(ConfigError, match="precision"):
        accelerator(hw.spec, _levels(hw), "int4", 8, 8, "sram")
    with pytest.raises(ConfigError, match="weight_is_activation"):
        Matmul("m", 2, 4, 4, 4, "sram", 8, 8)


def test_workload_onnx_is_well_formed():
    mms = [Matmul("qkv", 1, 128, 768, 768, "rram_mlc", 8, 8, count=36, nodes=("a", "b")),
           Matmul("scores", 12, 128, 64, 128, "sram", 8, 8, weight_is_activation=True, count=12)]
    model = workload(mms)
    nodes = {n.name: n for n in model.graph.node}
    assert [n.op_type for n in model.graph.node].count("MatMul") == 2
    for m in mms:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[m.name].attribute}
        assert attrs == {"act_size": m.act_bits, "weight_size": m.weight_bits, "output_size": 2 * m.act_bits}
        assert nodes[m.name].doc_string.startswith(f"count={m.count}; weight_level={m.weight_level}")
    # the attention matmul's operands are both produced by nodes (zigzag: two activations, batch dims on both)
    produced = {o for n in model.graph.node for o in n.output}
    assert set(nodes["scores"].input) <= produced and not set(nodes["qkv"].input) & produced
    # valid ONNX once zigzag's custom precision attributes are set aside; declared shapes = inferred shapes
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    for n in plain.graph.node:
        del n.attribute[:]
    onnx.checker.check_model(plain, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(plain, strict_mode=True)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.output, *inferred.graph.value_info)}
    assert dims["qkv.out"] == [1, 128, 768] and dims["scores.out"] == [1, 12, 128, 128]
    assert sum(m.macs for m in mms) == 75497472 + 12582912


# -- with zigzag ----------------------------------------------------------------------------------------------


def test_zigzag_parses_the_exports(hw, tmp_path):
    pytest.importorskip("zigzag")
    from zigzag.parser.accelerator_validator import AcceleratorValidator
    from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser

    for level in ("rram_mlc", "sram", "dram"):
        v = AcceleratorValidator(accelerator(hw.spec, _levels(hw), "fixed8", 8, 8, level))
        assert v.validate(), level
    mms = [Matmul("ffn", 1, 128, 768, 3072, "rram_mlc", 8, 8),
           Matmul("ctx", 12, 128, 128, 64, "sram", 8, 8, weight_is_activation=True)]
    path = tmp_path / "w.onnx"
    onnx.save(workload(mms), str(path))
    wl = ONNXModelParser(str(path), str(write_mapping(tmp_path / "map.yaml", hw.spec))).run()
    layers = {n.name: n for n in wl.topological_sort() if hasattr(n, "total_mac_count")}
    assert {k: v.total_mac_count for k, v in layers.items()} == {m.name: m.macs for m in mms}


@pytest.fixture(scope="module")
def tiny_check(hw):
    pytest.importorskip("zigzag")
    from edgemti.studies.xcheck import cross_check

    wl = hw.workload
    task = wl.largest_task
    graph = onnx.load_from_string(tiny_graph())
    return cross_check(hw, graph, wl.weights(task), wl.precision, wl.activation_bits, tuple(wl.data_inputs),
                       seq_len=SEQ, task=task, lpf_limit=4)


def test_tiny_build_agrees_with_zigzag(tiny_check, tmp_path):
    from edgemti.studies.xcheck import ADJUSTMENTS, XCHECK_FORMAT, format_table, write_json

    cc = tiny_check
    # v3: the operand buffers are counted on both sides, so the check now sees the loop orders' traffic. On
    # albert-tiny (32-wide matmuls) the memory-only ratio disagrees (our per-block vector reads vs zigzag's
    # register reuse; docs/HWMODEL.md), and the disagreement is named per row; the whole inference still agrees
    fails = cc.failures()
    assert all(f.split(":")[0] in {r.name for r in cc.rows} for f in fails), fails  # named, never the total
    assert abs(cc.total_energy_ratio - 1) <= cc.energy_tol and abs(cc.total_latency_ratio - 1) <= cc.latency_tol, \
        format_table(cc)
    assert any("memory energy" in f for f in fails)  # leakage and MACs excluded: the traffic disagreement shows
    assert all(r.macs_ours == r.macs_zz for r in cc.rows)
    # every matmul of the graph is covered: the table's MACs are the inference's
    assert cc.total("macs_ours") == sum(r.macs_ours * r.count for r in cc.rows) > 0
    names = {k for r in cc.rows for k in (*r.adjust_energy_j, *r.adjust_latency_s)}
    assert names <= set(ADJUSTMENTS) and {"leakage", "sparse_values", "bitmask_side_channel", "fusion"} <= names
    kinds = {r.weight_level for r in cc.rows}
    assert kinds == {"rram_mlc", "sram", "activation"}
    doc = json.loads(write_json(cc, tmp_path / "x.json").read_text())
    sha = doc.pop("sha256")
    assert doc["format"] == XCHECK_FORMAT and doc["format_version"] == 2
    assert sha == hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    assert doc["failures"] == fails and len(doc["rows"]) == len(cc.rows)


def test_a_disagreement_is_reported(tiny_check):
    cc = tiny_check
    agreeing = [r for r in cc.rows if not any(f.startswith(f"{r.name}:") for f in cc.failures())]
    big = max(agreeing, key=lambda r: r.energy_ours_j * r.count)
    # ours 30 % over zigzag on the largest matmul: outside the 15 % energy tolerance
    off = [dataclasses.replace(r, energy_ours_j=r.energy_ours_j * 1.3) if r is big else r for r in cc.rows]
    fails = dataclasses.replace(cc, rows=tuple(off)).failures()
    assert any(f.startswith(f"{big.name}: energy") for f in fails)
    # without the leakage adjustment zigzag's energy is far below ours: the named adjustment is what closes it
    bare = [dataclasses.replace(r, adjust_energy_j={k: v for k, v in r.adjust_energy_j.items() if k != "leakage"})
            for r in cc.rows]
    assert any("energy" in f for f in dataclasses.replace(cc, rows=tuple(bare)).failures())
    # a MAC count mismatch is never tolerated
    wrong = [dataclasses.replace(r, macs_zz=r.macs_zz + 1) if r is big else r for r in cc.rows]
    assert f"{big.name}: MACs differ" in dataclasses.replace(cc, rows=tuple(wrong)).failures()


@pytest.mark.slow
def test_albert_base_agrees_with_zigzag(tmp_path):
    """The documented run (docs/HWMODEL.md): albert-base adapter Q3.5 at seq 128, compiled here (minutes)."""
    pytest.importorskip("zigzag")
    from edgemti.compiler import CompileConfig, compile_build
    from edgemti.studies.xcheck import cross_check_build, format_table

    cfg = CompileConfig(backbone="albert-base", synthetic_tasks=("mnli", "mrpc", "qnli"), design="adapter",
                        quant="q3.5", sparsity_embedding=0.5, sparsity_transformer=0.5, max_seq_len=128)
    compile_build(cfg, tmp_path / "build", force=True)
    cc = cross_check_build(tmp_path / "build", seq_len=128)
    # v3 (docs/HWMODEL.md): the whole inference agrees (energy 0.991, latency 0.995, memory energy alone 0.843);
    # two shapes disagree on memory energy alone, named: Q.K^T and FFN-out (loop order: our spill / re-reads
    # vs zigzag's), every other row agrees on all four ratios
    fails = cc.failures()
    assert {f.split(":")[0] for f in fails} <= {"attention.scores (Q.K^T)", "ffn_output"}, format_table(cc)
    assert all("memory energy" in f for f in fails), fails
    assert cc.total("macs_ours") == cc.total("macs_zz")
    assert {"ffn", "attention.query", "attention.scores (Q.K^T)", "attention.context (P.V)"} <= {r.name
                                                                                              for r in cc.rows}
