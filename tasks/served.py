"""Training on the backbone the chip serves: what a compression-aware run swaps into the model, in tasks' terms.

The compiler (``edgemti.compiler.served``) decodes the pruned, quantized, bitmask-encoded backbone exactly as the
runtime does and hands it to training as a :class:`BackboneOverride`: the decoded tensors, the pack format's
fake-quantization (the values a build stores for the pack) and a :class:`TrainedOn` record that the pack keeps
(``pack.json`` ``trained_on``, format 2). This module only knows arrays and callables, so ``tasks`` still imports
nothing of the compiler or the formats (tests/test_imports.py).

The pack's own tensors are quantized in the forward pass with a straight-through estimator: the forward uses
exactly ``quantize_pack(w)`` (the build's values, bit for bit), the backward passes the gradient to the float
``w`` unchanged, and the float ``w`` is what the pack stores (the compiler quantizes it to the same values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from edgemti.errors import ConfigError

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TrainedOn:
    """The compressed backbone a pack was trained on (``None`` on a pack: trained on the float backbone).

    ``image_hash`` is the build's backbone image hash (``edgemti.formats.image_hash``); the formats are names
    (``q3.13``, ``fp32``, ...); ``build_id`` is set when the settings came from a build folder;
    ``fault_mlc_rate`` > 0 when MLC cell errors were injected into the backbone during training.
    """

    image_hash: str
    value_format: str
    pack_format: str
    sparsity_embedding: float
    sparsity_transformer: float
    build_id: str | None = None
    fault_mlc_rate: float = 0.0
    fault_seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.image_hash, str) or len(self.image_hash) != 64:
            raise ConfigError(f"TrainedOn: image_hash must be a sha256 (64 hex digits), got {self.image_hash!r}")
        for name in ("value_format", "pack_format"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ConfigError(f"TrainedOn: {name} must be a format name such as 'q3.13', got {v!r}")
        for name in ("sparsity_embedding", "sparsity_transformer"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
                raise ConfigError(f"TrainedOn: {name} must be in [0, 1), got {v!r}")
        if self.build_id is not None and not isinstance(self.build_id, str):
            raise ConfigError(f"TrainedOn: build_id must be a string or null, got {self.build_id!r}")
        v = self.fault_mlc_rate
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"TrainedOn: fault_mlc_rate must be a probability in [0, 1], got {v!r}")
        if isinstance(self.fault_seed, bool) or not isinstance(self.fault_seed, int) or self.fault_seed < 0:
            raise ConfigError(f"TrainedOn: fault_seed must be an int >= 0, got {self.fault_seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainedOn:
        """From ``pack.json``'s ``trained_on`` object; unknown or missing keys are a :class:`ConfigError`."""
        keys = {"image_hash", "value_format", "pack_format", "sparsity_embedding", "sparsity_transformer",
                "build_id", "fault_mlc_rate", "fault_seed"}
        if not isinstance(d, Mapping):
            raise ConfigError(f"TrainedOn: must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - keys)
        missing = sorted({"image_hash", "value_format", "pack_format", "sparsity_embedding",
                          "sparsity_transformer"} - set(d))
        if unknown or missing:
            raise ConfigError(f"TrainedOn: unknown keys {unknown}, missing keys {missing}")
        return cls(**dict(d))

    def describe(self) -> str:
        where = f"build {self.build_id[:12]}" if self.build_id else "compression settings"
        faults = f", MLC faults {self.fault_mlc_rate:g}" if self.fault_mlc_rate else ""
        return (f"image {self.image_hash[:12]} ({where}: {self.value_format}, sparsity embedding "
                f"{self.sparsity_embedding:g} / transformer {self.sparsity_transformer:g}, pack {self.pack_format}"
                f"{faults})")


class _StraightThrough(torch.autograd.Function):
    """Forward: ``quantize(w)`` exactly; backward: the gradient passes to ``w`` unchanged."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, quantize: ArrayFn) -> torch.Tensor:  # type: ignore[override]
        q = quantize(w.detach().cpu().numpy())
        return torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).to(w.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def straight_through(w: torch.Tensor, quantize: ArrayFn) -> torch.Tensor:
    """``quantize(w)`` in the forward pass, identity gradient (the straight-through estimator)."""
    out = _StraightThrough.apply(w, quantize)
    assert isinstance(out, torch.Tensor)
    return out


@dataclass(frozen=True)
class BackboneOverride:
    """What a compression-aware training run swaps into the model.

    ``tensors``: every backbone parameter as the runtime decodes it (float32, by PyTorch name);
    ``quantize_pack``: float array -> the values the build stores at the pack format;
    ``per_step``: optional, the backbone to use at training step ``i`` (fault-aware training: a fresh fault pattern
    per step; evaluation always uses ``tensors``).
    """

    tensors: Mapping[str, np.ndarray]
    trained_on: TrainedOn
    quantize_pack: ArrayFn
    per_step: Callable[[int], Mapping[str, np.ndarray]] | None = None

    def forward_fn(self, model: torch.nn.Module, task_names: list[str],
                   step: int | None = None) -> Callable[..., torch.Tensor]:
        """``f(input_ids, attention_mask, token_type_ids) -> logits`` with the pack's tensors fake-quantized (STE)
        and, when ``step`` is given and ``per_step`` is set, that step's backbone in place of the model's."""
        backbone = None
        if step is not None and self.per_step is not None:
            backbone = {n: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                        for n, a in self.per_step(step).items()}

        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            params = dict(model.named_parameters())
            swapped: dict[str, torch.Tensor] = {n: straight_through(params[n], self.quantize_pack)
                                                for n in task_names}
            if backbone is not None:
                swapped.update(backbone)
            return functional_call(model, swapped, (input_ids, attention_mask, token_type_ids), strict=False,
                                   tie_weights=False)

        return forward


def load_into(model: torch.nn.Module, names: list[str], tensors: Mapping[str, np.ndarray]) -> None:
    """Copy ``tensors`` into the parameters ``names`` of ``model`` (in place), refusing any name or shape mismatch;
    afterwards each parameter holds the given values bit for bit (checked)."""
    params = dict(model.named_parameters())
    missing = sorted(set(names) - set(tensors))
    extra = sorted(set(tensors) - set(names))
    shapes = [f"{n}: {tuple(tensors[n].shape)} vs {tuple(params[n].shape)}" for n in sorted(set(names) & set(tensors))
              if tuple(tensors[n].shape) != tuple(params[n].shape)]
    if missing or extra or shapes:
        raise ConfigError(f"the served backbone does not fit the model: missing {missing[:4]}, unexpected "
                          f"{extra[:4]}, shapes {shapes[:4]}: train with the build's backbone")
    with torch.no_grad():
        for n in names:
            params[n].copy_(torch.from_numpy(np.ascontiguousarray(tensors[n], dtype=np.float32)))
    for n in names:
        got = params[n].detach().cpu().numpy()
        want = np.ascontiguousarray(tensors[n], dtype=np.float32)
        if got.tobytes() != want.tobytes():
            raise ConfigError(f"backbone tensor {n}: the model does not hold the served values bit for bit after "
                              "loading them (a dtype or device conversion changed them)")
