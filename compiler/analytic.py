"""Analytic builds: a :class:`CompileConfig`'s footprint and hardware :class:`Workload` without writing images.

A compile prunes, quantizes and bitmask-encodes every tensor to learn four numbers per tensor: its shape, its
non-zero count, its value width and where it goes. All four follow from the model's shapes and two statistics,
so a design-space sweep computes them in microseconds instead of compiling:

* **non-zero codes per value format** (:class:`BackboneStats`, once per backbone and format): how many entries
  of each backbone tensor quantize to a non-zero code. Magnitude pruning (``compiler.prune``) zeroes the
  ``k = round(s * numel)`` smallest-|x| entries and quantization zeroes an entry iff its |x| is below the
  format's threshold; both are monotone in |x|, so the survivors of both are
  ``nnz = min(numel - k, nonzero_codes)`` for *any* sparsity target ``s``: no pass over the values per sparsity.
  (Ties at the pruning boundary share one |x|, hence one zero-ness: the count is exact, not an estimate.)
* **shapes per structure** (:class:`Structure`, once per backbone, design, adapter sizes and first task): which
  tensors the backbone and a task's pack hold, and the build's weightless ``graph.onnx`` (exported by the
  compiler's own ``weightless_graph``, so it is byte-identical to a compiled build's). The other tasks only
  change the classifier's rows, a symbolic axis of the graph, so one export serves every task list.

Byte counts then use the image format's own rules (``formats.quant.packed_nbytes``: values packed back to back,
rounded up to a byte per tensor; ``formats.bitmask.mask_nbytes``: one mask bit per element, rounded up per
tensor; packs dense). tests/test_sweep_analytic.py checks analytic == compiled exactly, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from edgemti.compiler.config import CompileConfig
from edgemti.compiler.footprint import Footprint
from edgemti.compiler.prune import group_of, is_prunable
from edgemti.errors import FormatError
from edgemti.formats.bitmask import mask_nbytes
from edgemti.formats.build import DATA_INPUTS
from edgemti.formats.manifest import IMAGE_BITS_PER_CELL
from edgemti.formats.quant import QFormat, packed_nbytes, parse_format, quantize
from edgemti.hwmodel.workload import TaskWorkload, WeightInfo, Workload, precision_key

log = logging.getLogger(__name__)
STATS_FORMAT = "edgemti-backbone-stats"
STATS_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorStat:
    """One encoder tensor: its shape, pruning group, and how many entries quantize to non-zero per format."""

    name: str
    shape: tuple[int, ...]
    group: str
    prunable: bool
    nonzero_codes: dict[str, int]  # value-format name -> entries with a non-zero code (before pruning)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def nnz(self, fmt: QFormat, sparsity: float) -> int:
        """Stored non-zeros after magnitude pruning to ``sparsity`` (when prunable) and quantization to ``fmt``."""
        if fmt.name not in self.nonzero_codes:
            raise FormatError(f"backbone stats of {self.name!r} lack format {fmt.name!r} (have "
                              f"{sorted(self.nonzero_codes)}): compute them with backbone_stats(formats=...)")
        n = self.numel
        k = int(round(float(sparsity) * n)) if self.prunable else 0  # the exact rule of compiler.prune
        return 0 if k >= n else min(n - k, self.nonzero_codes[fmt.name])


@dataclass(frozen=True)
class BackboneStats:
    """Per-tensor statistics of one backbone's weights (every encoder tensor; designs pick their backbone)."""

    backbone: str
    backbone_hash: str  # of the adapter design's backbone tensors (``AdapterModel.backbone_hash``)
    tensors: tuple[TensorStat, ...]
    _by_name: dict[str, TensorStat] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.name: t for t in self.tensors})

    def tensor(self, name: str) -> TensorStat:
        if name not in self._by_name:
            raise FormatError(f"backbone stats of {self.backbone!r} have no tensor {name!r}: stats and structure "
                              "come from different backbones")
        return self._by_name[name]

    @property
    def formats(self) -> set[str]:
        return set.intersection(*(set(t.nonzero_codes) for t in self.tensors)) if self.tensors else set()

    def to_json(self) -> str:
        body = {"backbone": self.backbone, "backbone_hash": self.backbone_hash,
                "tensors": [[t.name, list(t.shape), t.group, t.prunable, t.nonzero_codes] for t in self.tensors]}
        text = json.dumps(body, sort_keys=True)
        return json.dumps({"format": STATS_FORMAT, "format_version": STATS_FORMAT_VERSION,
                           "sha256": hashlib.sha256(text.encode()).hexdigest(), "body": body}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, origin: str = "<stats>") -> BackboneStats:
        """Parse and verify (format, version, checksum, every field); one FormatError lists the problems."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{origin}: not JSON ({exc}): delete the file to recompute it") from None
        problems = []
        if not isinstance(doc, dict):
            raise FormatError(f"{origin}: not a {STATS_FORMAT} document")
        if doc.get("format") != STATS_FORMAT:
            problems.append(f"format must be {STATS_FORMAT!r}, got {doc.get('format')!r}")
        if doc.get("format_version") != STATS_FORMAT_VERSION:
            problems.append(f"format_version {doc.get('format_version')!r} is not supported "
                            f"(this edgemti reads {STATS_FORMAT_VERSION})")
        body = doc.get("body")
        if not isinstance(body, dict):
            problems.append("body is missing")
        elif hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != doc.get("sha256"):
            problems.append("sha256 does not match the body: the file is corrupt")
        if problems:
            raise FormatError(f"{origin}: " + "; ".join(problems) + "; delete the file to recompute it")
        assert isinstance(body, dict)
        rows = []
        for i, r in enumerate(body.get("tensors", [])):
            ok = (isinstance(r, list) and len(r) == 5 and isinstance(r[0], str) and isinstance(r[1], list)
                  and all(isinstance(d, int) and d >= 0 for d in r[1]) and r[2] in ("embedding", "transformer")
                  and isinstance(r[3], bool) and isinstance(r[4], dict)
                  and all(isinstance(v, int) and v >= 0 for v in r[4].values()))
            if not ok:
                problems.append(f"tensors[{i}] is malformed: {str(r)[:80]}")
                continue
            rows.append(TensorStat(r[0], tuple(r[1]), r[2], r[3], dict(r[4])))
        for key in ("backbone", "backbone_hash"):
            if not isinstance(body.get(key), str):
                problems.append(f"{key} must be a string")
        if problems:
            raise FormatError(f"{origin}: " + "; ".join(problems[:5]) + "; delete the file to recompute it")
        return cls(str(body["backbone"]), str(body["backbone_hash"]), tuple(rows))


def backbone_stats(backbone: str, formats: Iterable[str], checkpoint: str | None = None,
                   have: BackboneStats | None = None) -> BackboneStats:
    """Load ``backbone`` once and count, per tensor, the entries that quantize to non-zero in each format.

    ``have``: stats computed before; only formats it lacks are counted (the model is loaded only then).
    """
    names = sorted({parse_format(f).name for f in formats})
    if have is not None and set(names) <= have.formats:
        return have
    from edgemti.tasks.backbones import build_model

    model = build_model(backbone, num_labels=2, design="adapter", checkpoint=checkpoint)
    params = {n: p.detach().cpu().numpy() for n, p in model.named_parameters() if n.startswith("encoder.")}
    rows = []
    for n, x in params.items():
        old = have.tensor(n).nonzero_codes if have is not None else {}
        counts = {f: old.get(f) if f in old else int(np.count_nonzero(quantize(x, parse_format(f))))
                  for f in sorted(set(names) | set(old))}
        rows.append(TensorStat(n, tuple(int(d) for d in x.shape), group_of(n), is_prunable(n, tuple(x.shape)),
                               {k: int(v) for k, v in counts.items() if v is not None}))
    return BackboneStats(backbone, model.backbone_hash(), tuple(rows))


@dataclass(frozen=True)
class Structure:
    """Which tensors a build of (backbone, design, adapter sizes, first task) holds where, and its graph.

    ``task_tensors`` are one pack's (name, shape) in pack order, the classifier's rows replaced per task
    (:meth:`pack_shapes`); ``graph`` is the build's weightless ``graph.onnx`` bytes.
    """

    key: str
    backbone_tensors: tuple[tuple[str, tuple[int, ...]], ...]
    task_tensors: tuple[tuple[str, tuple[int, ...]], ...]
    graph: bytes = field(repr=False)

    def pack_shapes(self, num_labels: int) -> list[tuple[str, tuple[int, ...]]]:
        return [(n, (num_labels, *s[1:]) if n.startswith("classifier.") else s) for n, s in self.task_tensors]


def structure_key(config: CompileConfig) -> str:
    """What a build's tensor layout and graph depend on (never values, formats, sparsities or later tasks)."""
    desc = {"backbone": config.backbone, "checkpoint": config.checkpoint, "design": config.design,
            "adapter": config.synthetic_adapter if config.design == "adapter" else None,
            "first_task": config.synthetic_tasks[0] if config.synthetic_tasks else None}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]


def build_structure(config: CompileConfig, graph: bytes | None = None) -> Structure:
    """Shapes and graph of a synthetic-task compile of ``config`` (``graph``: reuse cached bytes, skip the export)."""
    from edgemti.compiler.compile import weightless_graph
    from edgemti.compiler.packs import synthetic_tasks_tensors

    if not config.synthetic:
        raise FormatError("analytic builds are of synthetic-task configs (trained packs carry their own values)")
    model, tasks = synthetic_tasks_tensors(config)
    backbone = tuple((n, tuple(int(d) for d in t.shape)) for n, t in model.backbone_state().items())
    first = tasks[0]
    task_tensors = tuple((n, tuple(int(d) for d in a.shape)) for n, a in first.tensors.items())
    if graph is None:
        graph = weightless_graph(model, [t.shapes() for t in tasks])
    return Structure(structure_key(config), backbone, task_tensors, graph)


def num_labels(task: str) -> int:
    """Rows of a synthetic pack's classifier: the GLUE task's label count (1 for regression)."""
    from edgemti.tasks.glue import get_task

    spec = get_task(task)
    return 1 if spec.is_regression else len(spec.labels)


@dataclass(frozen=True)
class AnalyticBuild:
    """What ``compile_build`` would write, as numbers: the footprint and the hardware workload."""

    footprint: Footprint
    workload: Workload
    cumulative_sparsity: float  # stored zeros / backbone parameters (measured, after quantization)


def analytic_build(config: CompileConfig, stats: BackboneStats, structure: Structure) -> AnalyticBuild:
    """The footprint and :class:`Workload` of compiling ``config`` (synthetic tasks), from statistics only."""
    if structure.key != structure_key(config):
        raise FormatError(f"structure {structure.key} is not the structure of this config ({structure_key(config)})")
    fmt, pfmt = config.value_format, config.pack_format
    sparsity = {"embedding": config.sparsity_embedding, "transformer": config.sparsity_transformer}
    backbone = []
    mlc = slc = 0
    for name, shape in structure.backbone_tensors:
        st = stats.tensor(name)
        nnz = st.nnz(fmt, sparsity[st.group])
        backbone.append(WeightInfo(name, shape, nnz, fmt.bits, "rram"))
        mlc += packed_nbytes(nnz, fmt)
        slc += mask_nbytes(st.numel)
    tasks = []
    for task in config.synthetic_tasks:
        shapes = structure.pack_shapes(num_labels(task))
        infos = tuple(WeightInfo(n, s, math.prod(s), pfmt.bits, "sram") for n, s in shapes)
        tasks.append(TaskWorkload(task, sum(packed_nbytes(w.numel, pfmt) for w in infos), infos))
    dram = sum(t.pack_bytes for t in tasks)
    workload = Workload(design=config.design, backbone=tuple(backbone), tasks=tuple(tasks),
                        image_bytes={"rram_mlc": mlc, "rram_slc": slc, "dram": dram},
                        precision=precision_key(fmt.kind, fmt.bits), value_bits=fmt.bits,
                        activation_bits=config.resolved_activation_bits, max_seq_len=config.max_seq_len,
                        data_inputs=DATA_INPUTS)
    largest = max(tasks, key=lambda t: t.pack_bytes)
    numel = sum(w.numel for w in backbone)
    nnz = sum(w.nnz for w in backbone)
    fp = Footprint(design=config.design, quant=fmt.name, tasks=tuple(t.task for t in tasks), mlc_bytes=mlc,
                   slc_bytes=slc, sram_bytes=largest.pack_bytes, sram_task=largest.task, dram_bytes=dram,
                   backbone_numel=numel, backbone_nnz=nnz, mlc_bits_per_cell=IMAGE_BITS_PER_CELL["rram_mlc"])
    return AnalyticBuild(fp, workload, 1.0 - nnz / numel if numel else 0.0)
