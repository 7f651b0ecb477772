"""The backbone image hash: the identity of a backbone *as the chip holds it* (pruned, quantized, bitmask-encoded).

Two builds serve the same backbone exactly when their RRAM images hold the same bytes and their tensor tables
decode those bytes the same way. The hash is taken over both: the sha256 of the ``rram_mlc`` (values) and
``rram_slc`` (masks) images and, per backbone tensor in table order, its name, shape, value format and the spans
of its values and mask. A pack trained on a compressed backbone records it (``trained_on.image_hash``, pack
format 2), and ``compile`` / ``--add-pack`` refuse the pack for a build whose backbone image hashes otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from edgemti.formats.digest import canonical_json
from edgemti.formats.manifest import Manifest, TensorEntry


def backbone_image_hash(tensors: Sequence[TensorEntry], mlc_sha256: str, slc_sha256: str) -> str:
    """sha256 (hex) over the RRAM images' checksums and the decode-relevant fields of the tensor table."""
    table = [[t.name, list(t.shape), t.format.to_dict(), [t.values.offset, t.values.length],
              [t.mask.offset, t.mask.length]] for t in tensors]
    doc = {"rram_mlc": mlc_sha256, "rram_slc": slc_sha256, "tensors": table}
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def manifest_image_hash(manifest: Manifest) -> str:
    """:func:`backbone_image_hash` of a build, from its (verified) manifest."""
    return backbone_image_hash(manifest.tensors, manifest.images["rram_mlc"].sha256,
                               manifest.images["rram_slc"].sha256)
