"""Writing a build folder: the compiler's only way to write one.

:class:`ImageBuilder` appends blobs to an image, :func:`encode_backbone_tensor` and :func:`encode_pack` quantize
and encode tensors into them, :func:`write_build` writes images, graph and manifest after checking they agree with
the reader's own checks (:func:`edgemti.formats.build.image_problems`): the writer writes through the reader, which
is the spec of the format (:mod:`edgemti.formats.build`, docs/FORMATS.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgemti.errors import FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.formats import bitmask
from edgemti.formats.build import IMAGE_FILES, MANIFEST_FILE, image_problems, sha256_hex
from edgemti.formats.manifest import (
    IMAGE_BITS_PER_CELL,
    IMAGE_MEMORY,
    IMAGE_NAMES,
    FileEntry,
    ImageEntry,
    Manifest,
    PackEntry,
    PackTensor,
    Span,
    TensorEntry,
    pack_meta_sha256,
)
from edgemti.formats.quant import QFormat, codes_to_bytes, dequantize, quantize, saturation_count


class ImageBuilder:
    """Appends byte blobs to one image (byte aligned, no padding) and hands back their :class:`Span`."""

    def __init__(self, name: str) -> None:
        if name not in IMAGE_NAMES:
            raise FormatError(f"unknown image {name!r}: use one of {list(IMAGE_NAMES)}")
        self.name = name
        self._parts: list[bytes] = []
        self.size_bytes = 0

    def add(self, data: bytes) -> Span:
        span = Span(self.name, self.size_bytes, len(data))
        self._parts.append(data)
        self.size_bytes += len(data)
        return span

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _quant_stats(x: np.ndarray, codes: np.ndarray, fmt: QFormat) -> tuple[int, float]:
    """(saturated count, max |x - dequant(codes)|) of one tensor."""
    if x.size == 0:
        return 0, 0.0
    saturated = saturation_count(x, fmt)
    err = float(np.max(np.abs(dequantize(codes, fmt) - x))) if x.size else 0.0
    return saturated, err


def encode_backbone_tensor(name: str, x: np.ndarray, fmt: QFormat, group: str, pruned: bool,
                           sparsity_target: float, mlc: ImageBuilder, slc: ImageBuilder) -> TensorEntry:
    """Quantize a (pruned) float tensor, bitmask-encode it and append values to ``mlc`` and the mask to ``slc``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    codes = quantize(x, fmt)
    saturated, err = _quant_stats(x, codes, fmt)
    enc = bitmask.encode(codes, fmt)
    return TensorEntry(name=name, shape=tuple(int(s) for s in x.shape), numel=enc.numel, nnz=enc.nnz, format=fmt,
                       group=group, values=mlc.add(enc.values), mask=slc.add(enc.mask), pruned=pruned,
                       sparsity_target=float(sparsity_target), saturated=saturated, quant_max_abs_err=err)


def encode_pack(task: str, labels: tuple[str, ...], is_regression: bool, adapter: dict | None, backbone_hash: str,
                synthetic: bool, tensors: Mapping[str, np.ndarray], fmt: QFormat, dram: ImageBuilder,
                metrics: dict | None = None, text_fields: tuple[str, ...] = ("text",),
                exit: dict | None = None) -> PackEntry:
    """Quantize every task tensor (dense, in name order given) and append the pack to ``dram``."""
    entries, blobs, offset = [], [], 0
    for name, a in tensors.items():
        x = np.ascontiguousarray(a, dtype=np.float32)
        codes = quantize(x, fmt)
        saturated, err = _quant_stats(x, codes, fmt)
        blob = codes_to_bytes(codes, fmt)
        entries.append(PackTensor(name=name, shape=tuple(int(s) for s in x.shape), numel=int(x.size), format=fmt,
                                  offset=offset, length=len(blob), saturated=saturated, quant_max_abs_err=err))
        blobs.append(blob)
        offset += len(blob)
    data = b"".join(blobs)
    span = dram.add(data)
    entry = PackEntry(task=task, labels=tuple(labels), is_regression=is_regression, adapter=adapter,
                      backbone_hash=backbone_hash, synthetic=synthetic, image=span.image, offset=span.offset,
                      length=span.length, sha256=sha256_hex(data), tensors=tuple(entries), metrics=dict(metrics or {}),
                      text_fields=tuple(text_fields), exit=ExitPolicy.from_dict(exit) if exit is not None else None)
    return dataclasses.replace(entry, meta_sha256=pack_meta_sha256(entry))  # the pack's description as compiled


def image_entries(images: Mapping[str, bytes]) -> dict[str, ImageEntry]:
    return {n: ImageEntry(IMAGE_FILES[n], len(images[n]), sha256_hex(images[n]), IMAGE_MEMORY[n],
                          IMAGE_BITS_PER_CELL[n]) for n in IMAGE_NAMES}


def file_entries(folder: str | Path, sub: str) -> dict[str, FileEntry]:
    """Size and sha256 of every file under ``folder/sub`` (the tokenizer folder), keyed by path from ``folder``."""
    root = Path(folder)
    out = {}
    for p in sorted((root / sub).rglob("*")):
        if p.is_symlink():
            raise FormatError(f"{p}: a symlink in the build: copy the file itself")
        if p.is_file():
            data = p.read_bytes()
            out[p.relative_to(root).as_posix()] = FileEntry(len(data), sha256_hex(data))
    return out


def write_build(folder: str | Path, manifest: Manifest, images: Mapping[str, bytes], graph: bytes) -> Path:
    """Write images, graph and manifest into an existing (empty, temporary) folder; checks they agree first."""
    folder = Path(folder)
    problems = image_problems(manifest, {n: memoryview(images[n]) for n in IMAGE_NAMES}, str(folder))
    if manifest.graph["sha256"] != sha256_hex(graph):
        problems.append("graph sha256 does not match the manifest")
    tok = manifest.backbone.get("tokenizer")
    if (file_entries(folder, tok) if tok else {}) != manifest.files:
        problems.append("the tokenizer files on disk are not the ones the manifest lists")
    if problems:  # a compiler bug, never user input: refuse to write an inconsistent build
        raise FormatError(f"{folder}: refusing to write an inconsistent build: " + "; ".join(problems))
    for n in IMAGE_NAMES:
        _write_synced(folder / manifest.images[n].file, images[n])
    _write_synced(folder / manifest.graph["file"], graph)
    _write_synced(folder / MANIFEST_FILE, manifest.to_json().encode())
    return folder


def _write_synced(path: Path, data: bytes) -> None:
    """Write and fsync (a build folder is renamed into place only once everything in it is on the disk)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
