"""The loopback HTTP front end: requests queued for one engine thread, answered through the serve loop's session.

Modules by idea: connections :mod:`edgemti.runtime.http_wire` (one asyncio loop, limits), each connection's
requests :mod:`edgemti.runtime.http_exchange` (h11 framing), the values between :mod:`edgemti.runtime.http_types`,
routing :mod:`edgemti.runtime.http_routes`, the compact dialect :mod:`edgemti.runtime.http_compact`, the Open
Inference Protocol :mod:`edgemti.runtime.http_oip` (codec :mod:`edgemti.runtime.oip`); this module holds the
queue between them and the engine, and the lifecycle.

Status codes: 200 answered; 400 a request that cannot be served as sent (malformed HTTP included); 404 an unknown
route or model (task); 405 a known route with the wrong method (``Allow`` names the right one); 408 a request
that did not arrive in time; 411 a chunked body (send Content-Length); 413 a body over the size limit (before the
body is read); 415 a compressed body; 431 an oversized head; 500 an engine fault; 503 with ``Retry-After`` while
draining, or when every connection slot is taken by a request in progress.

Threads: one event loop reads every connection and parses requests (no thread per connection); one worker thread
owns the engine: it takes the next task with the swap-aware scheduler, gathers that task's queued requests by the
dynamic-batching policy (:mod:`edgemti.runtime.batcher`) and runs them, one onnxruntime run per batch, through the
serve loop's :class:`edgemti.runtime.server.Session` (served order, log, summary). Every body that reaches a
request endpoint gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from edgemti.errors import EdgemtiError
from edgemti.runtime.batcher import BatchingConfig, decide, same_task
from edgemti.runtime.http_compact import HANDLERS as COMPACT
from edgemti.runtime.http_oip import HANDLERS as OIP
from edgemti.runtime.http_routes import UNAVAILABLE, compact_error, path_of, route, status_of
from edgemti.runtime.http_types import Application, HttpConfig, WireRequest, WireResponse, parse_address
from edgemti.runtime.http_wire import WireServer
from edgemti.runtime.metrics import NO_TASK, ServerMetrics
from edgemti.runtime.request import Request, RequestParseError, error_response, parse_request, response_json
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import ServeResult, ServingEngine, Session, stop_on_signals

__all__ = ["HttpConfig", "HttpServer", "parse_address", "serve_http", "status_of"]

log = logging.getLogger(__name__)
HANDLERS = {**COMPACT, **OIP}


class HttpEngine(ServingEngine, Protocol):
    """What the HTTP transport needs beyond the stream loop: the manifest (model metadata) and batched runs."""

    manifest: Any

    def infer_batch(self, reqs: Sequence[Request]) -> list[dict]: ...


class _Pending:
    """A queued request and how to hand its answer back to the event loop."""

    def __init__(self, req: Request, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self.req = req
        self.seq = req.seq
        self.task = req.task
        self.response: dict | None = None
        self._loop = loop
        self._future = future

    def finish(self, resp: dict) -> None:
        self.response = resp
        try:
            self._loop.call_soon_threadsafe(_resolve, self._future, resp)
        except RuntimeError:  # the loop is gone (a stop past its deadline): nobody waits any more
            pass


def _resolve(future: asyncio.Future, resp: dict) -> None:
    if not future.done():
        future.set_result(resp)


class HttpServer(Application):
    """Loopback HTTP front end: the loop parses and queues, one worker runs the engine under scheduler and batcher."""

    def __init__(self, engine: HttpEngine, address: str, scheduler: SchedulerConfig | None = None,
                 log_path: str | Path | None = None, emit: Callable[[dict], None] | None = None,
                 batching: BatchingConfig | None = None, config: HttpConfig | None = None) -> None:
        host, port = parse_address(address)
        self.engine = engine
        self.batching = batching or BatchingConfig()
        self.config = config or HttpConfig()
        self.session = Session(engine, scheduler or SchedulerConfig(), log_path, emit)
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._forming: _Pending | None = None  # the head of the batch being gathered (picked once by the scheduler)
        self._seq = 0
        self._stopping = False
        self._inflight = 0  # handlers between queueing requests and taking their answers
        self.running = 0  # requests taken off the queue by the worker and not yet answered
        self._engine_lock = threading.Lock()  # the engine is not thread-safe: runs, loads and unloads take turns
        self.ready = threading.Event()
        self.metrics = ServerMetrics(engine.rules.tasks, queue_depth=lambda: len(self._pending))
        self.wire = WireServer(self, host, port, self.config)
        self._worker = threading.Thread(target=self._work, daemon=True, name="edgemti-worker")
        self._warm = False

    @property
    def address(self) -> tuple[str, int]:
        return self.wire.address

    @property
    def draining(self) -> bool:
        return self._stopping

    def start(self, warm: bool = False) -> HttpServer:
        """Start serving; ``warm``: price the engine's cost table first (ready, ``/v2/health/ready``, after it)."""
        self._warm = warm
        self.wire.start()
        self._worker.start()
        return self

    # -- the wire layer's application --------------------------------------------------------------------------------
    def check_head(self, req: WireRequest, length: int | None) -> WireResponse | None:
        limit = int(self.engine.rules.max_request_bytes)
        if "transfer-encoding" in req.headers:
            return compact_error(self, 411, "RequestParseError", "send the body with a Content-Length header "
                                 "(chunked transfer is not accepted)")
        if length is not None and length > limit:
            return compact_error(self, 413, "RequestParseError", f"request body of {length} bytes, over the limit "
                                 f"of {limit} bytes")
        enc = req.headers.get("content-encoding")
        if enc not in (None, "identity"):
            return compact_error(self, 415, "RequestParseError", f"Content-Encoding {enc[:20]!r} is not accepted: "
                                 "send the body uncompressed")
        return None

    async def handle(self, req: WireRequest) -> WireResponse:
        path = path_of(req.target)
        name, params, allowed = route(req.method, path)
        if name is None:
            if allowed:
                return compact_error(self, 405, "MethodNotAllowed", f"{req.method} {path[:80]}: use "
                                     f"{' or '.join(allowed)}", (("Allow", ", ".join(allowed)),))
            return compact_error(self, 404, "NotFound", f"no route {path[:80]!r}: POST /infer, GET /health, /stats, "
                                 "/metrics, or the Open Inference Protocol under /v2")
        return await HANDLERS[name](self, req, **params)

    def error(self, status: int, message: str) -> bytes:
        kind = {408: "RequestTimeout", 500: "InternalError", 503: UNAVAILABLE}.get(status, "BadRequest")
        return response_json({"ok": False, "error": {"type": kind, "message": message}}).encode()

    def observe(self, status: int) -> None:
        self.metrics.requests.labels(task=NO_TASK, status=str(status)).inc()

    # -- requests --------------------------------------------------------------------------------------------------
    def next_seq(self, n: int = 1) -> int:
        """Reserve ``n`` consecutive request numbers (the log's ``seq``)."""
        with self._cv:
            seq = self._seq
            self._seq += n
        return seq

    def answer_unparsed(self, resp: dict) -> dict:
        """Log and count one answer that never reached the engine (a request that did not parse)."""
        resp = self.session.respond(resp)
        self.metrics.observe(resp, status_of(resp))
        return resp

    async def submit(self, body: bytes) -> dict:
        """Parse, queue and await one compact request's response."""
        seq = self.next_seq()
        try:
            req = parse_request(body, self.engine.rules, seq=seq, arrival_s=time.monotonic())
        except RequestParseError as exc:
            return self.answer_unparsed(dict(error_response(exc.request_id, exc), seq=seq))
        answers = await self.submit_many([req])
        return answers[0] if answers is not None else self._unavailable(req.id, req.task, seq)

    async def submit_many(self, reqs: list[Request]) -> list[dict] | None:
        """Queue requests together and await all their responses; None when draining (nothing queued)."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in reqs]
        with self._cv:
            if self._stopping:
                return None
            self._pending.extend(_Pending(r, loop, f) for r, f in zip(reqs, futures, strict=True))
            self._inflight += 1
            self._cv.notify()
        try:
            return list(await asyncio.gather(*futures))
        finally:
            with self._cv:
                self._inflight -= 1
                self._cv.notify_all()

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
                    n = warm(max_batch=self.batching.max_batch_size)
                    log.info("priced %s (task, length bucket, batch size) entries in %.1f s before ready", n,
                             time.perf_counter() - t)
        self.ready.set()
        self.metrics.set_resident(*self._residency())
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
                    if it.response is None:
                        it.finish(dict(error_response(it.req.id, exc), seq=it.seq, task=it.task))
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
                i = self.session.scheduler.pick(self._pending, self.engine.is_resident, self.engine.in_dram)
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
            responses = self.session.run_batch([it.req for it in batch])
            resident = self._residency()
        self.metrics.observe_batch(batch[0].task, len(batch), *resident)
        for it, resp in zip(batch, responses, strict=True):
            self.metrics.observe(resp, status_of(resp))
            it.finish(resp)

    def _residency(self) -> tuple[dict[str, bool], dict[str, bool]]:
        """Every served task -> its pack in SRAM now, and -> in DRAM now (what the residency gauges show)."""
        tasks = self.engine.rules.tasks
        return {t: self.engine.is_resident(t) for t in tasks}, {t: self.engine.in_dram(t) for t in tasks}

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
        self.metrics.set_resident(*self._residency())
        log.info("repository: %s %s", action, task)
        return 200, {}

    def repository_index(self) -> list[dict]:
        tasks = list(getattr(self.engine, "known_tasks", None) or self.engine.rules.tasks)
        served = set(self.engine.rules.tasks)
        return [{"name": t, "version": "1", "state": "READY" if t in served else "UNAVAILABLE",
                 "reason": "" if t in served else "unloaded"} for t in tasks]

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def stop(self, drain_timeout_s: float = 30.0) -> ServeResult:
        """Stop accepting; answer (503 + ``Retry-After``, connection closed) new requests on open connections;
        answer everything already queued; keep connections open ``drain_grace_s`` more (a request in that time is
        answered 503, never reset); then close them and summarise."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self.metrics.draining.set(1)
        self.wire.stop_accepting()  # the listening socket closes: a new connection is refused at once
        self._worker.join()
        deadline = time.monotonic() + drain_timeout_s
        with self._cv:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._cv.wait(0.05)
        self.wire.close(float(self.config.drain_grace_s))
        return self.session.finish()

    def stats(self) -> dict:
        return self.session.stats()  # counters kept by the session (bounded memory), no response list


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
    restore = stop_on_signals(stop_event, (signal.SIGTERM, signal.SIGINT))  # drain, never die mid-answer
    try:
        stop_event.wait(timeout=duration_s)
        if stop_event.is_set():
            log.warning("stopping: draining %d queued requests (new ones get 503)", len(srv._pending))
        return srv.stop()
    finally:
        restore()
