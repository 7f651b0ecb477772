"""Emulated memories of the heterogeneous memory architecture (HMA): allocate / write / read over bytes, counted.

A :class:`Memory` is the narrow interface of STYLE rule 8: a fixed capacity (from the architecture spec), regions
allocated by label, and every read and write counted (accesses and bytes). Two kinds exist:

* read/write memories (SRAM, DRAM): plain byte arrays;
* write-once non-volatile memories (RRAM SLC, RRAM 2-bit MLC): :meth:`Memory.program` writes a region once at
  load time (every cell it covers gets one more write, recorded per cell as intervals so a 100 MB image costs a
  few bytes of bookkeeping), after which the region is read-only. Reads can pass through a seeded fault model
  (:mod:`edgemti.runtime.faults`) that flips SLC bits or moves MLC cells to an adjacent level.

Counts are what the hardware model prices (STYLE rule 6): the runtime counts, :mod:`edgemti.hwmodel` multiplies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgemti.errors import CapacityError, ConfigError

# Memory level names, as written in a build manifest's ``images[*].memory`` and the architecture spec.
SRAM = "SRAM"
DRAM = "DRAM"
RRAM_SLC = "RRAM_SLC"
RRAM_MLC2 = "RRAM_MLC2"
NONVOLATILE = (RRAM_SLC, RRAM_MLC2)
BITS_PER_CELL = {SRAM: 1, DRAM: 1, RRAM_SLC: 1, RRAM_MLC2: 2}


@dataclass(frozen=True)
class Region:
    """A contiguous allocation in one memory: ``[offset, offset + size_bytes)``."""

    memory: str
    label: str
    offset: int
    size_bytes: int

    def __post_init__(self) -> None:
        if self.offset < 0 or self.size_bytes < 0:
            raise ConfigError(f"Region: offset and size_bytes must be >= 0, got {self.offset}, {self.size_bytes}")

    @property
    def end(self) -> int:
        return self.offset + self.size_bytes


@dataclass(frozen=True)
class AccessCounts:
    """Accesses and bytes moved through one memory since it was made (or since a snapshot)."""

    memory: str
    reads: int = 0
    writes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    cell_writes: int = 0  # non-volatile only: cells programmed (a byte of MLC is 4 cells, of SLC 8)

    def __post_init__(self) -> None:
        for f in ("reads", "writes", "bytes_read", "bytes_written", "cell_writes"):
            if getattr(self, f) < 0:
                raise ConfigError(f"AccessCounts: {f} must be >= 0, got {getattr(self, f)}")

    def __sub__(self, other: AccessCounts) -> AccessCounts:
        return AccessCounts(self.memory, self.reads - other.reads, self.writes - other.writes,
                            self.bytes_read - other.bytes_read, self.bytes_written - other.bytes_written,
                            self.cell_writes - other.cell_writes)

    def to_dict(self) -> dict:
        return {"reads": self.reads, "writes": self.writes, "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written, "cell_writes": self.cell_writes}


ReadFilter = Callable[[str, int, bytes], bytes]  # (memory level, absolute byte offset, raw bytes) -> bytes seen


class Memory:
    """One memory of the HMA: ``capacity_bytes`` of address space, every access counted.

    Allocation is first-fit over the address space, so freeing a swapped-out pack makes room for the next. Each
    region is backed by its own numpy byte buffer, made on allocation, so a 4 GiB DRAM costs only what is
    allocated in it and a region's buffer never moves (zero-copy views of it stay valid until it is freed).
    """

    def __init__(self, level: str, capacity_bytes: int, write_once: bool | None = None) -> None:
        if level not in BITS_PER_CELL:
            raise ConfigError(f"Memory: level must be one of {sorted(BITS_PER_CELL)}, got {level!r}")
        if not isinstance(capacity_bytes, int) or capacity_bytes <= 0:
            raise ConfigError(f"Memory: capacity_bytes of {level} must be a positive int, got {capacity_bytes!r}")
        self.level = level
        self.capacity_bytes = capacity_bytes
        self.bits_per_cell = BITS_PER_CELL[level]
        self.write_once = level in NONVOLATILE if write_once is None else write_once
        self._buffers: dict[str, np.ndarray] = {}
        self._spare: dict[int, np.ndarray] = {}  # freed buffers by size, reused by the next allocation
        self._regions: dict[str, Region] = {}
        self._programmed: set[str] = set()
        self._program_spans: list[tuple[int, int]] = []  # cell intervals written, one per program()
        self._reads = self._writes = self._bytes_read = self._bytes_written = self._cell_writes = 0
        self.read_filter: ReadFilter | None = None

    # -- allocation ------------------------------------------------------------------------------------------
    @property
    def used_bytes(self) -> int:
        return sum(r.size_bytes for r in self._regions.values())

    @property
    def free_bytes(self) -> int:
        return self.capacity_bytes - self.used_bytes

    def regions(self) -> list[Region]:
        return sorted(self._regions.values(), key=lambda r: r.offset)

    def region(self, label: str) -> Region:
        try:
            return self._regions[label]
        except KeyError:
            raise ConfigError(f"{self.level}: no region {label!r} (have {sorted(self._regions)})") from None

    def __contains__(self, label: str) -> bool:
        return label in self._regions

    def allocate(self, label: str, size_bytes: int) -> Region:
        """Reserve ``size_bytes`` under ``label`` (first fit); :class:`CapacityError` with numbers if it can't."""
        if label in self._regions:
            raise ConfigError(f"{self.level}: region {label!r} is already allocated")
        if size_bytes < 0:
            raise ConfigError(f"{self.level}: size_bytes must be >= 0, got {size_bytes}")
        cursor = 0
        for r in self.regions():
            if r.offset - cursor >= size_bytes:
                break
            cursor = max(cursor, r.end)
        if cursor + size_bytes > self.capacity_bytes:
            raise CapacityError(
                f"{label!r} needs {_kib(size_bytes)}, {self.level} has {_kib(self.free_bytes)} free of "
                f"{_kib(self.capacity_bytes)} (largest hole too small or memory full): raise the {self.level} "
                "capacity in the architecture spec, or use fewer SRAM pack slots"
            )
        region = Region(self.level, label, cursor, size_bytes)
        self._regions[label] = region
        spare = self._spare.pop(size_bytes, None)
        # a freed buffer of the same size is reused as is: like real SRAM, a new region holds stale bytes
        self._buffers[label] = spare if spare is not None else np.zeros(size_bytes, dtype=np.uint8)
        return region

    def free(self, label: str) -> None:
        if label in self._programmed:
            raise ConfigError(f"{self.level}: region {label!r} is programmed non-volatile memory; it is never freed")
        self.region(label)
        del self._regions[label]
        buf = self._buffers.pop(label)
        if len(self._spare) < 8:
            self._spare[buf.size] = buf

    # -- access ----------------------------------------------------------------------------------------------
    def write(self, region: Region, data: bytes | bytearray | memoryview | np.ndarray, offset: int = 0) -> None:
        """Write bytes into ``region`` at ``offset`` (relative); refused on programmed non-volatile regions."""
        if self.write_once:
            raise ConfigError(f"{self.level} is write-once at run time: use program() once at load")
        self._store(region, data, offset)

    def program(self, region: Region, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Program a non-volatile region once (the whole region); every covered cell records one more write."""
        if region.label in self._programmed:
            raise ConfigError(f"{self.level}: region {region.label!r} is already programmed (RRAM is read-only "
                              "after load)")
        n = data.nbytes if isinstance(data, np.ndarray) else len(memoryview(data).cast("B"))
        if n != region.size_bytes:
            raise ConfigError(f"{self.level}: program() of {region.label!r} needs exactly {region.size_bytes} bytes, "
                              f"got {n}")
        self._store(region, data, 0)
        cells_per_byte = 8 // self.bits_per_cell
        self._program_spans.append((region.offset * cells_per_byte, region.end * cells_per_byte))
        self._cell_writes += region.size_bytes * cells_per_byte
        if self.write_once:
            self._programmed.add(region.label)

    def _store(self, region: Region, data, offset: int) -> None:
        self._check(region)
        if isinstance(data, np.ndarray):
            buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        else:
            buf = np.frombuffer(data, dtype=np.uint8)
        n = buf.size
        if offset < 0 or offset + n > region.size_bytes:
            raise CapacityError(f"{self.level}: write of {n} bytes at +{offset} overflows region {region.label!r} "
                                f"of {region.size_bytes} bytes")
        self._buffers[region.label][offset:offset + n] = buf
        self._writes += 1
        self._bytes_written += n

    def read(self, region: Region, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes (default: to the region's end) as the hardware would see them (faults applied)."""
        self._check(region)
        length = region.size_bytes - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > region.size_bytes:
            raise CapacityError(f"{self.level}: read of {length} bytes at +{offset} overflows region "
                                f"{region.label!r} of {region.size_bytes} bytes")
        raw = self._buffers[region.label][offset:offset + length].tobytes()
        self._reads += 1
        self._bytes_read += length
        if self.read_filter is not None:
            raw = self.read_filter(self.level, region.offset + offset, raw)
        return raw

    def view(self, region: Region) -> np.ndarray:
        """Zero-copy, read-only, *counted* view of a whole region (one read of all its bytes, no faults).

        For read/write memories only (SRAM, DRAM): the runtime binds SRAM-resident pack tensors to the graph
        through such views, so inference reads exactly what the SRAM holds.
        """
        self._check(region)
        if self.level in NONVOLATILE:
            raise ConfigError(f"{self.level}: use read() (fault model applies), not view()")
        self._reads += 1
        self._bytes_read += region.size_bytes
        v = self._buffers[region.label].view()
        v.flags.writeable = False
        return v

    def copy_to(self, src: Region, dst_memory: Memory, dst: Region) -> int:
        """Move a whole region into another memory's region (a DMA: one read here, one write there)."""
        self._check(src)
        dst_memory._check(dst)
        if src.size_bytes != dst.size_bytes:
            raise CapacityError(f"copy {self.level}:{src.label} ({src.size_bytes} B) -> {dst_memory.level}:"
                                f"{dst.label} ({dst.size_bytes} B): sizes differ")
        if dst_memory.write_once:
            raise ConfigError(f"{dst_memory.level} is write-once at run time: program() it at load")
        np.copyto(dst_memory._buffers[dst.label], self._buffers[src.label])
        self._reads += 1
        self._bytes_read += src.size_bytes
        dst_memory._writes += 1
        dst_memory._bytes_written += src.size_bytes
        return src.size_bytes

    def _check(self, region: Region) -> None:
        if region.memory != self.level or self._regions.get(region.label) != region:
            raise ConfigError(f"{self.level}: region {region.label!r} is not allocated in this memory")

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def counts(self) -> AccessCounts:
        return AccessCounts(self.level, self._reads, self._writes, self._bytes_read, self._bytes_written,
                            self._cell_writes)

    def cell_write_counts(self, region: Region) -> np.ndarray:
        """Writes per cell over ``region`` (uint32; one entry per cell, so use on small regions)."""
        cells_per_byte = 8 // self.bits_per_cell
        lo, hi = region.offset * cells_per_byte, region.end * cells_per_byte
        diff = np.zeros(hi - lo + 1, dtype=np.int64)
        for a, b in self._program_spans:
            a, b = max(a, lo), min(b, hi)
            if a < b:
                diff[a - lo] += 1
                diff[b - lo] -= 1
        return np.cumsum(diff[:-1]).astype(np.uint32)

    def max_cell_writes(self) -> int:
        """The most writes any one cell has seen (the endurance figure that matters)."""
        events = sorted([(a, 1) for a, _ in self._program_spans] + [(b, -1) for _, b in self._program_spans])
        best = cur = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best


class MemorySystem:
    """The HMA: one :class:`Memory` per level (SRAM, DRAM, RRAM_SLC, RRAM_MLC2), sized from the spec."""

    def __init__(self, capacities_bytes: dict[str, int]) -> None:
        missing = [lv for lv in BITS_PER_CELL if lv not in capacities_bytes]
        if missing:
            raise ConfigError(f"MemorySystem: capacities_bytes lacks {missing}; give one per memory level")
        self.memories = {lv: Memory(lv, int(capacities_bytes[lv])) for lv in BITS_PER_CELL}

    def __getitem__(self, level: str) -> Memory:
        try:
            return self.memories[level]
        except KeyError:
            raise ConfigError(f"unknown memory level {level!r}; have {sorted(self.memories)}") from None

    def counts(self) -> dict[str, AccessCounts]:
        return {lv: m.counts() for lv, m in self.memories.items()}

    def occupancy(self) -> dict[str, dict]:
        return {lv: {"capacity_bytes": m.capacity_bytes, "used_bytes": m.used_bytes,
                     "regions": {r.label: r.size_bytes for r in m.regions()}} for lv, m in self.memories.items()}


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"
