"""Known traps of exporting the adapter model to ONNX with its parameters as named inputs."""

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from compiler_support import raw_export, tiny_models, weightless

from edgemti.compiler.export import _example_inputs, check_names, lift_inputs
from edgemti.errors import FormatError
from edgemti.formats.graph import DATA_INPUTS, data_feed, session
from edgemti.tasks.backbones import build_model


@pytest.fixture(scope="module")
def model():
    return tiny_models()[0]  # 3 labels, adapters 16/16, every task tensor non-trivial


@pytest.fixture(scope="module")
def proto():
    return raw_export()  # = what edgemti.compiler.export.export_model(model) gives, from the session's graph cache


def test_optimised_dynamo_export_renames_weights(model):
    """Trap 1: the default (optimize=True) dynamo export folds and renames parameters (val_12, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, _example_inputs(), dynamo=True, optimize=True,
                                 input_names=list(DATA_INPUTS), output_names=["logits"])
    names = [n for n, _ in model.named_parameters()]
    with pytest.raises(FormatError, match="1:1"):
        check_names(prog.model_proto, names)


def test_legacy_export_merges_equal_valued_tensors():
    """Trap 2: the TorchScript export de-duplicates equal tensors: LayerNorm gammas (all ones), zero adapter
    biases and up-projections (a fresh, untrained model) collapse into one initializer; their names disappear."""
    model = build_model("albert-tiny", 2)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _example_inputs(), f, dynamo=False, input_names=list(DATA_INPUTS),
                          output_names=["logits"])
    inits = {i.name for i in onnx.load_from_string(f.getvalue()).graph.initializer}
    lost = {n for n, _ in model.named_parameters()} - inits
    assert any("adapters.0.up" in n for n in lost)
    assert any("LayerNorm" in n for n in lost)


def test_chosen_path_keeps_names_and_stores_the_shared_layer_once(model):
    """dynamo + optimize=False (export_model checks this on every export): every parameter exactly once, under
    its PyTorch name, as a graph input of the build graph; ALBERT's one layer runs 3 times but is stored once."""
    g = onnx.load_from_string(weightless())
    inputs = [i.name for i in g.graph.input]
    names = [n for n, _ in model.named_parameters()]
    assert set(names) <= set(inputs) and len(inputs) == len(set(inputs)) == len(names) + 3
    query = [n for n in inputs if n.endswith("attention.query.weight")]
    assert len(query) == 1 and model.encoder.config.num_hidden_layers == 3
    assert [i.name for i in g.graph.initializer] == ["encoder.embeddings.position_ids"]


def test_fixed_label_axis_trap(model, proto):
    """Trap 3: lifted inputs keep the exporting task's shapes; another task's classifier (2 labels) is refused
    unless the label axis is symbolic, which lift_inputs does for classifier tensors."""
    task = model.task_names()
    fixed = lift_inputs(proto, task)  # no varying axes declared
    ids, mask, types = (t.numpy() for t in _example_inputs(2, 6))
    feed = data_feed(ids, mask, types)
    params = {n: p.detach().numpy() for n, p in model.named_parameters() if n in task}
    params["classifier.weight"] = np.zeros((2, params["classifier.weight"].shape[1]), dtype=np.float32)
    params["classifier.bias"] = np.zeros(2, dtype=np.float32)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session(fixed).run(["logits"], {**feed, **params})
    symbolic = lift_inputs(proto, task, {"classifier.weight": [0], "classifier.bias": [0]})
    assert session(symbolic).run(["logits"], {**feed, **params})[0].shape == (2, 2)
