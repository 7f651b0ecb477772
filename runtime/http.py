"""The loopback HTTP transport: ``POST /infer`` one JSON request -> one JSON response; ``GET /health``,
``GET /stats``; served by the standard library's ``ThreadingHTTPServer``. Handler threads queue requests, one
worker thread owns the engine (the accelerator runs one inference at a time) and picks from the queue with the
swap-aware scheduler; responses, log and summary go through the same session as a stream run
(:mod:`edgemti.runtime.server`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError
from edgemti.runtime.request import Request, RequestParseError, error_response, parse_request
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import ServeResult, ServingEngine, _Session, _stop_on_sigterm
from edgemti.runtime.summary import summarize

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> (host, port); only loopback hosts are accepted (this is an on-device server)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ok = bool(sep) and ipaddress.ip_address(host).is_loopback and 0 <= int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"--http {address!r}: give a loopback HOST:PORT such as 127.0.0.1:8080 (the server "
                          "never listens beyond this machine)")
    return host, int(port)


class _Pending:
    def __init__(self, req: Request) -> None:
        self.req = req
        self.seq = req.seq
        self.task = req.task
        self.done = threading.Event()
        self.response: dict | None = None


class HttpServer:
    """Loopback HTTP front end: handler threads enqueue, one worker runs the engine under the scheduler."""

    def __init__(self, engine: ServingEngine, address: str, scheduler: SchedulerConfig | None = None,
                 log_path: str | Path | None = None, emit: Callable[[dict], None] | None = None) -> None:
        host, port = parse_address(address)
        self.engine = engine
        self.session = _Session(engine, scheduler or SchedulerConfig(), log_path, emit)
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._seq = 0
        self._stopping = False
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._worker = threading.Thread(target=self._work, daemon=True, name="edgemti-worker")
        self._http_thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                             daemon=True, name="edgemti-http")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]  # typed for AF_UNIX too; this is always an IP socket
        return str(host), int(port)

    def start(self) -> HttpServer:
        self._worker.start()
        self._http_thread.start()
        return self

    def submit(self, body: bytes) -> dict:
        """Parse, queue and wait for one request's response (called from handler threads)."""
        with self._cv:
            seq = self._seq
            self._seq += 1
        try:
            req = parse_request(body, self.engine.rules, seq=seq, arrival_s=time.monotonic())
        except RequestParseError as exc:
            return self.session.respond(dict(error_response(exc.request_id, exc), seq=seq))
        item = _Pending(req)
        with self._cv:
            if self._stopping:
                return dict(error_response(req.id, ConfigError("server is shutting down; retry later")), seq=seq)
            self._pending.append(item)
            self._cv.notify()
        item.done.wait()
        assert item.response is not None
        return item.response

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if not self._pending and self._stopping:
                    return
                item = self._pending.pop(self.session.scheduler.pick(self._pending, self.engine.is_resident))
            item.response = self.session.run_one(item.req)
            item.done.set()

    def stop(self) -> ServeResult:
        """Stop accepting, answer everything already queued, then summarise."""
        self.httpd.shutdown()
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._worker.join()
        self.httpd.server_close()
        return self.session.finish()

    def stats(self) -> dict:
        with self.session.lock:
            records = list(self.session.responses)
        return summarize(records, policy=self.session.config.policy)


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # route access logs to logging, never stderr
            log.debug("http %s " + fmt, self.client_address[0], *args)

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._send(200, {"ok": True, "tasks": list(server.engine.rules.tasks)})
            elif self.path == "/stats":
                self._send(200, server.stats())
            else:
                self._send(404, {"ok": False, "error": {"type": "NotFound", "message": "use POST /infer, GET "
                                                        "/health or GET /stats"}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/infer":
                self._send(404, {"ok": False, "error": {"type": "NotFound", "message": "POST to /infer"}})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                self._send(413, error_response(None, RequestParseError(
                    f"request body of {length} bytes: send 1..{MAX_BODY_BYTES} bytes with a Content-Length")))
                return
            body = self.rfile.read(length)
            resp = server.submit(body)
            self._send(200 if resp.get("ok") else 400, resp)

    return Handler


def serve_http(engine: ServingEngine, address: str, scheduler: SchedulerConfig | None = None,
               log_path: str | Path | None = None, emit: Callable[[dict], None] | None = None,
               duration_s: float | None = None, ready: Callable[[tuple[str, int]], None] | None = None,
               stop_event: threading.Event | None = None) -> ServeResult:
    """Serve HTTP until ``duration_s`` passes, ``stop_event`` is set or Ctrl-C; then summarise."""
    srv = HttpServer(engine, address, scheduler, log_path, emit).start()
    if ready is not None:
        ready(srv.address)
    stop_event = stop_event or threading.Event()
    restore = _stop_on_sigterm(stop_event)
    try:
        stop_event.wait(timeout=duration_s)
    except KeyboardInterrupt:
        pass
    finally:
        restore()
    return srv.stop()
