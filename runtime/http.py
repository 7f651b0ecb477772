"""The loopback HTTP transport: the compact dialect, the Open Inference Protocol (KServe v2) and ``/metrics``.

Routes (query strings are ignored):

* compact: ``POST /infer`` (one JSON request -> one JSON response), ``GET /health``, ``GET /stats``;
* Open Inference Protocol, one model per task (codec: :mod:`edgemti.runtime.oip`): ``GET /v2``,
  ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{task}[/versions/1]``, ``.../ready``,
  ``POST .../infer``; ``POST /v2/repository/index`` and ``POST /v2/repository/models/{task}/load|unload``;
* ``GET /metrics``: Prometheus text (:mod:`edgemti.runtime.metrics`).

Status codes: 200 answered; 400 a request that cannot be served as sent; 404 an unknown route or model (task);
405 a known route with the wrong method (``Allow`` names the right one); 411 a chunked body (send Content-Length);
413 a body over the size limit; 415 a compressed body; 500 an engine fault; 503 with ``Retry-After`` while
draining (or while the connection backlog is full).

Threads: the listener accepts; a bounded pool of ``HttpConfig.workers`` handler threads serves connections (a
bounded backlog waits for them, beyond it a connection gets 503 and is closed); each connection has a read
deadline (``read_timeout_s`` for the next request's line, headers and body: idle keep-alive connections and
slow-loris senders are cut off); one worker thread owns the engine: it takes the next task with the swap-aware
scheduler, gathers that task's queued requests by the dynamic-batching policy (:mod:`edgemti.runtime.batcher`)
and runs them, one onnxruntime run per batch. Every body that reaches a request endpoint gets exactly one answer;
requests that parse are logged through the session of :mod:`edgemti.runtime.server`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from edgemti import __version__
from edgemti.errors import ConfigError, EdgemtiError
from edgemti.runtime.batcher import BatchingConfig, decide, same_task
from edgemti.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edgemti.runtime.metrics import NO_TASK, ServerMetrics
from edgemti.runtime.oip import OipError, decode_infer, encode_infer, error_body, model_metadata, split_body
from edgemti.runtime.request import Request, RequestParseError, error_response, parse_request, response_json
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import ServeResult, ServingEngine, _Session, _stop_on_signals

log = logging.getLogger(__name__)
UNAVAILABLE = "ServiceUnavailable"  # error type of a request refused because the server is draining
_BAD_REQUEST = {"RequestError", "RequestParseError", "OverlongError"}
_DRAIN_CHUNK = 1 << 16


@dataclass(frozen=True)
class HttpConfig:
    """Transport limits: ``workers`` connection handler threads, ``backlog`` accepted connections waiting for one,
    ``read_timeout_s`` to receive a request (line, headers, body) on a connection, ``retry_after_s`` told to
    clients while draining, ``max_texts`` per Open Inference Protocol request (its batch dimension)."""

    workers: int = 32
    backlog: int = 256
    read_timeout_s: float = 10.0
    retry_after_s: int = 1
    max_texts: int = 256

    def __post_init__(self) -> None:
        for name in ("workers", "backlog", "retry_after_s", "max_texts"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"HttpConfig: {name} must be an int >= 1, got {v!r}")
        if not isinstance(self.read_timeout_s, (int, float)) or not 0 < float(self.read_timeout_s) < 3600:
            raise ConfigError(f"HttpConfig: read_timeout_s must be in (0, 3600) seconds, got {self.read_timeout_s!r}")


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> (host, port); only loopback hosts are accepted (this is an on-device server)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ok = bool(sep) and ipaddress.ip_address(host).is_loopback and 0 <= int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"HTTP address {address!r}: give a loopback HOST:PORT such as 127.0.0.1:8080 (the server "
                          "never listens beyond this machine)", options=("http",))
    return host, int(port)


def status_of(resp: dict) -> int:
    """The HTTP status of a response body: 200 ok, 400 bad request, 404 unknown task, 503 draining, 500 else."""
    if resp.get("ok"):
        return 200
    kind = (resp.get("error") or {}).get("type")
    if kind in _BAD_REQUEST:
        return 400
    if kind == "UnknownTaskError":
        return 404
    if kind == UNAVAILABLE:
        return 503
    return 500


class HttpEngine(ServingEngine, Protocol):
    """What the HTTP transport needs beyond the stream loop: the manifest (model metadata) and batched runs."""

    manifest: Any

    def infer_batch(self, reqs: Sequence[Request]) -> list[dict]: ...


class _Pending:
    def __init__(self, req: Request) -> None:
        self.req = req
        self.seq = req.seq
        self.task = req.task
        self.done = threading.Event()
        self.response: dict | None = None


class _PooledHTTPServer(HTTPServer):
    """``HTTPServer`` with a bounded pool of handler threads and a read deadline per connection."""

    request_queue_size = 128  # listen() backlog: a burst of connects waits in the kernel, not refused

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], config: HttpConfig) -> None:
        super().__init__(address, handler)
        self.config = config
        self._conns: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=config.backlog)
        self._deadlines: dict[socket.socket, float] = {}
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._serve_connections, daemon=True, name=f"edgemti-http-{i}")
                         for i in range(config.workers)]
        self._threads.append(threading.Thread(target=self._reap, daemon=True, name="edgemti-http-reaper"))
        self._refused: queue.Queue[socket.socket | None] = queue.Queue(maxsize=4 * config.backlog)
        self._threads.append(threading.Thread(target=self._refuse_connections, daemon=True,
                                              name="edgemti-http-refuser"))
        for t in self._threads:
            t.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._conns.put_nowait((request, client_address))
        except queue.Full:  # overloaded: say so at once rather than hold the connection
            try:
                self._refused.put_nowait(request)
            except queue.Full:
                self.shutdown_request(request)

    def _refuse_connections(self) -> None:
        """Answer 503 to connections the backlog has no room for, then read what the client sent (briefly) before
        closing, so it sees the answer instead of a reset."""
        while True:
            conn = self._refused.get()
            if conn is None:
                return
            _refuse(conn, self.config.retry_after_s)
            self.shutdown_request(conn)

    def _serve_connections(self) -> None:
        while True:
            item = self._conns.get()
            if item is None:
                return
            request, client_address = item
            with self._lock:
                self._open.add(request)
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - a connection's failure never takes a handler thread down
                self.handle_error(request, client_address)
            finally:
                with self._lock:
                    self._open.discard(request)
                    self._deadlines.pop(request, None)
                self.shutdown_request(request)

    def arm(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + float(self.config.read_timeout_s)

    def disarm(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        """Cut off connections that did not deliver a request in time (a slow-loris sender, an idle client)."""
        while not self._closed.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._deadlines.items() if t < now]
                for c in late:
                    self._deadlines.pop(c, None)
            for c in late:
                _hang_up(c)

    def hang_up_all(self) -> None:
        """Close every open connection (after the drain, so idle keep-alive clients do not hold threads)."""
        with self._lock:
            conns = list(self._open)
        for c in conns:
            _hang_up(c)

    def close_pool(self) -> None:
        """Stop the handler threads, the reaper and the refuser (after the listening socket is closed)."""
        self._closed.set()
        try:
            self._refused.put_nowait(None)
        except queue.Full:
            pass
        for _ in range(self.config.workers):
            try:
                self._conns.put_nowait(None)
            except queue.Full:
                break

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http connection from %s failed", client_address, exc_info=True)


def _hang_up(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _refuse(conn: socket.socket, retry_after_s: int) -> None:
    body = error_body("server overloaded: too many connections waiting; retry later")
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {retry_after_s}\r\nConnection: close\r\n\r\n").encode()
    try:
        conn.settimeout(0.5)
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.05)  # a client sends its request at once; a silent or trickling one is not waited for
        deadline = time.monotonic() + 0.25
        while conn.recv(_DRAIN_CHUNK) and time.monotonic() < deadline:
            pass
    except OSError:
        pass


class HttpServer:
    """Loopback HTTP front end: handler threads enqueue, one worker runs the engine under scheduler and batcher."""

    def __init__(self, engine: HttpEngine, address: str, scheduler: SchedulerConfig | None = None,
                 log_path: str | Path | None = None, emit: Callable[[dict], None] | None = None,
                 batching: BatchingConfig | None = None, config: HttpConfig | None = None) -> None:
        host, port = parse_address(address)
        self.engine = engine
        self.batching = batching or BatchingConfig()
        self.config = config or HttpConfig()
        self.session = _Session(engine, scheduler or SchedulerConfig(), log_path, emit)
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._forming: _Pending | None = None  # the head of the batch being gathered (picked once by the scheduler)
        self._seq = 0
        self._stopping = False
        self._inflight = 0  # handlers between taking a request and writing its answer
        self.running = 0  # requests taken off the queue by the worker and not yet answered
        self._engine_lock = threading.Lock()  # the engine is not thread-safe: runs, loads and unloads take turns
        self.ready = threading.Event()
        self.metrics = ServerMetrics(engine.rules.tasks, queue_depth=lambda: len(self._pending))
        self.httpd = _PooledHTTPServer((host, port), _handler(self), self.config)
        self._worker = threading.Thread(target=self._work, daemon=True, name="edgemti-worker")
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                             daemon=True, name="edgemti-http")
        self._warm = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]  # typed for AF_UNIX too; this is always an IP socket
        return str(host), int(port)

    @property
    def draining(self) -> bool:
        return self._stopping

    def start(self, warm: bool = False) -> HttpServer:
        """Start serving; ``warm``: price the engine's cost table first (ready, ``/v2/health/ready``, after it)."""
        self._warm = warm
        self._worker.start()
        self._http_thread.start()
        return self

    # -- requests --------------------------------------------------------------------------------------------------
    def _next_seq(self, n: int = 1) -> int:
        with self._cv:
            seq = self._seq
            self._seq += n
        return seq

    def _enqueue(self, reqs: list[Request]) -> list[_Pending] | None:
        items = [_Pending(r) for r in reqs]
        with self._cv:
            if self._stopping:
                return None
            self._pending.extend(items)
            self._cv.notify()
        return items

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Held by a handler from taking a request to writing its answer: :meth:`stop` waits for these."""
        with self._cv:
            self._inflight += 1
        try:
            yield
        finally:
            with self._cv:
                self._inflight -= 1
                self._cv.notify_all()

    def _answer(self, resp: dict) -> dict:
        """Log and count one answer that never reached the engine (a request that did not parse)."""
        resp = self.session.respond(resp)
        self.metrics.observe(resp, status_of(resp))
        return resp

    def submit(self, body: bytes) -> dict:
        """Parse, queue and wait for one compact request's response (called from handler threads)."""
        seq = self._next_seq()
        try:
            req = parse_request(body, self.engine.rules, seq=seq, arrival_s=time.monotonic())
        except RequestParseError as exc:
            return self._answer(dict(error_response(exc.request_id, exc), seq=seq))
        items = self._enqueue([req])
        if items is None:
            return self._unavailable(req.id, req.task, seq)
        items[0].done.wait()
        assert items[0].response is not None
        return items[0].response

    def submit_many(self, reqs: list[Request]) -> list[dict] | None:
        """Queue requests together and wait for all their responses; None when draining (nothing queued)."""
        items = self._enqueue(reqs)
        if items is None:
            return None
        for it in items:
            it.done.wait()
        return [it.response for it in items if it.response is not None]

    def _unavailable(self, rid: Any, task: str | None, seq: int) -> dict:
        resp = {"id": rid, "ok": False, "seq": seq, "task": task,
                "error": {"type": UNAVAILABLE, "message": "server is draining (shutting down); retry later"}}
        self.metrics.observe(resp, 503)
        return resp

    # -- the engine's thread ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        if self._warm:
            with self._engine_lock:
                warm = getattr(self.engine, "warm", None)
                if callable(warm):
                    t = time.perf_counter()
                    n = warm()
                    log.info("priced %s (task, length bucket) pairs in %.1f s before ready", n,
                             time.perf_counter() - t)
        self.ready.set()
        self.metrics.set_resident({t: self.engine.is_resident(t) for t in self.engine.rules.tasks})
        while True:
            with self._cv:
                batch = self._next_batch()
                self.running = len(batch or ())
            if batch is None:
                return
            try:
                self._run(batch)
            except Exception as exc:  # noqa: BLE001 - the worker never dies: every queued request is answered
                log.error("worker: a batch of %d failed outside the engine: %s: %s", len(batch),
                          type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                for it in batch:
                    if not it.done.is_set():
                        it.response = dict(error_response(it.req.id, exc), seq=it.seq, task=it.task)
                        it.done.set()
            with self._cv:
                self.running = 0

    def _next_batch(self) -> list[_Pending] | None:
        """The next requests to run together (one task), waiting as the batching policy says; None: stop."""
        while True:
            if not self._pending:
                if self._stopping:
                    return None
                self._cv.wait()
                continue
            if self._forming is None or self._forming not in self._pending:
                i = self.session.scheduler.pick(self._pending, self.engine.is_resident)
                self._forming = self._pending[i]
            head = self._pending.index(self._forming)
            idx = same_task(self._pending, head, self.batching.max_batch_size)
            waited = time.monotonic() - self._forming.req.arrival_s
            d = decide(self.batching, len(idx), waited, closing=self._stopping)
            if not d.ready:
                self._cv.wait(d.wait_s)
                continue
            take = idx[:d.take]
            batch = [self._pending[i] for i in take]
            for i in sorted(take, reverse=True):
                del self._pending[i]
            self._forming = None
            return batch

    def _run(self, batch: list[_Pending]) -> None:
        with self._engine_lock:
            if len(batch) == 1:
                responses = [self.session.run_one(batch[0].req)]
            else:
                responses = self._run_batch([it.req for it in batch])
            resident = {t: self.engine.is_resident(t) for t in self.engine.rules.tasks}
        self.metrics.observe_batch(batch[0].task, len(batch), resident)
        for it, resp in zip(batch, responses, strict=True):
            self.metrics.observe(resp, status_of(resp))
            it.response = resp
            it.done.set()

    def _run_batch(self, reqs: list[Request]) -> list[dict]:
        """One engine run over same-task requests; each gets its response logged (as :meth:`_Session.run_one`)."""
        t0 = time.perf_counter()
        now = time.monotonic()
        try:
            bodies = self.engine.infer_batch(reqs)
        except EdgemtiError as exc:
            bodies = [error_response(r.id, exc) for r in reqs]
        except Exception as exc:  # noqa: BLE001 - a failed run must not stop the loop; it is logged
            log.exception("batch of %d %r requests failed", len(reqs), reqs[0].task)
            bodies = [error_response(r.id, exc) for r in reqs]
        if len(bodies) != len(reqs):  # the engine broke its contract: answer every request with the fault
            log.error("engine answered %d of a batch of %d requests", len(bodies), len(reqs))
            fault = EdgemtiError(f"engine answered {len(bodies)} of a batch of {len(reqs)} requests")
            bodies = [error_response(r.id, fault) for r in reqs]
        loop_s = time.perf_counter() - t0
        out = []
        for r, body in zip(reqs, bodies, strict=True):
            body.setdefault("id", r.id)
            body.update(seq=r.seq, task=r.task, queue_s=max(0.0, now - r.arrival_s) if r.arrival_s else 0.0,
                        loop_s=loop_s)
            out.append(self.session.respond(body))
        return out

    # -- repository ------------------------------------------------------------------------------------------------
    def repository(self, task: str, action: str) -> tuple[int, dict]:
        """Load or unload a task's pack on the running engine (between runs); (HTTP status, body)."""
        fn = getattr(self.engine, f"{action}_task", None)
        if not callable(fn):
            return 501, {"error": f"this engine cannot {action} tasks at run time"}
        with self._engine_lock:
            try:
                fn(task)
            except EdgemtiError as exc:
                code = 404 if type(exc).__name__ == "UnknownTaskError" else 400
                return code, {"error": f"{type(exc).__name__}: {exc}"}
        self.metrics.set_resident({t: self.engine.is_resident(t) for t in self.engine.rules.tasks})
        log.info("repository: %s %s", action, task)
        return 200, {}

    def repository_index(self) -> list[dict]:
        tasks = list(getattr(self.engine, "known_tasks", None) or self.engine.rules.tasks)
        served = set(self.engine.rules.tasks)
        return [{"name": t, "version": "1", "state": "READY" if t in served else "UNAVAILABLE",
                 "reason": "" if t in served else "unloaded"} for t in tasks]

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def stop(self, drain_timeout_s: float = 30.0) -> ServeResult:
        """Stop accepting; answer (503) new requests on open connections; answer everything already queued and
        written back to its client; then summarise."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self.metrics.draining.set(1)
        self.httpd.shutdown()  # the accept loop ends
        self.httpd.server_close()  # and the listening socket closes: a new connection is refused at once
        self._worker.join()
        deadline = time.monotonic() + drain_timeout_s
        with self._cv:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._cv.wait(0.05)
        self.httpd.close_pool()
        self.httpd.hang_up_all()
        return self.session.finish()

    def stats(self) -> dict:
        return self.session.stats()  # counters kept by the session (bounded memory), no response list


# -- routing -----------------------------------------------------------------------------------------------------

_MODEL = r"/v2/models/(?P<task>[^/]+)(?:/versions/[^/]+)?"
_ROUTES: list[tuple[re.Pattern, str, str]] = [  # (path, method, handler name)
    (re.compile(r"/infer"), "POST", "infer"),
    (re.compile(r"/health"), "GET", "health"),
    (re.compile(r"/stats"), "GET", "stats"),
    (re.compile(r"/metrics"), "GET", "metrics"),
    (re.compile(r"/v2"), "GET", "v2_server"),
    (re.compile(r"/v2/health/live"), "GET", "v2_live"),
    (re.compile(r"/v2/health/ready"), "GET", "v2_ready"),
    (re.compile(_MODEL), "GET", "v2_model"),
    (re.compile(_MODEL + r"/ready"), "GET", "v2_model_ready"),
    (re.compile(_MODEL + r"/infer"), "POST", "v2_infer"),
    (re.compile(r"/v2/repository/index"), "POST", "v2_index"),
    (re.compile(r"/v2/repository/models/(?P<task>[^/]+)/(?P<action>load|unload)"), "POST", "v2_repository"),
]


def _route(method: str, path: str) -> tuple[str | None, dict, list[str]]:
    """(handler name, path parameters, methods the path allows) for a request line."""
    allowed = []
    for pattern, m, name in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if m == method:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}, [m]
        allowed.append(m)
    return None, {}, sorted(set(allowed))


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    httpd_config = server.config

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: an answer is written as headers then body, two sends on a kept-alive connection; with Nagle
        # on, the body waits for the client's delayed ACK of the headers (~40 ms on Linux loopback) per request
        disable_nagle_algorithm = True
        timeout = float(httpd_config.read_timeout_s)  # per socket read; the whole request has a deadline too
        server_version = f"edgemti/{__version__}"

        def log_message(self, fmt: str, *args: Any) -> None:  # route access logs to logging, never stderr
            log.debug("http %s " + fmt, self.client_address[0], *args)

        def handle_one_request(self) -> None:
            pool = self.server
            assert isinstance(pool, _PooledHTTPServer)
            pool.arm(self.connection)  # the next request's line, headers and body must arrive in time
            try:
                super().handle_one_request()
            except (ConnectionError, TimeoutError, OSError):  # the client went away or stalled: nothing to say
                self.close_connection = True
            finally:
                pool.disarm(self.connection)

        # -- writing ----------------------------------------------------------------------------------------------
        def _send_bytes(self, code: int, data: bytes, content_type: str = "application/json",
                        headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as exc:  # client hung up
                log.debug("http client %s went away before its answer: %s", self.client_address[0], exc)
                self.close_connection = True

        def _send(self, code: int, obj: dict | list, headers: dict[str, str] | None = None) -> None:
            data = response_json(obj).encode() if isinstance(obj, dict) else json.dumps(obj).encode()
            if code == 503:
                headers = dict(headers or {}, **{"Retry-After": str(httpd_config.retry_after_s)})
            self._send_bytes(code, data, headers=headers)

        def _oip_error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
            if code == 503:
                headers = dict(headers or {}, **{"Retry-After": str(httpd_config.retry_after_s)})
            self._send_bytes(code, error_body(message), headers=headers)

        # -- reading ----------------------------------------------------------------------------------------------
        def _body(self) -> bytes | None:
            """The request body, or None after answering 411/413/415 (the connection then closes)."""
            limit = int(server.engine.rules.max_request_bytes)
            raw = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._send(411, error_response(None, RequestParseError(
                    "send the body with a Content-Length header (chunked transfer is not accepted)")))
                return None
            if raw is None:  # RFC 9112: a request with neither Content-Length nor Transfer-Encoding has no body
                raw = "0"
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._send(400, error_response(None, RequestParseError(f"Content-Length {raw[:40]!r} is not a "
                                                                       "byte count")))
                return None
            if length > limit:
                self.close_connection = True
                left = length
                while 0 < left <= 16 * limit:  # read what a sane client sends so it sees the answer, not a reset
                    chunk = self.rfile.read(min(left, _DRAIN_CHUNK))
                    if not chunk:
                        break
                    left -= len(chunk)
                server.metrics.requests.labels(task=NO_TASK, status="413").inc()
                self._send(413, error_response(None, RequestParseError(
                    f"request body of {length} bytes, over the limit of {limit} bytes")))
                return None
            enc = self.headers.get("Content-Encoding")
            if enc not in (None, "identity"):
                self.close_connection = True
                self._send(415, error_response(None, RequestParseError(f"Content-Encoding {enc[:20]!r} is not "
                                                                       "accepted: send the body uncompressed")))
                return None
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return None
            pool = self.server
            assert isinstance(pool, _PooledHTTPServer)
            pool.disarm(self.connection)
            return body

        # -- dispatch ---------------------------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            path = urlsplit(self.path).path.rstrip("/") or "/"
            name, params, allowed = _route(method, path)
            if name is None:
                if allowed:
                    if method == "POST" or self.headers.get("Content-Length"):
                        self.close_connection = True  # the body is not read: do not parse it as a request
                    self._send(405, {"ok": False, "error": {"type": "MethodNotAllowed", "message":
                                     f"{method} {path}: use {' or '.join(allowed)}"}},
                               headers={"Allow": ", ".join(allowed)})
                else:
                    if method == "POST" or self.headers.get("Content-Length"):
                        self.close_connection = True
                    self._send(404, {"ok": False, "error": {"type": "NotFound", "message":
                                     f"no route {path[:80]!r}: POST /infer, GET /health, /stats, /metrics, or the "
                                     "Open Inference Protocol under /v2"}})
                return
            pool = self.server
            assert isinstance(pool, _PooledHTTPServer)
            if method != "POST":
                pool.disarm(self.connection)
            getattr(self, "r_" + name)(**params)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch("PATCH")

        # -- compact dialect --------------------------------------------------------------------------------------
        def r_health(self) -> None:
            self._send(200, {"ok": True, "tasks": list(server.engine.rules.tasks), "ready": server.ready.is_set(),
                             "draining": server.draining})

        def r_stats(self) -> None:
            self._send(200, server.stats())

        def r_metrics(self) -> None:
            self._send_bytes(200, server.metrics.render(), METRICS_CONTENT_TYPE)

        def r_infer(self) -> None:
            body = self._body()
            if body is None:
                return
            with server.answering():
                resp = server.submit(body)
                self._send(status_of(resp), resp)

        # -- Open Inference Protocol ------------------------------------------------------------------------------
        def r_v2_server(self) -> None:
            self._send(200, {"name": "edgemti", "version": __version__,
                             "extensions": ["binary_tensor_data", "model_repository"]})

        def r_v2_live(self) -> None:
            self._send(200, {"live": True})

        def r_v2_ready(self) -> None:
            if server.ready.is_set() and not server.draining:
                self._send(200, {"ready": True})
            else:
                self._oip_error(503, "not ready: " + ("draining" if server.draining else "warming up"))

        def _task(self, task: str) -> bool:
            if task in server.engine.rules.tasks:
                return True
            self._oip_error(404, f"unknown model {task[:80]!r}: this server serves "
                                 f"{list(server.engine.rules.tasks)}")
            return False

        def r_v2_model(self, task: str) -> None:
            if self._task(task):
                self._send(200, model_metadata(task, server.engine.manifest.pack(task),
                                               task in server.engine.rules.pair_tasks))

        def r_v2_model_ready(self, task: str) -> None:
            if not self._task(task):
                return
            if server.ready.is_set() and not server.draining:
                self._send(200, {"name": task, "ready": True})
            else:
                self._oip_error(503, f"model {task!r} not ready: " + ("draining" if server.draining else "warming up"))

        def r_v2_infer(self, task: str) -> None:
            body = self._body()
            if body is None:
                return
            rules = server.engine.rules
            if task not in rules.tasks:
                server.metrics.requests.labels(task=NO_TASK, status="404").inc()
                self._task(task)
                return
            try:
                head, binary = split_body(body, self.headers.get("Inference-Header-Content-Length"))
                ib = decode_infer(head, binary, task in rules.pair_tasks, httpd_config.max_texts)
            except OipError as exc:
                seq = server._next_seq()
                server._answer({"id": None, "ok": False, "seq": seq, "task": task,
                                "error": {"type": "RequestError", "message": str(exc)}})
                self._oip_error(exc.status, str(exc))
                return
            n = len(ib.rows)
            seq0 = server._next_seq(n)
            rid = ib.id if ib.id is not None else f"v2-{seq0}"
            now = time.monotonic()
            reqs = []
            for i, row in enumerate(ib.rows):
                obj = dict(row, id=rid if n == 1 else f"{rid}/{i}", task=task)
                try:
                    reqs.append(parse_request(obj, rules, seq=seq0 + i, arrival_s=now))
                except RequestParseError as exc:
                    server._answer(dict(error_response(obj["id"], exc), seq=seq0 + i, task=task))
                    self._oip_error(400, f"text {i}: {exc}" if n > 1 else str(exc))
                    return
            with server.answering():
                self._v2_answer(task, ib, reqs)

        def _v2_answer(self, task: str, ib: Any, reqs: list[Request]) -> None:
            n = len(reqs)
            answers = server.submit_many(reqs)
            if answers is None:
                server.metrics.requests.labels(task=task, status="503").inc(n)
                self._oip_error(503, "server is draining (shutting down); retry later")
                return
            bad = [a for a in answers if not a.get("ok")]
            if bad:
                err = bad[0].get("error") or {}
                self._oip_error(status_of(bad[0]), f"{err.get('type')}: {err.get('message')}")
            else:
                data, header_len = encode_infer(task, ib, answers)
                headers = {"Inference-Header-Content-Length": str(header_len)} if header_len is not None else None
                ctype = "application/octet-stream" if header_len is not None else "application/json"
                self._send_bytes(200, data, ctype, headers)

        def r_v2_index(self) -> None:
            if self._body() is None:
                return
            self._send(200, server.repository_index())

        def r_v2_repository(self, task: str, action: str) -> None:
            if self._body() is None:
                return
            code, obj = server.repository(task, action)
            if code == 200:
                self._send(200, obj)
            else:
                self._oip_error(code, str(obj.get("error")))

    return Handler


def serve_http(engine: HttpEngine, address: str, scheduler: SchedulerConfig | None = None,
               log_path: str | Path | None = None, emit: Callable[[dict], None] | None = None,
               duration_s: float | None = None, ready: Callable[[tuple[str, int]], None] | None = None,
               stop_event: threading.Event | None = None, batching: BatchingConfig | None = None,
               config: HttpConfig | None = None, warm: bool = False) -> ServeResult:
    """Serve HTTP until ``duration_s`` passes, ``stop_event`` is set, SIGTERM or Ctrl-C; then drain and summarise."""
    srv = HttpServer(engine, address, scheduler, log_path, emit, batching=batching, config=config).start(warm=warm)
    if ready is not None:
        ready(srv.address)
    stop_event = stop_event or threading.Event()
    restore = _stop_on_signals(stop_event, (signal.SIGTERM, signal.SIGINT))  # drain, never die mid-answer
    try:
        stop_event.wait(timeout=duration_s)
        if stop_event.is_set():
            log.warning("stopping: draining %d queued requests (new ones get 503)", len(srv._pending))
        return srv.stop()
    finally:
        restore()
