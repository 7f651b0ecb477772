"""The schema of ``manifest.json``: every field checked by type and range, every problem collected.

:func:`manifest_from_json` / :func:`manifest_from_dict` (the one way a manifest is read) check a
parsed JSON object against the format of docs/FORMATS.md, its own digest and its ``build_id``, and builds the typed
entries; :class:`_Fields` gathers ``where: why`` for every bad field so one :class:`FormatError` names them all.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.formats.digest import DIGEST_KEY, manifest_digest
from edgemti.formats.manifest import (
    BUILD_FORMAT,
    BUILD_FORMAT_VERSION,
    GRAPH_DATA_INPUTS,
    GRAPH_OUTPUTS,
    GROUPS,
    IMAGE_BITS_PER_CELL,
    IMAGE_MEMORY,
    IMAGE_NAMES,
    TEXT_FIELDS,
    CompileSection,
    FileEntry,
    ImageEntry,
    Manifest,
    PackEntry,
    PackTensor,
    Span,
    TensorEntry,
    derive_build_id,
    pack_meta_sha256,
    path_problem,
)
from edgemti.formats.quant import QFormat, packed_nbytes

_TOP_KEYS = ("format", "format_version", "edgemti_version", "build_id", "design", "synthetic", "backbone", "compile",
             "graph", "images", "tensors", "packs")
_BACKBONE_KEYS = ("name", "family", "pretrained", "hash", "pooling", "hf_config", "tokenizer", "num_params")
_GRAPH_KEYS = ("file", "sha256", "data_inputs", "output")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_DIM = 1 << 31  # no tensor axis of a build is anywhere near this; a bigger one is corruption


def manifest_from_json(text: str | bytes, origin: str = "manifest.json") -> Manifest:
    """The :class:`Manifest` of the JSON text of file ``origin`` (see :func:`manifest_from_dict`)."""
    try:
        d = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{origin}: not valid JSON ({exc}): the build is corrupt, recompile it") from None
    return manifest_from_dict(d, origin)


def manifest_from_dict(d: Any, origin: str = "manifest.json") -> Manifest:
    """The :class:`Manifest` of the JSON object ``d`` of file ``origin``, every field checked by type and range, the
    manifest's own digest and its ``build_id``; one :class:`FormatError` lists every problem."""
    return _parse(Manifest, d, origin)


def _parse(cls: type[Manifest], d: Any, origin: str) -> Manifest:
    if not isinstance(d, dict) or d.get("format") != BUILD_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise FormatError(f"{origin}: format is {got!r}, expected {BUILD_FORMAT!r}: not an edgemti build manifest")
    if d.get("format_version") != BUILD_FORMAT_VERSION:
        from edgemti import __version__

        raise FormatError(f"{origin}: {BUILD_FORMAT} format_version {d.get('format_version')!r} is not supported "
                          f"(edgemti {__version__} reads version {BUILD_FORMAT_VERSION}): recompile the build")
    problems: list[str] = []
    if not isinstance(d.get(DIGEST_KEY), str):
        problems.append(f"missing {DIGEST_KEY!r} (the manifest's own digest)")
    elif d[DIGEST_KEY] != manifest_digest(d):
        problems.append(f"{DIGEST_KEY} {d[DIGEST_KEY][:12]}... does not match the manifest's content "
                        f"({manifest_digest(d)[:12]}...): manifest.json was edited or corrupted")
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
    if problems and any(k not in d for k in _TOP_KEYS):
        raise FormatError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems))
    f = _Fields(problems)
    f.check("edgemti_version", d["edgemti_version"], "str")
    f.check("build_id", d["build_id"], "hex64")
    f.check("synthetic", d["synthetic"], "bool")
    bb = d["backbone"] if isinstance(d["backbone"], dict) else {}
    for k, kind in (("name", "str"), ("family", "str"), ("pretrained", "bool"), ("hash", "str"),
                    ("pooling", "str"), ("hf_config", "dict"), ("num_params", "count")):
        if k in bb:
            f.check(f"backbone.{k}", bb[k], kind)
    if bb.get("tokenizer") is not None:
        f.check("backbone.tokenizer", bb["tokenizer"], "path")
    graph = d["graph"] if isinstance(d["graph"], dict) else {}
    if "file" in graph:
        f.check("graph.file", graph["file"], "path")
    if "sha256" in graph:
        f.check("graph.sha256", graph["sha256"], "hex64")
    if "data_inputs" in graph and (not isinstance(graph["data_inputs"], list) or not graph["data_inputs"]
                                   or any(x not in GRAPH_DATA_INPUTS for x in graph["data_inputs"])):
        problems.append(f"graph.data_inputs must be a non-empty list of {list(GRAPH_DATA_INPUTS)}, got "
                        f"{graph['data_inputs']!r}")
    if "output" in graph and graph["output"] not in GRAPH_OUTPUTS:
        problems.append(f"graph.output must be one of {list(GRAPH_OUTPUTS)}, got {graph['output']!r}")
    images = _images(d["images"], f)
    files = _files(d.get("files", {}), f)
    tensors = tuple(t for t in (_tensor(t, i, f, images) for i, t in enumerate(f.items("tensors", d["tensors"])))
                    if t is not None)
    packs = tuple(p for p in (_pack(p, i, f, images) for i, p in enumerate(f.items("packs", d["packs"])))
                  if p is not None)
    if "provenance" in d and not isinstance(d["provenance"], dict):
        problems.append(f"provenance must be an object, got {_short(d['provenance'])}")
    if compile_section is not None:
        problems += _format_problems(compile_section, tensors, packs)
    if len(tensors) == len(f.items("tensors", d["tensors"])) and len(packs) == len(f.items("packs", d["packs"])):
        problems += _layout_problems(images, tensors, packs)  # on whole tables only (else a dropped bad entry shows)
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        problems.append("duplicate backbone tensor names")
    tasks = [p.task for p in packs]
    if len(set(tasks)) != len(tasks):
        problems.append(f"duplicate tasks in packs: {tasks}")
    spans = [(f"pack {p.task}", Span(p.image, p.offset, p.length)) for p in packs]
    spans += [(f"tensor {t.name} {k}", getattr(t, k)) for t in tensors for k in ("values", "mask")]
    problems += _overlaps(spans)
    if isinstance(bb.get("hash"), str):
        problems += [f"packs[{p.task}]: backbone_hash {p.backbone_hash[:12]} is not the build's backbone "
                     f"{bb['hash'][:12]}" for p in packs if p.backbone_hash != bb["hash"]]
    if not problems:
        derived = derive_build_id(d)
        if derived != d["build_id"]:
            problems.append(f"build_id {d['build_id'][:12]}... is not the one its content gives ({derived[:12]}...: "
                            "images, graph, compile settings, tokenizer files, tensors, packs)")
    if problems:
        raise FormatError(f"{origin}: {len(problems)} problem(s): " + "; ".join(problems[:40])
                          + (f"; ... and {len(problems) - 40} more" if len(problems) > 40 else "")
                          + ": the build is corrupt or was edited, recompile it")
    assert compile_section is not None  # "compile" is a required key, checked above
    return cls(edgemti_version=d["edgemti_version"], build_id=d["build_id"], design=d["design"],
               synthetic=d["synthetic"], backbone=dict(d["backbone"]), compile=compile_section,
               graph=dict(d["graph"]), images=images, tensors=tensors, packs=packs,
               provenance=dict(d.get("provenance") or {}), files=files)


def _format_problems(c: CompileSection, tensors: tuple[TensorEntry, ...], packs: tuple[PackEntry, ...]) -> list[str]:
    """Every tensor's declared format is the one the compile settings give (backbone: value_format, packs:
    pack_format): the compiler quantizes every tensor of a kind with one format."""
    out = [f"tensor {t.name}: format {t.format.name} is not the build's value_format {c.value_format.name}"
           for t in tensors if t.format != c.value_format]
    out += [f"pack {p.task} tensor {t.name}: format {t.format.name} is not the build's pack_format "
            f"{c.pack_format.name}" for p in packs for t in p.tensors if t.format != c.pack_format]
    return out[:10]


def _layout_problems(images: dict[str, ImageEntry], tensors: tuple[TensorEntry, ...],
                     packs: tuple[PackEntry, ...]) -> list[str]:
    """The compiler lays regions out back to back in manifest order from offset 0 and each image ends with its last
    region: a span that moved (two tensors' spans swapped, a pack pointed at another's bytes) shows here."""
    out = []
    regions: list[tuple[str, str, list[tuple[str, Span]]]] = [
        ("rram_mlc", "values", [(f"tensor {t.name} values", t.values) for t in tensors]),
        ("rram_slc", "masks", [(f"tensor {t.name} mask", t.mask) for t in tensors]),
        ("dram", "packs", [(f"pack {p.task}", Span(p.image, p.offset, p.length)) for p in packs])]
    for image, kind, spans in regions:
        end = 0
        for name, s in spans:
            if s.offset != end:
                out.append(f"{name} starts at {image}[{s.offset}], the previous region ends at {end}: {kind} are "
                           "laid out back to back in manifest order")
                break
            end = s.end
        else:
            if image in images and images[image].size_bytes != end:
                out.append(f"image {image} is {images[image].size_bytes} bytes, its {kind} end at {end}")
    for p in packs:
        end = 0
        for t in p.tensors:
            if t.offset != end:
                out.append(f"pack {p.task} tensor {t.name} starts at {t.offset}, the previous one ends at {end}")
                break
            end = t.offset + t.length
        else:
            if end != p.length:
                out.append(f"pack {p.task}: its tensors end at {end}, the pack is {p.length} bytes")
    return out[:10]


def _overlaps(spans: list[tuple[str, Span]]) -> list[str]:
    """Regions of one image that share bytes (each region of a build owns its bytes)."""
    out = []
    for image in IMAGE_NAMES:
        mine = sorted((s.offset, s.end, name) for name, s in spans if s.image == image and s.length)
        for (a0, a1, an), (b0, b1, bn) in zip(mine, mine[1:], strict=False):
            if b0 < a1:
                out.append(f"{an} [{a0}:{a1}] and {bn} [{b0}:{b1}] overlap in {image}")
    return out[:10]


class _Fields:
    """Collects every field problem of a manifest (``where: why``) instead of stopping at the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def check(self, where: str, v: Any, kind: str, lo: float | None = None, hi: float | None = None) -> bool:
        why = None
        if kind == "str":
            why = None if isinstance(v, str) and v else "must be a non-empty string"
        elif kind == "bool":
            why = None if isinstance(v, bool) else "must be true or false"
        elif kind in ("int", "count"):
            if isinstance(v, bool) or not isinstance(v, int):
                why = "must be an integer"
            elif kind == "count" and v < 0:
                why = "must be >= 0"
        elif kind == "num":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            why = None if ok else "must be a finite number"
        elif kind == "hex64":
            why = None if isinstance(v, str) and _HEX64.fullmatch(v) else "must be a sha256 (64 lowercase hex digits)"
        elif kind == "path":
            why = path_problem(v)
        elif kind == "dict":
            why = None if isinstance(v, dict) else "must be an object"
        if why is None and kind in ("int", "count", "num") and ((lo is not None and v < lo)
                                                                or (hi is not None and v > hi)):
            why = f"must be in [{lo}, {hi}]"
        if why is not None:
            self.problems.append(f"{where} {why}, got {_short(v)}")
        return why is None

    def items(self, where: str, v: Any) -> list:
        if not isinstance(v, list):
            self.problems.append(f"{where} must be a list, got {_short(v)}")
            return []
        return v

    def obj(self, where: str, v: Any, keys: tuple[str, ...]) -> dict | None:
        if not isinstance(v, dict):
            self.problems.append(f"{where} must be an object, got {_short(v)}")
            return None
        missing = [k for k in keys if k not in v]
        if missing:
            self.problems.append(f"{where}: missing {missing}")
            return None
        return v

    def named(self, where: str, v: Any, keys: tuple[str, ...], label: str, name_key: str = "name"
              ) -> tuple[dict | None, str]:
        """An entry of a list: ``v`` checked as an object with ``keys``, and where its problems are reported from now
        on (``label name`` once its ``name_key`` is a non-empty string, else ``where``)."""
        v = self.obj(where, v, keys)
        if v is not None and self.check(f"{where}.{name_key}", v[name_key], "str"):
            where = f"{label} {v[name_key]}"
        return v, where

    def shape(self, where: str, v: Any) -> tuple[int, ...] | None:
        if not isinstance(v, list) or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < _MAX_DIM
                                          for s in v):
            self.problems.append(f"{where}.shape must be a list of integers in [0, {_MAX_DIM}), got {_short(v)}")
            return None
        return tuple(v)

    def qformat(self, where: str, v: Any) -> QFormat | None:
        try:
            return QFormat.from_dict(v)
        except (FormatError, ConfigError, TypeError, AttributeError) as exc:
            self.problems.append(f"{where}.format: {exc}")
            return None


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


_IMAGE_KEYS = ("file", "size_bytes", "sha256", "memory", "bits_per_cell")
_TENSOR_KEYS = ("name", "shape", "numel", "nnz", "format", "group", "values", "mask", "pruned", "sparsity_target",
                "saturated", "quant_max_abs_err")
_PACK_KEYS = ("task", "labels", "is_regression", "adapter", "backbone_hash", "synthetic", "image", "offset", "length",
              "sha256", "meta_sha256", "tensors")
_PACK_TENSOR_KEYS = ("name", "shape", "numel", "format", "offset", "length", "saturated", "quant_max_abs_err")


def _images(v: Any, f: _Fields) -> dict[str, ImageEntry]:
    images: dict[str, ImageEntry] = {}
    if not isinstance(v, dict):
        f.problems.append(f"images must be an object, got {_short(v)}")
        return images
    for name, e in v.items():
        if name not in IMAGE_NAMES:
            f.problems.append(f"unknown image {name!r} (known: {list(IMAGE_NAMES)})")
            continue
        e = f.obj(f"images.{name}", e, _IMAGE_KEYS)
        if e is None:
            continue
        ok = [f.check(f"images.{name}.file", e["file"], "path"),
              f.check(f"images.{name}.size_bytes", e["size_bytes"], "count"),
              f.check(f"images.{name}.sha256", e["sha256"], "hex64")]
        if e["memory"] != IMAGE_MEMORY[name] or e["bits_per_cell"] != IMAGE_BITS_PER_CELL[name]:
            f.problems.append(f"images.{name}: memory/bits_per_cell must be {IMAGE_MEMORY[name]}/"
                              f"{IMAGE_BITS_PER_CELL[name]}, got {_short(e['memory'])}/{_short(e['bits_per_cell'])}")
            ok.append(False)
        if all(ok):
            images[name] = ImageEntry(e["file"], e["size_bytes"], e["sha256"], e["memory"], e["bits_per_cell"])
    f.problems.extend(f"images: missing {n!r}" for n in IMAGE_NAMES if n not in v)
    return images


def _files(v: Any, f: _Fields) -> dict[str, FileEntry]:
    files: dict[str, FileEntry] = {}
    if not isinstance(v, dict):
        f.problems.append(f"files must be an object, got {_short(v)}")
        return files
    for rel, e in v.items():
        e = f.obj(f"files[{rel!r}]", e, ("size_bytes", "sha256"))
        if e is not None and all([f.check(f"files[{rel!r}]", rel, "path"),
                                  f.check(f"files[{rel!r}].size_bytes", e["size_bytes"], "count"),
                                  f.check(f"files[{rel!r}].sha256", e["sha256"], "hex64")]):
            files[rel] = FileEntry(e["size_bytes"], e["sha256"])
    return files


def _span(where: str, v: Any, image: str, f: _Fields, images: dict[str, ImageEntry]) -> Span | None:
    v = f.obj(where, v, ("image", "offset", "length"))
    if v is None:
        return None
    if v["image"] != image:
        f.problems.append(f"{where}.image must be {image!r}, got {_short(v['image'])}")
        return None
    if not (f.check(f"{where}.offset", v["offset"], "count") and f.check(f"{where}.length", v["length"], "count")):
        return None
    size = images[image].size_bytes if image in images else None
    if size is not None and v["offset"] + v["length"] > size:
        f.problems.append(f"{where} [{v['offset']}:{v['offset'] + v['length']}] lies outside {image} ({size} bytes)")
        return None
    return Span(image, v["offset"], v["length"])


def _tensor(t: Any, i: int, f: _Fields, images: dict[str, ImageEntry]) -> TensorEntry | None:
    t, where = f.named(f"tensors[{i}]", t, _TENSOR_KEYS, "tensor")
    if t is None:
        return None
    n0 = len(f.problems)
    shape, fmt = f.shape(where, t["shape"]), f.qformat(where, t["format"])
    f.check(f"{where}.numel", t["numel"], "count")
    f.check(f"{where}.nnz", t["nnz"], "count")
    f.check(f"{where}.pruned", t["pruned"], "bool")
    f.check(f"{where}.sparsity_target", t["sparsity_target"], "num", 0.0, 1.0)
    f.check(f"{where}.saturated", t["saturated"], "count")
    f.check(f"{where}.quant_max_abs_err", t["quant_max_abs_err"], "num", 0.0)
    if t["group"] not in GROUPS:
        f.problems.append(f"{where}.group must be one of {list(GROUPS)}, got {_short(t['group'])}")
    values = _span(f"{where}.values", t["values"], "rram_mlc", f, images)
    mask = _span(f"{where}.mask", t["mask"], "rram_slc", f, images)
    if len(f.problems) > n0 or shape is None or fmt is None or values is None or mask is None:
        return None
    if t["numel"] != _prod(shape):
        f.problems.append(f"{where}: numel {t['numel']} != prod(shape {list(shape)})")
    elif not t["nnz"] <= t["numel"]:
        f.problems.append(f"{where}: nnz {t['nnz']} outside [0, {t['numel']}]")
    elif values.length != packed_nbytes(t["nnz"], fmt) or mask.length != (t["numel"] + 7) // 8:
        f.problems.append(f"{where}: values/mask lengths {values.length}/{mask.length} do not hold {t['nnz']} "
                          f"{fmt.bits}-bit codes / a {t['numel']}-bit mask")
    return TensorEntry(name=t["name"], shape=shape, numel=t["numel"], nnz=t["nnz"], format=fmt, group=t["group"],
                       values=values, mask=mask, pruned=t["pruned"], sparsity_target=float(t["sparsity_target"]),
                       saturated=t["saturated"], quant_max_abs_err=float(t["quant_max_abs_err"]))


def _pack(p: Any, i: int, f: _Fields, images: dict[str, ImageEntry]) -> PackEntry | None:
    p, where = f.named(f"packs[{i}]", p, _PACK_KEYS, "pack", "task")
    if p is None:
        return None
    n0 = len(f.problems)
    f.check(f"{where}.is_regression", p["is_regression"], "bool")
    f.check(f"{where}.synthetic", p["synthetic"], "bool")
    f.check(f"{where}.backbone_hash", p["backbone_hash"], "str")
    f.check(f"{where}.sha256", p["sha256"], "hex64")
    f.check(f"{where}.meta_sha256", p["meta_sha256"], "hex64")
    labels = p["labels"]
    if not isinstance(labels, list) or any(not isinstance(x, str) or not x for x in labels) \
            or len(set(labels)) != len(labels):
        f.problems.append(f"{where}.labels must be a list of distinct non-empty strings, got {_short(labels)}")
    elif isinstance(p["is_regression"], bool) and (p["is_regression"] != (not labels) or len(labels) == 1):
        f.problems.append(f"{where}: a regression pack has no labels and a classification pack >= 2, got "
                          f"is_regression {p['is_regression']} with {len(labels)} label(s)")
    if p["adapter"] is not None and not isinstance(p["adapter"], dict):
        f.problems.append(f"{where}.adapter must be an object or null, got {_short(p['adapter'])}")
    if not isinstance(p.get("metrics", {}), dict):
        f.problems.append(f"{where}.metrics must be an object, got {_short(p['metrics'])}")
    fields = p.get("text_fields", ["text"])
    if not isinstance(fields, list) or tuple(fields) not in TEXT_FIELDS:
        f.problems.append(f"{where}.text_fields must be one of {[list(x) for x in TEXT_FIELDS]}, got {_short(fields)}")
    policy = None
    if p.get("exit") is not None:
        try:
            policy = ExitPolicy.from_dict(p["exit"])
        except ConfigError as exc:
            f.problems.append(f"{where}.exit: {exc}")
    span = _span(where, {"image": p["image"], "offset": p["offset"], "length": p["length"]}, "dram", f, images)
    tensors = []
    end = 0
    for j, t in enumerate(f.items(f"{where}.tensors", p["tensors"])):
        t, tw = f.named(f"{where}.tensors[{j}]", t, _PACK_TENSOR_KEYS, f"{where} tensor")
        if t is None:
            continue
        m0 = len(f.problems)
        shape, fmt = f.shape(tw, t["shape"]), f.qformat(tw, t["format"])
        for k in ("numel", "offset", "length", "saturated"):
            f.check(f"{tw}.{k}", t[k], "count")
        f.check(f"{tw}.quant_max_abs_err", t["quant_max_abs_err"], "num", 0.0)
        if len(f.problems) > m0 or shape is None or fmt is None:
            continue
        if t["numel"] != _prod(shape):
            f.problems.append(f"{tw}: numel {t['numel']} != prod(shape {list(shape)})")
        elif t["length"] != packed_nbytes(t["numel"], fmt):
            f.problems.append(f"{tw}: length {t['length']} does not hold {t['numel']} {fmt.bits}-bit codes")
        elif t["offset"] < end or (span is not None and t["offset"] + t["length"] > span.length):
            f.problems.append(f"{tw}: [{t['offset']}:{t['offset'] + t['length']}] overlaps the previous tensor or "
                              f"runs past the pack's {span.length if span else '?'} bytes")
        end = max(end, t["offset"] + t["length"])
        tensors.append(PackTensor(name=t["name"], shape=shape, numel=t["numel"], format=fmt, offset=t["offset"],
                                  length=t["length"], saturated=t["saturated"],
                                  quant_max_abs_err=float(t["quant_max_abs_err"])))
    if len(f.problems) > n0 or span is None:
        return None
    n_out = 1 if p["is_regression"] else len(labels)
    for t in tensors:  # the head's rows are the labels: a reordered or truncated label list shows here
        if t.name in ("classifier.weight", "classifier.bias") and (not t.shape or t.shape[0] != n_out):
            f.problems.append(f"{where}: {t.name} has shape {list(t.shape)}, the pack has {n_out} output(s)")
    entry = PackEntry(task=p["task"], labels=tuple(labels), is_regression=p["is_regression"], adapter=p["adapter"],
                      backbone_hash=p["backbone_hash"], synthetic=p["synthetic"], image=span.image,
                      offset=span.offset, length=span.length, sha256=p["sha256"], tensors=tuple(tensors),
                      metrics=dict(p.get("metrics") or {}), text_fields=tuple(fields), exit=policy,
                      meta_sha256=p["meta_sha256"])
    if pack_meta_sha256(entry) != entry.meta_sha256:
        f.problems.append(f"{where}: meta_sha256 {entry.meta_sha256[:12]}... is not the pack's recorded description "
                          f"({pack_meta_sha256(entry)[:12]}...): its labels, text fields or tensor formats were changed")
    return entry


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
