"""Issue 10, failure 5: a task pack is validated field by field when it is read (``compile --pack``): tracebacks,
a 1.5 PB allocation, another task's weights and a silent pair task became one error naming every problem."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.errors import ConfigError, FormatError
from edgemti.tasks.pack import load_pack

PACKS = Path(__file__).resolve().parents[1] / "tasks" / "packs"


@pytest.fixture()
def pack(tmp_path):
    dst = tmp_path / "sst2"
    shutil.copytree(PACKS / "sst2", dst)
    return dst


def _edit(folder, change):
    path = folder / "pack.json"
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


CASES = {
    "tensor without shape": (lambda d: d["tensors"][0].pop("shape"), "shape must be a list of integers"),
    "tensors not a list": (lambda d: d.__setitem__("tensors", 7), "tensors must be a non-empty list"),
    "max_seq_len string": (lambda d: d.__setitem__("max_seq_len", "x"), "max_seq_len must be an int"),
    "huge adapter": (lambda d: d["adapter"].__setitem__("attn_bottleneck", 10 ** 12),
                     "adapter.attn_bottleneck must be an int in [1, 1536]"),
    "absolute tensors_file": (lambda d: d.__setitem__("tensors_file", "/tmp/other/pack.safetensors"),
                              "tensors_file must be a file name inside the pack folder"),
    "dotdot tensors_file": (lambda d: d.__setitem__("tensors_file", "../mrpc/pack.safetensors"),
                            "tensors_file must be a file name inside the pack folder"),
    "three text fields": (lambda d: d.__setitem__("text_fields", ["a", "b", "c"]), "text_fields must be the task's 1"),
    "is_regression string": (lambda d: d.__setitem__("is_regression", "false"), "is_regression must be true or false"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_pack_json_is_one_error_naming_the_field(pack, name):
    change, needle = CASES[name]
    _edit(pack, change)
    with pytest.raises(FormatError, match="problem") as ei:
        load_pack(pack)
    assert needle in str(ei.value), str(ei.value)


def test_every_problem_is_listed_and_compile_refuses_it(pack, tmp_path):
    def change(d):
        d["tensors"] = 7
        d["max_seq_len"] = "x"
        d["adapter"]["ffn_bottleneck"] = 10 ** 12
    _edit(pack, change)
    res = CliRunner().invoke(main, ["compile", "--backbone", "minilm", "--pack", str(pack), "--out",
                                    str(tmp_path / "out")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    for part in ("tensors must be", "max_seq_len must be", "adapter.ffn_bottleneck"):
        assert part in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_tensors_file_symlinked_out_of_the_pack_is_refused(pack, tmp_path):
    other = tmp_path / "elsewhere.safetensors"
    shutil.copy(PACKS / "mrpc" / "pack.safetensors", other)
    os.replace(pack / "pack.safetensors", tmp_path / "orig.safetensors")
    os.symlink(other, pack / "pack.safetensors")
    with pytest.raises(FormatError, match="outside the pack folder"):
        load_pack(pack)


def test_shipped_packs_still_load():
    for task in ("sst2", "mrpc", "rte"):
        p = load_pack(PACKS / task)
        assert p.task == task and len(p.text_fields) in (1, 2)


def test_request_fields_are_exactly_one_or_two_texts():
    from edgemti.compiler.packs import _request_fields

    assert _request_fields(1) == ("text",) and _request_fields(2) == ("text", "text_pair")
    with pytest.raises(ConfigError, match="got 3"):
        _request_fields(3)
