"""Prometheus ``/metrics`` and dynamic batching on the HTTP worker loop: counts that close against the log."""

import http.client
import json
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_runtime_engine import tiny_build

from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.metrics import ServerMetrics
from edgemti.runtime.scheduler import SchedulerConfig


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine.open(tiny_build(tmp_path_factory.getbasetemp()))


def _scrape(srv) -> dict:
    conn = http.client.HTTPConnection(*srv.address, timeout=30)
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/plain")
    text = r.read().decode()
    conn.close()
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _post(srv, body: bytes):
    conn = http.client.HTTPConnection(*srv.address, timeout=60)
    conn.request("POST", "/infer", body)
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


def _req(rid, task, text="a fine film"):
    r = {"id": rid, "task": task, "text": text}
    if task in ("mrpc", "stsb"):
        r["text_pair"] = "a good movie"
    return json.dumps(r).encode()


def test_metrics_close_against_the_answers(engine, tmp_path):
    srv = HttpServer(engine, "127.0.0.1:0", SchedulerConfig("fifo"), log_path=tmp_path / "m.jsonl").start()
    answers = [_post(srv, _req(i, t)) for i, t in enumerate(["sst2", "sst2", "mrpc", "stsb", "sst2"])]
    answers.append(_post(srv, b"{broken"))
    answers.append(_post(srv, _req("u", "qqp")))
    m = _scrape(srv)
    ok = [a for s, a in answers if s == 200]
    assert m[("edgemti_requests_total", (("status", "200"), ("task", "sst2")))] == 3
    assert m[("edgemti_requests_total", (("status", "400"), ("task", "none")))] == 1
    assert m[("edgemti_requests_total", (("status", "404"), ("task", "none")))] == 1
    swaps = sum(v for (n, _), v in m.items() if n == "edgemti_swaps_total")
    assert swaps == sum(1 for a in ok if a["swapped"]) == 4  # sst2, mrpc, stsb, sst2 with one slot
    energy = sum(v for (n, _), v in m.items() if n == "edgemti_simulated_energy_joules_total")
    assert energy == pytest.approx(sum(a["energy_j"] for a in ok), rel=1e-9)  # the breakdown closes
    assert m[("edgemti_simulated_latency_seconds_count", (("task", "sst2"),))] == 3
    assert m[("edgemti_simulated_latency_seconds_sum", (("task", "sst2"),))] == pytest.approx(
        sum(a["latency_s"] for a in ok if a["task"] == "sst2"))
    assert m[("edgemti_host_latency_seconds_count", (("task", "mrpc"),))] == 1
    assert m[("edgemti_queue_depth", ())] == 0
    assert m[("edgemti_resident_packs", ())] == 1
    assert m[("edgemti_pack_resident", (("task", "sst2"),))] == 1
    assert m[("edgemti_batch_size_count", (("task", "sst2"),))] == 3  # batching off: one run per request
    srv.stop()
    assert len(read_log(tmp_path / "m.jsonl").requests) == len(answers)


def test_each_server_has_its_own_registry():
    a, b = ServerMetrics(["sst2"]), ServerMetrics(["sst2"])
    a.observe({"task": "sst2", "ok": True, "swapped": True, "energy_by_component_j": {"sram": 1e-6},
               "latency_s": 1e-3, "queue_s": 0.0, "loop_s": 0.01}, 200)
    assert b"edgemti_swaps_total{task=\"sst2\"} 1.0" in a.render()
    assert b"edgemti_swaps_total{task=\"sst2\"} 0.0" in b.render()


def test_dynamic_batching_gathers_one_task_and_answers_as_unbatched(engine, tmp_path):
    texts = [f"review number {i} says it is {'good' if i % 2 else 'bad'}" for i in range(12)]
    alone = {i: engine.infer("sst2", t) for i, t in enumerate(texts)}
    srv = HttpServer(engine, "127.0.0.1:0", SchedulerConfig("swap-aware"), log_path=tmp_path / "b.jsonl",
                     batching=BatchingConfig(max_batch_size=4, max_queue_delay_s=0.2)).start()
    answers: dict = {}

    def client(i):
        answers[i] = _post(srv, _req(i, "sst2", texts[i]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = _scrape(srv)
    srv.stop()
    assert all(s == 200 for s, _ in answers.values())
    for i, (_, a) in answers.items():
        assert a["label"] == alone[i].label
        assert a["scores"] == pytest.approx(alone[i].scores, abs=1e-5)
    runs = m[("edgemti_batch_size_count", (("task", "sst2"),))]
    assert m[("edgemti_batch_size_sum", (("task", "sst2"),))] == 12
    assert runs < 12  # 12 requests waiting up to 0.2 s for company ran in fewer than 12 engine runs
    assert max(a["batch_size"] for _, a in answers.values()) > 1
    assert max(a["batch_size"] for _, a in answers.values()) <= 4
