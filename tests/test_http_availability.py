"""Availability under slow and idle clients, and a clean stop (issue 22 items 1, 7, 9), over raw loopback sockets:
half-sent and idle connections never stall a new client, limits are applied at accept without a worker, the read
deadline runs from the accept, OIP refuses parameters it does not understand and NaN, and SIGTERM answers kept-alive
requests 503 + Retry-After instead of resetting them."""

import http.client
import json
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpConfig, HttpServer


@pytest.fixture(scope="module")
def engine(build):
    return Engine.open(build)


def _fds(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"needs {n} file descriptors, the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def _req(rid) -> bytes:
    return json.dumps({"id": rid, "task": "sst2", "text": "a fine film"}).encode()


def _timed_post(srv, rid, timeout=10.0):
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(*srv.address, timeout=timeout)
    try:
        conn.request("POST", "/infer", _req(rid))
        r = conn.getresponse()
        return r.status, r.getheader("Retry-After"), r.read(), time.monotonic() - t0
    finally:
        conn.close()


def _connect(srv, first: bytes = b""):
    s = socket.create_connection(srv.address, timeout=10)
    if first:
        s.sendall(first)
    return s


HALF = b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"  # one body byte of 100


def test_200_half_sent_connections_do_not_stall_a_new_client(engine):
    _fds(2048)
    srv = HttpServer(engine, "127.0.0.1:0", config=HttpConfig(read_timeout_s=60.0)).start()
    socks = [_connect(srv, HALF) for _ in range(200)]
    try:
        status, _, body, took = _timed_post(srv, "new")
        assert status == 200 and json.loads(body)["id"] == "new"
        assert took < 5.0  # served now, not after the half-sent ones' 60 s deadline
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_1000_idle_connections_do_not_stall_a_new_client(engine):
    _fds(4096)
    cfg = HttpConfig(max_connections=256, max_connections_per_address=128, read_timeout_s=60.0)
    srv = HttpServer(engine, "127.0.0.1:0", config=cfg).start()
    socks = [_connect(srv) for _ in range(1000)]
    try:
        status, _, _, took = _timed_post(srv, "after-idle")
        assert status == 200 and took < 5.0  # the longest-idle connection made room
        open_now = len(srv.wire._conns)
        assert open_now <= cfg.max_connections_per_address
        evicted = 0
        for s in socks[:500]:  # the oldest were closed to make room: they read EOF
            s.settimeout(5)
            try:
                evicted += s.recv(1) == b""
            except OSError:
                evicted += 1
        assert evicted == 500
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_full_slots_are_answered_503_at_once_without_a_worker(engine):
    cfg = HttpConfig(max_connections=64, max_connections_per_address=20, read_timeout_s=60.0, retry_after_s=2)
    srv = HttpServer(engine, "127.0.0.1:0", config=cfg).start()
    socks = [_connect(srv, HALF) for _ in range(20)]  # every slot holds a request in progress: none evictable
    deadline = time.monotonic() + 10
    while sum(c.busy for c in list(srv.wire._conns)) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv._engine_lock.acquire()  # the engine is busy too: the refusal needs no worker
    try:
        status, retry, body, took = _timed_post(srv, "refused")
        assert status == 503 and retry == "2" and took < 2.0
        assert json.loads(body)["error"]["type"] == "ServiceUnavailable"
    finally:
        srv._engine_lock.release()
        for s in socks:
            s.close()
    status, _, _, _ = _timed_post(srv, "after")  # the slots freed: served again
    assert status == 200
    srv.stop()


def test_the_read_deadline_runs_from_the_accept(engine):
    srv = HttpServer(engine, "127.0.0.1:0", config=HttpConfig(read_timeout_s=1.0)).start()
    try:
        silent = _connect(srv)
        trickle = _connect(srv)
        t0 = time.monotonic()
        answer = b""
        for ch in b"POST /infer HTTP/1.1\r\nHost: x\r\n":  # one byte every 0.1 s never resets the deadline
            try:
                trickle.sendall(bytes([ch]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 4:
                break
        trickle.settimeout(5)
        answer = trickle.recv(4096)
        took = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 408") and took < 4.0
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "RequestTimeout"
        silent.settimeout(5)
        assert silent.recv(10) == b""  # idle since the accept: closed without a word
        trickle.close()
        silent.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("head, why", [
    ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["YSBmaW5lIGZpbG0="],
                  "parameters": {"content_type": "base64"}}]}, "content_type"),
    ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine film"]}],
      "parameters": {"priority": 3}}, "priority"),
    ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine film"]}],
      "outputs": [{"name": "label", "parameters": {"classification": 2}}]}, "classification"),
])
def test_oip_refuses_parameters_it_does_not_understand(engine, head, why):
    srv = HttpServer(engine, "127.0.0.1:0").start()
    try:
        conn = http.client.HTTPConnection(*srv.address, timeout=30)
        conn.request("POST", "/v2/models/sst2/infer", json.dumps(head))
        r = conn.getresponse()
        assert r.status == 400 and why in json.loads(r.read())["error"]
        ok = dict(head, inputs=[dict(head["inputs"][0], parameters={"content_type": "str"})])
        ok.pop("parameters", None)
        ok.pop("outputs", None)
        conn.request("POST", "/v2/models/sst2/infer", json.dumps(ok))  # the same request, understood: served
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("bad", [b'{"id": NaN, "inputs": []}', b'{"inputs": [], "x": Infinity}',
                                 b'{"inputs": [], "inputs": [{"name": "text"}]}'])
def test_oip_header_with_nan_or_a_duplicate_key_is_refused(engine, bad):
    srv = HttpServer(engine, "127.0.0.1:0").start()
    try:
        conn = http.client.HTTPConnection(*srv.address, timeout=30)
        conn.request("POST", "/v2/models/sst2/infer", bad)
        r = conn.getresponse()
        msg = json.loads(r.read())["error"]
        assert r.status == 400 and ("NaN" in msg or "twice" in msg), msg
    finally:
        srv.stop()


def test_sigterm_answers_kept_alive_requests_503_never_a_reset(build, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(build), "--http", f"127.0.0.1:{port}",
                             "--max-batch-size", "4", "--max-queue-delay-ms", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    outcomes: dict[int, list] = {}
    go, stop_at = threading.Event(), time.monotonic() + 180

    def client(cid):
        seen = outcomes.setdefault(cid, [])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        go.wait()
        i = 0
        while time.monotonic() < stop_at:
            try:
                conn.request("POST", "/infer", _req(f"k{cid}-{i}"))
                r = conn.getresponse()
                r.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                seen.append(type(exc).__name__)
                return
            seen.append((r.status, r.getheader("Retry-After"), r.getheader("Connection")))
            if r.getheader("Connection") == "close":  # told so (a 503, or a last 200 while draining)
                return
            i += 1

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        late = []  # kept-alive connections that send their next request 0.1-0.3 s after the signal
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/infer", _req("warm"))
            c.getresponse().read()
            late.append(c)
        go.set()
        time.sleep(1.0)  # the clients are busy on their kept-alive connections
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        late_answers = []
        for k, c in enumerate(late):
            time.sleep(max(0.0, signalled + 0.1 * (k + 1) - time.monotonic()))
            try:
                c.request("POST", "/infer", _req(f"late{k}"))
                r = c.getresponse()
                late_answers.append((r.status, r.getheader("Retry-After"), r.getheader("Connection"),
                                     json.loads(r.read())["error"]["type"]))
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                late_answers.append(type(exc).__name__)
        for t in threads:
            t.join(timeout=120)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    for cid, seen in outcomes.items():
        assert seen and all(isinstance(o, tuple) for o in seen), (cid, seen[-3:])  # no reset, no silent close
        assert all(o[0] == 200 for o in seen[:-1]), (cid, seen[-3:])
        assert seen[-1] in ((503, "1", "close"), (200, None, "close")), (cid, seen[-1])
    assert late_answers == [(503, "1", "close", "ServiceUnavailable")] * 3
