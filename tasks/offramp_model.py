"""The off-ramp module (EdgeBERT): Linear(H->H) + tanh on [CLS], then Linear(H->labels), one per layer but the last.

Only the model's shape lives here (what a pack with off-ramps needs to be rebuilt); their second-stage training and
calibration are :mod:`edgemti.tasks.offramp` and :mod:`edgemti.tasks.offramp_calibrate`.
"""

from __future__ import annotations

import torch
from torch import nn

from edgemti.errors import ConfigError
from edgemti.tasks.model import AdapterModel

RAMP_PREFIX = "off_ramps."


class OffRamp(nn.Module):
    """``classifier(tanh(dense(x)))`` on one layer's pooled output ``x [batch, hidden]``."""

    def __init__(self, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.dense(x)))


def num_layers(model: AdapterModel) -> int:
    """Transformer layers a forward runs (ALBERT's shared layer counts once per pass)."""
    return int(model.encoder.config.num_hidden_layers)


def attach_off_ramps(model: AdapterModel) -> AdapterModel:
    """Give ``model`` one off-ramp per layer but the last (in place; returns it), initialised from the pooler
    and the task head (module docstring). A model that has them keeps them."""
    if model.off_ramps is not None:
        return model
    n = num_layers(model)
    if n < 2:
        raise ConfigError(f"off-ramps need a backbone of >= 2 layers, this one has {n}")
    hidden = int(model.encoder.config.hidden_size)
    # the HF pooler: ALBERT's is a bare Linear, BERT's a module with .dense, None without a pooling layer
    pooler = getattr(model.encoder, "pooler", None)
    pooler_dense = pooler if isinstance(pooler, nn.Linear) else getattr(pooler, "dense", None)
    ramps = [OffRamp(hidden, model.num_labels) for _ in range(n - 1)]
    with torch.no_grad():
        for r in ramps:
            if isinstance(pooler_dense, nn.Linear):
                r.dense.weight.copy_(pooler_dense.weight)
                r.dense.bias.copy_(pooler_dense.bias)
            else:
                r.dense.weight.copy_(torch.eye(hidden))
                r.dense.bias.zero_()
            r.classifier.weight.copy_(model.classifier.weight)
            r.classifier.bias.copy_(model.classifier.bias)
    model.off_ramps = nn.ModuleList(ramps)
    return model
