"""``manifest.json`` of a build: the typed map of every image, tensor and pack (docs/FORMATS.md is its prose).

:class:`Manifest` is the one dataclass of the format; :meth:`Manifest.from_json` checks everything at the
boundary and raises one :class:`FormatError` listing every problem, naming the file. Nothing deeper re-checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.formats.quant import QFormat

BUILD_FORMAT = "edgemti-build"
BUILD_FORMAT_VERSION = 1
IMAGE_NAMES = ("rram_mlc", "rram_slc", "dram")
IMAGE_MEMORY = {"rram_mlc": "RRAM_MLC2", "rram_slc": "RRAM_SLC", "dram": "DRAM"}
IMAGE_BITS_PER_CELL = {"rram_mlc": 2, "rram_slc": 1, "dram": 1}
GROUPS = ("embedding", "transformer")
_TOP_KEYS = ("format", "format_version", "edgemti_version", "build_id", "design", "synthetic", "backbone", "compile",
             "graph", "images", "tensors", "packs")
_BACKBONE_KEYS = ("name", "family", "pretrained", "hash", "pooling", "hf_config", "tokenizer", "num_params")
_COMPILE_KEYS = ("quant", "value_format", "pack_format", "activation_bits", "sparsity_embedding",
                 "sparsity_transformer", "cumulative_sparsity", "max_seq_len")
_GRAPH_KEYS = ("file", "sha256", "data_inputs", "output")


@dataclass(frozen=True)
class Span:
    """``length`` bytes at ``offset`` of image ``image``."""

    image: str
    offset: int
    length: int

    def __post_init__(self) -> None:
        if self.image not in IMAGE_NAMES or self.offset < 0 or self.length < 0:
            raise ConfigError(f"Span: bad span {self.image!r} offset {self.offset} length {self.length}")

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class ImageEntry:
    file: str
    size_bytes: int
    sha256: str
    memory: str
    bits_per_cell: int

    @property
    def cells(self) -> int:
        """Memory cells the image occupies (``8 / bits_per_cell`` cells per byte)."""
        return self.size_bytes * 8 // self.bits_per_cell


@dataclass(frozen=True)
class TensorEntry:
    """A backbone tensor stored bitmask-encoded in RRAM (values in MLC, mask in SLC)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    nnz: int
    format: QFormat
    group: str
    values: Span
    mask: Span
    pruned: bool
    sparsity_target: float
    saturated: int
    quant_max_abs_err: float

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / self.numel if self.numel else 0.0

    def to_dict(self) -> dict:
        return _tensor_dict(self)


def _tensor_dict(t: TensorEntry | PackTensor) -> dict:
    """JSON form of a tensor entry: the dataclass fields, shape as a list, the value format as its dict."""
    d = asdict(t)
    d["shape"] = list(t.shape)
    d["format"] = t.format.to_dict()
    return d


@dataclass(frozen=True)
class PackTensor:
    """A dense task tensor, ``offset`` relative to its pack's start."""

    name: str
    shape: tuple[int, ...]
    numel: int
    format: QFormat
    offset: int
    length: int
    saturated: int
    quant_max_abs_err: float

    def to_dict(self) -> dict:
        return _tensor_dict(self)


@dataclass(frozen=True)
class PackEntry:
    """One task's pack in the DRAM image."""

    task: str
    labels: tuple[str, ...]
    is_regression: bool
    adapter: dict | None
    backbone_hash: str
    synthetic: bool
    image: str
    offset: int
    length: int
    sha256: str
    tensors: tuple[PackTensor, ...]
    metrics: dict = field(default_factory=dict)
    # the request fields this task reads: ("text",) or ("text", "text_pair"); decides single vs pair input
    text_fields: tuple[str, ...] = ("text",)

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("task", "is_regression", "adapter", "backbone_hash", "synthetic", "image",
                                           "offset", "length", "sha256", "metrics")}
        d["labels"] = list(self.labels)
        d["text_fields"] = list(self.text_fields)
        d["tensors"] = [t.to_dict() for t in self.tensors]
        return d


@dataclass(frozen=True)
class CompileSection:
    """The manifest's ``compile`` object, typed: how the build was compiled (docs/FORMATS.md).

    ``prune``, ``stored_sparsity`` and ``config`` are provenance (the pruning report, the resolved
    ``CompileConfig``): kept as written, never read by the runtime or the hardware model. ``to_dict`` gives back
    exactly the JSON object it was parsed from (the build id hashes it).
    """

    quant: str  # the value format's name, e.g. "q3.5", "fp32"
    value_format: QFormat  # backbone values
    pack_format: QFormat  # task-pack values
    activation_bits: int
    sparsity_embedding: float  # requested fractions of zeros, in [0, 1)
    sparsity_transformer: float
    cumulative_sparsity: float
    max_seq_len: int  # tokens; the SRAM activation working set is sized for it
    pack_quant: str | None = None  # the pack format's name (None in builds that did not record it)
    prune: dict[str, Any] | None = None
    stored_sparsity: float | None = None
    config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        problems = _compile_problems(self)
        if problems:
            raise ConfigError("CompileSection: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"quant": self.quant, "value_format": self.value_format.to_dict()}
        if self.pack_quant is not None:
            d["pack_quant"] = self.pack_quant
        d.update({"pack_format": self.pack_format.to_dict(), "activation_bits": self.activation_bits,
                  "sparsity_embedding": self.sparsity_embedding, "sparsity_transformer": self.sparsity_transformer,
                  "cumulative_sparsity": self.cumulative_sparsity, "max_seq_len": self.max_seq_len})
        for k in ("prune", "stored_sparsity", "config"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> CompileSection:
        """Parse the JSON object; one :class:`FormatError` lists every problem (missing keys, bad formats, ranges)."""
        if not isinstance(d, dict):
            raise FormatError(f"compile: must be an object, got {type(d).__name__}")
        problems = [f"missing key {k!r}" for k in _COMPILE_KEYS if k not in d]
        unknown = sorted(set(d) - set(_COMPILE_KEYS) - {"pack_quant", "prune", "stored_sparsity", "config"})
        problems += [f"unknown key {k!r}" for k in unknown]
        fmts: dict[str, QFormat] = {}
        for k in ("value_format", "pack_format"):
            if k in d:
                try:
                    fmts[k] = QFormat.from_dict(d[k])
                except FormatError as exc:
                    problems.append(f"{k}: {exc}")
        nums: dict[str, Any] = {}
        for k, typ in (("activation_bits", int), ("max_seq_len", int), ("sparsity_embedding", float),
                       ("sparsity_transformer", float), ("cumulative_sparsity", float), ("stored_sparsity", float)):
            v = d.get(k)
            if v is None:
                continue
            ok = isinstance(v, int) if typ is int else isinstance(v, int | float)
            if isinstance(v, bool) or not ok:
                problems.append(f"{k} must be {'an int' if typ is int else 'a number'}, got {v!r}")
            else:
                nums[k] = typ(v)
        for k in ("quant", "pack_quant"):
            if k in d and d[k] is not None and not isinstance(d[k], str):
                problems.append(f"{k} must be a string, got {d[k]!r}")
        for k in ("prune", "config"):
            if d.get(k) is not None and not isinstance(d[k], dict):
                problems.append(f"{k} must be an object, got {type(d[k]).__name__}")
        if problems:
            raise FormatError("compile: " + "; ".join(problems))
        try:
            return cls(quant=d["quant"], value_format=fmts["value_format"], pack_format=fmts["pack_format"],
                       activation_bits=nums["activation_bits"], sparsity_embedding=nums["sparsity_embedding"],
                       sparsity_transformer=nums["sparsity_transformer"],
                       cumulative_sparsity=nums["cumulative_sparsity"], max_seq_len=nums["max_seq_len"],
                       pack_quant=d.get("pack_quant"), prune=d.get("prune"),
                       stored_sparsity=nums.get("stored_sparsity"), config=d.get("config"))
        except (KeyError, ConfigError) as exc:
            raise FormatError(f"compile: {exc}") from None


def _compile_problems(c: CompileSection) -> list[str]:
    problems = []
    if c.activation_bits not in range(2, 33):
        problems.append(f"activation_bits must be in [2, 32], got {c.activation_bits}")
    if c.max_seq_len <= 0:
        problems.append(f"max_seq_len must be > 0, got {c.max_seq_len}")
    for k in ("sparsity_embedding", "sparsity_transformer", "cumulative_sparsity"):
        if not 0.0 <= getattr(c, k) < 1.0:
            problems.append(f"{k} must be in [0, 1), got {getattr(c, k)}")
    if c.stored_sparsity is not None and not 0.0 <= c.stored_sparsity <= 1.0:
        problems.append(f"stored_sparsity must be in [0, 1], got {c.stored_sparsity}")
    return problems


@dataclass(frozen=True)
class Manifest:
    """The whole build map. ``backbone``/``graph`` are JSON objects with the keys of docs/FORMATS.md; ``compile`` is
    typed (:class:`CompileSection`)."""

    edgemti_version: str
    build_id: str
    design: str
    synthetic: bool
    backbone: dict[str, Any]
    compile: CompileSection
    graph: dict[str, Any]
    images: dict[str, ImageEntry]
    tensors: tuple[TensorEntry, ...]
    packs: tuple[PackEntry, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = BUILD_FORMAT
    format_version: int = BUILD_FORMAT_VERSION

    # -- lookups -------------------------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        return [p.task for p in self.packs]

    def pack(self, task: str) -> PackEntry:
        for p in self.packs:
            if p.task == task:
                return p
        from edgemti.errors import UnknownTaskError

        raise UnknownTaskError(f"task {task!r} is not in this build (it has {self.tasks}): compile it in with --pack")

    def tensor(self, name: str) -> TensorEntry:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def value_format(self) -> QFormat:
        return self.compile.value_format

    @property
    def pack_format(self) -> QFormat:
        return self.compile.pack_format

    # -- JSON ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": self.format, "format_version": self.format_version, "edgemti_version": self.edgemti_version,
            "build_id": self.build_id, "design": self.design, "synthetic": self.synthetic,
            "backbone": self.backbone, "compile": self.compile.to_dict(), "graph": self.graph,
            "images": {k: asdict(v) for k, v in self.images.items()},
            "tensors": [t.to_dict() for t in self.tensors],
            "packs": [p.to_dict() for p in self.packs],
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, origin: str = "manifest.json") -> Manifest:
        try:
            d = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{origin}: not valid JSON ({exc}): the build is corrupt, recompile it") from None
        return cls.from_dict(d, origin)

    @classmethod
    def from_dict(cls, d: Any, origin: str = "manifest.json") -> Manifest:
        if not isinstance(d, dict) or d.get("format") != BUILD_FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise FormatError(f"{origin}: format is {got!r}, expected {BUILD_FORMAT!r}: not an edgemti build manifest")
        if d.get("format_version") != BUILD_FORMAT_VERSION:
            from edgemti import __version__

            raise FormatError(f"{origin}: {BUILD_FORMAT} format_version {d.get('format_version')!r} is not supported "
                              f"(edgemti {__version__} reads version {BUILD_FORMAT_VERSION}): recompile the build")
        problems: list[str] = []
        for key in _TOP_KEYS:
            if key not in d:
                problems.append(f"missing key {key!r}")
        for sect, keys in (("backbone", _BACKBONE_KEYS), ("graph", _GRAPH_KEYS)):
            if isinstance(d.get(sect), dict):
                problems += [f"{sect}: missing key {k!r}" for k in keys if k not in d[sect]]
            elif sect in d:
                problems.append(f"{sect}: must be an object")
        if d.get("design") not in (None, "adapter", "vanilla"):
            problems.append(f"design must be 'adapter' or 'vanilla', got {d.get('design')!r}")
        compile_section = None
        if "compile" in d:
            try:
                compile_section = CompileSection.from_dict(d["compile"])
            except FormatError as exc:
                problems.append(str(exc))
        if problems:
            raise FormatError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems))
        try:
            images = {}
            for name, e in d["images"].items():
                if name not in IMAGE_NAMES:
                    problems.append(f"unknown image {name!r} (known: {list(IMAGE_NAMES)})")
                    continue
                images[name] = ImageEntry(str(e["file"]), int(e["size_bytes"]), str(e["sha256"]), str(e["memory"]),
                                          int(e["bits_per_cell"]))
            problems += [f"images: missing {n!r}" for n in IMAGE_NAMES if n not in images]
            tensors = tuple(_tensor(t) for t in d["tensors"])
            packs = tuple(_pack(p) for p in d["packs"])
        except (KeyError, TypeError, ValueError, ConfigError, FormatError) as exc:
            raise FormatError(f"{origin}: malformed entry ({type(exc).__name__}: {exc}): the build is corrupt, "
                              "recompile it") from None
        for t in tensors:
            if t.numel != _prod(t.shape):
                problems.append(f"tensor {t.name}: numel {t.numel} != prod(shape {list(t.shape)})")
            if not 0 <= t.nnz <= t.numel:
                problems.append(f"tensor {t.name}: nnz {t.nnz} outside [0, {t.numel}]")
            if t.values.image != "rram_mlc" or t.mask.image != "rram_slc":
                problems.append(f"tensor {t.name}: values must be in rram_mlc and mask in rram_slc")
        names = [p.task for p in packs]
        if len(set(names)) != len(names):
            problems.append(f"duplicate tasks in packs: {names}")
        if problems:
            raise FormatError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems))
        assert compile_section is not None  # "compile" is a required key, checked above
        return cls(edgemti_version=str(d["edgemti_version"]), build_id=str(d["build_id"]), design=str(d["design"]),
                   synthetic=bool(d["synthetic"]), backbone=dict(d["backbone"]), compile=compile_section,
                   graph=dict(d["graph"]), images=images, tensors=tensors, packs=packs,
                   provenance=dict(d.get("provenance") or {}))


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _span(d: dict) -> Span:
    return Span(str(d["image"]), int(d["offset"]), int(d["length"]))


def _tensor(t: dict) -> TensorEntry:
    return TensorEntry(name=str(t["name"]), shape=tuple(int(s) for s in t["shape"]), numel=int(t["numel"]),
                       nnz=int(t["nnz"]), format=QFormat.from_dict(t["format"]), group=str(t["group"]),
                       values=_span(t["values"]), mask=_span(t["mask"]), pruned=bool(t["pruned"]),
                       sparsity_target=float(t["sparsity_target"]), saturated=int(t["saturated"]),
                       quant_max_abs_err=float(t["quant_max_abs_err"]))


def _pack(p: dict) -> PackEntry:
    tensors = tuple(PackTensor(name=str(t["name"]), shape=tuple(int(s) for s in t["shape"]), numel=int(t["numel"]),
                               format=QFormat.from_dict(t["format"]), offset=int(t["offset"]), length=int(t["length"]),
                               saturated=int(t["saturated"]), quant_max_abs_err=float(t["quant_max_abs_err"]))
                    for t in p["tensors"])
    return PackEntry(task=str(p["task"]), labels=tuple(str(x) for x in p["labels"]),
                     is_regression=bool(p["is_regression"]), adapter=p["adapter"],
                     backbone_hash=str(p["backbone_hash"]), synthetic=bool(p["synthetic"]), image=str(p["image"]),
                     offset=int(p["offset"]), length=int(p["length"]), sha256=str(p["sha256"]), tensors=tensors,
                     metrics=dict(p.get("metrics") or {}),
                     text_fields=tuple(str(x) for x in p.get("text_fields", ("text",))))
