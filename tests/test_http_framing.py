"""HTTP/1.1 framing, as raw bytes on a loopback socket: pipelining, bodies on GET, short bodies, conflicting
lengths, ``Expect: 100-continue`` over the limit, request lines that are not HTTP/1.x (issue 21 items 1-5)."""

import json
import socket
import time

import pytest
from test_runtime_engine import tiny_build

from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpConfig, HttpServer
from edgemti.runtime.log import read_log


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine.open(tiny_build(tmp_path_factory.getbasetemp()))


@pytest.fixture()
def server(engine, tmp_path):
    srv = HttpServer(engine, "127.0.0.1:0", log_path=tmp_path / "f.jsonl", config=HttpConfig(read_timeout_s=5.0))
    srv.start()
    yield srv
    srv.stop()


def _body(rid, text="a fine film"):
    return json.dumps({"id": rid, "task": "sst2", "text": text}).encode()


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def _parse(data: bytes) -> tuple[list[tuple[int, dict, bytes]], bytes]:
    """Complete responses at the front of ``data`` (status, headers, body) and the bytes after them."""
    out = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(headers.get("content-length", 0))
        if len(rest) < n:
            break
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out, data


def _exchange(srv, data: bytes, want: int, shut: bool = False, wait_s: float = 10.0) -> tuple[list, bool]:
    """Send ``data`` (then half-close when ``shut``), read until ``want`` responses came or the server closed;
    (responses, whether the server closed the connection)."""
    with socket.create_connection(srv.address, timeout=wait_s) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        buf, closed = b"", False
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            got, _ = _parse(buf)
            if len(got) >= want and not shut and got[-1][1].get("connection") != "close":
                break  # (an answer that says close: read on, to see the server close)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    got, rest = _parse(buf)
    assert rest == b"", rest[:200]
    return got, closed


def test_pipelined_keep_alive_requests_are_each_answered_in_order(server, tmp_path):
    texts = ["a fine film", "dull", "x" * 300, "a moving, funny, sad and warm film", "ok"] * 2
    data = b"".join(_post(_body(f"p{i}", t)) for i, t in enumerate(texts))
    got, closed = _exchange(server, data, len(texts))
    assert not closed and len(got) == len(texts)
    assert [s for s, _, _ in got] == [200] * len(texts)
    assert [json.loads(b)["id"] for _, _, b in got] == [f"p{i}" for i in range(len(texts))]
    # each answer is the one a lone request gets
    alone, _ = _exchange(server, _post(_body("alone", texts[2])), 1)
    assert json.loads(got[2][2])["scores"] == json.loads(alone[0][2])["scores"]


def test_get_with_a_body_is_one_request_not_two(server):
    data = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + _post(b"{}")[:40]
    data += b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    got, closed = _exchange(server, data, 2, wait_s=3.0)
    assert [s for s, _, _ in got] == [200, 200] and not closed  # the body was framed and skipped, never parsed


def test_body_shorter_than_its_length_then_close_is_400(server):
    got, closed = _exchange(server, _post(_body("short"))[:-10], 1, shut=True)
    assert [s for s, _, _ in got] == [400] and closed
    assert "body" in json.loads(got[0][2])["error"]["message"]


def test_two_differing_content_lengths_are_400_and_close(server, tmp_path):
    body = _body("cl")
    data = b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 4\r\n\r\n" % len(body) + body
    got, closed = _exchange(server, data, 1)
    assert [s for s, _, _ in got] == [400]
    assert got[0][1]["connection"] == "close" and json.loads(got[0][2])["ok"] is False
    got, closed = _exchange(server, data, 1, shut=True)
    assert closed


def test_expect_100_continue_over_the_limit_is_413_before_the_body(server, engine):
    big = 2 * 1024 * 1024
    assert big > engine.rules.max_request_bytes
    head = b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % big
    got, closed = _exchange(server, head, 1, wait_s=3.0)  # the body is never sent
    assert [s for s, _, _ in got] == [413] and closed
    assert json.loads(got[0][2])["error"]["type"] == "RequestParseError"
    # within the limit: 100 Continue, then the answer
    body = _body("cont")
    with socket.create_connection(server.address, timeout=10) as s:
        s.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 100 ")
        s.sendall(body)
        buf = first.split(b"\r\n\r\n", 1)[1]
        while not _parse(buf)[0]:
            buf += s.recv(65536)
    assert _parse(buf)[0][0][0] == 200


@pytest.mark.parametrize("line", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", b"GET /\r\n",
                                  b"HELLO\r\n", b"GET /health HTTP/1.1 extra\r\n", b"GET  /health HTTP/1.1\r\n"])
def test_garbage_and_http09_request_lines_get_a_json_400_at_once(server, line):
    t0 = time.monotonic()
    got, closed = _exchange(server, line, 1, wait_s=4.0)  # the client waits: no EOF tells the server to answer
    assert [s for s, _, _ in got] == [400] and time.monotonic() - t0 < 2.0
    assert got[0][1]["content-type"] == "application/json" and json.loads(got[0][2])["ok"] is False


def test_oversized_head_is_431_json(server):
    data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    got, _ = _exchange(server, data, 1)
    assert [s for s, _, _ in got] == [431] and json.loads(got[0][2])["ok"] is False


def test_every_framed_request_is_logged_once(engine, tmp_path):
    log = tmp_path / "once.jsonl"
    srv = HttpServer(engine, "127.0.0.1:0", log_path=log).start()
    data = b"".join(_post(_body(f"l{i}")) for i in range(6)) + _post(b"{bad json")
    got, _ = _exchange(srv, data, 7)
    srv.stop()
    assert [s for s, _, _ in got] == [200] * 6 + [400]
    assert sorted(r.get("id") or "" for r in read_log(log).requests) == [""] + [f"l{i}" for i in range(6)]


def test_a_failing_handler_still_answers_500_json(server, monkeypatch, capfd):
    from edgemti.runtime import http as http_front

    async def broken(front, req):
        raise RuntimeError("a bug in a route")

    monkeypatch.setitem(http_front.HANDLERS, "health", broken)
    got, closed = _exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert [s for s, _, _ in got] == [500] and closed
    assert json.loads(got[0][2])["error"]["type"] == "InternalError"
    monkeypatch.undo()
    got, _ = _exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1)
    assert [s for s, _, _ in got] == [200]
    assert "Traceback" not in capfd.readouterr().err
