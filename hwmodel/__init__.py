"""edgemti.hwmodel: the EdgeBERT-style accelerator and heterogeneous (SRAM + RRAM + DRAM) memory model.

Imports nothing from edgemti except ``edgemti.errors``. See docs/HWMODEL.md for the API and the composition rules.
"""

from edgemti.hwmodel.cost import ActionCounts, Cost, price
from edgemti.hwmodel.macros import LevelProvision, load_macro_table, provision
from edgemti.hwmodel.model import AreaReport, HwModel, InferenceCost, OpRecord, ProgramCost
from edgemti.hwmodel.spec import LEVELS, ArchSpec, DramSpec, MemorySpec, load_spec

__all__ = [
    "LEVELS", "ActionCounts", "ArchSpec", "AreaReport", "Cost", "DramSpec", "HwModel", "InferenceCost",
    "LevelProvision", "MemorySpec", "OpRecord", "ProgramCost", "load_macro_table", "load_spec", "price", "provision",
]
