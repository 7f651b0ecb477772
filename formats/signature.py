"""Signed builds: an Ed25519 signature of the manifest's digest, in ``manifest.sig`` beside ``manifest.json``.

The manifest's own digest (:mod:`edgemti.formats.digest`) catches accidents, not an attacker: whoever edits a
manifest can recompute it. A signature can only be made with the private key, so a build whose manifest changed
after signing (its digest recomputed or not) is refused by a reader that holds the public key. The manifest names
the sha256 of every image, the graph and every tokenizer file, so with the files' hashes checked (``open_build``
with ``verify``) the signature covers the whole build.

``manifest.sig`` (JSON, format ``edgemti-signature`` version 1, docs/FORMATS.md)::

    {"format": "edgemti-signature", "format_version": 1, "algorithm": "ed25519",
     "manifest_sha256": "<64 hex: the digest signed>", "key_id": "<16 hex: sha256 of the raw public key>",
     "signature": "<128 hex: Ed25519 over b'edgemti-build-manifest-v1:' + manifest_sha256>"}

Keys are PEM files: the private key PKCS#8 (``openssl genpkey -algorithm ed25519``, or :func:`generate_keypair`),
the public key SubjectPublicKeyInfo. A private key never goes into a build, and no key material is ever logged or
put in an error message (only the key id, which is public).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import FormatError
from edgemti.formats.digest import DIGEST_KEY, manifest_digest

SIGNATURE_FILE = "manifest.sig"
SIGNATURE_FORMAT = "edgemti-signature"
SIGNATURE_FORMAT_VERSION = 1
ALGORITHM = "ed25519"
PASSWORD_ENV = "EDGEMTI_SIGN_KEY_PASSWORD"  # the passphrase of an encrypted private key, when it has one
_DOMAIN = b"edgemti-build-manifest-v1:"  # what is signed is never a bare hash another protocol could reuse
_HEX = {"manifest_sha256": 64, "key_id": 16, "signature": 128}


class SignatureError(FormatError):
    """A build's signature is missing, malformed, made with another key, or does not match its manifest."""


class SigningKeyError(FormatError):
    """A key file cannot be used (missing, not PEM, not Ed25519, encrypted without a passphrase)."""


@dataclass(frozen=True)
class Signature:
    """One ``manifest.sig``: the manifest digest signed, the signing key's id, the signature (hex)."""

    manifest_sha256: str
    key_id: str
    signature: str
    algorithm: str = ALGORITHM
    format_version: int = SIGNATURE_FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = []
        if self.algorithm != ALGORITHM:
            problems.append(f"algorithm must be {ALGORITHM!r}, got {str(self.algorithm)[:20]!r}")
        if self.format_version != SIGNATURE_FORMAT_VERSION:
            problems.append(f"format_version {self.format_version!r} is not supported (this edgemti reads "
                            f"{SIGNATURE_FORMAT_VERSION})")
        for name, n in _HEX.items():
            v = getattr(self, name)
            if not isinstance(v, str) or not re.fullmatch(f"[0-9a-f]{{{n}}}", v):
                problems.append(f"{name} must be {n} lower-case hex digits, got {str(v)[:20]!r}")
        if problems:
            raise SignatureError("Signature: " + "; ".join(problems))

    def to_json(self) -> str:
        return json.dumps({"format": SIGNATURE_FORMAT, "format_version": self.format_version,
                           "algorithm": self.algorithm, "manifest_sha256": self.manifest_sha256,
                           "key_id": self.key_id, "signature": self.signature}, indent=2) + "\n"

    @classmethod
    def from_json(cls, raw: bytes, origin: str = SIGNATURE_FILE) -> Signature:
        try:
            d: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SignatureError(f"{origin}: not JSON ({str(exc)[:80]}): the signature file is corrupt; sign the "
                                 "build again") from None
        if not isinstance(d, dict) or d.get("format") != SIGNATURE_FORMAT:
            raise SignatureError(f"{origin}: not an {SIGNATURE_FORMAT} file")
        known = {"format", "format_version", "algorithm", "manifest_sha256", "key_id", "signature"}
        unknown = sorted(set(d) - known)
        missing = sorted(known - set(d))
        if unknown or missing:
            raise SignatureError(f"{origin}: fields missing {missing}, unknown {unknown[:5]}")
        try:
            return cls(d["manifest_sha256"], d["key_id"], d["signature"], d["algorithm"], d["format_version"])
        except SignatureError as exc:
            raise SignatureError(f"{origin}: {exc}") from None


# -- keys ---------------------------------------------------------------------------------------------------------


def _read_key_file(path: str | Path, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        if what == "private key":
            raise SigningKeyError(f"{what} {p}: no such file", options=("sign_key",))
        raise SigningKeyError(f"{what} {p}: no such file", options=("verify_key",))
    return p.read_bytes()


def load_private_key(path: str | Path) -> Any:
    """The Ed25519 private key of a PEM file (PKCS#8; encrypted: the passphrase from ``$EDGEMTI_SIGN_KEY_PASSWORD``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path, "private key")
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:  # encrypted without a passphrase (or a passphrase for a plain key)
        raise SigningKeyError(f"private key {path}: encrypted, and {PASSWORD_ENV} does not hold its passphrase (or holds "
                        "one for a key that has none)", options=("sign_key",)) from None
    except ValueError:  # the message of cryptography is not echoed: it could quote key bytes
        raise SigningKeyError(f"private key {path}: not a PEM private key (or a wrong passphrase); make one with "
                        "`openssl genpkey -algorithm ed25519` or `edgemti keygen`", options=("sign_key",)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"private key {path}: a {type(key).__name__.lstrip('_')}, builds are signed with Ed25519",
                        options=("sign_key",))
    return key


def load_public_key(path: str | Path) -> Any:
    """The Ed25519 public key of a PEM file (SubjectPublicKeyInfo, as ``openssl pkey -pubout`` writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY" in data:
        raise SigningKeyError(f"public key {path}: this is a private key; give the public one (it never needs to be on "
                        "the serving machine)", options=("verify_key",))
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SigningKeyError(f"public key {path}: not a PEM public key", options=("verify_key",)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {path}: a {type(key).__name__.lstrip('_')}, builds are signed with Ed25519",
                        options=("verify_key",))
    return key


def key_id(public_key: Any) -> str:
    """16 hex digits naming a public key (sha256 of its raw 32 bytes): public, safe to log."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair: ``private_path`` (PKCS#8 PEM, mode 0600) and ``private_path`` + ``.pub``;
    refuses to overwrite either. Returns (private path, public path, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv, pub = Path(private_path), Path(f"{private_path}.pub")
    for p in (priv, pub):
        if p.exists():
            raise SigningKeyError(f"{p} exists: refusing to overwrite a key; choose another path", options=("out",))
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub, key_id(key.public_key())


# -- signing and verifying ----------------------------------------------------------------------------------------


def _digest_of(manifest_raw: bytes, origin: str) -> str:
    """The digest a signature covers: recomputed from the manifest's content, never taken from its field."""
    try:
        d = json.loads(manifest_raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SignatureError(f"{origin}: the manifest is not JSON") from None
    if not isinstance(d, dict) or d.get(DIGEST_KEY) != manifest_digest(d):
        raise SignatureError(f"{origin}: the manifest's own digest does not match its content")
    return manifest_digest(d)


def sign_manifest(manifest_raw: bytes, private_key: Any, origin: str = "manifest.json") -> Signature:
    """The signature of a manifest (its bytes as written) with an Ed25519 private key."""
    digest = _digest_of(manifest_raw, origin)
    sig = private_key.sign(_DOMAIN + digest.encode("ascii"))
    return Signature(digest, key_id(private_key.public_key()), sig.hex())


def sign_build(folder: str | Path, private_key: Any) -> Signature:
    """Sign the build folder's ``manifest.json``: write ``manifest.sig`` beside it (atomically, fsynced)."""
    folder = Path(folder)
    sig = sign_manifest((folder / "manifest.json").read_bytes(), private_key, str(folder / "manifest.json"))
    fd, tmp = tempfile.mkstemp(prefix=f".{SIGNATURE_FILE}.tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(sig.to_json().encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / SIGNATURE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sig


def verify_manifest(folder: str | Path, manifest_raw: bytes, public_key: Any) -> Signature:
    """Check ``manifest.sig`` of ``folder`` against the manifest bytes read (the same bytes the build is opened
    from) and a public key; :class:`SignatureError` saying what is wrong otherwise."""
    from cryptography.exceptions import InvalidSignature

    folder = Path(folder)
    path = folder / SIGNATURE_FILE
    want = key_id(public_key)
    if path.is_symlink() or not path.is_file():
        raise SignatureError(f"{folder}: the build is not signed (no {SIGNATURE_FILE}) and a public key (id {want}) "
                             "was given: sign it when compiling, or serve it without a key", options=("verify_key",))
    sig = Signature.from_json(path.read_bytes(), str(path))
    digest = _digest_of(manifest_raw, str(folder / "manifest.json"))
    if sig.key_id != want:
        raise SignatureError(f"{path}: signed by key {sig.key_id}, not by the given key {want}",
                             options=("verify_key",))
    if sig.manifest_sha256 != digest:
        raise SignatureError(f"{path}: the signature is for manifest {sig.manifest_sha256[:12]}..., this manifest is "
                             f"{digest[:12]}...: the manifest changed after it was signed; refusing to serve it")
    try:
        public_key.verify(bytes.fromhex(sig.signature), _DOMAIN + digest.encode("ascii"))
    except InvalidSignature:
        raise SignatureError(f"{path}: the Ed25519 signature does not verify with key {want}: the signature or the "
                             "manifest was altered; refusing to serve it") from None
    return sig


def signed_by(folder: str | Path) -> str | None:
    """The key id a build says it is signed by (unverified: for a warning), or None when it is not signed."""
    path = Path(folder) / SIGNATURE_FILE
    try:
        return Signature.from_json(path.read_bytes(), str(path)).key_id
    except (OSError, SignatureError):
        return None
