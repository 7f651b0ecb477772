"""Issue 10, build side: the build is one signed-by-hash unit. Every edit the issue found unnoticed (failures 3,
4 and 10) is refused by ``inspect`` / ``inspect --verify`` and by ``serve``, naming the problem."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.compiler.compile import _check_replaceable, clean_stale
from edgemti.errors import ConfigError, FormatError
from edgemti.formats.build import open_build
from edgemti.formats.manifest import DIGEST_KEY, manifest_digest


def _edit(folder, change, reseal=False):
    """Apply ``change`` to the manifest's JSON; ``reseal`` recomputes its digest (an edit by someone who knows
    the format: then the schema checks, the build_id and the file checks must catch it)."""
    path = folder / "manifest.json"
    d = json.loads(path.read_text())
    change(d)
    if reseal:
        d[DIGEST_KEY] = manifest_digest(d)
    path.write_text(json.dumps(d, indent=1))


def _inspect(folder, verify=True):
    res = CliRunner().invoke(main, ["inspect", str(folder), *(["--verify"] if verify else [])])
    return res.exit_code, res.output


def _swap(a, b, keys):
    def change(d):
        ta, tb = d["tensors"][a], d["tensors"][b]
        for k in keys:
            ta[k], tb[k] = tb[k], ta[k]
    return change


def _reverse_labels(d):
    d["packs"][0]["labels"].reverse()


def _format(d):
    d["tensors"][1]["format"] = {"kind": "float", "bits": 16}


def _pack_at_other(d):
    for k in ("offset", "length", "sha256"):
        d["packs"][0][k] = d["packs"][1][k]


# valid-JSON edits that once served wrong answers with ok: true and passed --verify (failure 4)
UNSEALED = {
    "swap values": _swap(3, 5, ("values",)),
    "swap values+mask+nnz": _swap(3, 5, ("values", "mask", "nnz")),
    "tensor format": _format,
    "labels reversed": _reverse_labels,
    "is_regression string": lambda d: d["packs"][0].__setitem__("is_regression", "false"),
    "pack at another's bytes": _pack_at_other,
}


@pytest.mark.parametrize("name", list(UNSEALED))
def test_any_manifest_edit_is_refused_by_its_digest(copy, name):
    _edit(copy, UNSEALED[name])
    code, out = _inspect(copy, verify=False)  # even without --verify: the manifest is always checked
    assert code != 0 and "manifest_sha256" in out and "edited" in out, out


def _tensor0(key, value):
    return lambda d: d["tensors"][0].__setitem__(key, value)


# the same edits re-sealed with a correct digest: the schema, the build_id and the files catch them
SEALED = {
    "negative shape": (_tensor0("shape", [-3, 4]), "shape must be a list of integers"),
    "max_seq_len string": (lambda d: d["compile"].__setitem__("max_seq_len", "abc"), "max_seq_len must be an int"),
    "is_regression string": (lambda d: d["packs"][0].__setitem__("is_regression", "false"),
                             "is_regression must be true or false"),
    "unknown pack image": (lambda d: d["packs"][0].__setitem__("image", "sram"), "image must be 'dram'"),
    "unknown graph output": (lambda d: d["graph"].__setitem__("output", "probs"), "graph.output must be one of"),
    "labels vs classifier": (lambda d: d["packs"][0]["labels"].append("maybe"), "classifier.weight has shape"),
    "pack outside the image": (lambda d: d["packs"][2].__setitem__("offset", d["packs"][2]["offset"] + 10**6),
                               "lies outside dram"),
    "pack tensors overlap": (lambda d: d["packs"][0]["tensors"][1].__setitem__("offset", 0), "overlaps"),
    "absolute graph path": (lambda d: d["graph"].__setitem__("file", "/etc/passwd"), "not a relative path"),
    "dotdot image path": (lambda d: d["images"]["dram"].__setitem__("file", "../b/dram.bin"), "climbs out"),
    "absolute tokenizer": (lambda d: d["backbone"].__setitem__("tokenizer", "/tmp"), "not a relative path"),
    "build_id": (lambda d: d.__setitem__("build_id", "0" * 64), "build_id 000000000000... is not the one"),
    "swapped values re-sealed": (_swap(3, 5, ("values",)), "values/mask lengths"),
    "pack at another's bytes re-sealed": (_pack_at_other, "overlap in dram"),
    "unknown field type": (lambda d: d["packs"][0].__setitem__("tensors", 7), "tensors must be a list"),
}


@pytest.mark.parametrize("name", list(SEALED))
def test_resealed_edits_are_refused_naming_the_problem(copy, name):
    change, needle = SEALED[name]
    _edit(copy, change, reseal=True)
    code, out = _inspect(copy)
    assert code != 0 and needle in out, out


def test_every_schema_problem_is_listed_in_one_error(copy):
    def change(d):
        d["tensors"][0]["shape"] = [-1]
        d["compile"]["max_seq_len"] = "abc"
        d["packs"][1]["image"] = "nowhere"
        d["graph"]["output"] = "probs"
    _edit(copy, change, reseal=True)
    with pytest.raises(FormatError) as ei:
        open_build(copy, verify=False)
    msg = str(ei.value)
    for part in ("shape must be", "max_seq_len must be an int", "image must be 'dram'", "graph.output"):
        assert part in msg, msg


def test_tokenizer_files_are_covered(copy):
    """Deleting tokenizer.json once left --verify OK and served from a 5-token fallback tokenizer (failure 3)."""
    tok = copy / "tokenizer" / "tokenizer.json"
    data = tok.read_bytes()
    tok.write_bytes(data[:-2] + b" }")  # same size, other bytes
    code, out = _inspect(copy)
    assert code != 0 and "tokenizer.json" in out and "sha256" in out, out
    tok.unlink()
    code, out = _inspect(copy, verify=False)
    assert code != 0 and "tokenizer.json" in out and "missing" in out, out
    tok.write_bytes(data)
    (copy / "tokenizer" / "vocab.txt").write_text("[UNK]\n")  # an added file changes what the tokenizer loads
    code, out = _inspect(copy)
    assert code != 0 and "does not list" in out and "vocab.txt" in out, out


def test_symlink_out_of_the_build_is_refused(copy, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(str(copy / "tokenizer"), outside)
    os.symlink(outside, copy / "tokenizer")
    code, out = _inspect(copy, verify=False)
    assert code != 0 and "holds no symlinks" in out and "tokenizer" in out, out


def test_serve_refuses_an_edited_build_and_trust_never_skips_the_manifest(copy):
    (copy / "dram.bin").write_bytes(b"\0" + (copy / "dram.bin").read_bytes()[1:])  # same size, one byte changed
    req = json.dumps({"id": 1, "task": "sst2", "text": "a fine film"}) + "\n"
    run = [sys.executable, "-m", "edgemti.cli", "serve", str(copy)]
    p = subprocess.run(run, input=req, capture_output=True, text=True, timeout=180)
    assert p.returncode != 0 and "dram.bin" in p.stderr and "sha256" in p.stderr and not p.stdout, p.stderr
    p = subprocess.run([*run, "--trust"], input=req, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1, p.stderr  # --trust: image hashes skipped
    _edit(copy, _reverse_labels)
    p = subprocess.run([*run, "--trust"], input=req, capture_output=True, text=True, timeout=180)
    assert p.returncode != 0 and "manifest_sha256" in p.stderr and not p.stdout, p.stderr


def test_old_builds_are_refused_by_name(copy):
    _edit(copy, lambda d: d.__setitem__("format_version", 1), reseal=True)
    code, out = _inspect(copy, verify=False)
    assert code != 0 and "format_version 1 is not supported" in out and "recompile" in out, out


def test_force_replaces_only_an_edgemti_build(tmp_path, build):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "my holiday"}')
    with pytest.raises(ConfigError, match="not an edgemti build"):
        _check_replaceable(foreign)
    res = CliRunner().invoke(main, ["compile", "--backbone", "bert-tiny", "--synthetic-tasks", "sst2", "--out",
                                    str(foreign), "--force"])
    assert res.exit_code != 0 and "not an edgemti build" in res.output
    assert (foreign / "manifest.json").read_text() == '{"name": "my holiday"}'
    _check_replaceable(build)  # a build is replaceable
    empty = tmp_path / "empty"
    empty.mkdir()
    _check_replaceable(empty)


def test_stale_temporary_folders_of_killed_compiles_are_removed(tmp_path):
    out = tmp_path / "out"
    dead = tmp_path / ".out.tmp-999999999-abc"  # no such pid
    old = tmp_path / ".out.old-999999999-123"
    live = tmp_path / f".out.tmp-{os.getppid()}-xyz"  # a running process: maybe a concurrent compile
    other = tmp_path / ".other.tmp-999999999-abc"
    for p in (dead, old, live, other):
        p.mkdir()
    removed = clean_stale(out)
    assert sorted(removed) == sorted([dead, old])
    assert live.exists() and other.exists() and not dead.exists() and not old.exists()
