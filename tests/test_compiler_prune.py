import numpy as np
import pytest

from edgemti.compiler.config import CompileConfig
from edgemti.compiler.prune import EMBEDDING, TRANSFORMER, group_of, magnitude_prune, prune_backbone
from edgemti.errors import ConfigError


def test_magnitude_prune_removes_exactly_the_smallest():
    x = np.array([[0.5, -0.1, 0.3], [-0.7, 0.2, -0.05]], dtype=np.float32)
    y = magnitude_prune(x, 0.5)
    np.testing.assert_array_equal(y, np.array([[0.5, 0, 0.3], [-0.7, 0, 0]], dtype=np.float32))
    assert np.count_nonzero(magnitude_prune(x, 0.0)) == 6
    assert np.count_nonzero(x) == 6  # the input is not modified


def test_group_rule_and_eq1():
    g = np.random.default_rng(0)
    tensors = {
        "encoder.embeddings.word_embeddings.weight": g.standard_normal((100, 8)).astype(np.float32),
        "encoder.embeddings.LayerNorm.weight": np.ones(8, dtype=np.float32),
        "encoder.encoder.embedding_hidden_mapping_in.weight": g.standard_normal((16, 8)).astype(np.float32),
        "encoder.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight": g.standard_normal((32, 16)).astype(np.float32),
        "encoder.encoder.albert_layer_groups.0.albert_layers.0.ffn.bias": g.standard_normal(32).astype(np.float32),
        "encoder.pooler.weight": g.standard_normal((16, 16)).astype(np.float32),
    }
    assert group_of("encoder.embeddings.LayerNorm.weight") == EMBEDDING
    assert group_of("encoder.encoder.embedding_hidden_mapping_in.weight") == TRANSFORMER
    assert group_of("encoder.pooler.weight") == TRANSFORMER
    pruned, rep = prune_backbone(tensors, 0.6, 0.25)
    rows = {r.name: r for r in rep.tensors}
    assert rows["encoder.embeddings.word_embeddings.weight"].zeros == 480
    assert rows["encoder.pooler.weight"].zeros == 64
    assert not rows["encoder.embeddings.LayerNorm.weight"].pruned  # vectors are kept dense
    assert rows["encoder.encoder.albert_layer_groups.0.albert_layers.0.ffn.bias"].zeros == 0
    n_emb, n_tf = 808, 128 + 512 + 32 + 256
    assert rep.p_embedding == pytest.approx(n_emb / (n_emb + n_tf))
    assert rep.nominal_cumulative == pytest.approx(0.6 * n_emb / 1736 + 0.25 * n_tf / 1736)
    total_zeros = sum(int(a.size - np.count_nonzero(a)) for a in pruned.values())
    assert rep.measured_cumulative == pytest.approx(total_zeros / 1736)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_sparsity_outside_range_is_rejected(bad):
    with pytest.raises(ConfigError, match=r"sparsity_transformer must be in \[0, 1\)"):
        CompileConfig(backbone="albert-tiny", synthetic_tasks=("sst2",), sparsity_transformer=bad)


def test_config_problems_are_listed_together():
    with pytest.raises(ConfigError) as err:
        CompileConfig(backbone="albert-tiny", quant="int4", design="tiny", sparsity_embedding=2.0)
    msg = str(err.value)
    for part in ("packs", "design", "quant", "sparsity_embedding"):
        assert part in msg
