"""The exported graph on onnxruntime: backbone weights baked in once, task packs bound per request.

A build's ``graph.onnx`` has every parameter as a named graph input and no weights. At load the decoded backbone
becomes initializers of an in-memory ``ModelProto`` (so ORT constant-folds and pre-packs them like any model's
weights); the pack tensors and the data inputs stay graph inputs. Each resident pack gets an ``IOBinding`` with
its tensors bound once as ``OrtValue``\\ s over the SRAM-resident arrays (zero copy), so a request only binds its
token ids, and a swap rebinds a slot's tensors without ever rebuilding the session.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort

from edgemti.errors import FormatError
from edgemti.formats.graph import DATA_INPUTS, bind_initializers

__all__ = ["DATA_INPUTS", "GraphSession", "bind_initializers", "session_options"]


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """ORT options of the serving session. ``spin=False``: the intra-op worker threads sleep between parallel
    sections instead of busy-waiting; on a small shared CPU the spinning steals the cores the HTTP threads, the
    tokenizer and the next batch need (2-core box, MiniLM, 16 HTTP clients: 3x the throughput with spinning off,
    tools/bench_batching.py)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    return opts


class GraphSession:
    """An ORT session over a graph whose non-data inputs are pack tensors; one IOBinding per resident pack."""

    def __init__(self, model: onnx.ModelProto, threads: int | None = None, output: str = "logits",
                 spin: bool = False) -> None:
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), sess_options=session_options(threads, spin),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            raise FormatError(f"onnxruntime could not load the build's graph: {exc}") from None
        names = [i.name for i in self.session.get_inputs()]
        self.data_inputs = tuple(n for n in DATA_INPUTS if n in names)
        self.pack_inputs = tuple(n for n in names if n not in DATA_INPUTS)
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}
        self.output = output
        self._bindings: dict[str, ort.IOBinding] = {}
        self._values: dict[str, dict[str, ort.OrtValue]] = {}

    def bind_pack(self, slot: str, tensors: Mapping[str, np.ndarray]) -> None:
        """(Re)bind a slot's pack tensors: OrtValues over the given arrays (no copy); the arrays must stay alive."""
        missing = [n for n in self.pack_inputs if n not in tensors]
        if missing:
            raise FormatError(f"pack in slot {slot!r} lacks {len(missing)} graph input(s), e.g. {missing[:3]}")
        binding = self._bindings.get(slot)
        if binding is None:
            binding = self.session.io_binding()
            self._bindings[slot] = binding
        values = {}
        for n in self.pack_inputs:
            v = ort.OrtValue.ortvalue_from_numpy(tensors[n])
            binding.bind_ortvalue_input(n, v)
            values[n] = v
        self._values[slot] = values  # keeps the OrtValues (and through them the arrays) alive
        binding.bind_output(self.output)

    def unbind(self, slot: str) -> None:
        self._bindings.pop(slot, None)
        self._values.pop(slot, None)

    def run(self, slot: str, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch with the pack bound in ``slot``; ``feeds`` are int64 data inputs."""
        binding = self._bindings[slot]
        for n in self.data_inputs:
            binding.bind_cpu_input(n, feeds[n])
        binding.bind_output(self.output)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]
