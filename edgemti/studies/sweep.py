"""``edgemti sweep``: design-space exploration over designs, formats, sparsities, adapters and the architecture.

One typed grid file (:class:`SweepConfig`, docs/SWEEP.md) names the axes; :func:`sweep_points` expands it into
:class:`SweepPoint` values (grid product, random, or Latin-hypercube); :func:`run_sweep` evaluates every point
not already in the results folder, locally on a process pool or on a Ray cluster, and streams rows to Parquet
part files (CSV without pyarrow); :func:`plot_sweep` draws the Pareto fronts. A point's footprint and hardware
workload are analytic (:mod:`edgemti.compiler.analytic`: exact, no images written), priced by
:class:`edgemti.hwmodel.HwModel`.

Per point: area by level, energy and latency per inference and per task switch (under the point's energy
convention), the multi-task per-inference cost ``inference + switch_rate * switch``, the bytes each level must
hold and whether they fit the spec's capacities. A point that does not fit is still priced, on the same chip
provisioned for what it needs (auto-provisioned levels), and flagged ``fits = false``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemti.errors import ConfigError, EdgemtiError, FormatError

if TYPE_CHECKING:
    import onnx

    from edgemti.hwmodel.spec import ArchSpec

log = logging.getLogger(__name__)

GRID_FORMAT, GRID_VERSION = "edgemti-sweep", 1
MODES = ("grid", "random", "lhs")
# build order of the tasks of an N-task point: the paper's three first (arXiv 2303.16100 s IV-C)
TASK_ORDER = ("mnli", "mrpc", "qnli", "sst2", "cola", "qqp", "rte", "stsb", "wnli")
# energy conventions: which energy components count (the paper ignores the compute units, s IV-C)
COMPUTE_COMPONENTS = ("pe_array", "sfu", "bitmask")
CONVENTIONS: dict[str, Callable[[str], bool]] = {
    "full": lambda c: True,
    "no_compute": lambda c: c not in COMPUTE_COMPONENTS,
    "dynamic_only": lambda c: c not in COMPUTE_COMPONENTS and not c.startswith("leak_"),
}
CONVENTION_NAMES = tuple(CONVENTIONS)
SPEC_AXES = ("node_nm", "macro_objective", "dram_pj_per_bit", "dram_bandwidth_bytes_per_s", "pe_vector", "clock_hz")


@dataclass(frozen=True)
class SweepPoint:
    """One design point, fully resolved (every spec-derived value explicit). ``point_id`` hashes all fields."""

    design: str = "adapter"
    backbone: str = "albert-base"
    quant: str = "q3.13"  # fp32 | fp16 | qI.F (backbone and packs)
    sparsity_embedding: float = 0.0
    sparsity_transformer: float = 0.0
    adapter: str = "64"  # N or ATTN,FFN bottlenecks (VASE); "-" for the vanilla design
    num_tasks: int = 3  # the first num_tasks of TASK_ORDER
    switch_rate: float = 1.0  # task switches per request (1.0 = round robin)
    seq_len: int = 128  # tokens per request; the chip is provisioned for it (max_seq_len)
    node_nm: int = 22
    macro_objective: str = "closest"  # closest | min_area, every on-chip level
    dram_pj_per_bit: float = 8.0  # read and write
    dram_bandwidth_bytes_per_s: float = 25.6e9
    pe_vector: int = 16  # the PE array is pe_vector x pe_vector MACs
    clock_hz: float = 1.0e9
    energy_convention: str = "full"  # full | no_compute (the paper's) | dynamic_only

    def __post_init__(self) -> None:
        if self.design == "vanilla":
            object.__setattr__(self, "adapter", "-")
        problems = _point_problems(self)
        if problems:
            raise ConfigError("SweepPoint: " + "; ".join(problems))
        _canonical(self)

    @property
    def point_id(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASK_ORDER[:self.num_tasks]

    def compile_config(self):
        """The :class:`CompileConfig` this point stands for (synthetic packs of its tasks)."""
        from edgemti.compiler.config import CompileConfig

        return CompileConfig(backbone=self.backbone, synthetic_tasks=self.tasks, design=self.design,
                             quant=self.quant, sparsity_embedding=self.sparsity_embedding,
                             sparsity_transformer=self.sparsity_transformer, max_seq_len=self.seq_len,
                             synthetic_adapter=self.adapter if self.design == "adapter" else "64",
                             check_capacity=False)


_POINT_FIELDS = {f.name: f for f in fields(SweepPoint)}
_POINT_TYPES = {"design": str, "backbone": str, "quant": str, "sparsity_embedding": float,
                "sparsity_transformer": float, "adapter": str, "num_tasks": int, "switch_rate": float, "seq_len": int,
                "node_nm": int, "macro_objective": str, "dram_pj_per_bit": float, "dram_bandwidth_bytes_per_s": float,
                "pe_vector": int, "clock_hz": float, "energy_convention": str}


def _canonical(p: SweepPoint) -> None:
    """One spelling per value (``Q3.5`` -> ``q3.5``, ``64,64`` -> ``64``), so equal points share one id."""
    from edgemti.formats.quant import parse_format
    from edgemti.tasks.model import AdapterSpec

    object.__setattr__(p, "quant", parse_format(p.quant).name)
    if p.design == "adapter":
        a = AdapterSpec.parse(p.adapter)
        object.__setattr__(p, "adapter", str(a.attn_bottleneck) if a.attn_bottleneck == a.ffn_bottleneck
                           else f"{a.attn_bottleneck},{a.ffn_bottleneck}")


def _point_problems(p: SweepPoint) -> list[str]:
    from edgemti.formats.quant import parse_format
    from edgemti.tasks.model import AdapterSpec

    out = []
    for name, want in _POINT_TYPES.items():
        v = getattr(p, name)
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            object.__setattr__(p, name, float(v))
        elif not isinstance(v, want) or isinstance(v, bool):
            out.append(f"{name} must be {want.__name__}, got {v!r}")
    if out:
        return out
    checks = [("design", p.design in ("adapter", "vanilla"), "must be adapter or vanilla"),
              ("sparsity_embedding", 0.0 <= p.sparsity_embedding < 1.0, "must be in [0, 1)"),
              ("sparsity_transformer", 0.0 <= p.sparsity_transformer < 1.0, "must be in [0, 1)"),
              ("num_tasks", 1 <= p.num_tasks <= len(TASK_ORDER), f"must be in [1, {len(TASK_ORDER)}]"),
              ("switch_rate", 0.0 <= p.switch_rate <= 1.0, "must be in [0, 1]"),
              ("seq_len", p.seq_len >= 2, "must be >= 2"), ("node_nm", p.node_nm > 0, "must be > 0"),
              ("macro_objective", p.macro_objective in ("closest", "min_area"), "must be closest or min_area"),
              ("dram_pj_per_bit", p.dram_pj_per_bit >= 0, "must be >= 0"),
              ("dram_bandwidth_bytes_per_s", p.dram_bandwidth_bytes_per_s > 0, "must be > 0"),
              ("pe_vector", p.pe_vector > 0, "must be > 0"), ("clock_hz", p.clock_hz > 0, "must be > 0"),
              ("energy_convention", p.energy_convention in CONVENTION_NAMES, f"must be one of {list(CONVENTION_NAMES)}")]
    out += [f"{n} {why}, got {getattr(p, n)!r}" for n, ok, why in checks if not ok]
    for name, parse in (("quant", parse_format), ("adapter", AdapterSpec.parse)):
        if name == "adapter" and p.design == "vanilla":
            continue
        try:
            parse(getattr(p, name))
        except ConfigError as exc:
            out.append(f"{name}: {exc}")
    return out


# -- the grid file ------------------------------------------------------------------------------------------------


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
        return int(round(x)) if _POINT_TYPES[self.name] is int else float(x)

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
    from edgemti.hwmodel.spec import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist (examples: edgemti/sweeps/*.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return sweep_from_dict(data, origin=str(path), base_dir=path.parent)


def sweep_from_dict(data: dict, origin: str = "<grid>", base_dir: Path | None = None) -> SweepConfig:
    problems: list[str] = []
    known = {"format", "format_version", "name", "mode", "samples", "seed", "axes", "specs"}
    problems += [f"{k} is not a known key (known: {sorted(known)})" for k in data if k not in known]
    if data.get("format") != GRID_FORMAT:
        problems.append(f"format must be {GRID_FORMAT!r}, got {data.get('format')!r}")
    if data.get("format_version") != GRID_VERSION:
        problems.append(f"format_version {data.get('format_version')!r} is not supported (this edgemti reads "
                        f"{GRID_VERSION})")
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
        if name not in _POINT_TYPES:
            problems.append(f"axes.{name} is not a known axis (known: {sorted(_POINT_TYPES)})")
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
    want = _POINT_TYPES[name]
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


def _spec_defaults(design: str, specs: dict) -> dict[str, Any]:
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
    defaults = {d: _spec_defaults(d, config.specs) for d in ("adapter", "vanilla")}
    out: dict[str, SweepPoint] = {}
    problems: list[str] = []
    for d in draws:
        design = d.get("design", SweepPoint.design)
        kw = {k: v for k, v in defaults.get(design, defaults["adapter"]).items() if k not in d}
        try:
            p = SweepPoint(**{**kw, **d})
        except ConfigError as exc:
            if len(problems) < 5:
                problems.append(str(exc))
            continue
        out.setdefault(p.point_id, p)
    if problems:
        raise ConfigError(f"{config.source or config.name}: invalid points: " + "; ".join(problems))
    return list(out.values())


# -- assets: what every worker needs, computed once by the driver and cached on disk -------------------------------


@dataclass
class SweepAssets:
    """Backbone statistics and structures (shapes + graph) of a sweep's points, and the base spec files.

    Small (the graphs hold no weights): shipped to every worker, through the Ray object store on a cluster.
    """

    stats: dict  # backbone -> BackboneStats
    structures: dict  # structure key -> Structure
    specs: dict  # design -> spec TOML path ("" or absent: the shipped spec)
    digest: str = ""


def _env_tag() -> str:
    """What cached stats/graphs depend on besides their key: torch, edgemti and the model/export sources."""
    import torch

    import edgemti.compiler.export as export_mod
    import edgemti.tasks.backbones as backbones_mod
    import edgemti.tasks.model as model_mod
    from edgemti import __version__

    h = hashlib.sha256(f"{torch.__version__}|{__version__}|{os.environ.get('EDGEMTI_ALBERT_CHECKPOINT', '')}".encode())
    for mod in (export_mod, backbones_mod, model_mod):
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def prepare_assets(points: list[SweepPoint], specs: dict, cache_dir: Path | None = None,
                   step: Callable[[str], None] | None = None) -> SweepAssets:
    """Statistics per backbone (every format of the points) and one structure + graph export per structural
    key, from ``cache_dir`` when there (checked), computed and saved otherwise."""
    from edgemti.compiler.analytic import (
        BackboneStats,
        Structure,
        backbone_stats,
        build_structure,
        structure_key,
    )

    say = step or (lambda s: None)
    tag = _env_tag()
    formats: dict[str, set[str]] = {}
    configs: dict[str, Any] = {}
    for p in points:
        formats.setdefault(p.backbone, set()).add(p.quant)
        cfg = p.compile_config()
        configs.setdefault(structure_key(cfg), cfg)
    stats = {}
    for bb, fmts in formats.items():
        path = cache_dir / f"stats-{hashlib.sha256(bb.encode()).hexdigest()[:12]}-{tag}.json" if cache_dir else None
        have = BackboneStats.from_json(path.read_bytes(), str(path)) if path and path.is_file() else None
        say(f"statistics of {bb}")
        st = backbone_stats(bb, fmts, have=have)
        if path and st is not have:
            _write_atomic(path, st.to_json().encode())
        stats[bb] = st
    structures = {}
    for key, cfg in configs.items():
        meta_path = cache_dir / f"structure-{key}-{tag}.json" if cache_dir else None
        graph_path = meta_path.with_suffix(".onnx") if meta_path else None
        if meta_path and graph_path and meta_path.is_file() and graph_path.is_file():
            structures[key] = _load_structure(meta_path, graph_path, Structure)
            continue
        adapter = f" adapter {cfg.synthetic_adapter}" if cfg.design == "adapter" else ""
        say(f"structure + graph export of {cfg.backbone} {cfg.design}{adapter}")
        s = build_structure(cfg)
        if meta_path and graph_path:
            _write_atomic(graph_path, s.graph)
            meta = {"format": "edgemti-sweep-structure", "format_version": 2, "key": s.key,
                    "backbone_tensors": [[n, list(sh)] for n, sh in s.backbone_tensors],
                    "task_tensors": [[n, list(sh)] for n, sh in s.task_tensors],
                    "graph_sha256": hashlib.sha256(s.graph).hexdigest()}
            _write_atomic(meta_path, json.dumps(meta, sort_keys=True).encode())
        structures[key] = s
    digest = hashlib.sha256(json.dumps([sorted(stats), sorted(structures), sorted(specs.items()), tag]).encode())
    return SweepAssets(stats, structures, dict(specs), digest.hexdigest()[:16])


def _load_structure(meta_path: Path, graph_path: Path, cls: type) -> Any:
    try:
        meta = json.loads(meta_path.read_bytes())
        graph = graph_path.read_bytes()
        ok = (meta.get("format") == "edgemti-sweep-structure" and meta.get("format_version") == 2
              and hashlib.sha256(graph).hexdigest() == meta.get("graph_sha256"))
        if ok:
            return cls(str(meta["key"]), tuple((str(n), tuple(int(d) for d in s)) for n, s in meta["backbone_tensors"]),
                       tuple((str(n), tuple(int(d) for d in s)) for n, s in meta["task_tensors"]), graph)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise FormatError(f"{meta_path}: corrupt structure cache (format, fields or graph checksum): delete "
                      f"{meta_path.parent} to rebuild it")


# -- evaluating one point ------------------------------------------------------------------------------------------

# capacity of auto-provisioned levels while pricing: the provisioner covers the need, the fit is judged apart
_EVAL_CAPACITY_BYTES = 1 << 40


class Evaluator:
    """Prices points against one :class:`SweepAssets`; caches specs, graphs and hardware models (per process)."""

    def __init__(self, assets: SweepAssets, max_models: int = 8) -> None:
        self.assets = assets
        self.max_models = max_models
        self._base: dict[str, ArchSpec] = {}
        self._specs: dict[tuple, ArchSpec] = {}
        self._graphs: dict[str, onnx.ModelProto] = {}
        self._models: dict[tuple, tuple] = {}  # -> (HwModel, requirements, activation peak, area)
        self._pricing: dict[tuple, tuple] = {}  # spec axes -> (pricing spec, its hash)
        self._builds: dict[tuple, tuple] = {}  # workload axes -> (structure key, AnalyticBuild)

    def spec(self, p: SweepPoint) -> ArchSpec:
        """The point's architecture: its design's spec with the point's spec axes applied."""
        from edgemti.hwmodel.spec import load_spec

        key = (p.design, *(getattr(p, a) for a in SPEC_AXES))
        if key not in self._specs:
            if p.design not in self._base:
                self._base[p.design] = load_spec(self.assets.specs.get(p.design) or None, design=p.design)
            ov: dict[str, Any] = {"technology.node_nm": p.node_nm, "dram.read_pj_per_bit": p.dram_pj_per_bit,
                                  "dram.write_pj_per_bit": p.dram_pj_per_bit, "clock.freq_hz": p.clock_hz,
                                  "dram.bandwidth_bytes_per_s": p.dram_bandwidth_bytes_per_s,
                                  "pe_array.vector": p.pe_vector, "pe_array.macs": p.pe_vector * p.pe_vector}
            ov.update({f"{lv}.objective": p.macro_objective for lv in ("sram", "rram_slc", "rram_mlc")})
            self._specs[key] = self._base[p.design].with_overrides(ov)
        return self._specs[key]

    def _pricing_spec(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` with auto-provisioned capacities lifted, and (when inference never touches DRAM) DRAM fixed,
        so points that differ only in DRAM share one hardware model: DRAM then only prices task switches."""
        ov: dict[str, Any] = {f"{lv}.capacity_bytes": _EVAL_CAPACITY_BYTES for lv in ("sram", "rram_slc", "rram_mlc")
                              if spec.on_chip_memory(lv).provision == "auto"}
        if spec.execution.dram_pack_passes_per_inference == 0:
            base = self._base[spec.design]
            ov.update({f"dram.{k}": getattr(base.dram, k) for k in ("read_pj_per_bit", "write_pj_per_bit",
                                                                    "bandwidth_bytes_per_s")})
        return spec.with_overrides(ov)

    def graph(self, key: str) -> onnx.ModelProto:
        if key not in self._graphs:
            from edgemti.formats.graph import load_graph

            self._graphs[key] = load_graph(self.assets.structures[key].graph)
        return self._graphs[key]

    def row(self, p: SweepPoint) -> dict:
        """The result row of one point; an error becomes a row with ``status = "error"`` (never raised)."""
        t0 = time.perf_counter()
        row: dict[str, Any] = {"id": p.point_id, **asdict(p)}
        try:
            row.update(self._evaluate(p))
            row.update(status="ok", error=None)
        except (EdgemtiError, ArithmeticError, ValueError, KeyError) as exc:
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
        except Exception as exc:  # a sweep goes on past one broken point; the row says what happened
            log.exception("point %s failed", p.point_id)
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
        row["eval_s"] = time.perf_counter() - t0
        return row

    def _evaluate(self, p: SweepPoint) -> dict:
        from edgemti.compiler.analytic import analytic_build, structure_key
        from edgemti.hwmodel import HwModel
        from edgemti.hwmodel.cost import ActionCounts, price

        bkey = (p.backbone, p.design, p.adapter, p.num_tasks, p.quant, p.sparsity_embedding, p.sparsity_transformer,
                p.seq_len)
        if bkey not in self._builds:
            cfg = p.compile_config()
            skey = structure_key(cfg)
            if len(self._builds) >= 64:
                self._builds.pop(next(iter(self._builds)))
            self._builds[bkey] = (skey, analytic_build(cfg, self.assets.stats[p.backbone], self.assets.structures[skey]))
        skey, ab = self._builds[bkey]
        spec = self.spec(p)
        skey_spec = (p.design, *(getattr(p, a) for a in SPEC_AXES))
        if skey_spec not in self._pricing:
            pspec = self._pricing_spec(spec)
            self._pricing[skey_spec] = (pspec, pspec.spec_hash())
        pspec, phash = self._pricing[skey_spec]
        mkey = (skey, p.quant, p.sparsity_embedding, p.sparsity_transformer, p.seq_len, phash)
        if mkey not in self._models:
            hw = HwModel(ab.workload, self.graph(skey), pspec)
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))
            self._models[mkey] = (hw, hw.requirements(), int(hw.activation_peak_bytes()), hw.area())
        hw, req, act_peak, area = self._models[mkey]
        inf = hw.inference(p.seq_len)
        largest = ab.workload.largest_task
        pack = ab.workload.task(largest).pack_bytes
        moved = hw.sram_set_bytes(largest)  # what HwModel.swap moves
        # HwModel.swap priced with the point's DRAM (the shared model may have another; see _pricing_spec)
        swap = price(ActionCounts(read_bits={"dram": 8.0 * moved}, write_bits={"sram": 8.0 * moved}), spec, hw.levels)
        keep = CONVENTIONS[p.energy_convention]
        e_inf = math.fsum(v for k, v in inf.energy_by_component_j.items() if keep(k))
        e_swap = math.fsum(v for k, v in swap.energy_by_component_j.items() if keep(k))
        need = {"rram_mlc": int(req["rram_mlc"]), "rram_slc": int(req["rram_slc"]), "sram": int(req["sram"]),
                "dram": ab.footprint.dram_bytes}
        cap = {lv: int(spec.memory(lv).capacity_bytes) for lv in need}
        over = [f"{lv} {need[lv]} > {cap[lv]} B" for lv in need if need[lv] > cap[lv]]
        return {
            "fits": not over, "overflow": "; ".join(over) or None, "cumulative_sparsity": ab.cumulative_sparsity,
            **{f"need_{lv}_bytes": n for lv, n in need.items()}, "pack_bytes": pack,
            "activation_peak_bytes": act_peak,
            "area_mm2": area.total_mm2, **{f"area_{lv}_mm2": area.levels[lv].area_mm2 for lv in area.levels},
            "area_pe_mm2": area.pe_array_mm2, "area_logic_mm2": area.logic_mm2,
            "inference_energy_j": e_inf, "inference_latency_s": inf.latency_s, "macs": int(inf.macs),
            "switch_energy_j": e_swap, "switch_latency_s": swap.latency_s,
            "energy_per_inference_j": e_inf + p.switch_rate * e_swap,
            "latency_per_inference_s": inf.latency_s + p.switch_rate * swap.latency_s,
        }


# -- storage: part files + a checksummed index, resumable --------------------------------------------------------

RESULTS_FORMAT, RESULTS_VERSION = "edgemti-sweep-results", 1
INDEX_FILE, PARTS_DIR, CACHE_DIR = "sweep.json", "parts", "cache"
_METRICS = {"status": str, "error": str, "eval_s": float, "fits": bool, "overflow": str, "cumulative_sparsity": float,
            **{f"need_{lv}_bytes": int for lv in ("rram_mlc", "rram_slc", "sram", "dram")}, "pack_bytes": int,
            "activation_peak_bytes": int, "area_mm2": float,
            **{f"area_{lv}_mm2": float for lv in ("sram", "rram_slc", "rram_mlc")}, "area_pe_mm2": float,
            "area_logic_mm2": float, "inference_energy_j": float, "inference_latency_s": float, "macs": int,
            "switch_energy_j": float, "switch_latency_s": float, "energy_per_inference_j": float,
            "latency_per_inference_s": float}
COLUMNS: dict[str, type] = {"id": str, **_POINT_TYPES, **_METRICS}


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


class ResultStore:
    """A results folder: ``sweep.json`` (format, version, resolved config, parts with row counts and sha256,
    sha256 of itself) and ``parts/part-NNNNNN.{parquet,csv}``, each written whole and renamed into place."""

    def __init__(self, folder: str | Path, storage: str | None = None) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / INDEX_FILE
        self.parts: list[dict] = []
        self.config: dict = {}
        if self.index_path.is_file():
            doc = self._read_index()
            self.parts, self.config, self.storage = doc["parts"], doc["config"], doc["storage"]
        else:
            self.storage = storage or ("parquet" if _have_pyarrow() else "csv")
        if self.storage == "parquet" and not _have_pyarrow():
            raise ConfigError(f"{self.folder} holds Parquet results and pyarrow is not installed: "
                              "pip install 'edgemti[sweep]'")

    def _read_index(self) -> dict:
        origin = str(self.index_path)
        try:
            doc = json.loads(self.index_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise FormatError(f"{origin}: not JSON ({exc}): the results index is corrupt") from None
        problems = []
        if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
            raise FormatError(f"{origin}: not an {RESULTS_FORMAT} index: is {self.folder} a sweep results folder?")
        if doc.get("format_version") != RESULTS_VERSION:
            problems.append(f"format_version {doc.get('format_version')!r} is not supported (this edgemti reads "
                            f"{RESULTS_VERSION})")
        body = {k: v for k, v in doc.items() if k != "sha256"}
        if hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != doc.get("sha256"):
            problems.append("sha256 does not match the content")
        if doc.get("storage") not in ("parquet", "csv"):
            problems.append(f"storage must be parquet or csv, got {doc.get('storage')!r}")
        parts = doc.get("parts")
        if not isinstance(parts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("file"), str) and "/" not in p["file"]
                and isinstance(p.get("rows"), int) and isinstance(p.get("sha256"), str) for p in parts):
            problems.append("parts must be a list of {file, rows, sha256} (file names inside parts/)")
        if not isinstance(doc.get("config"), dict):
            problems.append("config is missing")
        if problems:
            raise FormatError(f"{origin}: " + "; ".join(problems) + ": the results index is corrupt")
        return doc

    def _write_index(self) -> None:
        from edgemti import __version__

        body = {"format": RESULTS_FORMAT, "format_version": RESULTS_VERSION, "edgemti_version": __version__,
                "storage": self.storage, "columns": {k: v.__name__ for k, v in COLUMNS.items()},
                "config": self.config, "parts": self.parts}
        doc = {**body, "sha256": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}
        _write_atomic(self.index_path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())

    def set_config(self, config: dict) -> None:
        self.config = config
        self._write_index()

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` as one new part, then record it in the index (a crash in between loses only them)."""
        if not rows:
            return
        name = f"part-{len(self.parts):06d}.{self.storage}"
        path = self.folder / PARTS_DIR / name
        clean = [{k: row.get(k) for k in COLUMNS} for row in rows]
        if self.storage == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
            schema = pa.schema([(k, types[t]) for k, t in COLUMNS.items()])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp")
            pq.write_table(pa.Table.from_pylist(clean, schema=schema), tmp)
            data = tmp.read_bytes()
            tmp.replace(path)
        else:
            import csv
            import io

            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows([{k: "" if v is None else v for k, v in r.items()} for r in clean])
            data = buf.getvalue().encode()
            _write_atomic(path, data)
        self.parts.append({"file": name, "rows": len(clean), "sha256": hashlib.sha256(data).hexdigest()})
        self._write_index()

    def rows(self) -> list[dict]:
        """Every stored row, each part checked against its sha256 and row count."""
        out: list[dict] = []
        for part in self.parts:
            path = self.folder / PARTS_DIR / part["file"]
            if not path.is_file():
                raise FormatError(f"{path}: missing (listed in {self.index_path}): the results folder is incomplete")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise FormatError(f"{path}: sha256 does not match {INDEX_FILE}: the part is corrupt or was edited")
            rows = self._parse(data, path)
            if len(rows) != part["rows"]:
                raise FormatError(f"{path}: {len(rows)} rows, the index says {part['rows']}")
            out += rows
        return out

    def _parse(self, data: bytes, path: Path) -> list[dict]:
        if self.storage == "parquet":
            import io

            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            if table.column_names != list(COLUMNS):
                raise FormatError(f"{path}: columns {table.column_names[:4]}... are not this edgemti's sweep columns")
            return table.to_pylist()
        import csv
        import io

        reader = csv.DictReader(io.StringIO(data.decode()))
        if reader.fieldnames != list(COLUMNS):
            raise FormatError(f"{path}: columns are not this edgemti's sweep columns")
        conv: dict[type, Callable[[str], Any]] = {str: str, float: float, int: int, bool: lambda s: s == "True"}
        try:
            return [{k: None if v == "" else conv[COLUMNS[k]](v) for k, v in r.items()} for r in reader]
        except ValueError as exc:
            raise FormatError(f"{path}: bad value ({exc})") from None

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self.rows()}


# -- running a sweep -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepSummary:
    out: str
    points: int  # in the grid
    skipped: int  # already in the results folder
    evaluated: int
    errors: int
    executor: str
    workers: int
    prepare_s: float
    evaluate_s: float
    plot: str | None = None  # the Pareto PNG (None: not drawn, or no point to draw)

    @property
    def points_per_min(self) -> float:
        return 60.0 * self.evaluated / self.evaluate_s if self.evaluate_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "points_per_min": self.points_per_min}


_WORKER: dict[str, Evaluator] = {}


def _evaluator(assets: SweepAssets) -> Evaluator:
    """The process's evaluator of these assets (pool and Ray workers keep theirs across chunks)."""
    if assets.digest not in _WORKER:
        _WORKER.clear()
        _WORKER[assets.digest] = Evaluator(assets)
    return _WORKER[assets.digest]


def _pool_init(assets: SweepAssets) -> None:
    logging.getLogger("edgemti").setLevel(logging.ERROR)
    _evaluator(assets)


def _pool_chunk(chunk: list[SweepPoint]) -> list[dict]:
    return [next(iter(_WORKER.values())).row(p) for p in chunk]


def evaluate_chunk(chunk: list[SweepPoint], assets: SweepAssets) -> list[dict]:
    """Rows of ``chunk`` (the unit of work of every executor)."""
    ev = _evaluator(assets)
    return [ev.row(p) for p in chunk]


def _order_key(p: SweepPoint) -> tuple:
    """Neighbours share a structure, workload and hardware model, so a worker's caches hit."""
    return (p.backbone, p.design, p.adapter, p.num_tasks, p.quant, p.sparsity_embedding, p.sparsity_transformer,
            p.seq_len, *(getattr(p, a) for a in SPEC_AXES), p.switch_rate, p.energy_convention)


def _chunks(points: list[SweepPoint], workers: int, max_chunk: int = 64) -> list[list[SweepPoint]]:
    pts = sorted(points, key=_order_key)
    size = max(1, min(max_chunk, math.ceil(len(pts) / max(1, workers * 4))))
    return [pts[i:i + size] for i in range(0, len(pts), size)]


def run_sweep(grid: SweepConfig | str | Path, out: str | Path, ray_address: str | None = None,
              workers: int | None = None, progress: bool = False, flush_rows: int = 1000,
              step: Callable[[str], None] | None = None, storage: str | None = None,
              cache_dir: str | Path | None = None, plot: bool = True) -> SweepSummary:
    """Evaluate every point of ``grid`` not yet in ``out``; rows stream to ``out/parts`` as they come.

    ``ray_address``: None = a local process pool of ``workers`` (default: the CPU count; 1 = in this process);
    ``"auto"`` / ``"HOST:PORT"`` = that Ray cluster, ``"local"`` = a Ray instance on this machine (an already
    initialised Ray is used as it is). ``storage``: "parquet" (default with pyarrow) or "csv", for a new folder.
    ``cache_dir``: backbone statistics and graph exports (default ``out/cache``; share it between sweeps).
    ``plot``: redraw ``out/pareto.png`` from every row at the end.
    """
    config = grid if isinstance(grid, SweepConfig) else load_sweep(grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out, storage)
    points = sweep_points(config)
    done = store.done_ids()
    todo = [p for p in points if p.point_id not in done]
    store.set_config(config.to_dict())
    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    assets = prepare_assets(todo, config.specs, Path(cache_dir or out / CACHE_DIR), step) if todo else SweepAssets({}, {}, {})
    t1 = time.perf_counter()
    buf: list[dict] = []
    n_err = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="pt", smoothing=0.05)

    def take(rows: list[dict]) -> None:
        nonlocal n_err
        buf.extend(rows)
        n_err += sum(r["status"] != "ok" for r in rows)
        if bar is not None:
            bar.update(len(rows))
        if len(buf) >= flush_rows:
            store.append(buf)
            buf.clear()

    chunks = _chunks(todo, workers)
    executor = "ray" if ray_address else ("pool" if workers > 1 else "inline")
    try:
        if not todo:
            pass
        elif ray_address:
            workers = _run_ray(chunks, assets, ray_address, take)
        elif workers == 1:
            for c in chunks:
                take(evaluate_chunk(c, assets))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
            with ctx.Pool(workers, initializer=_pool_init, initargs=(assets,)) as pool:
                for rows in pool.imap_unordered(_pool_chunk, chunks):
                    take(rows)
    finally:
        store.append(buf)
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    png = None
    if plot:
        try:
            png = plot_sweep(out)["png"]
        except ConfigError as exc:  # nothing evaluated without an error: the rows say why
            log.warning("no Pareto plot: %s", exc)
    return SweepSummary(str(out), len(points), len(points) - len(todo), len(todo), n_err, executor, workers,
                        t1 - t0, t2 - t1, png)


def _run_ray(chunks: list[list[SweepPoint]], assets: SweepAssets, address: str,
             take: Callable[[list[dict]], None]) -> int:
    try:
        import ray
    except ImportError:
        raise ConfigError("a Ray sweep needs ray: pip install 'edgemti[sweep]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, logging_level=logging.WARNING,
                 include_dashboard=False)
    ref = ray.put(assets)
    remote = ray.remote(evaluate_chunk)
    pending = [remote.remote(c, ref) for c in chunks]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        take(ray.get(ready[0]))
    return int(ray.cluster_resources().get("CPU", 0))


# -- looking at the results: Pareto fronts --------------------------------------------------------------------------

OBJECTIVES = ("area_mm2", "energy_per_inference_j", "latency_per_inference_s")


def pareto_mask(values: Sequence[Sequence[float]]) -> list[bool]:
    """True for each point no other point dominates (<= in every objective, < in one); all minimised."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return []
    order = np.lexsort(v.T[::-1])  # by the first objective, ties by the next
    keep = np.zeros(len(v), dtype=bool)
    front = np.empty((0, v.shape[1]))
    for i in order:
        x = v[i]
        if len(front) and np.any(np.all(front <= x, axis=1)):
            continue  # sorted by the first objective, so only kept points can dominate x (equal points: first kept)
        keep[i] = True
        front = np.vstack([front, x])
    return keep.tolist()


def _paper_reference(rows: list[dict], specs: dict | None = None) -> dict | None:
    """Our vanilla FP32 point closest to the paper's setting: the normalisation of its Fig. 6 ratios."""
    cands = [r for r in rows if r["design"] == "vanilla" and r["quant"] == "fp32"]
    if not cands:
        return None
    shipped = _spec_defaults("vanilla", specs or {})
    from edgemti.hwmodel.targets import paper_targets

    n_tasks = len(paper_targets().tasks)
    # the setting of `report --paper`: albert-base, the paper's tasks, switch on every request, seq 128,
    # sparsity 0.5 / 0.5 (its defaults), the paper's energy convention
    return min(cands, key=lambda r: (r["backbone"] != "albert-base", r["num_tasks"] != n_tasks, r["switch_rate"] != 1.0,
                                     abs(r["sparsity_embedding"] - 0.5) + abs(r["sparsity_transformer"] - 0.5),
                                     r["seq_len"] != 128, r["energy_convention"] != "no_compute",
                                     sum(r[a] != v for a, v in shipped.items()), r["id"]))


def plot_sweep(out: str | Path, png: str | Path | None = None) -> dict:
    """Pareto fronts (area, energy/inference, latency/inference) of a results folder, as one PNG.

    Marked: the non-dominated points that fit (3-D front, drawn in every 2-D projection), and the paper's
    adapter design points placed by its Fig. 6 reductions (hwmodel/data/paper_fu2023.toml) against our vanilla
    FP32 point of the same setting, when the sweep has one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    if not (Path(out) / INDEX_FILE).is_file():
        raise ConfigError(f"{out} is not a sweep results folder (no {INDEX_FILE}): run a sweep into it first")
    store = ResultStore(out)
    rows = store.rows()
    ok = [r for r in rows if r["status"] == "ok"]
    fit = [r for r in ok if r["fits"]]
    front_mask = pareto_mask([tuple(r[k] for k in OBJECTIVES) for r in fit])
    front = [r for r, m in zip(fit, front_mask, strict=True) if m]
    png = Path(png) if png else Path(out) / "pareto.png"
    pairs = ((0, 1), (0, 2), (2, 1))
    scale = {"area_mm2": (1.0, "area (mm$^2$)"), "energy_per_inference_j": (1e3, "energy / inference (mJ)"),
             "latency_per_inference_s": (1e3, "latency / inference (ms)")}
    if not ok:
        raise ConfigError(f"{out}: no evaluated point to plot ({len(rows)} rows, all errors: "
                          f"{rows[0]['error'] if rows else 'none'})")
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    colors = {"adapter": "#d9534f", "vanilla": "#5b3fbf"}
    ref = _paper_reference(ok, store.config.get("specs"))
    marks: list[tuple[str, list[float]]] = []
    ours: list[tuple[str, dict]] = []
    if ref is not None:
        from edgemti.hwmodel.targets import paper_targets

        red = paper_targets().reduction
        for q, r in red.items():
            marks.append((f"paper adapter {q}", [ref["area_mm2"] / r["area"], ref["energy_per_inference_j"] /
                                                 r["energy_per_inference"], ref["latency_per_inference_s"] /
                                                 r["latency_per_inference"]]))
            same = [x for x in ok if x["design"] == "adapter" and x["quant"] == q and x["adapter"] == "64"
                    and all(x[k] == ref[k] for k in _POINT_TYPES if k not in ("design", "quant", "adapter"))]
            if same:  # ours at the paper's setting, beside where the paper's ratios would put it
                ours.append((f"ours: adapter {q}", same[0]))
    for ax, (i, j) in zip(axes, pairs, strict=True):
        kx, ky = OBJECTIVES[i], OBJECTIVES[j]
        sx, sy = scale[kx][0], scale[ky][0]
        for design, c in colors.items():
            pts = [r for r in ok if r["design"] == design]
            ax.scatter([r[kx] * sx for r in pts if r["fits"]], [r[ky] * sy for r in pts if r["fits"]], s=4,
                       color=c, alpha=0.25, lw=0, label=f"{design} ({len(pts)})")
            ax.scatter([r[kx] * sx for r in pts if not r["fits"]], [r[ky] * sy for r in pts if not r["fits"]],
                       s=4, color=c, alpha=0.08, lw=0, marker="x")
        for design, c in colors.items():  # the 2-D front of each design in this projection
            xys = [(r[kx] * sx, r[ky] * sy) for r in fit if r["design"] == design]
            line = sorted(xy for xy, m in zip(xys, pareto_mask(xys), strict=True) if m)
            if line:
                ax.plot(*zip(*line, strict=True), drawstyle="steps-post", color=c, lw=1.2, alpha=0.9,
                        label=f"{design}: 2-D front")
        ax.scatter([r[kx] * sx for r in front], [r[ky] * sy for r in front], s=14, facecolors="none", edgecolors="k",
                   lw=0.7, label=f"3-D Pareto front ({len(front)})")
        if ref is not None:
            ax.scatter([ref[kx] * sx], [ref[ky] * sy], marker="s", s=60, color="#5b3fbf", edgecolors="k",
                       label="ours: vanilla fp32 (paper's reference)")
            for (label, v), m in zip(marks, ("*", "P", "X"), strict=False):
                ax.scatter([v[i] * sx], [v[j] * sy], marker=m, s=120, color="gold", edgecolors="k", label=label)
            for (label, r), m in zip(ours, ("*", "P", "X"), strict=False):
                ax.scatter([r[kx] * sx], [r[ky] * sy], marker=m, s=120, color="#d9534f", edgecolors="k", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(scale[kx][1])
        ax.set_ylabel(scale[ky][1])
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{store.config.get('name', '')}: {len(ok)} points ({len(fit)} fit, x = does not fit), "
                 f"{len(rows) - len(ok)} errors; paper points = our vanilla fp32 / the paper's Fig. 6 reductions",
                 fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return {"png": str(png), "rows": len(rows), "ok": len(ok), "fits": len(fit), "pareto": len(front),
            "pareto_ids": [r["id"] for r in front], "paper_reference": ref["id"] if ref else None}
