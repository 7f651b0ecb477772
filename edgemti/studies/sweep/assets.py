"""Sweep assets: :class:`SweepAssets`, what every worker needs (backbone statistics, structures + graph exports,
base spec files), computed once by the driver (:func:`prepare_assets`) and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import FormatError
from edgemti.studies.sweep.point import SweepPoint
from edgemti.studies.sweep.store import write_atomic


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
            write_atomic(path, st.to_json().encode())
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
            write_atomic(graph_path, s.graph)
            meta = {"format": "edgemti-sweep-structure", "format_version": 2, "key": s.key,
                    "backbone_tensors": [[n, list(sh)] for n, sh in s.backbone_tensors],
                    "task_tensors": [[n, list(sh)] for n, sh in s.task_tensors],
                    "graph_sha256": hashlib.sha256(s.graph).hexdigest()}
            write_atomic(meta_path, json.dumps(meta, sort_keys=True).encode())
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
