"""HTTP hardening: the status code table, one answer per body, bounded threads, slow clients, hang-ups, drain."""

import http.client
import json
import socket
import threading
import time

import pytest
from test_runtime_engine import tiny_build

from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpConfig, HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.scheduler import SchedulerConfig


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine.open(tiny_build(tmp_path_factory.getbasetemp()))


@pytest.fixture()
def server(engine, tmp_path):
    srv = HttpServer(engine, "127.0.0.1:0", SchedulerConfig("swap-aware"), log_path=tmp_path / "h.jsonl",
                     config=HttpConfig(max_connections=64, backlog=16, read_timeout_s=1.0)).start()
    yield srv
    srv.stop()


def _req(rid, task="sst2", **kw):
    r = {"id": rid, "task": task, "text": "a fine film"}
    if task in ("mrpc", "stsb"):
        r["text_pair"] = "a good movie"
    r.update(kw)
    return json.dumps(r).encode()


def _call(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*srv.address, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def _raw(srv, data: bytes) -> bytes:
    with socket.create_connection(srv.address, timeout=30) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_status_code_table(server, engine):
    """Every row of docs/RUNTIME.md's status table, through real HTTP."""
    big = engine.rules.max_request_bytes + 1
    rows = [
        ("POST", "/infer", _req(1), {}, 200),
        ("POST", "/infer?x=1&y", _req(2), {}, 200),  # the query string is ignored
        ("POST", "/infer/", _req(3), {}, 200),
        ("POST", "/infer", b"{bad json", {}, 400),
        ("POST", "/infer", _req(4, text="   "), {}, 400),
        ("POST", "/infer", _req(5, task="qqp"), {}, 404),  # unknown model
        ("POST", "/nowhere", b"{}", {}, 404),
        ("GET", "/nowhere", None, {}, 404),
        ("GET", "/infer", None, {}, 405),
        ("PUT", "/infer", b"{}", {}, 405),
        ("POST", "/health", b"{}", {}, 405),
        ("POST", "/v2/models/sst2/ready", b"", {}, 405),
        ("GET", "/v2/models/sst2/infer", None, {}, 405),
        ("POST", "/infer", b"x" * big, {}, 413),
        ("POST", "/infer", b"{}", {"Content-Encoding": "gzip"}, 415),
        ("GET", "/health", None, {}, 200),
        ("GET", "/stats", None, {}, 200),
        ("GET", "/metrics", None, {}, 200),
        ("GET", "/v2/health/live", None, {}, 200),
        ("GET", "/v2/health/ready", None, {}, 200),
        ("GET", "/v2/models/nope", None, {}, 404),
        ("POST", "/v2/models/nope/infer", b"{}", {}, 404),
        ("POST", "/v2/models/sst2/infer", b'{"inputs": 3}', {}, 400),
    ]
    for method, path, body, headers, want in rows:
        status, hdrs, data = _call(server, method, path, body, headers)
        assert status == want, (method, path, status, data[:200])
        if status == 405:
            assert hdrs["Allow"] in ("POST", "GET"), hdrs
        if status != 200 and path != "/metrics":
            json.loads(data)  # every error is a JSON body
    # no Content-Length on a POST: 411, and the connection closes (its body cannot be framed)
    out = _raw(server, b"POST /infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 411")
    # neither Content-Length nor Transfer-Encoding: an empty body (RFC 9112), answered 400 like any empty request
    out = _raw(server, b"POST /infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


def test_engine_fault_is_500_and_the_next_request_is_served(server, engine, monkeypatch):
    def broken(task, feeds):
        raise RuntimeError("onnxruntime: device lost")

    monkeypatch.setattr(engine.session, "run", broken)
    status, _, data = _call(server, "POST", "/infer", _req("f1"))
    assert status == 500 and json.loads(data)["error"]["type"] == "RuntimeError"
    monkeypatch.undo()
    status, _, data = _call(server, "POST", "/infer", _req("f2"))
    assert status == 200 and json.loads(data)["id"] == "f2"


def test_hostile_bodies_each_get_one_answer_and_a_log_line(engine, tmp_path, capfd):
    log = tmp_path / "hostile.jsonl"
    srv = HttpServer(engine, "127.0.0.1:0", log_path=log, config=HttpConfig(read_timeout_s=2.0)).start()
    bodies = [b'{"id": ' + b"9" * 5000 + b', "task": "sst2", "text": "a"}', b"[" * 100_000, b"\xff\xfe{",
              b'{"id": 1, "task": "sst2", "text": "a\\ud800b"}', b'{"id": 2, "task": "sst2", "text": "\\u0000\\u0000"}',
              b"", b"null", _req("good")]
    conn = http.client.HTTPConnection(*srv.address, timeout=30)
    answers = []
    for b in bodies:  # one keep-alive connection: a bad body never breaks the next one
        conn.request("POST", "/infer", b)
        r = conn.getresponse()
        answers.append((r.status, json.loads(r.read())))
    conn.close()
    summary = srv.stop().summary
    assert [s for s, _ in answers] == [400] * 7 + [200]
    assert summary["requests"] == len(bodies)
    assert len(read_log(log).requests) == len(bodies)
    assert "Traceback" not in capfd.readouterr().err


def test_slow_loris_connections_are_cut_and_threads_stay_bounded(server):
    threads_before = threading.active_count()
    socks = []
    for _ in range(300):  # each sends half a request line and then nothing
        s = socket.socket()
        s.settimeout(10)
        try:
            s.connect(server.address)
            s.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
        socks.append(s)
    assert threading.active_count() <= threads_before + 2  # the pool is fixed: no thread per connection
    deadline = time.monotonic() + 60
    while True:  # a client that retries (503 + Retry-After, or a connection shed) is served once the stalled
        try:     # connections are cut
            status, hdrs, _ = _call(server, "POST", "/infer", _req("patient"))
        except (http.client.RemoteDisconnected, ConnectionError):
            status, hdrs = 503, {"Retry-After": "1"}
        if status != 503 or time.monotonic() > deadline:
            break
        assert hdrs["Retry-After"] == "1"
        time.sleep(0.5)
    assert status == 200
    answered = []
    for s in socks:
        try:  # told 408 (half a request when its deadline passed), 503 (shed at accept), or closed
            data = s.recv(1024)
            answered.append("closed" if data == b"" else data.split(b"\r\n", 1)[0].decode("latin-1"))
        except OSError:
            answered.append("closed")
        s.close()
    assert set(answered) <= {"closed", "HTTP/1.1 408 Request Timeout", "HTTP/1.1 503 Service Unavailable"}, \
        sorted(set(answered))


def test_client_hanging_up_leaves_no_traceback(server, capfd):
    for i in range(5):
        s = socket.create_connection(server.address)
        body = _req(f"gone{i}")
        s.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # gone before the answer (RST): the server's write fails
    status, _, _ = _call(server, "POST", "/infer", _req("after"))
    assert status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_draining_answers_queued_and_refuses_new_with_503(engine, tmp_path):
    log = tmp_path / "drain.jsonl"
    srv = HttpServer(engine, "127.0.0.1:0", log_path=log, config=HttpConfig(retry_after_s=3)).start()
    late = http.client.HTTPConnection(*srv.address, timeout=30)
    late.request("GET", "/health")  # an open keep-alive connection, as a client holds between requests
    late.getresponse().read()
    answers = []
    srv._engine_lock.acquire()  # the engine is busy: what arrives now waits in the queue

    def queued(i):
        answers.append(_call(srv, "POST", "/infer", _req(f"q{i}")))

    clients = [threading.Thread(target=queued, args=(i,)) for i in range(3)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 30
    while len(srv._pending) + srv.running < 3 and time.monotonic() < deadline:  # queued, or taken by the worker
        time.sleep(0.01)
    result = []
    stopper = threading.Thread(target=lambda: result.append(srv.stop()))
    stopper.start()
    while not srv.draining:
        time.sleep(0.01)
    late.request("POST", "/infer", _req("too-late"))
    r = late.getresponse()
    assert r.status == 503 and r.getheader("Retry-After") == "3"
    assert json.loads(r.read())["error"]["type"] == "ServiceUnavailable"
    status, _, _ = _call_or_refused(srv)
    assert status in (None, 503)  # no new connection is taken once draining began
    srv._engine_lock.release()
    for t in clients:
        t.join()
    stopper.join()
    assert sorted(s for s, _, _ in answers) == [200, 200, 200]
    ids = {r.get("id") for r in read_log(log).requests}
    assert {"q0", "q1", "q2"} <= ids and "too-late" not in ids
    assert result[0].summary["ok"] == 3


def _call_or_refused(srv):
    try:
        return _call(srv, "GET", "/v2/health/ready")
    except OSError:
        return None, {}, b""


def test_console_script_sigint_drains_and_exits_0(tmp_path_factory, tmp_path):
    """Ctrl-C on ``serve --http``: the answered request is logged, the summary written, exit 0, no traceback."""
    import signal
    import subprocess
    import sys

    build = tiny_build(tmp_path_factory.getbasetemp())
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "int.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(build), "--http",
                             f"127.0.0.1:{port}", "--log", str(log), "--max-batch-size", "4",
                             "--max-queue-delay-ms", "2", "--warm", "--http-max-connections", "16", "--http-read-timeout", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/v2/health/ready")  # 503 while --warm prices the cost table, then 200
                ready = conn.getresponse()
                ready.read()
                if ready.status != 200:
                    raise ConnectionError("not ready yet")
                conn.request("POST", "/v2/models/sst2/infer", json.dumps(
                    {"id": "i1", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                             "data": ["a fine film"]}]}))
                r = conn.getresponse()
                status, answer = r.status, json.loads(r.read())
                conn.close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 200 and answer["id"] == "i1"
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "swaps" in err  # the summary, and no KeyboardInterrupt
    assert any(r.get("id") == "i1" for r in read_log(log).requests)
