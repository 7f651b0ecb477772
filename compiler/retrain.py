"""Compression-aware pack training: train a task's adapters, layer norms and classifier on the backbone the chip
serves (``edgemti train --on-build BUILD`` or ``--sparsity-embedding/--sparsity-transformer/--quant``).

The served backbone comes from :mod:`edgemti.compiler.served` (the compiler's own prune + quantize + encode, decoded
by the runtime's decoder); :func:`edgemti.tasks.train.train_task` trains on it with the pack's tensors quantized at
the pack format in the forward pass (straight-through estimator), so what is trained is what is served. The pack
records ``trained_on`` (backbone image hash, formats, sparsities) and ``compile`` / ``--add-pack`` refuse it for any
other backbone image. It lives in the compiler because it needs the compiler's pruning and the image format, which
``tasks`` may not import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgemti.compiler.compression import Compression
from edgemti.compiler.served import ServedBackbone, served_backbone, served_backbone_of_build
from edgemti.errors import ConfigError
from edgemti.tasks.served import BackboneOverride
from edgemti.tasks.train import TrainResult, load_task_data, train_task

# (served backbone, training step) -> that step's backbone tensors (e.g. decoded from images with fresh cell errors)
from edgemti.tasks.train_config import TrainConfig

StepBackbone = Callable[[ServedBackbone, int], Mapping[str, np.ndarray]]


def served_for(cfg: TrainConfig, compression: Compression | None = None,
               build: str | Path | None = None) -> ServedBackbone:
    """The served backbone ``cfg`` trains on: ``cfg``'s float backbone compressed by ``compression``, or the one the
    build folder ``build`` holds (which must have been compiled from ``cfg``'s backbone and design)."""
    if (compression is None) == (build is None):
        raise ConfigError("compression-aware training needs exactly one of a build folder or compression settings, "
                          f"got {'both' if build is not None else 'neither'}")
    from edgemti.tasks.backbones import build_model

    model = build_model(cfg.backbone, num_labels=2, adapter=cfg.adapter, design=cfg.design, checkpoint=cfg.checkpoint)
    if compression is not None:
        return served_backbone(model, compression)
    from edgemti.formats.build import open_build

    assert build is not None  # exactly one of the two, checked above
    b = open_build(build, verify=True)  # one open: its design checked here, its images decoded below
    design = b.manifest.design
    if design != cfg.design:
        raise ConfigError(f"the build {build} is design {design!r}, the training is {cfg.design!r}: train a "
                          f"{design} pack for it")
    return served_backbone_of_build(b, model)


def override_for(served: ServedBackbone, step_backbone: StepBackbone | None = None, fault_mlc_rate: float = 0.0,
                 fault_seed: int = 0) -> BackboneOverride:
    """What :func:`train_task` swaps in for ``served`` (``step_backbone``: a per-step backbone, e.g. faulty)."""
    per_step = None
    if step_backbone is not None:
        fn = step_backbone

        def per_step(step: int) -> Mapping[str, np.ndarray]:
            return fn(served, step)

    return BackboneOverride(tensors=served.tensors, trained_on=served.trained_on(fault_mlc_rate, fault_seed),
                            quantize_pack=served.quantize_pack, per_step=per_step)


def train_on_served(cfg: TrainConfig, out_dir: str | Path, compression: Compression | None = None,
                    build: str | Path | None = None, progress: bool = True,
                    step_backbone: StepBackbone | None = None, fault_mlc_rate: float = 0.0,
                    fault_seed: int = 0) -> TrainResult:
    """Train ``cfg`` on the served backbone (exactly one of ``compression`` / ``build``) into the pack ``out_dir``."""
    load_task_data(cfg, splits=())  # an unknown task or a bad data folder fails before the backbone is compressed
    served = served_for(cfg, compression, build)
    return train_task(cfg, out_dir, progress=progress,
                      override=override_for(served, step_backbone, fault_mlc_rate, fault_seed))
