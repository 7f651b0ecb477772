"""A build folder read: open + verify, and decode images back to dense float32 tensors.

This module is the spec of the build format (docs/FORMATS.md describes it in prose): the runtime reads with
:func:`open_build`, :func:`decode_backbone` and :func:`decode_pack`; the compiler writes only through
:mod:`edgemti.formats.build_write`, which checks what it writes with this module's checks. Nothing here imports the
compiler or the tasks package.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemti.errors import FormatError
from edgemti.formats import bitmask
from edgemti.formats.manifest import IMAGE_NAMES, Manifest, path_problem
from edgemti.formats.manifest_schema import manifest_from_json
from edgemti.formats.quant import codes_from_bytes, dequantize, packed_nbytes

MANIFEST_FILE = "manifest.json"
GRAPH_FILE = "graph.onnx"
TOKENIZER_DIR = "tokenizer"
IMAGE_FILES = {"rram_mlc": "rram_mlc.bin", "rram_slc": "rram_slc.bin", "dram": "dram.bin"}
DATA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "logits"


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# -- reading ------------------------------------------------------------------------------------------------------


@dataclass
class Build:
    """An opened build folder. Images are read lazily and (when ``verified``) checked against their sha256."""

    path: Path
    manifest: Manifest
    verified: bool = True
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False)

    def file(self, rel: str) -> Path:
        """``rel`` inside the build folder; a path that leaves it (``..``, absolute, a symlink out) is refused."""
        return inside(self.path, rel)

    def image_bytes(self, name: str) -> bytes:
        if name not in self.manifest.images:
            raise FormatError(f"{self.path}: no image {name!r} (images: {sorted(self.manifest.images)})")
        if name not in self._cache:
            entry = self.manifest.images[name]
            self._cache[name] = _read_checked(self.file(entry.file), entry.size_bytes, entry.sha256, self.verified)
        return self._cache[name]

    def graph_bytes(self) -> bytes:
        g = self.manifest.graph
        return _read_checked(self.file(g["file"]), None, g["sha256"], self.verified)

    @property
    def tokenizer_path(self) -> Path | None:
        tok = self.manifest.backbone.get("tokenizer")
        return self.file(tok) if tok else None

    def check_files(self, hashes: bool) -> list[str]:
        """Problems with the build's other files (the tokenizer's): every listed file present with its size (and,
        with ``hashes``, its sha256), inside the folder, and no unlisted file in the tokenizer folder."""
        problems = []
        for rel, e in self.manifest.files.items():
            try:
                _read_checked(self.file(rel), e.size_bytes, e.sha256, hashes)
            except FormatError as exc:
                problems.append(str(exc))
        tok = self.manifest.backbone.get("tokenizer")
        if tok:
            try:
                folder = self.file(tok)
            except FormatError as exc:
                return [*problems, str(exc)]
            if not folder.is_dir():
                problems.append(f"{folder}: the tokenizer folder is missing: the build is incomplete, recompile it")
            else:
                extra = sorted(p.relative_to(self.path.resolve()).as_posix() for p in folder.resolve().rglob("*")
                               if p.is_file() and p.relative_to(self.path.resolve()).as_posix()
                               not in self.manifest.files)
                if extra:
                    problems.append(f"{folder}: files the manifest does not list: {extra[:5]}")
                if not any(rel.startswith(f"{tok}/") for rel in self.manifest.files):
                    problems.append(f"manifest lists no file of the tokenizer folder {tok!r}")
        return problems

    def check_tokenizer(self) -> list[str]:
        """Problems loading the build's ``tokenizer.json`` (what serving loads): it must load, and every id it can
        produce must index a row of the word embeddings (a token past them fails the graph's Gather)."""
        tok = self.manifest.backbone.get("tokenizer")
        path = self.file(f"{tok}/tokenizer.json") if tok else None
        if path is None or not path.is_file():
            return []
        from tokenizers import Tokenizer

        try:
            n = Tokenizer.from_file(str(path)).get_vocab_size(with_added_tokens=True)
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own exception types
            return [f"{path}: could not load the tokenizer ({str(exc)[:200]})"]
        rows = [t.shape[0] for t in self.manifest.tensors if t.name.endswith("word_embeddings.weight") and t.shape]
        if rows and n > rows[0]:
            return [f"{path}: the tokenizer has {n} tokens, the word embeddings {rows[0]} rows"]
        return []

    def check_graph(self, graph: bytes) -> list[str]:
        """Problems binding the manifest's tensors to the graph's inputs (:func:`formats.servable.graph_problems`):
        the checks serving needs, run by every open, so verify and serve refuse the same builds."""
        from edgemti.formats.graph import load_graph
        from edgemti.formats.servable import graph_problems

        return [f"graph: {p}" for p in graph_problems(self.manifest, load_graph(graph))]

    def decode_backbone(self) -> dict[str, np.ndarray]:
        return decode_backbone(self.manifest, self.image_bytes("rram_mlc"), self.image_bytes("rram_slc"))

    def decode_pack(self, task: str) -> dict[str, np.ndarray]:
        return decode_pack(self.manifest, task, self.image_bytes("dram"))

    def verify(self) -> list[str]:
        """Every check run on the build (checksums of all files, manifest spans and counts vs the images).

        Returns the list of checks passed; raises :class:`FormatError` listing every failure.
        """
        problems, passed = [], []
        images = {}
        for n, e in self.manifest.images.items():
            try:
                images[n] = memoryview(_read_checked(self.file(e.file), e.size_bytes, e.sha256, True))
                passed.append(f"{e.file}: {e.size_bytes} bytes, sha256 {e.sha256[:12]} ok")
            except FormatError as exc:
                problems.append(str(exc))
        try:
            graph = self.graph_bytes() if self.verified else _read_checked(
                self.file(self.manifest.graph["file"]), None, self.manifest.graph["sha256"], True)
            passed.append(f"{self.manifest.graph['file']}: sha256 ok")
            more = self.check_graph(graph)
            problems += more
            if not more:
                passed.append(f"graph inputs: {len(self.manifest.tensors)} backbone tensors and every pack's "
                              f"{len(self.manifest.packs[0].tensors) if self.manifest.packs else 0} tensors bind "
                              "(names, shapes, order)")
        except FormatError as exc:
            problems.append(str(exc))
        more = self.check_files(hashes=True)
        more = more or self.check_tokenizer()
        problems += more
        if not more and self.manifest.files:
            passed.append(f"{len(self.manifest.files)} tokenizer file(s): sizes and sha256 ok, none unlisted; "
                          "tokenizer.json loads, its ids within the word embeddings")
        if len(images) == len(IMAGE_NAMES):
            more = image_problems(self.manifest, images, str(self.path))
            problems += more
            if not more:
                passed.append(f"manifest: {len(self.manifest.tensors)} backbone tensors and "
                              f"{len(self.manifest.packs)} packs match the images (spans, lengths, mask popcounts, "
                              "pack sha256)")
        if problems:
            raise FormatError(f"{self.path}: {len(problems)} problem(s): " + "; ".join(problems))
        return passed


def _read_checked(path: Path, size: int | None, sha: str, verify: bool) -> bytes:
    if not path.is_file():
        raise FormatError(f"{path}: missing: the build is incomplete, recompile it")
    data = path.read_bytes()
    if size is not None and len(data) != size:
        raise FormatError(f"{path}: {len(data)} bytes, the manifest says {size}: the file is truncated or altered, "
                          "recompile the build")
    if verify and sha256_hex(data) != sha:
        raise FormatError(f"{path}: sha256 {sha256_hex(data)[:12]}... does not match the manifest's {sha[:12]}...: "
                          "the file is corrupt or altered, recompile the build")
    return data


def image_problems(m: Manifest, images: Mapping[str, memoryview], origin: str) -> list[str]:
    """Manifest vs image bytes: every span inside its image, lengths consistent, popcounts and pack checksums."""
    problems = []
    for n, e in m.images.items():
        if len(images[n]) != e.size_bytes:
            problems.append(f"image {n}: {len(images[n])} bytes, manifest says {e.size_bytes}")
    for t in m.tensors:
        for span in (t.values, t.mask):
            if span.end > len(images[span.image]):
                problems.append(f"tensor {t.name}: span {span.image}[{span.offset}:{span.end}] beyond the image "
                                f"({len(images[span.image])} bytes)")
        if t.mask.length != bitmask.mask_nbytes(t.numel):
            problems.append(f"tensor {t.name}: mask length {t.mask.length} != ceil({t.numel}/8)")
        if t.values.length != packed_nbytes(t.nnz, t.format):
            problems.append(f"tensor {t.name}: values length {t.values.length} != {t.nnz} x {t.format.bits} bits")
        if not problems:
            mask = images["rram_slc"][t.mask.offset:t.mask.end]
            pop = int(np.unpackbits(np.frombuffer(mask, dtype=np.uint8)).sum())
            if pop != t.nnz:
                problems.append(f"tensor {t.name}: mask has {pop} set bits, manifest nnz is {t.nnz}")
    for p in m.packs:
        if p.offset + p.length > len(images[p.image]):
            problems.append(f"pack {p.task}: [{p.offset}:{p.offset + p.length}] beyond {p.image} "
                            f"({len(images[p.image])} bytes)")
            continue
        if sha256_hex(images[p.image][p.offset:p.offset + p.length]) != p.sha256:
            problems.append(f"pack {p.task}: sha256 mismatch in {p.image}")
        end = 0
        for pt in p.tensors:
            if pt.length != packed_nbytes(pt.numel, pt.format) or pt.offset < end:
                problems.append(f"pack {p.task}: tensor {pt.name} at {pt.offset}+{pt.length} is inconsistent")
            end = pt.offset + pt.length
        if end > p.length:
            problems.append(f"pack {p.task}: tensors run to {end} bytes, pack is {p.length}")
    return problems


def inside(folder: Path, rel: str) -> Path:
    """``folder / rel`` when it stays inside ``folder`` after resolving symlinks; :class:`FormatError` otherwise."""
    why = path_problem(rel)
    if why is not None:
        raise FormatError(f"{folder}: path {why}: the manifest was edited, recompile the build")
    path = folder / rel
    root = folder.resolve()
    target = path.resolve()
    if target != root and root not in target.parents:
        raise FormatError(f"{path}: resolves to {target}, outside the build folder {root} (a symlink out): "
                          "refusing to read it; recompile the build")
    return path


def symlinks_in(folder: Path) -> list[str]:
    """Paths (relative to ``folder``) of every symlink inside ``folder``, the manifest included; links are not
    followed. ``folder`` itself may be a link (a deployment's ``current`` pointing at a build)."""
    out = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink():
                out.append(p.relative_to(folder).as_posix())
    return sorted(out)


def open_build(path: str | Path, verify: bool = True, verify_key: str | Path | None = None) -> Build:
    """Open a build folder: parse and check ``manifest.json`` (its own digest, its build_id, every field, every
    path inside the folder, the tokenizer files present with their sizes); with ``verify`` every file's sha256
    is checked too (``verify=False`` trusts the file contents, never the manifest). ``verify_key`` (a public key
    PEM file): the manifest must carry a valid Ed25519 signature of that key (:mod:`edgemti.formats.signature`),
    and every file's sha256 is checked whatever ``verify`` says (a signed manifest vouches for files by hash)."""
    folder = Path(path)
    mpath = folder / MANIFEST_FILE
    links = symlinks_in(folder)
    if links:
        raise FormatError(f"{folder}: a build holds no symlinks, found {links[:5]}: copy the files themselves "
                          "(a link can point anywhere, and change after the build was checked)")
    if not mpath.is_file():
        raise FormatError(f"{mpath}: missing: {folder} is not an edgemti build (make one with `edgemti compile`)")
    raw = mpath.read_bytes()
    if verify_key is not None:
        from edgemti.formats.signature import load_public_key, verify_manifest

        verify_manifest(folder, raw, load_public_key(verify_key))  # the very bytes parsed below
        verify = True
    manifest = manifest_from_json(raw, origin=str(mpath))
    build = Build(folder, manifest, verified=verify)
    if verify:
        build.verify()
    else:
        problems = build.check_files(hashes=False)
        for rel in [e.file for e in manifest.images.values()] + [manifest.graph["file"]]:
            try:
                build.file(rel)
            except FormatError as exc:
                problems.append(str(exc))
        if not problems:
            problems += build.check_graph(_read_checked(build.file(manifest.graph["file"]), None, "", False))
        if problems:
            raise FormatError(f"{folder}: {len(problems)} problem(s): " + "; ".join(problems))
    return build


# -- decoding -----------------------------------------------------------------------------------------------------


def decode_backbone(manifest: Manifest, mlc: bytes, slc: bytes) -> dict[str, np.ndarray]:
    """RRAM images -> ``{parameter name: dense float32 tensor}`` of every backbone tensor."""
    mv_mlc, mv_slc = memoryview(mlc), memoryview(slc)
    out = {}
    for t in manifest.tensors:
        if t.values.end > len(mv_mlc) or t.mask.end > len(mv_slc):
            raise FormatError(f"tensor {t.name}: its span lies beyond the RRAM image: the image is truncated")
        out[t.name] = bitmask.decode(mv_mlc[t.values.offset:t.values.end], mv_slc[t.mask.offset:t.mask.end],
                                     t.shape, t.format)
    return out


def decode_pack(manifest: Manifest, task: str, dram: bytes) -> dict[str, np.ndarray]:
    """DRAM image -> ``{parameter name: dense float32 tensor}`` of one task's pack (sha256 checked)."""
    p = manifest.pack(task)
    mv = memoryview(dram)
    if p.offset + p.length > len(mv):
        raise FormatError(f"pack {task}: [{p.offset}:{p.offset + p.length}] lies beyond the DRAM image "
                          f"({len(mv)} bytes): the image is truncated")
    blob = mv[p.offset:p.offset + p.length]
    if sha256_hex(blob) != p.sha256:
        raise FormatError(f"pack {task}: sha256 mismatch: the DRAM image is corrupt, recompile the build")
    out = {}
    for t in p.tensors:
        codes = codes_from_bytes(blob[t.offset:t.offset + t.length], t.numel, t.format)
        out[t.name] = dequantize(codes, t.format).reshape(t.shape)
    return out


def reference_logits(build: Build, task: str, input_ids: np.ndarray, attention_mask: np.ndarray,
                     token_type_ids: np.ndarray | None = None) -> np.ndarray:
    """Logits of ``task`` computed by onnxruntime on ``graph.onnx`` with every tensor decoded from the images.

    The reference the runtime and the compiler's PyTorch model are compared against; float32 ``[batch, labels]``.
    """
    from edgemti.formats.graph import run_graph

    tensors = {**build.decode_backbone(), **build.decode_pack(task)}
    return run_graph(build.graph_bytes(), tensors, input_ids, attention_mask, token_type_ids)
