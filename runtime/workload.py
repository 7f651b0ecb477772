"""A build as the hardware model sees it: :func:`workload_of` is the one place a ``Workload`` is made from a build.

The data flow is formats -> runtime -> hwmodel: the typed :class:`Manifest` (parsed and validated once, at load)
becomes the typed :class:`edgemti.hwmodel.workload.Workload`, field by field, without re-reading any JSON.
:func:`hw_model` is the convenience for callers that hold a build: ``HwModel(workload_of(manifest), graph, spec)``
on the shipped spec of the build's design unless one is given.
"""

from __future__ import annotations

import logging

import onnx

from edgemti.formats.manifest import IMAGE_NAMES, Manifest
from edgemti.hwmodel.model import HwModel
from edgemti.hwmodel.spec import ArchSpec, load_spec
from edgemti.hwmodel.workload import TaskWorkload, WeightInfo, Workload, precision_key

log = logging.getLogger(__name__)


def workload_of(manifest: Manifest) -> Workload:
    """The hardware model's view of ``manifest``: backbone tensors in RRAM (bitmask-encoded), pack tensors in SRAM."""
    c = manifest.compile
    backbone = tuple(WeightInfo(t.name, t.shape, t.nnz, t.format.bits, "rram") for t in manifest.tensors)
    tasks = tuple(TaskWorkload(p.task, p.length,
                               tuple(WeightInfo(t.name, t.shape, t.numel, t.format.bits, "sram") for t in p.tensors))
                  for p in manifest.packs)
    di = manifest.graph.get("data_inputs", ())
    data_inputs = tuple(di.values()) if isinstance(di, dict) else tuple(di)
    return Workload(design=manifest.design, backbone=backbone, tasks=tasks,
                    image_bytes={n: manifest.images[n].size_bytes for n in IMAGE_NAMES},
                    precision=precision_key(c.value_format.kind, c.value_format.bits), value_bits=c.value_format.bits,
                    activation_bits=c.activation_bits, max_seq_len=c.max_seq_len, data_inputs=data_inputs)


def hw_model(manifest: Manifest, graph: onnx.ModelProto, spec: ArchSpec | None = None) -> HwModel:
    """``HwModel`` of a build; ``spec=None`` loads the shipped spec of the build's design."""
    if spec is None:
        spec = load_spec(design=manifest.design)
    elif spec.design != manifest.design:
        log.warning("spec %s is for the %s design, the build is %s", spec.name, spec.design, manifest.design)
    return HwModel(workload_of(manifest), graph, spec)
