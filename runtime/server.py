"""The on-device-style server loop: requests in (JSON lines or HTTP), one response each out, a log, a summary.

Sources:
* a stream of JSON lines (stdin, a file): ``live=True`` (stdin) reads on a thread and schedules whatever has
  arrived; ``live=False`` (a file) fills the scheduler's window synchronously, so a file run is deterministic;
* HTTP on a loopback address: the transport lives in :mod:`edgemti.runtime.http` and shares this module's
  session (served order, log, summary).

Bad input never stops the loop: a line that is not a valid request gets an error response carrying whatever id
could be read, an inference that fails gets an error response for its id, and the next request is served.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgemti.errors import CapacityError, ConfigError, EdgemtiError
from edgemti.runtime.log import LogWriter
from edgemti.runtime.request import Request, RequestParseError, RequestRules, error_response, parse_request
from edgemti.runtime.scheduler import Scheduler, SchedulerConfig
from edgemti.runtime.summary import summarize

log = logging.getLogger(__name__)


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
    from edgemti.runtime.http import parse_address, serve_http

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
