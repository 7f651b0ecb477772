"""``add_pack``: a new task for an existing build, without touching its backbone (the paper's point: the backbone
in RRAM is write-once; a new task is a new pack in DRAM).

The pack is checked against the build (same backbone tensors by hash, and for a pack trained on a compressed backbone
the same backbone image hash and pack format; same design and adapter structure, tensor
names and shapes the build's graph takes), quantized with the build's pack format and appended to a copy of the
DRAM image. The build is then switched over atomically: the new DRAM image is written under a new file name
(``dram.v<N>.bin``), then ``manifest.json`` is replaced in one rename, then the superseded DRAM file is removed.
At every instant the folder holds a complete, consistent build (the old one until the rename, the new one after);
the RRAM images, the graph and the tokenizer are never rewritten (byte-identical, tests/test_addpack.py).

The manifest records the change in ``provenance``: ``manifest_version`` (1 as compiled, +1 per added pack),
``parent_build_id`` and ``added_packs`` (task, pack sha256, source pack folder name, time).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemti.compiler.packs import check_trained_on, pack_text_fields
from edgemti.errors import BackboneMismatchError, ConfigError
from edgemti.formats.build import (
    MANIFEST_FILE,
    open_build,
    sha256_hex,
)
from edgemti.formats.build_write import ImageBuilder, encode_pack
from edgemti.formats.graph import load_graph
from edgemti.formats.image_hash import manifest_image_hash
from edgemti.formats.manifest import IMAGE_BITS_PER_CELL, IMAGE_MEMORY, ImageEntry
from edgemti.formats.signature import SIGNATURE_FILE, load_private_key, sign_build, signed_by
from edgemti.tasks.lora import adapter_structure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddPackResult:
    """What :func:`add_pack` did: the task, its bytes in DRAM, the build's old and new ids and manifest version."""

    build: Path
    task: str
    pack_bytes: int
    dram_bytes: int
    old_build_id: str
    new_build_id: str
    manifest_version: int

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def _graph_pack_inputs(graph_bytes: bytes, backbone: set[str], data_inputs: set[str]) -> dict[str, tuple]:
    """The graph's pack-tensor inputs and their dims (int, or None for a symbolic axis such as num_labels)."""
    out = {}
    for i in load_graph(graph_bytes).graph.input:
        if i.name in backbone or i.name in data_inputs:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim)
        out[i.name] = dims
    return out


def add_pack(pack: str | Path, into: str | Path, sign_key: str | Path | None = None) -> AddPackResult:
    """Quantize the task pack folder ``pack`` against the build ``into`` and append it (see the module doc).

    The new manifest invalidates a signature of the old one: with ``sign_key`` (an Ed25519 private key PEM file)
    the build is signed again, without it an old ``manifest.sig`` is removed (the build is then unsigned)."""
    from edgemti.tasks.pack import load_pack  # reads safetensors; a compile-side dependency

    folder = Path(into)
    key = load_private_key(sign_key) if sign_key is not None else None
    b = open_build(folder, verify=True)
    m = b.manifest
    p = load_pack(pack)
    here = str(m.backbone.get("hash"))
    if p.backbone.get("hash") != here:
        raise BackboneMismatchError(
            f"pack '{p.task}' ({pack}) was trained on backbone {p.backbone.get('hash')} ({p.backbone.get('name')}), "
            f"the build {folder} holds backbone {here} ({m.backbone.get('name')}): add packs trained on the build's "
            "backbone, or compile a new build for this one")
    check_trained_on(p.task, p.trained_on, manifest_image_hash(m), m.pack_format.name, f"the build {folder}")
    if p.task in m.tasks:
        raise ConfigError(f"build {folder} already serves task {p.task!r} (tasks {m.tasks}): a task is added once; "
                          "compile a new build to replace its pack")
    if p.design != m.design:
        raise ConfigError(f"pack '{p.task}' is design {p.design!r}, the build is {m.design!r}: add a {m.design} pack")
    adapter = p.adapter.to_dict() if p.adapter is not None else None
    if m.packs and adapter_structure(adapter) != adapter_structure(m.packs[0].adapter):
        raise ConfigError(f"pack '{p.task}' adapters are {adapter_structure(adapter)} (kind and per-depth, "
                          f"activation or LoRA targets, scaling), the build's are "
                          f"{adapter_structure(m.packs[0].adapter)}: its graph has one adapter structure")
    data_inputs = set(m.graph.get("data_inputs") or ())
    want = _graph_pack_inputs(b.graph_bytes(), {t.name for t in m.tensors}, data_inputs)
    have = {n: tuple(int(s) for s in a.shape) for n, a in p.tensors.items()}
    problems = [f"missing {n}" for n in sorted(set(want) - set(have))]
    problems += [f"unexpected {n}" for n in sorted(set(have) - set(want))]
    for n in sorted(set(want) & set(have)):
        w, h = want[n], have[n]
        if len(w) != len(h) or any(a is not None and a != c for a, c in zip(w, h, strict=False)):
            problems.append(f"{n} is {list(h)}, the graph takes {[a if a is not None else '?' for a in w]}")
    if problems:
        raise ConfigError(f"pack '{p.task}' does not fit the build's graph ({len(problems)} problem(s): "
                          + "; ".join(problems[:6]) + "): train it with the build's adapter sizes")
    text_fields = pack_text_fields(p)
    old = b.image_bytes("dram")
    dram = ImageBuilder("dram")
    dram.add(old)
    order = [t.name for t in m.packs[0].tensors] if m.packs else sorted(p.tensors)
    order += sorted(set(p.tensors) - set(order))  # same tensor order as the packs already there
    entry = encode_pack(p.task, tuple(p.labels), p.is_regression, adapter, here, False,
                        {n: np.asarray(p.tensors[n], dtype=np.float32) for n in order if n in p.tensors},
                        m.pack_format, dram, dict(p.metrics), text_fields,
                        p.exit.to_dict() if p.exit is not None else None)
    data = dram.getvalue()
    version = int(m.provenance.get("manifest_version", 1)) + 1
    dram_file = f"dram.v{version}.bin"
    images = dict(m.images)
    images["dram"] = ImageEntry(dram_file, len(data), sha256_hex(data), IMAGE_MEMORY["dram"],
                                IMAGE_BITS_PER_CELL["dram"])
    added = list(m.provenance.get("added_packs") or [])
    added.append({"task": p.task, "pack_sha256": entry.sha256, "source": Path(pack).name,
                  "added_unix_s": round(time.time(), 3)})
    prov = dict(m.provenance, manifest_version=version, parent_build_id=m.build_id, added_packs=added)
    manifest = dataclasses.replace(m, images=images, packs=(*m.packs, entry), provenance=prov).with_build_id()
    new_id = manifest.build_id
    stale = folder / SIGNATURE_FILE
    if stale.exists() and key is None:
        log.warning("build %s was signed (key %s); the added pack changes its manifest, so the signature is "
                    "removed: sign it again to serve it under a verify key", folder, signed_by(folder))
        stale.unlink()
    _switch(folder, m.images["dram"].file, dram_file, data, manifest.to_json())
    if key is not None:
        sign_build(folder, key)
    log.info("added pack %s (%d B) to %s: build %s -> %s", p.task, entry.length, folder, m.build_id[:12],
             new_id[:12])
    return AddPackResult(folder, p.task, entry.length, len(data), m.build_id, new_id, version)


def _write_file(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _switch(folder: Path, old_dram: str, new_dram: str, data: bytes, manifest_json: str) -> None:
    """New DRAM image under its own name, then the manifest in one rename, then the old image removed."""
    if (folder / new_dram).exists():
        raise ConfigError(f"{folder / new_dram} exists but the manifest does not name it: a previous add was "
                          "interrupted; remove that file and add the pack again")
    _write_file(folder / new_dram, data)
    try:
        _write_file(folder / MANIFEST_FILE, manifest_json.encode())
    except BaseException:
        (folder / new_dram).unlink(missing_ok=True)
        raise
    if old_dram != new_dram:
        (folder / old_dram).unlink(missing_ok=True)
