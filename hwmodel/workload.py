"""``Workload``: everything the hardware model needs to know about a build, typed, in one frozen value.

This is the seam between a build (or an analytic design point) and :mod:`edgemti.hwmodel`. It is built in
exactly one place from a typed ``Manifest`` (``edgemti.runtime.workload.workload_of``) or, for design-space
sweeps, from a model's shapes and pruning statistics without writing images. Nothing inside hwmodel parses a
manifest, re-reads a format from a dict or re-defaults a value: what is here is final.

Placement rules (the design decides them, the compiler records them):

* backbone tensors live in RRAM, bitmask-encoded: ``nnz`` values of ``bits`` each in 2-bit MLC cells, one mask
  bit per element in SLC cells (``place = "rram"``);
* a task's pack tensors are dense, in DRAM until swapped into SRAM (``place = "sram"``);
* for the vanilla design the compiler puts only the embeddings in the backbone and the rest of the transformer
  in each pack, so one set of rules charges both designs.

Units: bytes, bits and element counts are ints; nothing here is priced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgemti.errors import ConfigError

DESIGNS = ("adapter", "vanilla")
PLACES = ("rram", "sram")
IMAGE_LEVELS = ("rram_mlc", "rram_slc", "dram")
# the spec's MAC-energy keys (hwmodel.spec.PRECISIONS)
PRECISION_KEYS = ("fixed8", "fixed16", "float16", "float32")


def precision_key(kind: str, bits: int) -> str:
    """Value format (``kind`` "fixed" | "float", ``bits``) -> the spec's MAC-energy key."""
    if kind == "fixed":
        return "fixed8" if bits <= 8 else "fixed16" if bits <= 16 else "float32"
    if kind == "float":
        return "float16" if bits <= 16 else "float32"
    raise ConfigError(f"precision_key: kind must be 'fixed' or 'float', got {kind!r}")


@dataclass(frozen=True)
class WeightInfo:
    """One weight tensor: its shape, how many non-zeros it stores, at what width, and where it lives."""

    name: str
    shape: tuple[int, ...]
    nnz: int  # stored non-zero values (== numel for dense pack tensors)
    bits: int  # value width
    place: str  # "rram" (backbone, bitmask-encoded) | "sram" (task pack, dense)

    def __post_init__(self) -> None:
        problems = []
        if any(not isinstance(d, int) or d < 0 for d in self.shape):
            problems.append(f"shape must be non-negative ints, got {self.shape}")
        elif not 0 <= self.nnz <= self.numel:
            problems.append(f"nnz must be in [0, numel={self.numel}], got {self.nnz}")
        if self.bits <= 0:
            problems.append(f"bits must be > 0, got {self.bits}")
        if self.place not in PLACES:
            problems.append(f"place must be one of {list(PLACES)}, got {self.place!r}")
        if problems:
            raise ConfigError(f"WeightInfo {self.name!r}: " + "; ".join(problems))

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class TaskWorkload:
    """One task's pack: its dense tensors and the bytes a swap moves (DRAM -> SRAM)."""

    task: str
    pack_bytes: int
    tensors: tuple[WeightInfo, ...]

    def __post_init__(self) -> None:
        if self.pack_bytes < 0:
            raise ConfigError(f"TaskWorkload {self.task!r}: pack_bytes must be >= 0, got {self.pack_bytes}")
        bad = [t.name for t in self.tensors if t.place != "sram"]
        if bad:
            raise ConfigError(f"TaskWorkload {self.task!r}: pack tensors must be placed in sram, got {bad[:3]}")


@dataclass(frozen=True)
class Workload:
    """A build as the hardware model sees it (see the module docstring for the placement rules)."""

    design: str  # "adapter" | "vanilla"
    backbone: tuple[WeightInfo, ...]
    tasks: tuple[TaskWorkload, ...]
    image_bytes: dict[str, int]  # "rram_mlc" | "rram_slc" | "dram" -> bytes of that image
    precision: str  # MAC-energy key of the value format: fixed8 | fixed16 | float16 | float32
    value_bits: int
    activation_bits: int
    max_seq_len: int
    data_inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    _by_task: dict[str, TaskWorkload] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.design not in DESIGNS:
            problems.append(f"design must be one of {list(DESIGNS)}, got {self.design!r}")
        if not self.tasks:
            problems.append("tasks must not be empty: compile at least one task")
        names = [t.task for t in self.tasks]
        if len(set(names)) != len(names):
            problems.append(f"duplicate tasks {names}")
        bad = [w.name for w in self.backbone if w.place != "rram"]
        if bad:
            problems.append(f"backbone tensors must be placed in rram, got {bad[:3]}")
        if set(self.image_bytes) != set(IMAGE_LEVELS):
            problems.append(f"image_bytes must have exactly the keys {list(IMAGE_LEVELS)}, got {sorted(self.image_bytes)}")
        problems += [f"image_bytes[{k!r}] must be >= 0, got {v}" for k, v in self.image_bytes.items() if v < 0]
        if self.precision not in PRECISION_KEYS:
            problems.append(f"precision must be one of {list(PRECISION_KEYS)}, got {self.precision!r}")
        for name in ("value_bits", "activation_bits", "max_seq_len"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if problems:
            raise ConfigError("Workload: " + "; ".join(problems))
        object.__setattr__(self, "_by_task", {t.task: t for t in self.tasks})

    @property
    def activation_precision(self) -> str:
        """MAC-energy key of the activations (the SFU's operands): the value format's kind at ``activation_bits``."""
        return precision_key("float" if self.precision.startswith("float") else "fixed", self.activation_bits)

    @property
    def task_names(self) -> list[str]:
        return [t.task for t in self.tasks]

    def task(self, name: str) -> TaskWorkload:
        """The task's pack; ``UnknownTaskError`` naming the build's tasks when it has no such task."""
        if name not in self._by_task:
            from edgemti.errors import UnknownTaskError

            raise UnknownTaskError(f"task {name!r} is not in this build (it has {self.task_names})")
        return self._by_task[name]

    @property
    def largest_task(self) -> str:
        """The task with the largest pack (the worst case the on-chip SRAM is provisioned for)."""
        return max(self.tasks, key=lambda t: t.pack_bytes).task

    def weights(self, task: str) -> dict[str, WeightInfo]:
        """Every weight one inference of ``task`` reads: the backbone's plus the task's pack."""
        out = {w.name: w for w in self.backbone}
        out.update({w.name: w for w in self.task(task).tensors})
        return out
