"""The typed seam: a manifest's compile section parsed once (CompileSection), a build's Workload built in one place."""

from __future__ import annotations

import json

import pytest
from test_formats_build import _write

from edgemti.errors import FormatError
from edgemti.formats.build import open_build
from edgemti.formats.manifest import CompileSection
from edgemti.formats.manifest_schema import manifest_from_dict, manifest_from_json
from edgemti.formats.quant import QFormat
from edgemti.runtime.workload import workload_of

COMPILE = {
    "quant": "q3.13", "value_format": {"kind": "fixed", "int_bits": 3, "frac_bits": 13, "bits": 16},
    "pack_quant": "q3.5", "pack_format": {"kind": "fixed", "int_bits": 3, "frac_bits": 5, "bits": 8},
    "activation_bits": 16, "sparsity_embedding": 0.5, "sparsity_transformer": 0.5, "cumulative_sparsity": 0.5,
    "max_seq_len": 128, "prune": {"p_embedding": 0.33}, "stored_sparsity": 0.56, "config": {"design": "adapter"},
}


def test_compile_section_is_typed_and_round_trips_exactly():
    c = CompileSection.from_dict(COMPILE)
    assert c.value_format == QFormat("fixed", 16, 3, 13) and c.pack_format.name == "q3.5"
    assert (c.activation_bits, c.max_seq_len, c.sparsity_embedding) == (16, 128, 0.5)
    assert json.dumps(c.to_dict()) == json.dumps(COMPILE)  # same keys, same order: the build id hashes it


def test_every_compile_problem_is_listed_in_one_error():
    bad = dict(COMPILE, activation_bits="16", sparsity_embedding=1.5, value_format={"kind": "fixed", "bits": 8},
               surprise=1)
    del bad["max_seq_len"]
    with pytest.raises(FormatError) as exc:
        CompileSection.from_dict(bad)
    msg = str(exc.value)
    for part in ("missing key 'max_seq_len'", "unknown key 'surprise'", "value_format", "activation_bits must be an int"):
        assert part in msg, msg
    with pytest.raises(FormatError, match=r"sparsity_embedding must be in \[0, 1\), got 1.5"):
        CompileSection.from_dict(dict(COMPILE, sparsity_embedding=1.5))


def test_manifest_json_is_unchanged_and_a_bad_compile_section_is_refused(tmp_path):
    folder, _, _ = _write(tmp_path / "b")
    text = (folder / "manifest.json").read_text()
    m = manifest_from_json(text)
    assert isinstance(m.compile, CompileSection) and m.to_json() == text
    d = json.loads(text)
    d["compile"]["activation_bits"] = 0
    with pytest.raises(FormatError, match="activation_bits must be in"):
        manifest_from_dict(d)


def test_workload_of_a_build(tmp_path):
    folder, _, (fmt, pfmt) = _write(tmp_path / "b")
    m = open_build(folder).manifest
    w = workload_of(m)
    assert w.design == m.design and w.task_names == m.tasks
    assert w.precision == "fixed16" and w.value_bits == fmt.bits and w.activation_bits == m.compile.activation_bits
    assert w.max_seq_len == m.compile.max_seq_len and w.data_inputs == tuple(m.graph["data_inputs"])
    assert w.image_bytes == {n: e.size_bytes for n, e in m.images.items()}
    assert [(t.name, t.shape, t.nnz, t.bits) for t in w.backbone] == [(t.name, t.shape, t.nnz, t.format.bits)
                                                                       for t in m.tensors]
    for p in m.packs:
        tw = w.task(p.task)
        assert tw.pack_bytes == p.length
        assert all(x.place == "sram" and x.nnz == x.numel and x.bits == pfmt.bits for x in tw.tensors)
    assert w.largest_task == max(m.packs, key=lambda p: p.length).task
