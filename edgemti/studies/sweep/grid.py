"""The grid file: :class:`SweepConfig` (a typed TOML grid of :class:`Axis` values, docs/SWEEP.md), its parsing
(:func:`load_sweep`, :func:`sweep_from_dict`) and its expansion into points (:func:`sweep_points`: grid product,
random, or Latin-hypercube)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError
from edgemti.studies.sweep.point import POINT_TYPES, SweepPoint

GRID_FORMAT, GRID_VERSION = "edgemti-sweep", 1
MODES = ("grid", "random", "lhs")


@dataclass(frozen=True)
class Axis:
    """Values of one axis: a list of choices, or (random/lhs only) a range ``low..high`` (``log``: log-uniform)."""

    name: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def pick(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1) (a choice's index, or a point of the range)."""
        if not self.is_range:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        assert self.low is not None and self.high is not None
        x = (math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))) if self.log
             else self.low + u * (self.high - self.low))
        return int(round(x)) if POINT_TYPES[self.name] is int else float(x)

    def to_dict(self) -> Any:
        return list(self.values) if not self.is_range else {"min": self.low, "max": self.high, "log": self.log}


@dataclass(frozen=True)
class SweepConfig:
    """A parsed grid file. Axes not named take one value: the design's shipped spec or the compile default."""

    name: str
    mode: str
    samples: int
    seed: int
    axes: tuple[Axis, ...]
    specs: dict  # design -> architecture spec TOML path (absolute); a design not named uses the shipped spec
    source: str = ""

    def to_dict(self) -> dict:
        return {"format": GRID_FORMAT, "format_version": GRID_VERSION, "name": self.name, "mode": self.mode,
                "samples": self.samples, "seed": self.seed, "axes": {a.name: a.to_dict() for a in self.axes},
                "specs": dict(self.specs)}


def load_sweep(path: str | Path) -> SweepConfig:
    """Read a grid TOML file; one :class:`ConfigError` lists every problem."""
    from edgemti.hwmodel.tomlfile import read_toml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist (examples: edgemti/sweeps/*.toml)")
    return sweep_from_dict(read_toml(path, ConfigError, "the grid file"), origin=str(path), base_dir=path.parent)


def sweep_from_dict(data: dict, origin: str = "<grid>", base_dir: Path | None = None) -> SweepConfig:
    from edgemti.hwmodel.tomlfile import header_problems

    problems: list[str] = []
    known = {"format", "format_version", "name", "mode", "samples", "seed", "axes", "specs"}
    problems += [f"{k} is not a known key (known: {sorted(known)})" for k in data if k not in known]
    problems += header_problems(data, GRID_FORMAT, GRID_VERSION)
    mode = data.get("mode", "grid")
    if mode not in MODES:
        problems.append(f"mode must be one of {list(MODES)}, got {mode!r}")
    samples, seed = data.get("samples", 0), data.get("seed", 0)
    for key, v in (("samples", samples), ("seed", seed)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            problems.append(f"{key} must be an int >= 0, got {v!r}")
    if mode in ("random", "lhs") and not (isinstance(samples, int) and samples > 0):
        problems.append(f"mode {mode!r} needs samples > 0")
    axes = []
    raw_axes = data.get("axes", {})
    if not isinstance(raw_axes, dict):
        problems.append("axes must be a table")
        raw_axes = {}
    for name, spec in raw_axes.items():
        if name not in POINT_TYPES:
            problems.append(f"axes.{name} is not a known axis (known: {sorted(POINT_TYPES)})")
            continue
        axis = _parse_axis(name, spec, mode, problems)
        if axis is not None:
            axes.append(axis)
    specs: dict[str, str] = {}
    raw_specs = data.get("specs", {})
    for design, p in (raw_specs.items() if isinstance(raw_specs, dict) else ()):
        if design not in ("adapter", "vanilla") or not isinstance(p, str):
            problems.append(f"specs.{design} must be adapter or vanilla = \"path.toml\", got {p!r}")
            continue
        full = Path(p) if Path(p).is_absolute() else (base_dir or Path.cwd()) / p
        if not full.is_file():
            problems.append(f"specs.{design}: spec file {full} does not exist")
        specs[design] = str(full.resolve())
    if problems:
        raise ConfigError(f"{origin}: {len(problems)} problem(s) in the grid file: " + "; ".join(problems))
    return SweepConfig(str(data.get("name", Path(origin).stem)), mode, int(samples), int(seed), tuple(axes),
                       specs, origin)


def _parse_axis(name: str, spec: Any, mode: str, problems: list[str]) -> Axis | None:
    want = POINT_TYPES[name]
    if isinstance(spec, dict):
        extra = set(spec) - {"min", "max", "log"}
        lo: Any = spec.get("min")
        hi: Any = spec.get("max")
        lg = spec.get("log", False)
        bad = [f"unknown keys {sorted(extra)}"] if extra else []
        if want is str:
            bad.append("a string axis takes a list of values, not a range")
        elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo <= hi:
            bad.append(f"a range needs numbers min <= max, got {lo!r}..{hi!r}")
        elif lg and lo <= 0:
            bad.append("a log range needs min > 0")
        if mode == "grid":
            bad.append("grid mode takes lists of values (ranges are for random / lhs)")
        if bad:
            problems.append(f"axes.{name}: " + "; ".join(bad))
            return None
        return Axis(name, (), float(lo), float(hi), bool(lg))
    values = spec if isinstance(spec, list) else [spec]
    if not values:
        problems.append(f"axes.{name} is empty")
        return None
    ok = []
    for v in values:
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, want) or isinstance(v, bool):
            problems.append(f"axes.{name}: {v!r} is not a {want.__name__}")
            continue
        ok.append(v)
    return Axis(name, tuple(ok)) if len(ok) == len(values) else None


def spec_defaults(design: str, specs: dict) -> dict[str, Any]:
    from edgemti.hwmodel.spec import load_spec

    s = load_spec(specs.get(design), design=design)
    return {"node_nm": s.technology.node_nm, "macro_objective": s.sram.objective,
            "dram_pj_per_bit": s.dram.read_pj_per_bit, "dram_bandwidth_bytes_per_s": s.dram.bandwidth_bytes_per_s,
            "pe_vector": s.pe_array.vector, "clock_hz": s.clock.freq_hz}


def sweep_points(config: SweepConfig) -> list[SweepPoint]:
    """Every point of the config, de-duplicated by ``point_id`` (e.g. vanilla points of several adapter sizes)."""
    import numpy as np

    axes = list(config.axes)
    draws: list[dict[str, Any]]
    if config.mode == "grid":
        draws = [dict(zip((a.name for a in axes), combo, strict=True))
                 for combo in itertools.product(*(a.values for a in axes))]
    else:
        varying = [a for a in axes if a.is_range or len(a.values) > 1]
        if config.mode == "lhs" and varying:
            from scipy.stats import qmc

            u = qmc.LatinHypercube(d=len(varying), seed=config.seed).random(config.samples)
        else:
            u = np.random.default_rng(config.seed).random((config.samples, len(varying)))
        fixed = {a.name: a.values[0] for a in axes if a not in varying}
        draws = [{**fixed, **{a.name: a.pick(float(row[i])) for i, a in enumerate(varying)}} for row in u]
    defaults = {d: spec_defaults(d, config.specs) for d in ("adapter", "vanilla")}
    out: dict[str, SweepPoint] = {}
    problems: list[str] = []
    for d in draws:
        design = d.get("design", SweepPoint.design)
        kw = {k: v for k, v in defaults.get(design, defaults["adapter"]).items() if k not in d}
        try:
            p = SweepPoint(**{**kw, **d})
        except ConfigError as exc:  # a bad axis value fails every point that takes it: say each problem once
            if str(exc) not in problems and len(problems) < 5:
                problems.append(str(exc))
            continue
        out.setdefault(p.point_id, p)
    if problems:
        raise ConfigError(f"{config.source or config.name}: invalid points: " + "; ".join(problems))
    return list(out.values())
