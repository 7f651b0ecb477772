"""``Compression``: how a backbone is compressed (sparsity targets, value format, pack format), the subset of a
compile's settings that decides the RRAM images and the pack format; :func:`compression_problems` is the one check
of those settings, run by ``Compression`` and by ``CompileConfig`` alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgemti.errors import ConfigError
from edgemti.formats.quant import QFormat, parse_format


def compression_problems(sparsity_embedding: Any, sparsity_transformer: Any, quant: Any, pack_quant: Any) -> list[str]:
    """What is wrong with these compression settings (sparsities: fractions in [0, 1); formats: ``qI.F``, ``fp32``,
    ``fp16``; ``pack_quant`` None: the backbone's)."""
    problems = []
    for name, v in (("sparsity_embedding", sparsity_embedding), ("sparsity_transformer", sparsity_transformer)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
            problems.append(f"{name} must be in [0, 1) (a fraction of weights set to zero), got {v!r}")
    for name, v in (("quant", quant), ("pack_quant", pack_quant)):
        if v is None and name == "pack_quant":
            continue
        try:
            parse_format(str(v))
        except ConfigError as exc:
            problems.append(f"{name}: {exc}")
    return problems


@dataclass(frozen=True)
class Compression:
    """How the backbone is compressed (the subset of ``CompileConfig`` that decides the RRAM images and the pack
    format): sparsity targets per group (fractions in [0, 1)), the backbone value format and the pack format
    (default: the backbone's, as ``compile``)."""

    sparsity_embedding: float = 0.0
    sparsity_transformer: float = 0.0
    quant: str = "q3.13"
    pack_quant: str | None = None

    def __post_init__(self) -> None:
        problems = compression_problems(self.sparsity_embedding, self.sparsity_transformer, self.quant,
                                        self.pack_quant)
        if problems:
            raise ConfigError("Compression: " + "; ".join(problems))

    @property
    def value_format(self) -> QFormat:
        return parse_format(self.quant)

    @property
    def pack_format(self) -> QFormat:
        return parse_format(self.pack_quant or self.quant)

    @classmethod
    def of_config(cls, cfg) -> Compression:
        """The compression of a ``CompileConfig`` (or of a build's manifest ``compile`` section)."""
        return cls(float(cfg.sparsity_embedding), float(cfg.sparsity_transformer), cfg.value_format.name,
                   cfg.pack_format.name)
