"""Bitmask encoding of a sparse tensor: its non-zero values in row-major order plus one mask bit per element.

Mask layout: bit ``i`` of the flat (row-major) tensor is bit ``i % 8`` of byte ``i // 8`` (LSB first), so a tensor
of ``numel`` elements takes ``ceil(numel / 8)`` bytes; padding bits of the last byte are zero. The values are the
non-zero *codes* of the quantized tensor (a weight that quantizes to 0 is a zero, not a stored value), packed by
:func:`edgemti.formats.quant.codes_to_bytes`. In the build the values go to MLC RRAM (2 bits per cell) and the
masks to SLC RRAM: a flipped mask bit shifts every later value, so the masks get the robust cells (paper IV-B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemti.errors import FormatError
from edgemti.formats.quant import QFormat, codes_from_bytes, codes_to_bytes, dequantize, packed_nbytes


@dataclass(frozen=True)
class Encoded:
    """One encoded tensor: packed non-zero values, the packed mask and the count of non-zeros."""

    values: bytes
    mask: bytes
    nnz: int
    numel: int


def mask_nbytes(numel: int) -> int:
    return (numel + 7) // 8


def encode(codes: np.ndarray, fmt: QFormat) -> Encoded:
    """Quantized codes (any shape) -> :class:`Encoded`. Zeros (incl. -0.0 for floats) are dropped."""
    flat = np.asarray(codes).reshape(-1)
    nonzero = flat != 0
    return Encoded(values=codes_to_bytes(flat[nonzero], fmt),
                   mask=np.packbits(nonzero, bitorder="little").tobytes(),
                   nnz=int(np.count_nonzero(nonzero)), numel=int(flat.size))


def mask_bits(mask_bytes: bytes | memoryview, numel: int) -> np.ndarray:
    """The boolean mask (flat) of ``numel`` elements; checks the length and the zero padding."""
    if len(mask_bytes) != mask_nbytes(numel):
        raise FormatError(f"bitmask of {numel} elements needs {mask_nbytes(numel)} bytes, got {len(mask_bytes)}")
    raw = np.frombuffer(mask_bytes, dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")
    if numel % 8 and bits[numel:].any():
        raise FormatError(f"bitmask of {numel} elements has non-zero padding bits: the mask is corrupt")
    return bits[:numel].astype(bool)


def decode(values_bytes: bytes | memoryview, mask_bytes: bytes | memoryview, shape: tuple[int, ...] | list[int],
           fmt: QFormat) -> np.ndarray:
    """Packed values + mask -> the dense float32 tensor of ``shape`` (zeros where the mask bit is 0)."""
    shape = tuple(int(s) for s in shape)
    numel = int(np.prod(shape, dtype=np.int64))
    mask = mask_bits(mask_bytes, numel)
    nnz = int(np.count_nonzero(mask))
    if len(values_bytes) != packed_nbytes(nnz, fmt):
        raise FormatError(f"mask has {nnz} non-zeros, which need {packed_nbytes(nnz, fmt)} bytes of {fmt.name} "
                          f"values, got {len(values_bytes)}: values and mask do not belong together")
    out = np.zeros(numel, dtype=np.float32)
    out[mask] = dequantize(codes_from_bytes(values_bytes, nnz, fmt), fmt)
    return out.reshape(shape)


def decode_codes(values_bytes: bytes | memoryview, mask_bytes: bytes | memoryview, numel: int,
                 fmt: QFormat) -> tuple[np.ndarray, np.ndarray]:
    """(mask, codes of the non-zeros) without dequantizing: what the accelerator's decoder sees."""
    mask = mask_bits(mask_bytes, numel)
    return mask, codes_from_bytes(values_bytes, int(np.count_nonzero(mask)), fmt)
