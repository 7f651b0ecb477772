"""The on-device-style server loop: requests in (JSON lines or HTTP), one response each out, a log, a summary.

Sources:
* a stream of JSON lines (stdin, a file): ``live=True`` (stdin) reads on a thread and schedules whatever has
  arrived; ``live=False`` (a file) fills the scheduler's window synchronously, so a file run is deterministic;
* HTTP on a loopback address (``POST /infer`` one JSON request -> one JSON response; ``GET /health``,
  ``GET /stats``), served by the standard library's ``ThreadingHTTPServer``; handler threads queue requests,
  one worker thread owns the engine (the accelerator runs one inference at a time).

Bad input never stops the loop: a line that is not a valid request gets an error response carrying whatever id
could be read, an inference that fails gets an error response for its id, and the next request is served.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from edgemti.errors import CapacityError, ConfigError, EdgemtiError
from edgemti.runtime.log import LogWriter
from edgemti.runtime.request import Request, RequestParseError, RequestRules, error_response, parse_request
from edgemti.runtime.scheduler import Scheduler, SchedulerConfig
from edgemti.runtime.summary import summarize

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


class ServingEngine(Protocol):
    """What the loop needs from :class:`edgemti.runtime.engine.Engine`."""

    rules: RequestRules
    slots: Any

    def infer_request(self, req: Request) -> dict: ...
    def is_resident(self, task: str) -> bool: ...
    def swap_cost(self, task: str) -> tuple[float, float]: ...
    def log_header(self) -> dict: ...


@dataclass
class ServeResult:
    """What a serve session produced: the summary and every response in served order."""

    summary: dict
    responses: list[dict] = field(default_factory=list)


class _Session:
    """Shared bookkeeping of one run: served order, log, response sink, summary."""

    def __init__(self, engine: ServingEngine, scheduler: SchedulerConfig, log_path: str | Path | None,
                 emit: Callable[[dict], None] | None) -> None:
        self.engine = engine
        self.config = scheduler
        self.scheduler = Scheduler(scheduler)
        self.emit = emit
        self.responses: list[dict] = []
        self.served = 0
        header = dict(engine.log_header(), scheduler=scheduler.to_dict(), started_unix_s=time.time())
        self._stamp = {"build_id": header.get("build_id"), "spec_sha256": (header.get("spec") or {}).get("sha256")}
        self.log = LogWriter(log_path, header) if log_path else None
        self.lock = threading.Lock()

    def respond(self, resp: dict) -> dict:
        with self.lock:
            resp = dict(resp, order=self.served)
            self.served += 1
            self.responses.append(resp)
            if self.log is not None:
                self.log.request(dict(resp, **self._stamp))  # every record names its build and spec
        if self.emit is not None:
            self.emit(resp)
        return resp

    def run_one(self, req: Request) -> dict:
        t0 = time.perf_counter()
        queue_s = max(0.0, time.monotonic() - req.arrival_s) if req.arrival_s else 0.0
        try:
            body = self.engine.infer_request(req)
        except EdgemtiError as exc:
            body = error_response(req.id, exc)
        except Exception as exc:  # noqa: BLE001 - a failed inference must not stop the loop; it is logged
            log.exception("request %r failed", req.id)
            body = error_response(req.id, exc)
        body.setdefault("id", req.id)
        body.update(seq=req.seq, task=req.task, queue_s=queue_s, loop_s=time.perf_counter() - t0)
        return self.respond(body)

    def finish(self) -> ServeResult:
        slots = getattr(self.engine, "slots", None)
        summary = summarize(self.responses, swap_cost=self.engine.swap_cost,
                            slots=getattr(slots, "slots", 1), pinned=getattr(slots, "pinned", ()),
                            policy=self.config.policy)
        summary["max_bypassed"] = self.scheduler.max_bypassed_seen
        if self.log is not None:
            self.log.summary(summary)
            self.log.close()
        return ServeResult(summary=summary, responses=self.responses)


def serve_stream(
    engine: ServingEngine,
    lines: Iterable[str],
    scheduler: SchedulerConfig | None = None,
    log_path: str | Path | None = None,
    emit: Callable[[dict], None] | None = None,
    live: bool = False,
) -> ServeResult:
    """Serve a stream of JSON-line requests to its end; every line gets exactly one response."""
    scheduler = scheduler or SchedulerConfig()
    session = _Session(engine, scheduler, log_path, emit)
    pending: list[Request | _Rejected] = []
    seq = 0

    def admit(line: str) -> None:
        nonlocal seq
        if not line.strip():
            return
        try:
            pending.append(parse_request(line, engine.rules, seq=seq, arrival_s=time.monotonic()))
        except RequestParseError as exc:  # answered in its turn, like any request (fifo keeps stream order)
            pending.append(_Rejected(seq, dict(error_response(exc.request_id, exc), seq=seq)))
        seq += 1

    def resident(task: str | None) -> bool:
        return task is None or engine.is_resident(task)

    def run_next() -> None:
        item = pending.pop(session.scheduler.pick(pending, resident))
        if isinstance(item, _Rejected):
            session.respond(item.response)
        else:
            session.run_one(item)

    try:
        if live:
            q: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_pump, args=(lines, q), daemon=True, name="edgemti-stdin").start()
            done = False
            while not done or pending:
                if not pending and not done:
                    item = q.get()
                    if item is None:
                        done = True
                    else:
                        admit(item)
                while not done:  # everything that has arrived meanwhile joins the queue
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        done = True
                    else:
                        admit(item)
                if pending:
                    run_next()
        else:
            it: Iterator[str] = iter(lines)
            exhausted = False
            while True:
                while not exhausted and len(pending) < scheduler.window:
                    try:
                        admit(next(it))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                run_next()
    finally:
        result = session.finish()
    return result


@dataclass(frozen=True)
class _Rejected:
    """A line that failed validation, waiting in the queue for its turn to be answered (no task: no swap)."""

    seq: int
    response: dict
    task: None = None


def _pump(lines: Iterable[str], q: queue.Queue) -> None:
    try:
        for line in lines:
            q.put(line)
    finally:
        q.put(None)


# -- HTTP ---------------------------------------------------------------------------------------------------


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


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (how a service manager stops a server) ends serving like Ctrl-C: the requests already queued
    are answered and logged, and the summary is written. Returns a function that restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


# -- the one entry point the CLI calls ----------------------------------------------------------------------


def serve(
    build: str | Path,
    requests: str | Path | None = None,
    http: str | None = None,
    log_path: str | Path | None = None,
    scheduler: SchedulerConfig | None = None,
    slots: int = 1,
    pinned: tuple[str, ...] = (),
    overlong: str = "truncate",
    spec: str | Path | None = None,
    threads: int | None = None,
    duration_s: float | None = None,
    emit: Callable[[dict], None] | None = None,
    stdin: Iterable[str] | None = None,
    ready: Callable[[tuple[str, int]], None] | None = None,
    seq_bucket: int = 16,
    warm: bool = False,
    fit: bool = False,
    fault: Any = None,
) -> ServeResult:
    """Open ``build`` and serve requests from a file (``requests``), HTTP (``http``) or ``stdin`` lines.

    Every response goes to ``emit`` as it is produced and to the log at ``log_path``; returns the summary.
    ``fault`` (a :class:`edgemti.runtime.faults.FaultModel`) serves from faulty RRAM cells.
    """
    from edgemti.runtime.engine import Engine

    if requests is not None and http is not None:
        raise ConfigError("give either --requests FILE or --http HOST:PORT, not both")
    if http is not None:
        parse_address(http)  # refuse a bad address before spending time loading the build
    if requests is not None and not Path(requests).is_file():
        raise ConfigError(f"--requests {requests}: no such file (give a JSON-lines file, one request per line)")
    if fit:
        from edgemti.runtime.hma import fit_spec

        spec, changes = fit_spec(build, spec)
        for c in changes:
            log.warning("spec sized for this build: %s", c)
    try:
        engine = Engine.open(build, spec=spec, slots=slots, pinned=pinned, threads=threads, overlong=overlong,
                             seq_bucket=seq_bucket, fault=fault)
    except CapacityError as exc:
        if fit:
            raise
        raise CapacityError(f"{exc}; or serve with --fit-spec to size the on-chip memories to this build") from None
    if warm:
        engine.warm()
    if http is not None:
        return serve_http(engine, http, scheduler, log_path, emit, duration_s=duration_s, ready=ready)
    if requests is not None:
        with open(requests, encoding="utf-8", errors="replace") as fh:
            return serve_stream(engine, fh, scheduler, log_path, emit, live=False)
    if stdin is None:
        raise ConfigError("no request source: give --requests FILE, --http HOST:PORT, or pipe JSON lines to stdin")
    return serve_stream(engine, stdin, scheduler, log_path, emit, live=True)
