"""``compile_build``: backbone + task packs -> a build folder (RRAM-MLC, RRAM-SLC and DRAM images, graph.onnx,
tokenizer/, manifest.json). Steps: load and check the tasks, prune the backbone, quantize + bitmask-encode it,
quantize the packs, check capacities, export the weightless graph, copy the tokenizer, write atomically.

The build is written to a temporary folder next to ``out``, every file and the folder fsynced, and renamed at the
end: no half-written build is ever left behind (temporary folders of interrupted compiles are removed by the next
compile to the same ``out``). An existing ``out`` is refused unless ``force``, and ``force`` replaces only an
edgemti build.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemti import __version__
from edgemti.compiler.compression import Compression
from edgemti.compiler.config import CompileConfig
from edgemti.compiler.footprint import Footprint, check_capacity, footprint
from edgemti.compiler.packs import TaskTensors, check_trained_on, load_tasks
from edgemti.compiler.prune import PruneReport
from edgemti.compiler.served import encode_backbone, float_backbone
from edgemti.errors import ConfigError
from edgemti.formats.build import (
    DATA_INPUTS,
    GRAPH_FILE,
    MANIFEST_FILE,
    OUTPUT,
    TOKENIZER_DIR,
    sha256_hex,
)
from edgemti.formats.build_write import ImageBuilder, encode_pack, file_entries, image_entries, write_build
from edgemti.formats.image_hash import backbone_image_hash
from edgemti.formats.manifest import BUILD_FORMAT, CompileSection, Manifest
from edgemti.formats.signature import load_private_key, sign_build

log = logging.getLogger(__name__)
STEPS = ("load backbone and packs", "prune backbone", "quantize + bitmask-encode backbone", "quantize packs",
         "check capacities", "export graph.onnx", "copy tokenizer", "write build")
Progress = Callable[[str], None]


@dataclass
class Plan:
    """Everything of a build except the graph and the tokenizer (what the footprint needs)."""

    config: CompileConfig
    model: object  # AdapterModel carrying the first task
    tasks: list[TaskTensors]
    prune: PruneReport
    images: dict[str, bytes]
    manifest: Manifest  # graph sha256 / build_id still empty

    @property
    def footprint(self) -> Footprint:
        return footprint(self.manifest)


def _backbone_meta(model, config: CompileConfig) -> dict:
    """The manifest's backbone object; no machine paths in it (a build is copied between machines, as a pack is)."""
    from edgemti.tasks.pack_model import portable_hf_config, portable_source

    info = model.info
    state = model.backbone_state()
    return {"name": info.name, "family": info.family, "pretrained": info.pretrained, "hash": model.backbone_hash(),
            "pooling": info.pooling, "hf_config": portable_hf_config(info.name, info.hf_config), "tokenizer": None,
            "num_params": int(sum(t.numel() for t in state.values())),
            "source": portable_source(info.name, info.source),
            "warning": info.warning}


def plan_build(config: CompileConfig, progress: Progress | None = None) -> Plan:
    """Load, prune, quantize and encode: the images and the manifest (without graph) of ``config``."""
    step = progress or (lambda s: None)
    step(STEPS[0])
    model, tasks = load_tasks(config)
    step(STEPS[1])
    step(STEPS[2])  # pruning and encoding are one function, shared with compression-aware training
    fmt, pfmt = config.value_format, config.pack_format
    tensors, mlc_bytes, slc_bytes, report = encode_backbone(float_backbone(model), Compression.of_config(config))
    image_hash = backbone_image_hash(tensors, sha256_hex(mlc_bytes), sha256_hex(slc_bytes))
    for t in tasks:
        check_trained_on(t.task, t.trained_on, image_hash, pfmt.name, "this compile")
    dram = ImageBuilder("dram")
    step(STEPS[3])
    packs = tuple(encode_pack(t.task, t.labels, t.is_regression, t.adapter.to_dict() if t.adapter else None,
                              t.backbone_hash, t.synthetic, t.tensors, pfmt, dram, t.metrics, t.text_fields, t.exit)
                  for t in tasks)
    images = {"rram_mlc": mlc_bytes, "rram_slc": slc_bytes, "dram": dram.getvalue()}
    compile_meta = {
        "quant": fmt.name, "value_format": fmt.to_dict(), "pack_quant": pfmt.name, "pack_format": pfmt.to_dict(),
        "activation_bits": config.resolved_activation_bits, "sparsity_embedding": float(config.sparsity_embedding),
        "sparsity_transformer": float(config.sparsity_transformer),
        "cumulative_sparsity": report.nominal_cumulative, "max_seq_len": config.max_seq_len,
        "prune": {k: v for k, v in report.to_dict().items() if k not in ("sparsity_embedding", "sparsity_transformer")},
        "stored_sparsity": 1.0 - sum(t.nnz for t in tensors) / max(1, sum(t.numel for t in tensors)),
        "config": config.to_dict(),
    }
    manifest = Manifest(edgemti_version=__version__, build_id="", design=config.design, synthetic=config.synthetic,
                        backbone=_backbone_meta(model, config), compile=CompileSection.from_dict(compile_meta),
                        graph={"file": GRAPH_FILE, "sha256": "", "data_inputs": list(DATA_INPUTS), "output": OUTPUT},
                        images=image_entries(images), tensors=tensors, packs=packs)
    return Plan(config, model, tasks, report, images, manifest)


_GRAPH_CACHE: dict[str, bytes] = {}
_GRAPH_CACHE_SIZE = 4


def _graph_key(model, task_shapes: list[dict[str, tuple[int, ...]]]) -> str:
    """What the weightless graph depends on: the architecture and every tensor's shape, never the values."""
    import hashlib
    import json

    info = model.info
    desc = {"family": info.family, "pooling": info.pooling, "hf_config": info.hf_config, "design": model.design,
            "adapter": model.adapter_spec.to_dict() if model.adapter_spec else None,
            "params": [(n, list(p.shape)) for n, p in model.named_parameters()],
            "tasks": [sorted((n, list(s)) for n, s in t.items()) for t in task_shapes]}
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def weightless_graph(model, task_shapes: list[dict[str, tuple[int, ...]]]) -> bytes:
    """The build's graph.onnx bytes, cached in memory by structure (exports take seconds to minutes; the graph
    holds no weights, so models of one architecture and task shapes share it)."""
    from edgemti.compiler.export import export_weightless

    key = _graph_key(model, task_shapes)
    if key not in _GRAPH_CACHE:
        if len(_GRAPH_CACHE) >= _GRAPH_CACHE_SIZE:
            _GRAPH_CACHE.pop(next(iter(_GRAPH_CACHE)))
        _GRAPH_CACHE[key] = export_weightless(model, task_shapes).SerializeToString()
    return _GRAPH_CACHE[key]


def clear_graph_cache() -> None:
    _GRAPH_CACHE.clear()


def _spec(config: CompileConfig):
    from edgemti.hwmodel.spec import load_spec

    return load_spec(config.spec, design=config.design)


def _save_tokenizer(model, folder: Path) -> str | None:
    """Copy the backbone's tokenizer (folder or hub name) into ``folder/tokenizer``; None when it has none."""
    src = model.info.tokenizer
    if not src:
        log.warning("backbone %s names no tokenizer: the build serves token ids only", model.info.name)
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    tok: PreTrainedTokenizerBase
    try:
        tok = AutoTokenizer.from_pretrained(src)
    except Exception:  # e.g. a bare sentencepiece folder without config.json: use the family's class
        from transformers import AlbertTokenizer, BertTokenizer

        cls = AlbertTokenizer if model.info.family == "albert" else BertTokenizer
        try:
            tok = cls.from_pretrained(src)
        except Exception as exc:
            raise ConfigError(f"cannot load the tokenizer of backbone {model.info.name!r} from {src!r} "
                              f"({type(exc).__name__}): give a backbone folder with tokenizer files") from None
    tok.save_pretrained(str(folder / TOKENIZER_DIR))
    return TOKENIZER_DIR


def compile_build(config: CompileConfig, out: str | Path, force: bool = False,
                  progress: Progress | None = None, sign_key: str | Path | None = None) -> Path:
    """Compile ``config`` into the build folder ``out`` (see module doc); returns ``out``. ``sign_key`` (an
    Ed25519 private key PEM file, never copied into the build): the build goes live signed
    (``manifest.sig``, :mod:`edgemti.formats.signature`)."""
    out = Path(out)
    key = _signing_key(sign_key, out)  # a bad key fails before minutes of compiling
    if out.exists() and not force:
        raise ConfigError(f"output folder {out} exists: choose another output folder or replace it",
                          options=("out", "force"))
    if out.exists():
        _check_replaceable(out)
    clean_stale(out)
    step = progress or (lambda s: None)
    t0 = time.perf_counter()
    plan = plan_build(config, step)
    step(STEPS[4])
    fp = plan.footprint
    spec = _spec(config)
    if config.check_capacity:
        check_capacity(fp, spec.capacities_bytes(), origin=spec.path or spec.name)
    step(STEPS[5])
    graph = weightless_graph(plan.model, [t.shapes() for t in plan.tasks])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        step(STEPS[6])
        tok = _save_tokenizer(plan.model, tmp)
        backbone = dict(plan.manifest.backbone, tokenizer=tok)
        step(STEPS[7])
        gsha = sha256_hex(graph)
        images = image_entries(plan.images)
        m = plan.manifest
        manifest = Manifest(
            edgemti_version=m.edgemti_version, build_id="", design=m.design,
            synthetic=m.synthetic, backbone=backbone, compile=m.compile, graph=dict(m.graph, sha256=gsha),
            images=images, tensors=m.tensors, packs=m.packs, files=file_entries(tmp, tok) if tok else {},
            provenance={"spec": spec.path or spec.name, "spec_hash": spec.spec_hash(),
                        "compile_time_s": round(time.perf_counter() - t0, 3), "footprint": fp.to_dict()}
        ).with_build_id()  # the id covers everything an answer depends on (formats.manifest.derive_build_id)
        write_build(tmp, manifest, plan.images, graph)  # fsyncs what it writes
        if key is not None:
            sig = sign_build(tmp, key)
            log.info("signed build %s with key %s", manifest.build_id[:12], sig.key_id)
        for p in sorted(tmp.rglob("*")):  # the tokenizer files too: all on disk before the rename makes them live
            if p.is_file():
                _fsync(p)
        tmp.chmod(0o755)  # mkdtemp makes it private; a build is an ordinary folder
        _fsync(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
            out.rename(old)
            tmp.rename(out)
            _fsync(out.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
            _fsync(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("compiled %s in %.1f s", out, time.perf_counter() - t0)
    return out


def _signing_key(sign_key: str | Path | None, out: Path) -> Any:
    """The private key to sign with, refused when it lies inside the build folder (it would ship with it)."""
    if sign_key is None:
        return None
    target, folder = Path(sign_key).resolve(), out.resolve()
    if target == folder or folder in target.parents:
        raise ConfigError(f"the signing key {sign_key} lies inside the build folder {out}: keep private keys out of "
                          "builds", options=("sign_key",))
    return load_private_key(sign_key)


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_replaceable(out: Path) -> None:
    """``force=True`` replaces an edgemti build (a manifest of format ``edgemti-build``, any version) or an empty
    folder, nothing else."""
    if not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder: refusing to replace it, even when forced",
                          options=("out",))
    if not any(out.iterdir()):
        return
    try:
        fmt = json.loads((out / MANIFEST_FILE).read_bytes()).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != BUILD_FORMAT:
        raise ConfigError(f"output folder {out} exists and is not an edgemti build (no {MANIFEST_FILE} of format "
                          f"{BUILD_FORMAT!r}): refusing to replace it, even when forced; remove it yourself or "
                          "choose another output folder", options=("out",))


def clean_stale(out: Path) -> list[Path]:
    """Remove the temporary folders an interrupted compile to ``out`` left next to it (``.<out>.tmp-<pid>-*``,
    ``.<out>.old-<pid>-*``) whose compile process is gone; returns what was removed."""
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for p in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        if kind not in ("tmp", "old") or not p.is_dir() or p.is_symlink():
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another compile to the same folder is running
        shutil.rmtree(p, ignore_errors=True)
        log.warning("removed %s, left by an interrupted compile", p)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quantized_task_tensors(plan_or_manifest, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Helper for checks: a pack's tensors as the build stores them (fake-quantized with the pack format)."""
    from edgemti.formats.quant import fake_quantize

    fmt = plan_or_manifest.pack_format if isinstance(plan_or_manifest, Manifest) else \
        plan_or_manifest.config.pack_format
    return {n: fake_quantize(a, fmt) for n, a in tensors.items()}
