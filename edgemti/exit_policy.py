"""A task's early-exit policy: its entropy threshold and its exit-layer predictor (EdgeBERT, MICRO'21).

Written by ``edgemti calibrate-exit`` into a task pack (``pack.json`` key ``exit``), carried by the compiler into
the build's manifest (pack entry key ``exit``) and read by the early-exit runtime. One typed object for every
place the JSON crosses a boundary (pack load, manifest load), so it lives beside :mod:`edgemti.errors`, below the
tasks/formats/runtime layers that all read it.

The policy, as the runtime applies it (runtime/early_exit.py): after layer ``i < num_layers`` the off-ramp's
softmax entropy ``H_i`` is compared with ``threshold``; ``H_i < threshold`` exits at ``i``; the last layer is the
full-depth classifier. The predictor is EdgeBERT's lookup table: ``lut_entropy[r]`` is the centre of row ``r``'s
first-layer-entropy bin and ``lut_exit_layer[r]`` the exit layer predicted for a sentence whose first-layer
entropy is nearest that centre (the first layer whose mean entropy over the calibration sentences of the bin is
under the threshold). The prediction chooses the DVFS operating point; the exit itself is always the measured
entropy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgemti.errors import ConfigError

EXIT_POLICY_VERSION = 1
LUT_ROWS = 100  # EdgeBERT's table size


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class ExitPolicy:
    """Threshold (nats) and predictor of one task; ``calibration`` records how they were chosen (split, sizes,
    the accuracy-drop target and what was measured with the chosen threshold)."""

    num_layers: int
    threshold: float
    lut_entropy: tuple[float, ...]
    lut_exit_layer: tuple[int, ...]
    calibration: dict = field(default_factory=dict)
    version: int = EXIT_POLICY_VERSION

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.num_layers, int) or isinstance(self.num_layers, bool) or self.num_layers < 2:
            problems.append(f"num_layers must be an int >= 2, got {self.num_layers!r}")
        if not _num(self.threshold) or self.threshold < 0:
            problems.append(f"threshold must be a finite number >= 0 (nats), got {self.threshold!r}")
        if not 1 <= len(self.lut_entropy) <= 4 * LUT_ROWS or len(self.lut_entropy) != len(self.lut_exit_layer):
            problems.append(f"lut_entropy and lut_exit_layer must be two lists of the same length in [1, "
                            f"{4 * LUT_ROWS}], got {len(self.lut_entropy)} and {len(self.lut_exit_layer)}")
        if any(not _num(x) or x < 0 for x in self.lut_entropy):
            problems.append("lut_entropy must hold finite numbers >= 0")
        elif any(b < a for a, b in zip(self.lut_entropy, self.lut_entropy[1:], strict=False)):
            problems.append("lut_entropy must be sorted ascending")
        n = self.num_layers if isinstance(self.num_layers, int) else 0
        bad = [x for x in self.lut_exit_layer if not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= n]
        if bad:
            problems.append(f"lut_exit_layer must hold layers in [1, {n}], got e.g. {bad[:3]}")
        if not isinstance(self.calibration, dict):
            problems.append(f"calibration must be an object, got {type(self.calibration).__name__}")
        if self.version != EXIT_POLICY_VERSION:
            problems.append(f"version {self.version!r} is not supported (this edgemti reads {EXIT_POLICY_VERSION})")
        if problems:
            raise ConfigError("ExitPolicy: " + "; ".join(problems))

    def predict_exit(self, first_entropy: float) -> int:
        """The exit layer the table predicts for a sentence whose layer-1 off-ramp entropy is ``first_entropy``."""
        best = min(range(len(self.lut_entropy)), key=lambda r: abs(self.lut_entropy[r] - first_entropy))
        return self.lut_exit_layer[best]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "num_layers": self.num_layers, "threshold": self.threshold,
                "lut_entropy": list(self.lut_entropy), "lut_exit_layer": list(self.lut_exit_layer),
                "calibration": dict(self.calibration)}

    @classmethod
    def from_dict(cls, d: Any) -> ExitPolicy:
        """Parse the JSON object (every problem a :class:`ConfigError` naming the field)."""
        keys = ("version", "num_layers", "threshold", "lut_entropy", "lut_exit_layer", "calibration")
        if not isinstance(d, dict):
            raise ConfigError(f"ExitPolicy: must be an object with {list(keys)}, got {type(d).__name__}")
        missing, unknown = [k for k in keys if k not in d], sorted(set(d) - set(keys))
        if missing or unknown:
            raise ConfigError(f"ExitPolicy: missing keys {missing}, unknown keys {unknown}")
        for k in ("lut_entropy", "lut_exit_layer"):
            if not isinstance(d[k], list):
                raise ConfigError(f"ExitPolicy: {k} must be a list, got {type(d[k]).__name__}")
        return cls(num_layers=d["num_layers"], threshold=d["threshold"], lut_entropy=tuple(d["lut_entropy"]),
                   lut_exit_layer=tuple(d["lut_exit_layer"]), calibration=d["calibration"], version=d["version"])
