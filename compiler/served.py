"""The backbone as the chip serves it: pruned, quantized, bitmask-encoded into the RRAM images, and decoded back.

:func:`encode_backbone` is the compiler's own prune + quantize + encode step (``compile`` calls it), so a backbone
made here is the build's byte for byte; :func:`served_backbone` decodes those images with the runtime's decoder
(``edgemti.formats.bitmask.decode``, what ``Hma.read_backbone`` runs) and :func:`served_backbone_of_build` reads
them from a build folder. The result is what compression-aware training (``edgemti.compiler.retrain``) swaps into
the model: tensors equal to the runtime's decoded backbone bit for bit (tests/test_served_backbone.py), the
backbone image hash a pack records, and the pack format the build stores the pack's own tensors in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemti.compiler.compression import Compression
from edgemti.compiler.prune import PruneReport, group_of, prune_backbone
from edgemti.errors import BackboneMismatchError
from edgemti.formats import bitmask
from edgemti.formats.build import Build, open_build, sha256_hex
from edgemti.formats.build_write import ImageBuilder, encode_backbone_tensor
from edgemti.formats.image_hash import backbone_image_hash, manifest_image_hash
from edgemti.formats.manifest import TensorEntry
from edgemti.formats.quant import fake_quantize
from edgemti.tasks.model import AdapterModel, tensors_hash
from edgemti.tasks.served import TrainedOn, load_into


@dataclass(frozen=True)
class ServedBackbone:
    """A compressed backbone: its RRAM images, tensor table and decoded tensors (see the module doc).

    ``float_hash`` is the float backbone's ``tensors_hash`` (the build manifest's ``backbone.hash``, a pack's
    ``backbone.hash``); ``image_hash`` the backbone image hash (``edgemti.formats.image_hash``); ``build_id`` is
    set when the images were read from a build folder.
    """

    tensors: dict[str, np.ndarray]
    float_hash: str
    image_hash: str
    compression: Compression
    entries: tuple[TensorEntry, ...]
    mlc: bytes
    slc: bytes
    build_id: str | None = None

    @property
    def decoded_hash(self) -> str:
        return tensors_hash(self.tensors)

    def quantize_pack(self, a: np.ndarray) -> np.ndarray:
        """A pack tensor as the build stores it: fake-quantized at the pack format (``compile``'s encode_pack)."""
        return fake_quantize(a, self.compression.pack_format)

    def decode(self, mlc: bytes | None = None, slc: bytes | None = None) -> dict[str, np.ndarray]:
        """Decode the tensor table from ``mlc`` / ``slc`` (default: this backbone's own images), e.g. images with
        injected cell errors; the runtime's decoder, tensor by tensor."""
        return decode_tensors(self.entries, self.mlc if mlc is None else mlc, self.slc if slc is None else slc)

    def trained_on(self, fault_mlc_rate: float = 0.0, fault_seed: int = 0) -> TrainedOn:
        c = self.compression
        return TrainedOn(image_hash=self.image_hash, value_format=c.value_format.name,
                         pack_format=c.pack_format.name, sparsity_embedding=float(c.sparsity_embedding),
                         sparsity_transformer=float(c.sparsity_transformer), build_id=self.build_id,
                         fault_mlc_rate=float(fault_mlc_rate), fault_seed=int(fault_seed))


def encode_backbone(tensors: Mapping[str, np.ndarray], compression: Compression
                    ) -> tuple[tuple[TensorEntry, ...], bytes, bytes, PruneReport]:
    """Prune (per group), quantize and bitmask-encode ``tensors`` in their order: (tensor table, MLC image bytes,
    SLC image bytes, prune report). This is the step ``compile`` runs; nothing else writes backbone images."""
    pruned, report = prune_backbone(tensors, compression.sparsity_embedding, compression.sparsity_transformer)
    fmt = compression.value_format
    mlc, slc = ImageBuilder("rram_mlc"), ImageBuilder("rram_slc")
    rows = {r.name: r for r in report.tensors}
    entries = tuple(encode_backbone_tensor(n, x, fmt, group_of(n), rows[n].pruned, rows[n].target, mlc, slc)
                    for n, x in pruned.items())
    return entries, mlc.getvalue(), slc.getvalue(), report


def decode_tensors(entries: tuple[TensorEntry, ...], mlc: bytes, slc: bytes) -> dict[str, np.ndarray]:
    """Every tensor of the table decoded from the images with the runtime's bitmask decoder (dense float32)."""
    mv_mlc, mv_slc = memoryview(mlc), memoryview(slc)
    return {t.name: bitmask.decode(mv_mlc[t.values.offset:t.values.end], mv_slc[t.mask.offset:t.mask.end], t.shape,
                                   t.format) for t in entries}


def float_backbone(model: AdapterModel) -> dict[str, np.ndarray]:
    """The model's backbone tensors as float32 numpy arrays, in the order ``compile`` encodes them."""
    return {n: t.cpu().numpy() for n, t in model.backbone_state().items()}


def served_backbone(model: AdapterModel, compression: Compression) -> ServedBackbone:
    """The backbone of ``model`` compressed by ``compression``, as a build of it would serve it.

    ``model`` must hold the float backbone (a model that already holds a served backbone would be compressed
    twice): its backbone hash becomes ``float_hash``."""
    entries, mlc, slc, _ = encode_backbone(float_backbone(model), compression)
    return ServedBackbone(tensors=decode_tensors(entries, mlc, slc), float_hash=model.backbone_hash(),
                          image_hash=backbone_image_hash(entries, sha256_hex(mlc), sha256_hex(slc)),
                          compression=compression, entries=entries, mlc=mlc, slc=slc)


def served_backbone_of_build(build: Build | str | Path, model: AdapterModel | None = None) -> ServedBackbone:
    """The backbone a build serves, decoded from its RRAM images (checksums verified): ``build`` an opened build
    (the caller's one open, handed down) or a build folder, opened here once with every checksum.

    With ``model``, its (float) backbone must be the build's: same tensors hash, else
    :class:`BackboneMismatchError` with both hashes."""
    b = build if isinstance(build, Build) else open_build(build, verify=True)
    m = b.manifest
    if model is not None and model.backbone_hash() != m.backbone.get("hash"):
        raise BackboneMismatchError(f"the model's backbone is {model.backbone_hash()} ({model.info.name}), the build "
                                    f"{build} was compiled from {m.backbone.get('hash')} ({m.backbone.get('name')}): "
                                    "train with the build's backbone")
    mlc, slc = b.image_bytes("rram_mlc"), b.image_bytes("rram_slc")
    entries = tuple(m.tensors)
    return ServedBackbone(tensors=decode_tensors(entries, mlc, slc), float_hash=str(m.backbone.get("hash")),
                          image_hash=manifest_image_hash(m), compression=Compression.of_config(m.compile),
                          entries=entries, mlc=mlc, slc=slc, build_id=m.build_id)


def apply_served(model: AdapterModel, served: ServedBackbone) -> AdapterModel:
    """Load the served backbone into ``model`` in place (every backbone parameter, bit for bit; checked)."""
    load_into(model, model.backbone_names(), served.tensors)
    return model
