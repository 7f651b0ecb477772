"""The schema of ``manifest.json``: every field checked by type and range, every problem collected.

:func:`manifest_from_json` / :func:`manifest_from_dict` (the one way a manifest is read) check a
parsed JSON object against the format of docs/FORMATS.md, its own digest and its ``build_id``, and builds the typed
entries; :class:`edgemti.formats.fields.Fields` gathers ``where: why`` for every bad field so one
:class:`FormatError` names them all, and the checks across entries (:mod:`edgemti.formats.manifest_layout`) run
once every entry parsed.
"""

from __future__ import annotations

import json
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.exit_policy import ExitPolicy
from edgemti.formats.digest import DIGEST_KEY, manifest_digest
from edgemti.formats.fields import Fields, short
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
)
from edgemti.formats.manifest_layout import format_problems, layout_problems, overlaps
from edgemti.formats.quant import packed_nbytes

_TOP_KEYS = ("format", "format_version", "edgemti_version", "build_id", "design", "synthetic", "backbone", "compile",
             "graph", "images", "tensors", "packs")
_BACKBONE_KEYS = ("name", "family", "pretrained", "hash", "pooling", "hf_config", "tokenizer", "num_params")
_GRAPH_KEYS = ("file", "sha256", "data_inputs", "output")


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
    f = Fields(problems)
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
        problems.append(f"provenance must be an object, got {short(d['provenance'])}")
    if compile_section is not None:
        problems += format_problems(compile_section, tensors, packs)
    if len(tensors) == len(f.items("tensors", d["tensors"])) and len(packs) == len(f.items("packs", d["packs"])):
        problems += layout_problems(images, tensors, packs)  # on whole tables only (else a dropped bad entry shows)
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        problems.append("duplicate backbone tensor names")
    tasks = [p.task for p in packs]
    if len(set(tasks)) != len(tasks):
        problems.append(f"duplicate tasks in packs: {tasks}")
    spans = [(f"pack {p.task}", Span(p.image, p.offset, p.length)) for p in packs]
    spans += [(f"tensor {t.name} {k}", getattr(t, k)) for t in tensors for k in ("values", "mask")]
    problems += overlaps(spans)
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


_IMAGE_KEYS = ("file", "size_bytes", "sha256", "memory", "bits_per_cell")
_TENSOR_KEYS = ("name", "shape", "numel", "nnz", "format", "group", "values", "mask", "pruned", "sparsity_target",
                "saturated", "quant_max_abs_err")
_PACK_KEYS = ("task", "labels", "is_regression", "adapter", "backbone_hash", "synthetic", "image", "offset", "length",
              "sha256", "meta_sha256", "tensors")
_PACK_TENSOR_KEYS = ("name", "shape", "numel", "format", "offset", "length", "saturated", "quant_max_abs_err")


def _images(v: Any, f: Fields) -> dict[str, ImageEntry]:
    images: dict[str, ImageEntry] = {}
    if not isinstance(v, dict):
        f.problems.append(f"images must be an object, got {short(v)}")
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
                              f"{IMAGE_BITS_PER_CELL[name]}, got {short(e['memory'])}/{short(e['bits_per_cell'])}")
            ok.append(False)
        if all(ok):
            images[name] = ImageEntry(e["file"], e["size_bytes"], e["sha256"], e["memory"], e["bits_per_cell"])
    f.problems.extend(f"images: missing {n!r}" for n in IMAGE_NAMES if n not in v)
    return images


def _files(v: Any, f: Fields) -> dict[str, FileEntry]:
    files: dict[str, FileEntry] = {}
    if not isinstance(v, dict):
        f.problems.append(f"files must be an object, got {short(v)}")
        return files
    for rel, e in v.items():
        e = f.obj(f"files[{rel!r}]", e, ("size_bytes", "sha256"))
        if e is not None and all([f.check(f"files[{rel!r}]", rel, "path"),
                                  f.check(f"files[{rel!r}].size_bytes", e["size_bytes"], "count"),
                                  f.check(f"files[{rel!r}].sha256", e["sha256"], "hex64")]):
            files[rel] = FileEntry(e["size_bytes"], e["sha256"])
    return files


def _span(where: str, v: Any, image: str, f: Fields, images: dict[str, ImageEntry]) -> Span | None:
    v = f.obj(where, v, ("image", "offset", "length"))
    if v is None:
        return None
    if v["image"] != image:
        f.problems.append(f"{where}.image must be {image!r}, got {short(v['image'])}")
        return None
    if not (f.check(f"{where}.offset", v["offset"], "count") and f.check(f"{where}.length", v["length"], "count")):
        return None
    size = images[image].size_bytes if image in images else None
    if size is not None and v["offset"] + v["length"] > size:
        f.problems.append(f"{where} [{v['offset']}:{v['offset'] + v['length']}] lies outside {image} ({size} bytes)")
        return None
    return Span(image, v["offset"], v["length"])


def _tensor(t: Any, i: int, f: Fields, images: dict[str, ImageEntry]) -> TensorEntry | None:
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
        f.problems.append(f"{where}.group must be one of {list(GROUPS)}, got {short(t['group'])}")
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


def _pack(p: Any, i: int, f: Fields, images: dict[str, ImageEntry]) -> PackEntry | None:
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
        f.problems.append(f"{where}.labels must be a list of distinct non-empty strings, got {short(labels)}")
    elif isinstance(p["is_regression"], bool) and (p["is_regression"] != (not labels) or len(labels) == 1):
        f.problems.append(f"{where}: a regression pack has no labels and a classification pack >= 2, got "
                          f"is_regression {p['is_regression']} with {len(labels)} label(s)")
    if p["adapter"] is not None and not isinstance(p["adapter"], dict):
        f.problems.append(f"{where}.adapter must be an object or null, got {short(p['adapter'])}")
    if not isinstance(p.get("metrics", {}), dict):
        f.problems.append(f"{where}.metrics must be an object, got {short(p['metrics'])}")
    fields = p.get("text_fields", ["text"])
    if not isinstance(fields, list) or tuple(fields) not in TEXT_FIELDS:
        f.problems.append(f"{where}.text_fields must be one of {[list(x) for x in TEXT_FIELDS]}, got {short(fields)}")
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
