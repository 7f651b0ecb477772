"""The adapter sizes of a pack (:class:`AdapterSpec`), apart from the torch model that builds them, so that the
places that only parse or check a size (sweep points, the CLI's argument checks) answer without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgemti.errors import ConfigError

# the adapters' nonlinearity by name; tasks/model.py maps each name to its torch function
ACTIVATIONS = ("gelu", "relu", "tanh", "swish")


@dataclass(frozen=True)
class AdapterSpec:
    """Bottleneck sizes of the two adapters of a transformer layer (the paper's VASE sets each on its own)."""

    attn_bottleneck: int = 64
    ffn_bottleneck: int = 64
    per_depth: bool = False  # ALBERT shares one layer; by default it also shares one adapter pair
    activation: str = "gelu"

    def __post_init__(self) -> None:
        for name in ("attn_bottleneck", "ffn_bottleneck"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"AdapterSpec: {name} must be a positive int, got {v!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"AdapterSpec: activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

    @classmethod
    def parse(cls, text: str, per_depth: bool = False, activation: str = "gelu") -> AdapterSpec:
        """``"64"`` -> 64/64; ``"32,128"`` -> attention 32, FFN 128 (VASE)."""
        try:
            parts = [int(p) for p in str(text).split(",")]
        except ValueError:
            raise ConfigError(f"adapter size must be N or ATTN,FFN (ints), got {text!r}") from None
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2:
            raise ConfigError(f"adapter size must be N or ATTN,FFN, got {text!r}")
        return cls(parts[0], parts[1], per_depth=per_depth, activation=activation)

    def to_dict(self) -> dict:
        return asdict(self)
