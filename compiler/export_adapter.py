"""``export_pack``: a task pack as an ONNX Runtime adapter file (``onnxruntime.AdapterFormat``, ``.onnx_adapter``),
and the graph it activates on.

ONNX Runtime's multi-adapter model: the base graph declares the adapter's parameters as *graph inputs that also
have an initializer* (the default used when no adapter is active); ``RunOptions.add_active_adapter(LoraAdapter)``
feeds an adapter file's parameters to those inputs for one run. Our base graph (:func:`adapter_base_graph`) is the
backbone with every task tensor (LoRA pairs or Houlsby adapters, the transformer's layer norms, the head) such an
input, its default the *neutral task*: LoRA ``B`` and Houlsby ``up`` zero (the identity), the backbone's layer
norms, a zero head (zero logits). The rank / bottleneck / label axes are symbolic, so every pack of one structure
(kind, targets, LoRA scaling) activates on one base graph. The adapter file holds all of a pack's task tensors
(float32), ``adapter_version`` = 1 and ``model_version`` = the first 28 bits of the backbone hash (an adapter names
the backbone its base graph carries).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from edgemti.compiler.export import export_model, input_dim_name
from edgemti.errors import FormatError
from edgemti.tasks.model import AdapterModel

ADAPTER_VERSION = 1


@dataclass(frozen=True)
class ExportedAdapter:
    adapter: Path
    graph: Path | None
    parameters: int  # tensors in the adapter file
    model_version: int


def model_version(backbone_hash: str) -> int:
    """The adapter's ``model_version``: the backbone hash's first 7 hex digits (fits ORT's int field)."""
    return int(backbone_hash[:7], 16)


def _neutral(model: AdapterModel) -> AdapterModel:
    """``model`` with its task tensors at the neutral task (identity adapters, zero head) in place."""
    task = set(model.task_names())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in task and (name.endswith(("lora_B.weight", ".up.weight", ".up.bias"))
                                                    or name.startswith("classifier.")):
                p.zero_()
    return model


def adapter_base_graph(model: AdapterModel) -> onnx.ModelProto:
    """The backbone graph with every task tensor an overridable input (initializer = the neutral task)."""
    proto = export_model(_neutral(model).eval())
    by_name = {i.name: i for i in proto.graph.initializer}
    for name in model.task_names():
        init = by_name[name]
        dims = [input_dim_name(name, a) if input_dim_name(name, a) != f"{name}:{a}" else d
                for a, d in enumerate(init.dims)]
        proto.graph.input.append(onnx.helper.make_tensor_value_info(name, init.data_type, dims))
    for o in proto.graph.output:  # the label axis follows the head
        if len(o.type.tensor_type.shape.dim) == 2:
            o.type.tensor_type.shape.dim[1].ClearField("dim_value")
            o.type.tensor_type.shape.dim[1].dim_param = "num_labels"
    del proto.graph.value_info[:]  # intermediate shapes bake in the default's sizes; onnxruntime re-infers them
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def export_pack(pack_dir: str | Path, adapter_out: str | Path, graph_out: str | Path | None = None,
                checkpoint: str | None = None) -> ExportedAdapter:
    """Write ``pack_dir``'s task tensors as an ONNX Runtime adapter file (and, given ``graph_out``, the base graph)."""
    import onnxruntime as ort

    from edgemti.tasks.pack import load_pack
    from edgemti.tasks.pack_model import model_for_pack

    pack = load_pack(pack_dir)
    model = model_for_pack(pack, checkpoint=checkpoint)  # checks the backbone hash against the pack's
    missing = sorted(set(model.task_names()) - set(pack.tensors))
    if missing:
        raise FormatError(f"pack '{pack.task}' lacks task tensors {missing[:3]} of its model")
    version = model_version(pack.backbone["hash"])
    fmt = ort.AdapterFormat()
    fmt.set_adapter_version(ADAPTER_VERSION)
    fmt.set_model_version(version)
    fmt.set_parameters({n: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                        for n, a in sorted(pack.tensors.items())})
    out = Path(adapter_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt.export_adapter(str(out))
    back = ort.AdapterFormat.read_adapter(str(out))  # read it back through onnxruntime: a file ORT refuses fails here
    if back.get_model_version() != version or len(back.get_parameters()) != len(pack.tensors):
        raise FormatError(f"{out}: onnxruntime read back model_version {back.get_model_version()} and "
                          f"{len(back.get_parameters())} parameters, wrote {version} and {len(pack.tensors)}")
    graph = None
    if graph_out is not None:
        graph = Path(graph_out)
        graph.parent.mkdir(parents=True, exist_ok=True)
        graph.write_bytes(adapter_base_graph(model).SerializeToString())
    return ExportedAdapter(out, graph, len(pack.tensors), version)
