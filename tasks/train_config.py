"""``TrainConfig``: the one typed config of a training run (task, backbone, design, adapter or LoRA, schedule,
data), validated on construction, read from JSON/YAML with unknown keys an error, and saved into the pack as
``train_config``. The training itself is :mod:`edgemti.tasks.train`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError
from edgemti.tasks.features import MAX_SEQ_LEN
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.model import AdapterSpec

DEFAULT_LR = {"adapter": 1e-3, "vanilla": 3e-5}


_TYPES: dict[str, type] = {"epochs": int, "batch_size": int, "max_seq_len": int, "seed": int, "lr": float,
                           "warmup_ratio": float, "weight_decay": float, "regression": bool,
                           "max_train_examples": int, "max_eval_examples": int, "threads": int,
                           "lora_rank": int, "lora_alpha": float, "lora_targets": str}


def _type_ok(v: Any, t: type) -> bool:
    if isinstance(v, bool):
        return t is bool
    return isinstance(v, t) or (t is float and isinstance(v, int))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved into the pack as ``train_config``)."""

    task: str
    backbone: str = "minilm"
    checkpoint: str | None = None
    design: str = "adapter"
    adapter_size: str = "64"
    epochs: int = 3
    lr: float | None = None  # None: 1e-3 for adapters, 3e-5 for full fine-tuning
    batch_size: int = 32
    max_seq_len: int = MAX_SEQ_LEN
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    seed: int = 0
    threads: int | None = None
    source: str = "tsv"  # "tsv" (GLUE folder) or "hf" (Hugging Face datasets)
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    regression: bool = False
    lora_rank: int | None = None  # set: a LoRA pack of this rank instead of Houlsby adapters (tasks/lora.py)
    lora_alpha: float | None = None  # None: PEFT's default, alpha = rank
    lora_targets: str | None = None  # comma-separated module names; None: PEFT's default of the family

    def __post_init__(self) -> None:
        if self.design not in ("adapter", "vanilla"):
            raise ConfigError(f"TrainConfig: design must be 'adapter' or 'vanilla', got {self.design!r}")
        if self.design == "adapter":
            AdapterSpec.parse(self.adapter_size)
        if self.lora_rank is not None:
            if self.design != "adapter":
                raise ConfigError("TrainConfig: lora_rank trains a LoRA pack on the frozen backbone, not a full "
                                  "fine-tune: leave design 'adapter'", options=("lora_rank",))
            LoraSpec.for_family("bert", self.lora_rank, self.lora_alpha, self._targets or ("query",))
        elif self.lora_alpha is not None or self.lora_targets is not None:
            raise ConfigError("TrainConfig: lora_alpha and lora_targets need lora_rank", options=("lora_rank",))
        for name in ("epochs", "batch_size", "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"TrainConfig: {name} must be a positive int, got {v!r}")
        for name in ("max_train_examples", "max_eval_examples", "threads"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"TrainConfig: {name} must be > 0 or unset, got {v!r}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise ConfigError(f"TrainConfig: lr must be in (0, 1), got {self.lr!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"TrainConfig: warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.source not in ("tsv", "hf"):
            raise ConfigError(f"TrainConfig: source must be 'tsv' or 'hf', got {self.source!r}")
        if (self.train_file is None) != (self.dev_file is None):
            raise ConfigError("TrainConfig: a custom task needs both train_file and dev_file",
                              options=("train_file", "dev_file"))

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.design]

    @property
    def adapter(self) -> AdapterSpec | None:
        return AdapterSpec.parse(self.adapter_size) if self.design == "adapter" else None

    @property
    def _targets(self) -> tuple[str, ...] | None:
        return tuple(t.strip() for t in self.lora_targets.split(",")) if self.lora_targets else None

    def adapter_for(self, family: str) -> AdapterSpec | LoraSpec | None:
        """The pack's adapter spec on a backbone of ``family`` (LoRA's default targets depend on it)."""
        if self.lora_rank is None:
            return self.adapter
        try:
            return LoraSpec.for_family(family, self.lora_rank, self.lora_alpha, self._targets)
        except ConfigError as exc:
            raise ConfigError(str(exc), options=("lora_targets",)) from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr"] = self.resolved_lr
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown keys {unknown} (known: {sorted(names)})")
        bad = [f"{k}={v!r} (want {_TYPES[k].__name__})" for k, v in d.items()
               if k in _TYPES and v is not None and not _type_ok(v, _TYPES[k])]
        if bad:
            raise ConfigError(f"TrainConfig: wrong types: {', '.join(bad)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A config from a JSON or YAML file (unknown keys are an error), with ``overrides`` applied on top."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the train config ({exc.strerror})") from None
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:
            raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.').upper() or 'JSON'} ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a train config is a mapping of TrainConfig fields, got {type(raw).__name__}")
        return cls.from_dict({**raw, **overrides})
