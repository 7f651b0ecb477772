import numpy as np
import pytest

from edgemti.errors import CapacityError, ConfigError
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.memory import DRAM, RRAM_MLC2, RRAM_SLC, SRAM, Memory, MemorySystem


def test_allocate_write_read_counts():
    m = Memory(SRAM, 64)
    a = m.allocate("a", 16)
    b = m.allocate("b", 32)
    assert (a.offset, b.offset) == (0, 16)
    m.write(a, b"x" * 16)
    assert m.read(a, 4, 4) == b"xxxx"
    c = m.counts()
    assert (c.reads, c.writes, c.bytes_read, c.bytes_written) == (1, 1, 4, 16)
    assert m.used_bytes == 48 and m.free_bytes == 16


def test_capacity_error_carries_numbers():
    m = Memory(SRAM, 1024)
    m.allocate("a", 1000)
    with pytest.raises(CapacityError, match=r"'b' needs 0.1 KiB, SRAM has 0.0 KiB free of 1.0 KiB"):
        m.allocate("b", 100)


def test_first_fit_reuses_freed_hole():
    m = Memory(SRAM, 100)
    m.allocate("a", 40)
    m.allocate("b", 40)
    m.free("a")
    assert m.allocate("c", 30).offset == 0
    with pytest.raises(CapacityError):
        m.allocate("d", 41)


def test_out_of_region_access_refused():
    m = Memory(DRAM, 100)
    a = m.allocate("a", 10)
    with pytest.raises(CapacityError, match="overflows region 'a'"):
        m.write(a, b"y" * 11)
    with pytest.raises(CapacityError):
        m.read(a, 5, 6)
    other = Memory(DRAM, 100).allocate("a", 10)
    m.free("a")
    with pytest.raises(ConfigError, match="not allocated"):
        m.read(other)


def test_rram_programmed_once_read_only_and_cell_writes():
    mlc = Memory(RRAM_MLC2, 64)
    r = mlc.allocate("values", 8)
    mlc.program(r, bytes(range(8)))
    assert mlc.read(r) == bytes(range(8))
    with pytest.raises(ConfigError, match="already programmed"):
        mlc.program(r, bytes(8))
    with pytest.raises(ConfigError, match="write-once"):
        mlc.write(r, b"\x00")
    with pytest.raises(ConfigError, match="never freed"):
        mlc.free("values")
    assert mlc.counts().cell_writes == 8 * 4  # 2-bit cells: 4 per byte
    counts = mlc.cell_write_counts(r)
    assert counts.shape == (32,) and set(counts.tolist()) == {1}
    assert mlc.max_cell_writes() == 1
    slc = Memory(RRAM_SLC, 64)
    s = slc.allocate("mask", 2)
    slc.program(s, b"\xff\x00")
    assert slc.counts().cell_writes == 16


def test_fault_filter_applies_on_read_only():
    slc = Memory(RRAM_SLC, 4096)
    r = slc.allocate("mask", 4096)
    slc.program(r, bytes(4096))
    slc.read_filter = FaultModel(slc_error_rate=0.01, seed=3)
    seen = slc.read(r)
    flipped = int(np.unpackbits(np.frombuffer(seen, np.uint8)).sum())
    assert 200 < flipped < 460  # ~ 4096*8*0.01 = 328
    assert slc.read(r) == seen  # the same bytes see the same errors
    slc.read_filter = None
    assert slc.read(r) == bytes(4096)  # stored cells are untouched


def test_memory_system_needs_every_level():
    with pytest.raises(ConfigError, match="lacks"):
        MemorySystem({SRAM: 10})
    ms = MemorySystem({SRAM: 10, DRAM: 20, RRAM_SLC: 30, RRAM_MLC2: 40})
    assert ms[DRAM].capacity_bytes == 20
    assert ms.occupancy()[RRAM_MLC2]["used_bytes"] == 0


def test_copy_to_is_one_counted_dma_and_views_are_read_only():
    dram, sram = Memory(DRAM, 1 << 20), Memory(SRAM, 1024)
    src = dram.allocate("pack:a", 100)
    dram.write(src, bytes(range(100)))
    dst = sram.allocate("slot:a", 100)
    d0, s0 = dram.counts(), sram.counts()
    assert dram.copy_to(src, sram, dst) == 100
    assert (dram.counts() - d0).bytes_read == 100 and (sram.counts() - s0).bytes_written == 100
    v = sram.view(dst)
    assert bytes(v) == bytes(range(100)) and not v.flags.writeable
    with pytest.raises(CapacityError, match="sizes differ"):
        dram.copy_to(src, sram, sram.allocate("small", 10))
    slc = Memory(RRAM_SLC, 64)
    with pytest.raises(ConfigError, match="use read"):
        slc.view(slc.allocate("m", 1))
    sram.free("slot:a")
    again = sram.allocate("slot:b", 100)  # the freed buffer is reused: stale bytes, like real SRAM
    assert bytes(sram.read(again)) == bytes(range(100))
