"""Signed builds (issue 21 item 2): ``compile --sign-key`` signs the manifest digest with Ed25519, ``serve
--verify-key`` refuses an unsigned build, one signed with another key, and a manifest edited after signing even
with its digest recomputed; unsigned builds serve without a key (a warning over HTTP); no key goes into a build."""

import json
import logging
import shutil

import pytest
from click.testing import CliRunner
from test_runtime_engine import tiny_build

from edgemti.cli import main
from edgemti.formats.build import open_build
from edgemti.formats.digest import DIGEST_KEY
from edgemti.formats.manifest import reseal
from edgemti.formats.signature import (
    SIGNATURE_FILE,
    Signature,
    SignatureError,
    SigningKeyError,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_build,
)
from edgemti.runtime.serving import serve


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    a = generate_keypair(d / "a.key")
    b = generate_keypair(d / "b.key")
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory):
    return tiny_build(tmp_path_factory.getbasetemp())


@pytest.fixture()
def signed(unsigned, keys, tmp_path):
    out = tmp_path / "signed"
    shutil.copytree(unsigned, out)
    sign_build(out, load_private_key(keys["a"][0]))
    return out


def _requests(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"id": 1, "task": "sst2", "text": "a fine film"}) + "\n")
    return p


def _serve_cli(build, tmp_path, *extra):
    return CliRunner().invoke(main, ["serve", str(build), "--requests", str(_requests(tmp_path)), *extra])


def test_cli_compile_signs_and_serve_verifies(keys, tmp_path):
    priv, pub, kid = keys["a"]
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["compile", "--backbone", "bert-tiny", "--synthetic-tasks", "sst2", "--max-seq-len",
                                  "16", "--out", str(out), "--sign-key", str(priv), "--json"])
    assert r.exit_code == 0, r.output
    sig = Signature.from_json((out / SIGNATURE_FILE).read_bytes())
    assert sig.key_id == kid
    assert sig.manifest_sha256 == json.loads((out / "manifest.json").read_text())[DIGEST_KEY]
    r = _serve_cli(out, tmp_path, "--verify-key", str(pub))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["ok"] is True
    r = _serve_cli(out, tmp_path, "--verify-key", str(keys["b"][1]))  # another key
    assert r.exit_code != 0 and f"signed by key {kid}" in r.output and "--verify-key" in r.output
    # the private key is nowhere in the build
    secret = priv.read_bytes()
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"PRIVATE KEY" not in data and secret not in data, f


def test_unsigned_build_is_refused_under_a_key_and_served_without(unsigned, keys, tmp_path):
    r = _serve_cli(unsigned, tmp_path, "--verify-key", str(keys["a"][1]))
    assert r.exit_code != 0 and "not signed" in r.output and "Traceback" not in r.output
    r = _serve_cli(unsigned, tmp_path)
    assert r.exit_code == 0 and json.loads(r.stdout.splitlines()[0])["ok"] is True


def _tamper(build, edit):
    """Edit the manifest as an attacker would: change a field, recompute meta_sha256, build_id and the digest (it
    then passes every check that needs no key)."""
    path = build / "manifest.json"
    d = json.loads(path.read_text())
    edit(d)
    reseal(d)
    path.write_text(json.dumps(d, indent=2))


@pytest.mark.parametrize("edit", [
    lambda d: d["packs"][0].__setitem__("labels", list(reversed(d["packs"][0]["labels"]))),
    lambda d: d["provenance"].__setitem__("note", "re-signed"),
])
def test_a_manifest_with_its_digest_recomputed_is_refused_under_the_key(signed, keys, edit, tmp_path):
    _tamper(signed, edit)
    open_build(signed)  # the digest alone no longer tells: the edited manifest opens without a key
    with pytest.raises(SignatureError, match="changed after it was signed"):
        open_build(signed, verify_key=keys["a"][1])
    r = _serve_cli(signed, tmp_path, "--verify-key", str(keys["a"][1]))
    assert r.exit_code != 0 and "SignatureError" in r.output


def test_a_forged_signature_file_is_refused(signed, keys):
    path = signed / SIGNATURE_FILE
    d = json.loads(path.read_text())
    _tamper(signed, lambda m: m["provenance"].__setitem__("note", "x"))
    d["manifest_sha256"] = json.loads((signed / "manifest.json").read_text())[DIGEST_KEY]  # claims the new digest
    path.write_text(json.dumps(d))
    with pytest.raises(SignatureError, match="does not verify"):
        open_build(signed, verify_key=keys["a"][1])
    path.write_text("{not json")
    with pytest.raises(SignatureError, match="not JSON"):
        open_build(signed, verify_key=keys["a"][1])


def test_keys_are_checked_and_never_echoed(keys, tmp_path):
    priv, pub, _ = keys["a"]
    with pytest.raises(SigningKeyError, match="this is a private key"):
        load_public_key(priv)  # a private key given where the public one belongs
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError) as ei:
        load_private_key(bad)
    assert "c2VjcmV0" not in str(ei.value)
    with pytest.raises(SigningKeyError, match="exists"):
        generate_keypair(priv)
    assert oct(priv.stat().st_mode & 0o777) == "0o600"


def test_http_warns_when_serving_unverified(unsigned, caplog):
    with caplog.at_level(logging.WARNING, logger="edgemti.runtime.serving"):
        serve(unsigned, http="127.0.0.1:0", duration_s=0.1)
    assert any("not signed" in r.getMessage() for r in caplog.records)
