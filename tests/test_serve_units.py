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


# -- HTTP transport and Open Inference Protocol codec (no build needed) -------------------------------------------


def test_http_routes_status_and_config():
    from edgemti.runtime.http import HttpConfig, status_of
    from edgemti.runtime.http_routes import route as _route

    assert _route("POST", "/infer")[0] == "infer"
    assert _route("GET", "/infer") == (None, {}, ["POST"])  # -> 405 with Allow: POST
    assert _route("GET", "/nope") == (None, {}, [])  # -> 404
    assert _route("POST", "/v2/models/sst2/versions/1/infer")[:2] == ("v2_infer", {"task": "sst2"})
    assert _route("POST", "/v2/repository/models/rte/unload")[:2] == ("v2_repository", {"task": "rte",
                                                                                        "action": "unload"})
    assert status_of({"ok": True}) == 200
    for kind, code in [("RequestError", 400), ("UnknownTaskError", 404), ("ServiceUnavailable", 503),
                       ("RuntimeError", 500), ("NonFiniteOutput", 500)]:
        assert status_of({"ok": False, "error": {"type": kind}}) == code
    for bad in [{"max_connections": 0}, {"backlog": -1}, {"read_timeout_s": 0}, {"max_texts": True}]:
        with pytest.raises(ConfigError, match="HttpConfig"):
            HttpConfig(**bad)


def test_oip_decode_json_and_binary_inputs():
    import struct

    from edgemti.runtime.oip import OipError, decode_infer, split_body

    head = {"id": "r", "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]},
                                  {"name": "text_pair", "shape": [2], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 10}}],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}]}
    raw = b"".join(struct.pack("<I", 1) + c for c in (b"x", b"y"))
    header = json.dumps(head).encode()
    h, binary = split_body(header + raw, str(len(header)))
    body = decode_infer(h, binary, pair=True, max_rows=4)
    assert body.rows == ({"text": "a", "text_pair": "x"}, {"text": "b", "text_pair": "y"})
    assert body.outputs == (("scores", True),) and body.id == "r"
    cases = [
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}, True, "text_pair"),
        ({"inputs": [{"name": "txt", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}, False, "unknown input"),
        ({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}, False, "says 2"),
        ({"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]}, False, "shape"),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "INT64", "data": [1]}]}, False, "BYTES"),
        ({"inputs": [{"name": "text", "shape": [5], "datatype": "BYTES", "data": ["a"] * 5}]}, False, "1..4"),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
          "outputs": [{"name": "logits"}]}, False, "unknown output"),
    ]
    for h, pair, needle in cases:
        with pytest.raises(OipError, match=needle) as ei:
            decode_infer(h, b"", pair=pair, max_rows=4)
        assert ei.value.status == 400
    with pytest.raises(OipError, match="not UTF-8"):
        decode_infer({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": 5}}]}, struct.pack("<I", 1) + b"\xff",
                     pair=False, max_rows=4)
    with pytest.raises(OipError, match="not JSON"):
        split_body(b"[" * 100_000, None)


def test_oip_encode_binary_roundtrip_and_cost_parameters():
    import struct

    import numpy as np

    from edgemti.runtime.oip import InferBody, cost_parameters, encode_infer

    answers = [{"label": "positive", "scores": [0.25, 0.75], "energy_j": 3.0, "swapped": True, "evicted": "mrpc",
                "swap": {"latency_s": 1.0}, "inference": {"latency_s": 4.0}, "batch_size": 2,
                "energy_by_component_j": {"pe_array": 2.0, "dram": 1.0}},
               {"label": "negative", "scores": [0.5, 0.5], "energy_j": 2.0, "swapped": False, "swap": None,
                "inference": {"latency_s": 4.0}, "batch_size": 2, "energy_by_component_j": {"pe_array": 2.0}}]
    p = cost_parameters(answers)
    assert p["sim_energy_j"] == 5.0 and p["sim_latency_s"] == 1.0 + 4.0  # one swap + one shared run of 2
    assert p["sim_energy_j.pe_array"] + p["sim_energy_j.dram"] == p["sim_energy_j"]
    assert (p["swaps"], p["evicted"], p["batch_size"]) == (1, "mrpc", 2)
    data, n = encode_infer("sst2", InferBody("q", (), (("label", True), ("scores", False))), answers)
    assert n is not None
    head = json.loads(data[:n])
    assert head["id"] == "q" and head["outputs"][1]["data"] == [0.25, 0.75, 0.5, 0.5]
    raw = data[n:]
    assert len(raw) == head["outputs"][0]["parameters"]["binary_data_size"]
    k = struct.unpack_from("<I", raw)[0]
    assert raw[4:4 + k] == b"positive"
    data, n = encode_infer("sst2", InferBody(None, (), (("scores", True),)), answers)
    assert np.frombuffer(data[n:], "<f4").tolist() == [0.25, 0.75, 0.5, 0.5]
