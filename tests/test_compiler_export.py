"""The multi-task ONNX graph: one export serves every task; matches PyTorch; dynamic batch and sequence axes."""

import numpy as np
import pytest
import torch
from compiler_support import raw_export, task_shapes, tiny_models

from edgemti.compiler.export import export_multitask
from edgemti.formats.graph import data_feed, insert_activation_qdq, session


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture(scope="module")
def graph(models):
    return export_multitask(models[0], [task_shapes(m) for m in models], proto=raw_export())


def _feed(model, batch, seq, seed):
    g = np.random.default_rng(seed)
    ids = g.integers(5, 1000, (batch, seq))
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[0, seq - 2:] = 0
    types = np.zeros((batch, seq), dtype=np.int64)
    types[:, seq // 2:] = 1
    feed = data_feed(ids, mask, types)
    feed.update({n: p.detach().numpy() for n, p in model.named_parameters() if n in model.task_names()})
    with torch.no_grad():
        ref = model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()
    return feed, ref


def test_task_tensors_are_inputs_backbone_is_stored_once(graph, models):
    m = models[0]
    inputs = {i.name for i in graph.graph.input}
    inits = [i.name for i in graph.graph.initializer]
    assert set(m.task_names()) <= inputs and not set(m.task_names()) & set(inits)
    assert set(m.backbone_names()) <= set(inits) and len(inits) == len(set(inits))


@pytest.mark.parametrize("batch,seq", [(1, 5), (4, 23), (2, 64)])
def test_one_graph_serves_every_task_and_matches_pytorch(graph, models, batch, seq):
    sess = session(graph)
    for i, m in enumerate(models):
        feed, ref = _feed(m, batch, seq, seed=i)
        out = sess.run(["logits"], feed)[0]
        assert out.shape == (batch, m.num_labels)
        assert np.max(np.abs(out - ref)) <= 1e-4


def test_activation_qdq_emulation(graph, models):
    feed, ref = _feed(models[0], 2, 9, seed=0)
    q = insert_activation_qdq(graph, bits=16, frac_bits=10)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear") == ops.count("MatMul") + ops.count("Gemm")
    out = session(q).run(["logits"], feed)[0]
    diff = np.max(np.abs(out - ref))
    assert 0 < diff < 0.05  # Q6.10 activations: a visible but small error
    out8 = session(insert_activation_qdq(graph, bits=8, frac_bits=4)).run(["logits"], feed)[0]
    assert np.max(np.abs(out8 - ref)) > diff  # fewer bits, more error
