import json
from types import SimpleNamespace

import pytest

from edgemti.errors import ConfigError, FormatError
from edgemti.runtime.log import LogWriter, read_log
from edgemti.runtime.request import RequestParseError, RequestRules, parse_request
from edgemti.runtime.scheduler import SchedulerConfig, plan
from edgemti.runtime.slots import PackSlots, count_swaps
from edgemti.runtime.summary import summarize

RULES = RequestRules(tasks=("sst2", "mrpc"), pair_tasks=("mrpc",))


def test_parse_ok_and_pair():
    r = parse_request('{"id": 1, "task": "sst2", "text": "good"}', RULES, seq=3)
    assert (r.id, r.task, r.text, r.seq) == (1, "sst2", "good", 3)
    r = parse_request({"id": "a", "task": "mrpc", "text": "x", "text_pair": "y"}, RULES)
    assert r.text_pair == "y"


@pytest.mark.parametrize("line,rid,needle", [
    ("{not json", None, "malformed JSON"),
    ("[1, 2]", None, "JSON object"),
    ('{"task": "sst2", "text": "a"}', None, "missing field 'id'"),
    ('{"id": 5, "task": "qqp", "text": "a"}', 5, "unknown task 'qqp'"),
    ('{"id": 5, "task": "sst2", "text": "   "}', 5, "empty"),
    ('{"id": 5, "task": "sst2"}', 5, "missing field 'text'"),
    ('{"id": 5, "task": "mrpc", "text": "a"}', 5, "add 'text_pair'"),
    ('{"id": 5, "task": "sst2", "text": "a", "text_pair": "b"}', 5, "drop 'text_pair'"),
    ('{"id": 5, "task": "sst2", "text": 3, "colour": 1}', 5, "unknown field"),
])
def test_parse_errors_keep_id(line, rid, needle):
    with pytest.raises(RequestParseError, match=needle) as ei:
        parse_request(line, RULES)
    assert ei.value.request_id == rid


def test_unknown_task_kind():
    with pytest.raises(RequestParseError) as ei:
        parse_request('{"id": 1, "task": "cola", "text": "a"}', RULES)
    assert ei.value.kind == "UnknownTaskError"


def test_slots_lru_and_pinning():
    s = PackSlots(2, pinned=["a"])
    assert not s.access("a").hit
    assert not s.access("b").hit
    acc = s.access("c")
    assert acc.evicted == "b" and not acc.hit
    assert s.access("a").hit
    assert s.stats()["swaps"] == 3 and s.stats()["hits"] == 1
    with pytest.raises(ConfigError, match="need at least 2 slots"):
        PackSlots(1, pinned=["a"])
    assert count_swaps("aabba") == 3
    assert count_swaps("ababab", slots=2) == 2


def _reqs(tasks):
    return [SimpleNamespace(seq=i, task=t) for i, t in enumerate(tasks)]


def test_swap_aware_groups_and_bounds_wait():
    stream = _reqs("abababababab")
    fifo = plan(stream, SchedulerConfig("fifo"))
    aware = plan(stream, SchedulerConfig("swap-aware", window=4, max_bypass=3))
    assert [r.seq for r in fifo] == list(range(12))
    assert sorted(r.seq for r in aware) == list(range(12))  # nothing lost or duplicated
    assert count_swaps(r.task for r in aware) < count_swaps(r.task for r in fifo)
    # bounded extra wait: no request is served more than max_bypass places later than under fifo
    for pos, r in enumerate(aware):
        assert pos - r.seq <= 3
    starve = _reqs("b" + "a" * 30)  # 'b' first, then a flood of 'a' while 'a' is resident
    order = plan(_reqs("a") + [SimpleNamespace(seq=i + 1, task=r.task) for i, r in enumerate(starve)],
                 SchedulerConfig("swap-aware", window=8, max_bypass=2))
    assert [r.seq for r in order].index(1) <= 3


def test_log_roundtrip_and_corruption(tmp_path):
    p = tmp_path / "log.jsonl"
    with LogWriter(p, {"build_id": "abc", "spec": {"name": "x"}}) as w:
        w.request({"id": 1, "ok": True, "energy_j": 1e-6})
        w.summary({"requests": 1})
    log = read_log(p)
    assert log.header["build_id"] == "abc" and log.requests[0]["id"] == 1 and log.summary == {"type": "summary",
                                                                                            "requests": 1}
    lines = p.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["energy_j"] = 2e-6
    p.write_text("\n".join([lines[0], json.dumps(rec), lines[2]]) + "\n")
    with pytest.raises(FormatError, match="line 2: checksum mismatch"):
        read_log(p)
    hdr = json.loads(lines[0])
    hdr["format_version"] = 9
    from edgemti.runtime.log import seal
    p.write_text(seal(hdr) + "\n")
    with pytest.raises(FormatError, match="format_version 9 is not supported"):
        read_log(p)
    p.write_text(lines[0] + "\n" + lines[1][:20] + "\n")
    with pytest.raises(FormatError, match="line 2: not JSON"):
        read_log(p)


def _rec(seq, task, swapped, e_inf=1.0, e_swap=10.0):
    swap = {"energy_j": e_swap, "latency_s": 0.5} if swapped else None
    return {"ok": True, "seq": seq, "task": task, "swapped": swapped, "swap": swap,
            "inference": {"energy_j": e_inf, "latency_s": 1.0}, "energy_j": e_inf + (e_swap if swapped else 0),
            "latency_s": 1.0 + (0.5 if swapped else 0), "host_s": 0.01, "energy_by_component_j": {"sram": e_inf}}


def test_summary_fifo_replay_exact():
    # served order a a b b (swap-aware) from arrival order a b a b (fifo: 4 swaps)
    served = [_rec(0, "a", True), _rec(2, "a", False), _rec(1, "b", True), _rec(3, "b", False),
              {"ok": False, "id": 9}]
    s = summarize(served, swap_cost=lambda t: (10.0, 0.5), policy="swap-aware")
    assert s["ok"] == 4 and s["errors"] == 1 and s["swaps"] == 2
    assert s["fifo_baseline"]["swaps"] == 4
    assert s["saved_vs_fifo"]["swaps"] == 2 and s["saved_vs_fifo"]["energy_j"] == pytest.approx(20.0)
    assert s["energy_per_inference_j"] == pytest.approx((4 + 20) / 4)
    assert s["energy_by_component_j"]["sram"] == pytest.approx(4.0)
