"""edgemti.hwmodel: the EdgeBERT-style accelerator and heterogeneous (SRAM + RRAM + DRAM) memory model.

Imports nothing from edgemti except ``edgemti.errors``. See docs/HWMODEL.md for the API and the composition rules.
"""

from edgemti.hwmodel.spec import LEVELS, ArchSpec, DramSpec, MemorySpec, load_spec

__all__ = ["LEVELS", "ArchSpec", "DramSpec", "MemorySpec", "load_spec"]
