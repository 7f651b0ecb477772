"""The server loop on a real tiny build: streams, bad input, swap-aware vs fifo, HTTP, log, CLI."""

import http.client
import json
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.errors import ConfigError
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer, parse_address
from edgemti.runtime.log import read_log
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import serve_stream


@pytest.fixture(scope="module")
def engine(build):
    return Engine.open(build)


def _req(i, task):
    r = {"id": i, "task": task, "text": f"sentence number {i} is here"}
    if task in ("mrpc", "stsb"):
        r["text_pair"] = "another sentence"
    return json.dumps(r)


BAD = [
    "{this is not json",
    json.dumps({"id": "b1", "task": "qqp", "text": "x"}),
    json.dumps({"id": "b2", "task": "sst2", "text": ""}),
    json.dumps({"id": "b3", "task": "mrpc", "text": "only one"}),
    json.dumps({"id": "b4", "text": "no task"}),
    json.dumps([1, 2, 3]),
]


def test_stream_every_line_answered_bad_input_survives(engine, tmp_path):
    good = [_req(i, t) for i, t in enumerate(["sst2", "mrpc", "sst2", "stsb"])]
    lines = [good[0], BAD[0], good[1], BAD[1], BAD[2], good[2], BAD[3], BAD[4], BAD[5], good[3]]
    out = []
    res = serve_stream(engine, lines, SchedulerConfig("fifo"), log_path=tmp_path / "log.jsonl", emit=out.append,
                       keep_responses=True)
    assert len(out) == len(lines) == len(res.responses)
    oks = [r for r in out if r["ok"]]
    assert [r["id"] for r in oks] == [0, 1, 2, 3]
    errs = {r["id"]: r["error"]["type"] for r in out if not r["ok"]}
    assert errs["b1"] == "UnknownTaskError" and errs["b2"] == errs["b3"] == "RequestError"
    assert sum(1 for r in out if not r["ok"] and r["id"] is None) == 2  # bad JSON, not an object
    assert "missing field 'task'" in next(r for r in out if r["id"] == "b4")["error"]["message"]
    for r in oks:
        assert {"label", "scores", "energy_j", "latency_s", "energy_by_component_j", "host_s", "swapped"} <= set(r)
    log = read_log(tmp_path / "log.jsonl")
    assert log.header["build_id"] == engine.build_id and log.header["spec"]["sha256"]
    assert len(log.requests) == len(lines) and log.summary["requests"] == len(lines)
    assert all(r["build_id"] == engine.build_id and r["spec_sha256"] == log.header["spec"]["sha256"]
               for r in log.requests)
    assert log.summary["ok"] == 4 and log.summary["errors"] == 6
    assert log.summary["host_latency_s"]["p99"] >= log.summary["host_latency_s"]["p50"] > 0


def test_swap_aware_saves_swaps_and_energy_same_answers(build):
    tasks = ["sst2", "mrpc", "stsb"] * 6
    lines = [_req(i, t) for i, t in enumerate(tasks)]
    fifo = serve_stream(Engine.open(build), lines, SchedulerConfig("fifo"), keep_responses=True)
    aware = serve_stream(Engine.open(build), lines, SchedulerConfig("swap-aware", window=6, max_bypass=4),
                         keep_responses=True)
    assert fifo.summary["swaps"] == len(tasks)
    assert aware.summary["swaps"] < fifo.summary["swaps"]
    assert aware.summary["fifo_baseline"]["swaps"] == fifo.summary["swaps"]
    assert aware.summary["fifo_baseline"]["energy_j_total"] == pytest.approx(fifo.summary["energy_j_total"])
    assert aware.summary["saved_vs_fifo"]["energy_j"] > 0
    assert aware.summary["max_bypassed"] <= 4
    by_id = {r["id"]: r["label"] for r in fifo.responses}
    assert {r["id"]: r["label"] for r in aware.responses} == by_id  # reordering never changes an answer


def test_http_concurrent_clients_all_answered(engine, tmp_path):
    srv = HttpServer(engine, "127.0.0.1:0", SchedulerConfig("swap-aware"), log_path=tmp_path / "h.jsonl").start()
    host, port = srv.address
    results = []

    def client(c):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for i in range(6):
            body = b"{bad" if i == 3 else _req(f"{c}-{i}", ["sst2", "mrpc", "stsb"][(c + i) % 3]).encode()
            conn.request("POST", "/infer", body)
            resp = conn.getresponse()
            results.append((resp.status, json.loads(resp.read())))
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read())["ok"] is True
    conn.close()
    summary = srv.stop().summary
    assert len(results) == 24
    assert sum(1 for s, r in results if s == 200 and r["ok"]) == 20
    assert sum(1 for s, r in results if s == 400 and not r["ok"]) == 4
    assert summary["requests"] == 24 and summary["ok"] == 20
    assert len(read_log(tmp_path / "h.jsonl").requests) == 24


def test_http_refuses_non_loopback():
    with pytest.raises(ConfigError, match="loopback"):
        parse_address("0.0.0.0:8080")
    with pytest.raises(ConfigError):
        parse_address("localhost")
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)


def test_cli_serve_requests_file(build, tmp_path):
    req = tmp_path / "req.jsonl"
    req.write_text("\n".join([_req(1, "sst2"), "{oops", _req(2, "mrpc")]) + "\n")
    res = CliRunner().invoke(main, ["serve", str(build), "--requests", str(req), "--log", str(tmp_path / "l.jsonl"),
                                    "--policy", "fifo"])
    assert res.exit_code == 0, res.output
    answers = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [a["ok"] for a in answers] == [True, False, True]
    assert "energy per inference" in res.stderr
    assert read_log(tmp_path / "l.jsonl").summary["ok"] == 2


def test_console_script_serves_stdin(build):
    stdin = "\n".join([_req("a", "sst2"), "not json", _req("b", "stsb")]) + "\n"
    p = subprocess.run([sys.executable, "-m", "edgemti.cli", "serve", str(build)], input=stdin, text=True,
                       capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr
    answers = [json.loads(x) for x in p.stdout.splitlines()]
    assert [(a["id"], a["ok"]) for a in answers] == [("a", True), (None, False), ("b", True)]
    assert "swaps" in p.stderr


def test_serve_entry_point_http_for_a_bounded_time(build, tmp_path):
    from edgemti.runtime.serving import serve

    got = {}

    def ready(addr):
        def client():
            conn = http.client.HTTPConnection(addr[0], addr[1], timeout=30)
            conn.request("POST", "/infer", _req("h1", "sst2"))
            got["a"] = json.loads(conn.getresponse().read())
            conn.request("GET", "/stats")
            got["stats"] = json.loads(conn.getresponse().read())
            conn.request("POST", "/nowhere", b"{}")
            got["404"] = conn.getresponse().status
            conn.close()

        threading.Thread(target=client).start()

    res = serve(build, http="127.0.0.1:0", duration_s=3.0, ready=ready, log_path=tmp_path / "s.jsonl")
    assert got["a"]["ok"] and got["a"]["id"] == "h1" and got["404"] == 404
    assert got["stats"]["ok"] >= 1
    assert res.summary["ok"] == 1
    with pytest.raises(ConfigError, match="not both"):
        serve(build, requests=tmp_path / "x", http="127.0.0.1:0")


def test_cli_serve_from_faulty_rram(build, tmp_path):
    req = tmp_path / "req.jsonl"
    req.write_text(_req(1, "sst2") + "\n")
    res = CliRunner().invoke(main, ["serve", str(build), "--requests", str(req), "--log", str(tmp_path / "f.jsonl"),
                                    "--fault-mlc-rate", "0.01", "--fault-seed", "3"])
    assert res.exit_code == 0, res.output
    fault = read_log(tmp_path / "f.jsonl").header["fault"]
    assert fault == {"slc_error_rate": 0.0, "mlc_error_rate": 0.01, "seed": 3, "masks_in": "slc"}


def test_console_script_http_stops_cleanly_on_sigterm(build, tmp_path):
    """A service manager's SIGTERM: the answered request is logged, the summary written, exit code 0."""
    import signal
    import socket

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "term.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(build), "--http",
                             f"127.0.0.1:{port}", "--log", str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/infer", _req("t1", "sst2"))
                answer = json.loads(conn.getresponse().read())
                conn.close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer["ok"] and answer["id"] == "t1"
    assert proc.returncode == 0, err
    assert "swaps" in err  # the summary
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert any(r.get("id") == "t1" for r in records)
