"""Issue 22 items 2, 4, 5, 8 and issue 21 item 3: one identity per build, and verify means servable.

* ``inspect --verify`` and ``serve`` refuse the same builds (one check, ``formats.servable.graph_problems`` behind
  ``open_build``), graph inputs included;
* ``build_id`` covers everything an answer depends on (tokenizer files, labels, text fields, formats);
* a manifest edited and re-sealed the way the v2 format allowed (digest and build_id recomputed) is still refused
  by the keyless cross-checks (meta_sha256, formats vs compile settings, layout order);
* a symlink anywhere in a build, a non-object ``provenance``: clear errors, no traceback;
* a hot load over HTTP refuses a build recompiled into the served folder and switches whole to the build plus an
  added pack (console script, raw socket).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from test_addpack import _adapter, _pack
from test_runtime_engine import tiny_build

from edgemti.cli import main
from edgemti.formats.digest import DIGEST_KEY, manifest_digest
from edgemti.formats.manifest import derive_build_id, reseal
from edgemti.runtime.log import read_log


def _edit(folder, change, seal=reseal):
    path = folder / "manifest.json"
    d = json.loads(path.read_text())
    change(d)
    seal(d)
    path.write_text(json.dumps(d, indent=1))
    return d


def _v2_seal(d):
    """What the v2 format let anyone do after an edit: recompute the build id and the digest (not meta_sha256)."""
    d["build_id"] = derive_build_id(d)
    d[DIGEST_KEY] = manifest_digest(d)


def _digest_only(d):
    d[DIGEST_KEY] = manifest_digest(d)


def _inspect(folder, *extra):
    res = CliRunner().invoke(main, ["inspect", str(folder), *extra])
    return res.exit_code, res.output


def _serve(folder):
    req = json.dumps({"id": 1, "task": "sst2", "text": "a fine film"}) + "\n"
    res = CliRunner().invoke(main, ["serve", str(folder)], input=req)
    return res.exit_code, res.output


def _tensor(d, name):
    return next(t for t in d["tensors"] if t["name"] == name)


def _drop_backbone(d):
    d["tensors"].pop(5)


def _drop_last_backbone(d):
    d["tensors"].pop()


def _drop_classifier(d):
    p = d["packs"][0]
    p["tensors"] = [t for t in p["tensors"] if t["name"] != "classifier.weight"]


def _transpose_pack(d):
    t = next(t for t in d["packs"][0]["tensors"] if len(t["shape"]) == 2 and t["shape"][0] != t["shape"][1])
    t["shape"].reverse()


def _transpose_backbone(d):
    t = next(t for t in d["tensors"] if len(t["shape"]) == 2 and t["shape"][0] != t["shape"][1])
    t["shape"].reverse()


def _rename_backbone(d):
    d["tensors"][3]["name"] += ".renamed"


def _rename_pack_tensor(d):
    d["packs"][1]["tensors"][0]["name"] = "classifier.extra"


def _rename_classifier(d):
    next(t for t in d["packs"][0]["tensors"] if t["name"] == "classifier.weight")["name"] = "head.weight"


def _data_inputs(d):
    d["graph"]["data_inputs"] = ["input_ids", "attention_mask"]


def _reorder_backbone(d):
    d["tensors"][3], d["tensors"][5] = d["tensors"][5], d["tensors"][3]


# builds that serve refused (at open or at the first request) but inspect --verify passed, re-sealed in full
UNSERVABLE = {
    "dropped backbone tensor": (_drop_backbone, "laid out back to back"),
    "dropped last backbone tensor": (_drop_last_backbone, "its masks end at"),
    "dropped classifier": (_drop_classifier, "starts at 34176, the previous one ends at 34048"),
    "transposed pack tensor": (_transpose_pack, "the graph input takes"),
    "transposed backbone tensor": (_transpose_backbone, "the graph input takes"),
    "renamed backbone tensor": (_rename_backbone, "are not inputs of the graph"),
    "renamed pack tensor": (_rename_pack_tensor, "are not inputs of the graph"),
    "classifier renamed in one pack": (_rename_classifier, "lacks graph input(s) ['classifier.weight']"),
    "data inputs": (_data_inputs, "graph data inputs are"),
    "backbone order": (_reorder_backbone, "laid out back to back"),
}


@pytest.mark.parametrize("name", list(UNSERVABLE))
def test_verify_refuses_what_serve_refuses(copy, name):
    change, needle = UNSERVABLE[name]
    _edit(copy, change)
    code, out = _inspect(copy, "--verify")
    assert code != 0 and needle in out and "Traceback" not in out, out
    code, served = _serve(copy)
    assert code != 0 and needle in served, served  # the same check, the same words


def test_a_good_build_passes_verify_with_the_graph_check(build):
    code, out = _inspect(build, "--verify")
    assert code == 0 and "graph inputs:" in out and "bind" in out, out


# edits re-sealed as v2 allowed (digest and build_id recomputed): the keyless cross-checks of issue 21 item 3
RESEALED = {
    "labels reversed": (lambda d: d["packs"][0]["labels"].reverse(), "meta_sha256"),
    "text_fields changed": (lambda d: d["packs"][0].__setitem__("text_fields", ["text", "text_pair"]), "meta_sha256"),
    "word embeddings frac_bits": (
        lambda d: _tensor(d, "encoder.embeddings.word_embeddings.weight").__setitem__(
            "format", {"kind": "fixed", "int_bits": 5, "frac_bits": 11, "bits": 16}), "is not the build's value_format"),
    "word embeddings fp16": (
        lambda d: _tensor(d, "encoder.embeddings.word_embeddings.weight").__setitem__(
            "format", {"kind": "float", "bits": 16}), "is not the build's value_format"),
    "pack tensor format": (lambda d: d["packs"][0]["tensors"][0].__setitem__(
        "format", {"kind": "fixed", "int_bits": 5, "frac_bits": 11, "bits": 16}), "meta_sha256"),
    "query/key spans swapped": (lambda d: [_swap_spans(d, "query", "key")], "laid out back to back"),
}


def _swap_spans(d, a, b):
    ta = next(t for t in d["tensors"] if f"attention.self.{a}.weight" in t["name"])
    tb = next(t for t in d["tensors"] if t["name"] == ta["name"].replace(f".{a}.", f".{b}."))
    for k in ("values", "mask", "nnz"):
        ta[k], tb[k] = tb[k], ta[k]


@pytest.mark.parametrize("name", list(RESEALED))
def test_resealed_edits_are_refused_without_a_key(copy, name):
    change, needle = RESEALED[name]
    _edit(copy, change, seal=_v2_seal)
    code, out = _inspect(copy)
    assert code != 0 and needle in out and "Traceback" not in out, out


def test_build_id_covers_labels_text_fields_and_tokenizer_files(copy, build):
    """Builds that answer differently once shared an id (the id hashed images, graph and compile only)."""
    old = json.loads((build / "manifest.json").read_text())["build_id"]
    ids = {old}
    for change in (lambda d: d["packs"][0]["labels"].reverse(),
                   lambda d: d["packs"][1].__setitem__("text_fields", ["text"])):
        ids.add(_edit(copy, change)["build_id"])  # sealed in full: each a consistent build of its own id
    assert len(ids) == 3
    shutil.rmtree(copy)
    shutil.copytree(build, copy)
    vocab = next(p for p in sorted((copy / "tokenizer").iterdir()) if p.suffix in (".txt", ".json"))
    vocab.write_bytes(vocab.read_bytes().replace(b"film", b"flim", 1))
    rel = vocab.relative_to(copy).as_posix()

    def retokenize(d):
        import hashlib

        d["files"][rel] = {"size_bytes": vocab.stat().st_size, "sha256": hashlib.sha256(vocab.read_bytes()).hexdigest()}

    _edit(copy, retokenize, seal=_digest_only)  # the v2 id stays: refused, the tokenizer is in the id now
    code, out = _inspect(copy, "--verify")
    assert code != 0 and "is not the one its content gives" in out, out
    new = _edit(copy, lambda d: None)["build_id"]
    code, out = _inspect(copy, "--json")
    assert code == 0 and json.loads(out)["build_id"] == new and new not in ids


def test_provenance_that_is_not_an_object_is_a_clear_error(copy):
    _edit(copy, lambda d: d.__setitem__("provenance", [1, 2]))
    code, out = _inspect(copy)
    assert code != 0 and "provenance must be an object" in out and "Traceback" not in out, out


def test_a_symlink_anywhere_in_the_build_is_refused(copy, tmp_path):
    real = tmp_path / "elsewhere.json"
    shutil.move(str(copy / "manifest.json"), real)
    os.symlink(real, copy / "manifest.json")  # the manifest itself
    code, out = _inspect(copy)
    assert code != 0 and "holds no symlinks" in out and "manifest.json" in out, out
    os.unlink(copy / "manifest.json")
    shutil.move(str(real), copy / "manifest.json")
    shutil.copy(copy / "graph.onnx", copy / "graph.copy")
    os.unlink(copy / "graph.onnx")
    os.symlink("graph.copy", copy / "graph.onnx")  # a link that stays inside the folder is refused too
    code, out = _serve(copy)
    assert code != 0 and "holds no symlinks" in out and "graph.onnx" in out, out
    code, out = _inspect(copy.parent / "b")
    assert code != 0


# -- hot load over HTTP (issue 22 item 2), console script + raw socket ------------------------------------------


def _post(port, path, body):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        data = json.dumps(body).encode()
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload.strip() else {}


def _wait_ready(proc, port):
    deadline = time.monotonic() + 180
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/v2/health/ready")
            r = conn.getresponse()
            r.read()
            conn.close()
            if r.status == 200:
                return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)


def test_hot_load_refuses_another_build_and_switches_whole_to_an_added_pack(tmp_path, tmp_path_factory):
    base = tiny_build(tmp_path_factory.getbasetemp())
    served = tmp_path / "served"
    shutil.copytree(base, served)
    old_id = json.loads((served / "manifest.json").read_text())["build_id"]
    # the "recompiled with --force" build: same backbone and graph, one more task, packs in another format
    other = tiny_build(tmp_path_factory.getbasetemp(), name="other4", synthetic_tasks=("sst2", "mrpc", "stsb", "rte"),
                       pack_quant="q3.5")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "hot.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(served), "--http", f"127.0.0.1:{port}",
                             "--log", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(proc, port)
        req = {"id": "a", "task": "sst2", "text": "a fine film"}
        code, before = _post(port, "/infer", req)
        assert code == 200 and before["ok"], before
        shutil.rmtree(served)
        shutil.copytree(other, served)  # what `compile --force --out served` leaves in the folder
        code, body = _post(port, "/v2/repository/models/rte/load", {})
        assert code == 400 and "another build" in body["error"] and "compile settings" in body["error"], body
        code, after = _post(port, "/infer", dict(req, id="b"))
        assert code == 200 and after["logits"] == before["logits"] and after["inference"] == before["inference"]
        # put the served build back, add a pack to it (`compile --add-pack`), and load that: the engine switches
        shutil.rmtree(served)
        shutil.copytree(base, served)
        pack = _pack(tmp_path, "bert-tiny", _adapter(served))
        r = CliRunner().invoke(main, ["compile", "--add-pack", str(pack), "--into", str(served), "--json"])
        assert r.exit_code == 0, r.output
        new_id = json.loads(r.output)["new_build_id"]
        code, body = _post(port, "/v2/repository/models/rte/load", {})
        assert code == 200, body
        code, rte = _post(port, "/infer", {"id": "c", "task": "rte", "text": "the street is wet",
                                           "text_pair": "it rained"})
        assert code == 200 and rte["ok"], rte
        code, again = _post(port, "/infer", dict(req, id="d"))
        assert again["logits"] == before["logits"]  # the served packs are byte-identical in the new build
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    ids = {r["id"]: r["build_id"] for r in read_log(log).requests}
    assert ids == {"a": old_id, "b": old_id, "c": new_id, "d": new_id}, ids


def test_verify_loads_the_tokenizer_as_serve_does(copy):
    """A tokenizer.json that is consistent with the manifest (sizes, hashes, id re-sealed) but does not load: serve
    refused it at open while inspect --verify said OK. Both load it at open now (``Build.check_tokenizer``)."""
    import hashlib

    tok = copy / "tokenizer" / "tokenizer.json"
    tok.write_text('{"version": "1.0", "model": {"type": "NoSuchModel"}}')
    rel = tok.relative_to(copy).as_posix()
    _edit(copy, lambda d: d["files"].__setitem__(rel, {"size_bytes": tok.stat().st_size,
                                                       "sha256": hashlib.sha256(tok.read_bytes()).hexdigest()}))
    code, out = _inspect(copy, "--verify")
    assert code != 0 and "could not load the tokenizer" in out and "Traceback" not in out, out
    code, served = _serve(copy)
    assert code != 0 and "could not load the tokenizer" in served, served
