"""Dynamic batching: the pure policy (Triton dynamic_batcher semantics) and Engine.infer_batch on a tiny build."""

import numpy as np
import pytest

from edgemti.errors import ConfigError
from edgemti.formats.build import open_build, reference_logits
from edgemti.runtime.batcher import BatchDecision, BatchingConfig, decide, same_task
from edgemti.runtime.engine import Engine
from edgemti.runtime.request import Request

# -- the policy ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"max_batch_size": 0}, {"max_batch_size": 2.0}, {"max_batch_size": True},
                                {"max_queue_delay_s": -0.001}, {"max_queue_delay_s": float("inf")},
                                {"max_queue_delay_s": "1"}])
def test_config_rejects_bad_values_naming_class_and_field(kw):
    with pytest.raises(ConfigError, match=f"BatchingConfig: {next(iter(kw))}"):
        BatchingConfig(**kw)


def test_full_batch_runs_now_partial_waits_out_the_delay():
    c = BatchingConfig(max_batch_size=4, max_queue_delay_s=0.010)
    assert decide(c, queued=4, oldest_wait_s=0.0) == BatchDecision(4)
    assert decide(c, queued=9, oldest_wait_s=0.0) == BatchDecision(4)  # never more than max_batch_size
    d = decide(c, queued=2, oldest_wait_s=0.004)
    assert not d.ready and d.wait_s == pytest.approx(0.006)
    assert decide(c, queued=2, oldest_wait_s=0.010) == BatchDecision(2)  # the oldest waited long enough
    assert decide(c, queued=3, oldest_wait_s=0.0, closing=True) == BatchDecision(3)  # nothing more will come


def test_no_delay_takes_what_is_there_and_size_one_is_batching_off():
    assert decide(BatchingConfig(8, 0.0), queued=3, oldest_wait_s=0.0) == BatchDecision(3)
    off = BatchingConfig()
    assert not off.enabled and decide(off, queued=5, oldest_wait_s=0.0) == BatchDecision(1)
    with pytest.raises(ConfigError):
        decide(off, queued=0, oldest_wait_s=0.0)


class _R:
    def __init__(self, task):
        self.task = task


def test_same_task_gathers_the_heads_task_in_arrival_order_up_to_the_limit():
    q = [_R(t) for t in ("a", "b", "b", "a", "b", "b")]
    assert same_task(q, 1) == [1, 2, 4, 5]
    assert same_task(q, 1, limit=3) == [1, 2, 4]
    assert same_task(q, 0, limit=8) == [0, 3]


# -- the engine ---------------------------------------------------------------------------------------------------

def _reqs(task, texts, pair=None):
    return [Request(id=i, task=task, text=t, text_pair=pair, seq=i) for i, t in enumerate(texts)]


TEXTS = ["a fine film", "dull", "the plot goes nowhere and the actors look bored in every single scene", "ok"]


def test_batch_answers_equal_single_answers_and_the_reference(build):
    eng = Engine.open(build)
    b = open_build(build)
    batch = eng.infer_batch(_reqs("sst2", TEXTS))
    assert len({r["seq_len"] for r in batch}) == 1  # one run: padded to the longest bucket
    single = [Engine.open(build).infer_request(r) for r in _reqs("sst2", TEXTS)]
    for got, one, text in zip(batch, single, TEXTS, strict=True):
        assert set(got) == set(one) and got["ok"] and got["batch_size"] == len(TEXTS) and one["batch_size"] == 1
        assert got["label"] == one["label"] and got["tokens"] == one["tokens"]
        assert np.max(np.abs(np.asarray(got["logits"]) - np.asarray(one["logits"]))) <= 1e-5
        f = eng.tokenize(text)[0]
        ref = reference_logits(b, "sst2", f["input_ids"], f["attention_mask"], f["token_type_ids"])[0]
        assert np.max(np.abs(np.asarray(got["logits"]) - ref)) <= 1e-5
    assert eng.stats.batches == 1 and eng.stats.requests == len(TEXTS)


def test_batch_energy_is_the_hardware_models_batch_cost_split_evenly(build):
    eng = Engine.open(build)
    out = eng.infer_batch(_reqs("mrpc", TEXTS, pair="he went away"))
    n, seq_len = len(out), out[0]["seq_len"]
    run = eng.hw.inference(seq_len, "mrpc", batch=n)
    assert sum(r["inference"]["energy_j"] for r in out) == pytest.approx(run.energy_j, rel=1e-12)
    assert all(r["inference"]["latency_s"] == pytest.approx(run.latency_s) for r in out)  # all wait for the run
    for r in out:
        assert sum(r["energy_by_component_j"].values()) == pytest.approx(r["energy_j"], rel=1e-9)
    # the swap happened once, caused by (and charged to) the first row
    assert [r["swapped"] for r in out] == [True] + [False] * (n - 1)
    assert out[0]["energy_j"] == pytest.approx(out[0]["inference"]["energy_j"] + out[0]["swap"]["energy_j"])
    assert eng.slots.stats()["swaps"] == 1
    # weights are read once per batch: energy per inference falls with the batch size
    one = eng.hw.inference(seq_len, "mrpc")
    assert run.energy_j / n < one.energy_j


def test_bad_rows_get_errors_the_rest_are_served_and_tasks_never_mix(build):
    eng = Engine.open(build, overlong="reject")
    reqs = _reqs("sst2", ["fine", "word " * 200, "bad"])
    out = eng.infer_batch(reqs)
    assert [r["ok"] for r in out] == [True, False, True] and out[1]["id"] == 1
    assert out[0]["batch_size"] == 2 and "max_seq_len" in out[1]["error"]["message"]
    mixed = [Request(id=0, task="sst2", text="a"), Request(id=1, task="stsb", text="a", text_pair="b")]
    with pytest.raises(ConfigError, match="one task"):
        eng.infer_batch(mixed)
    assert eng.infer_batch([]) == []
