"""A sweep's design point: :class:`SweepPoint`, one fully resolved design (every spec-derived value explicit),
its validation and canonical spelling, and the vocabularies it draws from (task order, energy conventions, spec
axes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from edgemti.errors import ConfigError

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
POINT_TYPES = {"design": str, "backbone": str, "quant": str, "sparsity_embedding": float,
                "sparsity_transformer": float, "adapter": str, "num_tasks": int, "switch_rate": float, "seq_len": int,
                "node_nm": int, "macro_objective": str, "dram_pj_per_bit": float, "dram_bandwidth_bytes_per_s": float,
                "pe_vector": int, "clock_hz": float, "energy_convention": str}


def _canonical(p: SweepPoint) -> None:
    """One spelling per value (``Q3.5`` -> ``q3.5``, ``64,64`` -> ``64``), so equal points share one id."""
    from edgemti.formats.quant import parse_format
    from edgemti.tasks.adapter_spec import AdapterSpec

    object.__setattr__(p, "quant", parse_format(p.quant).name)
    if p.design == "adapter":
        a = AdapterSpec.parse(p.adapter)
        object.__setattr__(p, "adapter", str(a.attn_bottleneck) if a.attn_bottleneck == a.ffn_bottleneck
                           else f"{a.attn_bottleneck},{a.ffn_bottleneck}")


def _point_problems(p: SweepPoint) -> list[str]:
    from edgemti.formats.quant import parse_format
    from edgemti.tasks.adapter_spec import AdapterSpec

    out = []
    for name, want in POINT_TYPES.items():
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
