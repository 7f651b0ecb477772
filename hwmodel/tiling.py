"""Tiling of a matmul through the PE array's buffers, and the SRAM working set it leaves.

Loop order (one, stated; docs/HWMODEL.md, dataflow)::

    for r in row tiles of A            # A = the activation operand, [rows x M], a tile [tile_rows x tile_k]
      for k in reduction chunks of M   # tile shape: the one that fits and moves the fewest bits
        load A[r, k] into the scratchpad                 (A is read from its level once in all)
        for c in 16-column blocks of B:                  (B = weight or second activation: streamed)
          Y[r, c] += A[r, k] . B[k, c]                   (B read from its level once per row tile)
        spill partial sums of Y[r, :] to SRAM unless k is the last chunk (read back before the next chunk)

A tile fills operand A's buffer (level ``spad_a``); the 16-column block of B it meets is held in operand B's
buffer (``spad_b``, the "weight block"), and the spilled partial sums in the partial-sum buffer (``psum``); with
``scratchpad.double_buffered`` a second copy of each operand buffer loads the next tile while the array computes. So A is read from its level once, the operand B streams from
its level once per row tile (each re-read is counted), Y is written once, plus the partial sums spilled between
reduction chunks (written and read back, at the accumulator width). Of the tile shapes that fit (multiples of
the 16-element vector), the one moving the fewest bits is taken: full rows of M when B is small, all rows and a
slice of M when B is large (B then streams once). Batched matmuls (attention heads) tile each element alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from edgemti.errors import ConfigError


@dataclass(frozen=True)
class MatmulTiling:
    """How one (batch x) [n0 x m] . [m x n1] matmul runs through the scratchpad (see the module loop order)."""

    tile_rows: int  # rows of A per tile
    tile_k: int  # reduction elements per tile
    row_tiles: int  # per batch element: B is streamed once per row tile
    k_chunks: int  # per row tile: partial sums of Y spill to SRAM between chunks
    batch: int

    @property
    def tiles(self) -> int:
        """Scratchpad loads of A in the whole matmul."""
        return self.batch * self.row_tiles * self.k_chunks

    @property
    def b_passes(self) -> int:
        """Times operand B is read from its level (per batch element)."""
        return self.row_tiles

    @property
    def partial_sum_passes(self) -> int:
        """Extra writes (and as many reads) of Y: the partial sums spilled between reduction chunks."""
        return self.k_chunks - 1


@functools.lru_cache(maxsize=4096)
def tile_matmul(batch: int, n0: int, m: int, n1: int, a_bits: int, b_bits: float, y_bits: int, buffer_bytes: int,
                vector: int, b_elem_bits: int = 0, b_block_bytes: int = 0, psum_bytes: int = 0) -> MatmulTiling:
    """The A tile (rows x reduction, multiples of ``vector`` or the whole dim) that fits one buffer of
    ``buffer_bytes`` and moves the fewest bits: B (``b_bits`` per pass, all of it) once per row tile, plus
    the spilled partial sums of Y (``y_bits`` per element) between reduction chunks. A moves once either way.

    Bounds besides the A buffer (0: unbounded): the B block ``[tile_k x vector]`` at ``b_elem_bits`` must fit
    operand B's buffer of ``b_block_bytes``; a spill (``Y[r, :]`` of one row tile at ``y_bits``) must fit the
    partial-sum buffer of ``psum_bytes``."""
    if min(batch, n0, m, n1, a_bits, y_bits, buffer_bytes, vector) <= 0 or b_bits < 0:
        raise ConfigError(f"tile_matmul: sizes must be > 0, got batch={batch} n0={n0} m={m} n1={n1} "
                          f"a_bits={a_bits} b_bits={b_bits} y_bits={y_bits} buffer_bytes={buffer_bytes} "
                          f"vector={vector}")
    buf_bits = buffer_bytes * 8
    if min(n0, vector) * min(m, vector) * a_bits > buf_bits:
        raise ConfigError(f"tile_matmul: a {vector} x {vector} tile of {a_bits}-bit activations does not fit a "
                          f"{buffer_bytes}-byte scratchpad buffer; it needs >= {vector * vector * a_bits // 8} bytes")
    k_b = m
    if b_block_bytes and b_elem_bits:
        k_b = b_block_bytes * 8 // (min(n1, vector) * b_elem_bits)
        if k_b < min(m, vector):
            raise ConfigError(f"tile_matmul: a {vector} x {min(n1, vector)} block of {b_elem_bits}-bit B does not fit "
                              f"the {b_block_bytes}-byte operand-B buffer; it needs >= "
                              f"{min(m, vector) * min(n1, vector) * b_elem_bits // 8} bytes")
    best: tuple[float, int, int] | None = None
    rows_options = sorted({*range(vector, n0, vector), n0})
    for rows in rows_options:
        k = min(buf_bits // (rows * a_bits), k_b)
        if k < min(m, vector):
            break
        k = m if k >= m else k // vector * vector
        row_tiles, k_chunks = math.ceil(n0 / rows), math.ceil(m / k)
        if k_chunks > 1 and psum_bytes and rows * n1 * y_bits > psum_bytes * 8:
            continue  # this row tile's partial sums would not fit the partial-sum buffer
        moved = b_bits * row_tiles + 2.0 * n0 * n1 * y_bits * (k_chunks - 1)
        if best is None or moved < best[0]:
            best = (moved, rows, k)
    if best is None:
        raise ConfigError(f"tile_matmul: no tile of a {n0} x {m} . {m} x {n1} matmul fits: its partial sums need "
                          f">= {min(n0, vector) * n1 * y_bits // 8} bytes of the {psum_bytes}-byte partial-sum buffer")
    _, rows, k = best
    return MatmulTiling(rows, k, math.ceil(n0 / rows), math.ceil(m / k), batch)


def working_set_bytes(groups: list[tuple[tuple[str, ...], tuple[str, ...]]], sizes: dict[str, int]) -> int:
    """Peak bytes of activations alive in SRAM over a schedule of fused groups.

    ``groups``: (inputs, outputs) per group in execution order; ``sizes``: bytes per tensor. A group's outputs
    live from the group that writes them to the last group that reads them; while a group runs, its inputs
    and outputs and every tensor alive across it are resident. Tensors inside a group never reach SRAM.
    """
    born: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, (ins, outs) in enumerate(groups):
        for t in outs:
            born.setdefault(t, i)
            last[t] = max(last.get(t, i), i)
        for t in ins:
            born.setdefault(t, -1)  # a graph input: resident from the start
            last[t] = i
    events: dict[int, int] = {}
    for t, b in born.items():
        events[max(b, 0)] = events.get(max(b, 0), 0) + sizes.get(t, 0)
        end = last.get(t, b) + 1
        events[end] = events.get(end, 0) - sizes.get(t, 0)
    live = peak = 0
    for i in sorted(events):
        live += events[i]
        peak = max(peak, live)
    return peak
