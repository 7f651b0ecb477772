"""LoRA as a task-pack kind: a low-rank ``x.A.B`` path beside a frozen backbone linear layer (Hu et al., 2021).

``y = W x + b + scaling * B (A x)`` with ``A`` [rank x in] and ``B`` [out x rank] (PEFT's ``lora_A.weight`` /
``lora_B.weight`` layouts and its ``scaling = alpha / rank``, or ``alpha / sqrt(rank)`` with rsLoRA). The pair is
never merged into ``W``: the backbone image (RRAM) stays the same for every task and the pair is a task tensor
(SRAM), computed as its own two matmuls. ``B`` starts at zero, so a fresh pair is the identity, as a fresh
Houlsby adapter is.

Target modules follow PEFT's matching rule: a linear layer is adapted when its module name (inside the encoder)
equals a target or ends with ``"." + target``. BERT's PEFT default is ``("query", "value")``; PEFT has no default
for ALBERT, so an ALBERT LoRA names its targets. ALBERT runs one shared layer at every depth: that layer's
linear modules are one module each, so the whole depth shares one LoRA pair per target (as it shares ``W``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgemti.errors import ConfigError

LORA = "lora"
# PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the families edgemti runs (peft 0.21 has no
# "albert" entry: an ALBERT LoRA must name its target modules)
PEFT_DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {"bert": ("query", "value")}
MAX_RANK = 1 << 12
_KEYS = ("kind", "rank", "alpha", "target_modules", "use_rslora")


@dataclass(frozen=True)
class LoraSpec:
    """Rank, alpha and target modules of a task's LoRA pairs (one pair per targeted linear module)."""

    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    use_rslora: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or not 1 <= self.rank <= MAX_RANK:
            raise ConfigError(f"LoraSpec: rank must be an int in [1, {MAX_RANK}], got {self.rank!r}")
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or not self.alpha > 0 \
                or not math.isfinite(self.alpha):
            raise ConfigError(f"LoraSpec: alpha must be a finite number > 0, got {self.alpha!r}")
        if not isinstance(self.target_modules, tuple) or not self.target_modules \
                or any(not isinstance(t, str) or not t or t != t.strip(".") for t in self.target_modules) \
                or len(set(self.target_modules)) != len(self.target_modules):
            raise ConfigError("LoraSpec: target_modules must be a non-empty tuple of distinct module names "
                              f"(e.g. ('query', 'value')), got {self.target_modules!r}")
        if not isinstance(self.use_rslora, bool):
            raise ConfigError(f"LoraSpec: use_rslora must be true or false, got {self.use_rslora!r}")
        object.__setattr__(self, "target_modules", tuple(sorted(self.target_modules)))  # one spelling per set

    @property
    def scaling(self) -> float:
        """The factor on ``B (A x)``: PEFT's ``alpha / rank`` (``alpha / sqrt(rank)`` with rsLoRA)."""
        return float(self.alpha) / (math.sqrt(self.rank) if self.use_rslora else self.rank)

    @classmethod
    def for_family(cls, family: str, rank: int, alpha: float | None = None,
                   target_modules: tuple[str, ...] | None = None) -> LoraSpec:
        """A spec with PEFT's defaults where it has them: alpha = rank, the family's default targets."""
        if not target_modules:
            if family not in PEFT_DEFAULT_TARGETS:
                raise ConfigError(f"LoraSpec: PEFT has no default LoRA target modules for {family!r} (its mapping "
                                  f"covers {sorted(PEFT_DEFAULT_TARGETS)} here): name the target modules, e.g. "
                                  "query,value (ALBERT's attention.query / attention.value, shared across depths)")
            target_modules = PEFT_DEFAULT_TARGETS[family]
        return cls(rank=rank, alpha=float(alpha if alpha is not None else rank), target_modules=tuple(target_modules))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": LORA, "rank": self.rank, "alpha": float(self.alpha),
                "target_modules": list(self.target_modules), "use_rslora": self.use_rslora}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LoraSpec:
        unknown = sorted(set(d) - set(_KEYS))
        if unknown or d.get("kind") != LORA:
            raise ConfigError(f"LoraSpec: a LoRA object has keys {list(_KEYS)} and kind 'lora', got {dict(d)!r}")
        targets = d.get("target_modules")
        if not isinstance(targets, (list, tuple)):
            raise ConfigError(f"LoraSpec: target_modules must be a list of module names, got {targets!r}")
        return cls(rank=d.get("rank"), alpha=d.get("alpha"), target_modules=tuple(targets),  # type: ignore[arg-type]
                   use_rslora=d.get("use_rslora", False))


def lora_problems(d: Any) -> list[str]:
    """Every problem of a LoRA object as stored in a pack (``pack.json``'s ``adapter``), by field."""
    if not isinstance(d, dict):
        return [f"adapter must be an object, got {d!r}"]
    try:
        LoraSpec.from_dict(d)
    except ConfigError as exc:
        return [f"adapter (lora): {exc}"]
    return []


def is_lora(adapter: Mapping[str, Any] | None) -> bool:
    """Whether a stored adapter object (a pack's or a build manifest's) is a LoRA one."""
    return isinstance(adapter, Mapping) and adapter.get("kind") == LORA


def adapter_structure(adapter: Mapping[str, Any] | None) -> tuple:
    """What one graph fixes of a stored adapter object: packs of one build must agree on it.

    Houlsby: (per-depth, activation); LoRA: its targets and the scaling constant baked into the graph. Sizes
    (bottleneck, rank) may differ between tasks: they are symbolic axes of the graph's task inputs.
    """
    if adapter is None:
        return (None,)
    if is_lora(adapter):
        spec = LoraSpec.from_dict(adapter)
        return (LORA, spec.target_modules, spec.scaling)
    return ("houlsby", adapter.get("per_depth"), adapter.get("activation"))


class LoraLinear(nn.Linear):
    """An ``nn.Linear`` (weight and bias keep their Hugging Face names) plus the unmerged ``B (A x)`` path."""

    def __init__(self, base: nn.Linear, rank: int, scaling: float) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device=base.weight.device, dtype=base.weight.dtype)
        self.weight = base.weight
        self.bias = base.bias
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=base.weight.device)  # [rank x in]
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=base.weight.device)  # [out x rank]
        self.scaling = scaling
        if base.weight.device.type != "meta":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # PEFT's init
            nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.lora_B(self.lora_A(x)) * self.scaling


def target_linears(encoder: nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Names (inside ``encoder``) of the linear modules PEFT's rule adapts; a target matching none is an error."""
    linears = [n for n, m in encoder.named_modules() if isinstance(m, nn.Linear) and n]
    hits = [n for n in linears if any(n == t or n.endswith("." + t) for t in targets)]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in linears)]
    if unmatched:
        sample = sorted({n.rsplit(".", 1)[-1] for n in linears})
        raise ConfigError(f"LoRA target modules {unmatched} match no linear layer of the encoder (its linear "
                          f"layers end in {sample})")
    return hits


def insert_lora(encoder: nn.Module, spec: LoraSpec) -> list[str]:
    """Replace every targeted linear module of ``encoder`` by a :class:`LoraLinear`; returns their names."""
    names = target_linears(encoder, spec.target_modules)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        base = getattr(parent, attr)
        setattr(parent, attr, LoraLinear(base, spec.rank, spec.scaling))
    return names
