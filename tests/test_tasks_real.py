"""Slow: the shipped MiniLM packs on the real GLUE dev sets (needs /work/shared/data or $EDGEMTI_DATA)."""

import pytest

from edgemti.tasks import packs_dir
from edgemti.tasks.data import glue_dir
from edgemti.tasks.pack import load_pack
from edgemti.tasks.train import evaluate_pack

CHANCE = {"sst2": ("accuracy", 0.5), "mrpc": ("f1", 0.81), "rte": ("accuracy", 0.53)}  # majority-class baselines


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(CHANCE))
def test_shipped_pack_reproduces_its_recorded_dev_metric(task):
    if not (glue_dir() / "RTE").is_dir():
        pytest.skip(f"no GLUE data at {glue_dir()}")
    pack_dir = packs_dir() / task
    pack = load_pack(pack_dir)
    r = evaluate_pack(pack_dir)
    metric, chance = CHANCE[task]
    assert r.num_examples == pack.metrics["num_dev_examples"]
    assert r.metrics[metric] == pytest.approx(pack.metrics[f"dev_{metric}"], abs=0.005)  # thread count may flip one tie
    assert r.metrics[metric] > chance  # better than always answering the majority class
