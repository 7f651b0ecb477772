"""Adapter-ALBERT (and adapter-BERT): a Hugging Face encoder with Houlsby residual adapters.

The model is split into a task-agnostic *backbone* (stored once, pruned and quantized into RRAM) and a small
*task-specific* set (adapters, the transformer's layer norms, classifier) that each task owns. The vanilla
baseline (full fine-tuning) keeps only the embeddings shared and makes every other tensor task-specific.

Adapters follow Houlsby et al. (2019) as drawn in the adapter-ALBERT paper (Fig. 2a): one after the attention
output projection and one after the FFN output projection, each *before* its residual add + layer norm:
``h = LN(x + adapter(W_o a))`` with ``adapter(z) = z + W_up act(W_down z)``. The up projection starts at zero, so
a fresh adapter is the exact identity and a fresh model reproduces its backbone.

A pack of the LoRA kind (``adapter`` a :class:`~edgemti.tasks.lora.LoraSpec`) has no Houlsby adapters: its
targeted linear layers get an unmerged low-rank pair instead (tasks/lora.py). Either way the transformer's layer
norms and the classifier are task tensors, so both kinds share one backbone (and one backbone hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AlbertModel, BertModel, PreTrainedModel

from edgemti.errors import ConfigError
from edgemti.tasks.adapter_spec import ACTIVATIONS, AdapterSpec
from edgemti.tasks.lora import LoraSpec, insert_lora

Design = Literal["adapter", "vanilla"]
Family = Literal["albert", "bert"]
Pooling = Literal["pooler", "mean"]
BACKBONE: Literal["backbone"] = "backbone"
TASK: Literal["task"] = "task"


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh,
    "swish": F.silu,  # AdapterHub's Houlsby default (x * sigmoid(x))
}
assert tuple(_ACTIVATIONS) == ACTIVATIONS, "tasks/adapter_spec.py names the same activations"


class Adapter(nn.Module):
    """Houlsby bottleneck: ``z + up(act(down(z)))``; ``up`` is zero-initialised (exact identity at init)."""

    def __init__(self, hidden: int, bottleneck: int, activation: str = "gelu") -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        self.activation = activation
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.up(_ACTIVATIONS[self.activation](self.down(z)))


class AdaptedLinear(nn.Linear):
    """An ``nn.Linear`` (weight and bias keep their Hugging Face names) followed by an adapter.

    With ``len(adapters) > 1`` the i-th call in a forward pass uses adapter ``i % len`` (per-depth adapters on
    ALBERT's shared layer); ``reset_depth`` is called by the model at the start of every forward.
    """

    def __init__(self, base: nn.Linear, adapters: Iterable[Adapter]) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        self.weight = base.weight
        self.bias = base.bias
        self.adapters = nn.ModuleList(adapters)
        self._depth = 0

    def reset_depth(self) -> None:
        self._depth = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapter = self.adapters[self._depth % len(self.adapters)]
        self._depth += 1
        return adapter(F.linear(x, self.weight, self.bias))


@dataclass
class BackboneInfo:
    """Where a backbone came from: its preset/hub name or folder, whether its weights are pretrained."""

    name: str
    family: Family
    pretrained: bool
    source: str
    tokenizer: str | None = None
    pooling: Pooling = "pooler"
    hf_config: dict = field(default_factory=dict)

    @property
    def warning(self) -> str | None:
        if self.pretrained:
            return None
        return (
            f"WARNING: backbone '{self.name}' is RANDOMLY INITIALISED (no pretrained weights given); "
            "accuracy numbers are meaningless, footprint/energy/latency are valid"
        )


class AdapterModel(nn.Module):
    """Encoder + (optional) adapters + classifier head; returns logits ``[batch, num_labels]``."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        info: BackboneInfo,
        num_labels: int,
        adapter: AdapterSpec | LoraSpec | None = None,
        design: str = "adapter",
    ) -> None:
        super().__init__()
        if design not in ("adapter", "vanilla"):
            raise ConfigError(f"AdapterModel: design must be 'adapter' or 'vanilla', got {design!r}")
        if num_labels <= 0:
            raise ConfigError(f"AdapterModel: num_labels must be > 0, got {num_labels}")
        self.encoder = encoder
        self.info = info
        self.design: Design = cast(Design, design)  # checked above
        self.num_labels = num_labels
        self.adapter_spec = adapter if design == "adapter" else None
        hidden = encoder.config.hidden_size
        self.lora_modules: list[str] = []  # encoder module names given a LoRA pair (LoRA packs)
        if isinstance(self.adapter_spec, LoraSpec):
            self.lora_modules = insert_lora(self.encoder, self.adapter_spec)
        elif self.adapter_spec is not None:
            self._insert_adapters(self.adapter_spec)
        self.classifier = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)
        self._adapted = [m for m in self.modules() if isinstance(m, AdaptedLinear)]
        # EdgeBERT-style off-ramps (tasks/offramp.py attaches them): one small classifier after each layer but the
        # last; with ``exit_outputs`` the forward also returns their logits (what the early-exit graph exports)
        self.off_ramps: nn.ModuleList | None = None
        self.exit_outputs = False

    # -- structure -------------------------------------------------------------------------------------------
    def _output_projections(self) -> list[tuple[nn.Module, str, str, int]]:
        """(parent module, attribute, kind 'attn'|'ffn', number of times it runs per forward)."""
        cfg = self.encoder.config
        body: Any = self.encoder.encoder  # nn.Module.__getattr__ types submodules as Tensor | Module
        if self.info.family == "albert":
            groups = body.albert_layer_groups
            out = []
            runs = cfg.num_hidden_layers // cfg.num_hidden_groups
            for group in groups:
                for layer in group.albert_layers:
                    out.append((layer.attention, "dense", "attn", runs))
                    out.append((layer, "ffn_output", "ffn", runs))
            return out
        out = []
        for layer in body.layer:
            out.append((layer.attention.output, "dense", "attn", 1))
            out.append((layer.output, "dense", "ffn", 1))
        return out

    def _insert_adapters(self, spec: AdapterSpec) -> None:
        hidden = self.encoder.config.hidden_size
        for parent, attr, kind, runs in self._output_projections():
            size = spec.attn_bottleneck if kind == "attn" else spec.ffn_bottleneck
            n = runs if spec.per_depth else 1
            base = getattr(parent, attr)
            setattr(parent, attr, AdaptedLinear(base, [Adapter(hidden, size, spec.activation) for _ in range(n)]))

    def partition(self) -> dict[str, str]:
        """Every parameter name -> ``'backbone'`` or ``'task'`` (the paper's Fig. 2a colours)."""
        parts: dict[str, str] = {}
        for name, _ in self.named_parameters():
            parts[name] = TASK if self._is_task(name) else BACKBONE
        return parts

    def _is_task(self, name: str) -> bool:
        if name.startswith(("classifier.", "off_ramps.")):
            return True
        if self.design == "vanilla":
            return not name.startswith("encoder.embeddings.")
        if ".adapters." in name or ".lora_A." in name or ".lora_B." in name or name.startswith("encoder.embeddings."):
            return not name.startswith("encoder.embeddings.")
        # the transformer's layer norms are task-specific; the embeddings' layer norm stays in the backbone
        return name.rsplit(".", 2)[-2] in ("LayerNorm", "full_layer_layer_norm")

    def task_names(self) -> list[str]:
        return [n for n, p in self.partition().items() if p == TASK]

    def backbone_names(self) -> list[str]:
        return [n for n, p in self.partition().items() if p == BACKBONE]

    def task_state(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {n: params[n].detach().clone() for n in self.task_names()}

    def backbone_state(self) -> dict[str, torch.Tensor]:
        params = dict(self.named_parameters())
        return {n: params[n].detach() for n in self.backbone_names()}

    def backbone_hash(self) -> str:
        return tensors_hash(self.backbone_state())

    def freeze_backbone(self) -> None:
        parts = self.partition()
        for name, p in self.named_parameters():
            p.requires_grad_(parts[name] == TASK)

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits ``[batch, num_labels]``; with off-ramps and ``exit_outputs``: ``(logits, exit_1, ...,
        exit_{L-1})``, ``exit_i`` the off-ramp logits after layer ``i`` (tasks/offramp.py)."""
        for m in self._adapted:
            m.reset_depth()
        exits = self.off_ramps is not None and self.exit_outputs
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           output_hidden_states=exits)
        if self.info.pooling == "mean":
            pooled = self.mean_pool(out.last_hidden_state, attention_mask)
        else:
            pooled = out.pooler_output
        logits = self.classifier(pooled)
        if not exits:
            return logits
        assert self.off_ramps is not None  # exits implies it
        ramps = [ramp(self.ramp_input(h, attention_mask))
                 for ramp, h in zip(self.off_ramps, out.hidden_states[1:-1], strict=True)]
        return (logits, *ramps)

    @staticmethod
    def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def ramp_input(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """What an off-ramp reads of a layer's output ``[batch, seq, hidden]``: the [CLS] row (EdgeBERT) for a
        pooler backbone, the masked mean for a mean-pooled one (MiniLM, whose [CLS] is not trained as a summary)."""
        if self.info.pooling == "mean":
            return self.mean_pool(hidden, attention_mask)
        return hidden[:, 0]


def tensors_hash(tensors: Mapping[str, torch.Tensor | np.ndarray]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, in name order: a backbone's identity."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(tuple(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def encoder_class(family: str) -> type[PreTrainedModel]:
    return {"albert": AlbertModel, "bert": BertModel}[family]


def as_family(value: str) -> Family:
    """``value`` narrowed to :data:`Family`, or a :class:`ConfigError` naming it."""
    if value not in ("albert", "bert"):
        raise ConfigError(f"backbone family must be 'albert' or 'bert', got {value!r}")
    return cast(Family, value)


def as_pooling(value: str) -> Pooling:
    """``value`` narrowed to :data:`Pooling`, or a :class:`ConfigError` naming it."""
    if value not in ("pooler", "mean"):
        raise ConfigError(f"backbone pooling must be 'pooler' or 'mean', got {value!r}")
    return cast(Pooling, value)
