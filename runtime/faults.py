"""Seeded bit-error injection into RRAM cells, applied to what the runtime reads.

* SLC cells hold one bit; an error flips it (probability ``slc_error_rate`` per cell and read).
* 2-bit MLC cells hold a level 0..3 (the 2-bit value, bits ``2i`` and ``2i+1`` of a byte are cell ``i``, LSB
  first); an error moves the cell to an *adjacent* level (reduced read margin between neighbouring resistance
  levels), ``0 -> 1``, ``3 -> 2``, ``1``/``2`` up or down with equal odds (probability ``mlc_error_rate``).
  Levels map to values in plain binary, so a ``1 <-> 2`` move changes both bits of the cell.
* ``masks_in`` says which cells hold the bitmask image (``rram_slc``): ``"slc"`` (the paper's choice) reads it
  through the SLC model, ``"mlc"`` (the counterfactual) through the MLC model, values always through MLC.

Errors are a pure function of (seed, memory level, absolute byte offset, bytes), so a run is reproducible and
two reads of the same bytes see the same errors (a stuck read margin, not fresh noise each read).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgemti.errors import ConfigError

_LEVEL_IDS = {"RRAM_SLC": 1, "RRAM_MLC2": 2}


@dataclass(frozen=True)
class FaultModel:
    """Cell error rates (per cell and read, in [0, 1]) and the seed; ``masks_in`` is ``"slc"`` or ``"mlc"``."""

    slc_error_rate: float = 0.0
    mlc_error_rate: float = 0.0
    seed: int = 0
    masks_in: str = "slc"

    def __post_init__(self) -> None:
        for f in ("slc_error_rate", "mlc_error_rate"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"FaultModel: {f} must be a probability in [0, 1], got {v!r}")
        if self.masks_in not in ("slc", "mlc"):
            raise ConfigError(f"FaultModel: masks_in must be 'slc' or 'mlc', got {self.masks_in!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"FaultModel: seed must be an int >= 0, got {self.seed!r}")

    @property
    def active(self) -> bool:
        return self.slc_error_rate > 0 or self.mlc_error_rate > 0

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, level: str, offset: int, data: bytes) -> bytes:
        """The read filter a :class:`~edgemti.runtime.memory.Memory` calls: ``data`` as the faulty cells return it."""
        if level not in _LEVEL_IDS:
            return data
        rng = np.random.default_rng([self.seed, _LEVEL_IDS[level], offset])
        if level == "RRAM_SLC" and self.masks_in == "slc":
            return flip_slc_bits(data, self.slc_error_rate, rng)
        return shift_mlc_levels(data, self.mlc_error_rate, rng)


def _error_positions(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Distinct cell indices in ``[0, n)``, each chosen independently with probability ``rate``."""
    if n == 0 or rate <= 0:
        return np.zeros(0, dtype=np.int64)
    if rate >= 0.05:  # dense: draw every cell
        return np.flatnonzero(rng.random(n) < rate)
    k = int(rng.binomial(n, rate))
    # sparse: k distinct positions uniformly (rejecting duplicates keeps the per-cell probability exact)
    pos = np.unique(rng.integers(0, n, size=k))
    while pos.size < k:
        pos = np.unique(np.concatenate([pos, rng.integers(0, n, size=k - pos.size)]))
    return pos


def flip_slc_bits(data: bytes, rate: float, rng: np.random.Generator) -> bytes:
    """Flip each bit (one SLC cell) with probability ``rate``."""
    arr = np.frombuffer(data, dtype=np.uint8).copy()
    pos = _error_positions(arr.size * 8, rate, rng)
    if pos.size:
        np.bitwise_xor.at(arr, pos // 8, (1 << (pos % 8)).astype(np.uint8))
    return arr.tobytes()


def shift_mlc_levels(data: bytes, rate: float, rng: np.random.Generator) -> bytes:
    """Move each 2-bit cell to an adjacent level with probability ``rate`` (4 cells per byte, LSB first)."""
    arr = np.frombuffer(data, dtype=np.uint8).copy()
    pos = _error_positions(arr.size * 4, rate, rng)
    if pos.size == 0:
        return arr.tobytes()
    byte, shift = pos // 4, (2 * (pos % 4)).astype(np.uint8)
    level = (arr[byte] >> shift) & 3
    step = np.where(rng.random(pos.size) < 0.5, -1, 1)
    new = level.astype(np.int16) + step
    new = np.where(level == 0, 1, np.where(level == 3, 2, new)).astype(np.uint8)
    # positions are distinct cells; several can share a byte, so apply them one cell-slot at a time
    for s in range(4):
        sel = shift == 2 * s
        if np.any(sel):
            b = byte[sel]
            arr[b] = (arr[b] & ~np.uint8(3 << (2 * s))) | (new[sel] << np.uint8(2 * s))
    return arr.tobytes()


def count_cell_differences(a: bytes, b: bytes, bits_per_cell: int) -> int:
    """How many cells differ between two equal-length byte strings (1 or 2 bits per cell)."""
    x = np.frombuffer(a, dtype=np.uint8) ^ np.frombuffer(b, dtype=np.uint8)
    if bits_per_cell == 1:
        return int(np.unpackbits(x).sum())
    cells = np.stack([(x >> (2 * s)) & 3 for s in range(4)])
    return int(np.count_nonzero(cells))
