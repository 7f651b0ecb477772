"""``manifest.json`` of a build: the typed map of every image, tensor and pack (docs/FORMATS.md is its prose).

:class:`Manifest` is the one dataclass of the format. Reading one is the schema's job, one way round:
:func:`edgemti.formats.manifest_schema.manifest_from_json` imports these dataclasses, checks everything at the
boundary and raises one :class:`FormatError` listing every problem, naming the file; this module never imports
the schema. Nothing deeper re-checks. The manifest's own digest is :mod:`edgemti.formats.digest` (its names are
re-exported here).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.formats.digest import DIGEST_KEY, canonical_json, manifest_digest
from edgemti.formats.quant import QFormat

__all__ = ["BUILD_FORMAT", "BUILD_FORMAT_VERSION", "DIGEST_KEY", "GRAPH_DATA_INPUTS", "GRAPH_OUTPUTS", "GROUPS",
           "IMAGE_BITS_PER_CELL", "IMAGE_MEMORY", "IMAGE_NAMES", "TEXT_FIELDS", "CompileSection", "FileEntry",
           "ImageEntry", "Manifest", "PackEntry", "PackTensor", "Span", "TensorEntry", "canonical_json",
           "derive_build_id", "manifest_digest", "pack_meta_sha256", "path_problem", "reseal"]

BUILD_FORMAT = "edgemti-build"
BUILD_FORMAT_VERSION = 3  # 2: manifest_sha256, files (tokenizer), strict schema; 3: build_id over every served
# field (labels, text_fields, tensor formats, tokenizer files, ...), packs[].meta_sha256, layout order checked
_ID_EXCLUDED = ("build_id", DIGEST_KEY, "provenance", "edgemti_version")  # what does not change an answer
IMAGE_NAMES = ("rram_mlc", "rram_slc", "dram")
IMAGE_MEMORY = {"rram_mlc": "RRAM_MLC2", "rram_slc": "RRAM_SLC", "dram": "DRAM"}
IMAGE_BITS_PER_CELL = {"rram_mlc": 2, "rram_slc": 1, "dram": 1}
GROUPS = ("embedding", "transformer")
_COMPILE_KEYS = ("quant", "value_format", "pack_format", "activation_bits", "sparsity_embedding",
                 "sparsity_transformer", "cumulative_sparsity", "max_seq_len")
GRAPH_DATA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
GRAPH_OUTPUTS = ("logits",)
TEXT_FIELDS = (("text",), ("text", "text_pair"))


def path_problem(rel: Any) -> str | None:
    """Why ``rel`` is not a safe path inside a build folder (relative, no ``..``, no drive), or None."""
    if not isinstance(rel, str) or not rel:
        return f"must be a non-empty relative path, got {rel!r}"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or "\\" in rel or "\x00" in rel or ":" in rel:
        return f"{rel!r} is not a relative path inside the build folder"
    if ".." in pure.parts:
        return f"{rel!r} climbs out of the build folder ('..')"
    return None


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
class FileEntry:
    """A file of the build other than the images and the graph (the tokenizer's): its size and sha256."""

    size_bytes: int
    sha256: str


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
    # the task's early-exit policy (edgemti/exit_policy.py); optional key, absent = the task has none
    exit: ExitPolicy | None = None
    # sha256 of the pack's own description (task, labels, is_regression, text_fields, tensor names, shapes and
    # formats) as the compiler took it from the pack; re-derived on every load (:func:`pack_meta_sha256`)
    meta_sha256: str = ""

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("task", "is_regression", "adapter", "backbone_hash", "synthetic", "image",
                                           "offset", "length", "sha256", "metrics")}
        d["labels"] = list(self.labels)
        d["text_fields"] = list(self.text_fields)
        d["tensors"] = [t.to_dict() for t in self.tensors]
        if self.exit is not None:
            d["exit"] = self.exit.to_dict()
        d["meta_sha256"] = self.meta_sha256 or pack_meta_sha256(d)
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
    files: dict[str, FileEntry] = field(default_factory=dict)  # relative path -> size, sha256 (tokenizer files)
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

        raise UnknownTaskError(f"task {task!r} is not in this build (it has {self.tasks}): compile its pack in",
                               options=("packs",))

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
        """The JSON object of ``manifest.json``, sealed with its own digest (``manifest_sha256``)."""
        d = {
            "format": self.format, "format_version": self.format_version, "edgemti_version": self.edgemti_version,
            "build_id": self.build_id, "design": self.design, "synthetic": self.synthetic,
            "backbone": self.backbone, "compile": self.compile.to_dict(), "graph": self.graph,
            "images": {k: asdict(v) for k, v in self.images.items()},
            "files": {k: asdict(self.files[k]) for k in sorted(self.files)},
            "tensors": [t.to_dict() for t in self.tensors],
            "packs": [p.to_dict() for p in self.packs],
            "provenance": self.provenance,
        }
        d = json.loads(json.dumps(d, default=str))  # exactly what a reader will parse (tuples -> lists, ...)
        d[DIGEST_KEY] = manifest_digest(d)
        return d

    def with_build_id(self) -> Manifest:
        """This manifest with its ``build_id`` derived from its content (how the compiler and add-pack seal one)."""
        return replace(self, build_id=derive_build_id(self.to_dict()))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"



def pack_meta_sha256(p: PackEntry | dict) -> str:
    """sha256 of what a pack says about itself (canonical JSON of task, labels, is_regression, text_fields, its
    early-exit policy and every tensor's name, shape and format): recorded by the compiler, re-derived by the
    reader. ``p``: the entry, or its JSON object."""
    d = p.to_dict() if isinstance(p, PackEntry) else p
    return hashlib.sha256(canonical_json({
        "task": d["task"], "labels": list(d["labels"]), "is_regression": d["is_regression"],
        "text_fields": list(d.get("text_fields", ["text"])), "exit": d.get("exit"),
        "tensors": [[t["name"], list(t["shape"]), t["format"]] for t in d["tensors"]]})).hexdigest()


def reseal(d: dict) -> dict:
    """``d`` (a manifest's JSON object, edited) made self-consistent again: every pack's ``meta_sha256``, the
    ``build_id`` and the digest re-derived -- what anyone who knows the format can do, which is why a build is
    signed with a key (:mod:`edgemti.formats.signature`) when that matters. Tests use it to play that attacker."""
    for p in d.get("packs", []):
        p["meta_sha256"] = pack_meta_sha256(p)
    d["build_id"] = derive_build_id(d)
    d[DIGEST_KEY] = manifest_digest(d)
    return d


def derive_build_id(d: dict) -> str:
    """The build's id from a manifest's JSON object: sha256 of its canonical encoding without ``build_id``,
    ``manifest_sha256``, ``provenance`` and ``edgemti_version`` -- so it covers every field an answer depends on
    (images, graph, compile settings, tokenizer files, backbone tensors and their formats, every pack with its
    labels and text fields), and two builds that can answer differently never share an id."""
    return hashlib.sha256(canonical_json({k: v for k, v in d.items() if k not in _ID_EXCLUDED})).hexdigest()
