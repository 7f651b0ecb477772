"""``CompileConfig``: the one typed config of a compile run, validated on construction and saved in the manifest."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgemti.compiler.compression import Compression, compression_problems
from edgemti.errors import ConfigError, UnknownTaskError
from edgemti.formats.quant import QFormat
from edgemti.tasks.backbone_names import check_backbone_name
from edgemti.tasks.glue import get_task

DESIGNS = ("adapter", "vanilla")


@dataclass(frozen=True)
class CompileConfig:
    """Everything that decides a build.

    ``packs`` (task-pack folders) and ``synthetic_tasks`` (GLUE task names: untrained, right-shaped packs for
    hardware-only studies, labelled synthetic everywhere) are exclusive. ``quant`` is the backbone's value format
    (``q3.13``, ``q3.5``, any ``qI.F``, ``fp32``, ``fp16``); ``pack_quant`` defaults to it (as in the paper).
    ``activation_bits`` defaults to the value format's width. Sparsities are fractions in [0, 1) of each pruned
    tensor of the group (``encoder.embeddings.*`` = embedding, the rest of the backbone = transformer).
    ``spec`` is an architecture spec TOML (default: the shipped spec of ``design``) for the capacity check.
    """

    backbone: str = "albert-base"
    packs: tuple[Path, ...] = ()
    synthetic_tasks: tuple[str, ...] = ()
    design: str = "adapter"
    quant: str = "q3.13"
    pack_quant: str | None = None
    activation_bits: int | None = None
    sparsity_embedding: float = 0.0
    sparsity_transformer: float = 0.0
    max_seq_len: int = 128
    spec: Path | None = None
    checkpoint: str | None = None
    synthetic_adapter: str = "64"
    check_capacity: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "packs", tuple(Path(p) for p in self.packs))
        object.__setattr__(self, "synthetic_tasks", tuple(str(t).strip().lower() for t in self.synthetic_tasks))
        problems = []
        if bool(self.packs) == bool(self.synthetic_tasks):
            problems.append("give either packs (pack folders) or synthetic_tasks (task names such as "
                            f"mnli,mrpc), not {'both' if self.packs else 'neither'}")
        try:  # the names are checked here, before a backbone is loaded
            check_backbone_name(self.backbone)
        except ConfigError as exc:
            problems.append(f"backbone: {exc}")
        for t in self.synthetic_tasks:
            try:
                get_task(t)
            except UnknownTaskError as exc:
                problems.append(f"synthetic_tasks: {exc}")
        if len(set(self.synthetic_tasks)) != len(self.synthetic_tasks):
            problems.append(f"synthetic_tasks has duplicates: {list(self.synthetic_tasks)}")
        if self.design not in DESIGNS:
            problems.append(f"design must be one of {DESIGNS}, got {self.design!r}")
        problems += compression_problems(self.sparsity_embedding, self.sparsity_transformer, self.quant,
                                         self.pack_quant)
        if self.activation_bits is not None and (not isinstance(self.activation_bits, int)
                                                 or not 2 <= self.activation_bits <= 32):
            problems.append(f"activation_bits must be an int in [2, 32], got {self.activation_bits!r}")
        if not isinstance(self.max_seq_len, int) or self.max_seq_len < 2:
            problems.append(f"max_seq_len must be an int >= 2, got {self.max_seq_len!r}")
        if self.spec is not None and not Path(self.spec).is_file():
            problems.append(f"spec file {self.spec} does not exist")
        if problems:
            raise ConfigError("CompileConfig: " + "; ".join(problems))

    @property
    def compression(self) -> Compression:
        """The settings that decide the RRAM images and the pack format."""
        return Compression(float(self.sparsity_embedding), float(self.sparsity_transformer), self.quant,
                           self.pack_quant)

    @property
    def value_format(self) -> QFormat:
        return self.compression.value_format

    @property
    def pack_format(self) -> QFormat:
        return self.compression.pack_format

    @property
    def resolved_activation_bits(self) -> int:
        return self.activation_bits if self.activation_bits is not None else self.value_format.bits

    @property
    def synthetic(self) -> bool:
        return bool(self.synthetic_tasks)

    def to_dict(self) -> dict[str, Any]:
        d = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = [str(x) for x in v]
            elif isinstance(v, Path):
                v = str(v)
            d[f.name] = v
        return d
