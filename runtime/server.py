"""The on-device-style server loop: requests in (JSON lines or HTTP), one response each out, a log, a summary.

Sources:
* a stream of JSON lines (stdin, a file): ``live=True`` (stdin) reads on a thread and schedules whatever has
  arrived; ``live=False`` (a file) fills the scheduler's window synchronously, so a file run is deterministic;
* HTTP on a loopback address: the transport lives in :mod:`edgemti.runtime.http` and answers through this
  module's public :class:`Session` (served order, log, summary); this module never imports it. The entry point
  that opens a build and picks the source is :func:`edgemti.runtime.serving.serve`.

Bad input never stops the loop: a line that is not a valid request gets an error response carrying whatever id
could be read, an inference that fails gets an error response for its id, and the next request is served.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from edgemti.errors import EdgemtiError
from edgemti.runtime.batcher import BatchingConfig, decide, same_task
from edgemti.runtime.log import LogWriter
from edgemti.runtime.request import (
    Request,
    RequestParseError,
    RequestRules,
    error_response,
    non_finite_outputs,
    parse_request,
    split_lines,
)
from edgemti.runtime.scheduler import Scheduler, SchedulerConfig
from edgemti.runtime.summary import SummaryAccumulator

log = logging.getLogger(__name__)


class ServingEngine(Protocol):
    """What the loop needs from :class:`edgemti.runtime.engine.Engine`."""

    rules: RequestRules

    @property
    def residency(self) -> Any: ...  # runtime.residency.PackResidency: the SRAM slots and the DRAM tier

    @property
    def build_id(self) -> str: ...  # the build answering now (a task loaded at run time moves it: build + pack)

    def infer_request(self, req: Request) -> dict: ...
    def infer_batch(self, reqs: Sequence[Request]) -> list[dict]: ...
    def is_resident(self, task: str) -> bool: ...
    def in_dram(self, task: str) -> bool: ...
    def swap_cost(self, task: str) -> tuple[float, float]: ...
    def load_cost(self, task: str) -> tuple[float, float]: ...
    def log_header(self) -> dict: ...


@dataclass
class ServeResult:
    """What a serve session produced: the summary, and every response in served order when the session was asked
    to keep them (``keep_responses``; a long-running server keeps counters only)."""

    summary: dict
    responses: list[dict] = field(default_factory=list)


class Session:
    """Shared bookkeeping of one run: served order, log, response sink, summary counters (bounded memory)."""

    def __init__(self, engine: ServingEngine, scheduler: SchedulerConfig, log_path: str | Path | None,
                 emit: Callable[[dict], None] | None, keep_responses: bool = False) -> None:
        self.engine = engine
        self.config = scheduler
        self.scheduler = Scheduler(scheduler)
        self.emit = emit
        self.keep_responses = keep_responses
        self.responses: list[dict] = []  # only with keep_responses (tests, library callers that want them)
        self.served = 0
        res = engine.residency
        self.summary = SummaryAccumulator(engine.swap_cost, slots=res.slots.slots, pinned=res.pinned,
                                          policy=scheduler.policy, dram_packs=res.dram.max_packs,
                                          load_cost=engine.load_cost)
        header = dict(engine.log_header(), scheduler=scheduler.to_dict(), started_unix_s=time.time())
        self._stamp = {"spec_sha256": (header.get("spec") or {}).get("sha256")}
        self.log = LogWriter(log_path, header) if log_path else None
        self.lock = threading.Lock()

    def respond(self, resp: dict) -> dict:
        with self.lock:
            resp = dict(resp, order=self.served)
            self.served += 1
            self.summary.add(resp)
            if self.keep_responses:
                self.responses.append(resp)
            if self.log is not None:
                # every record names its build (the current one: a load may have moved it) and spec
                self.log.request(dict(resp, **self._stamp, build_id=self.engine.build_id))
        if self.emit is not None:
            try:
                self.emit(resp)
            except OSError as exc:  # the reader went away (a closed pipe): keep serving and logging, stop emitting
                log.warning("cannot emit responses any more (%s: %s); they are still logged", type(exc).__name__,
                            exc)
                self.emit = None
        return resp

    def run_one(self, req: Request) -> dict:
        t0 = time.perf_counter()
        queue_s = max(0.0, time.monotonic() - req.arrival_s) if req.arrival_s else 0.0
        try:
            body = self.engine.infer_request(req)
        except EdgemtiError as exc:
            body = error_response(req.id, exc)
        except Exception as exc:  # noqa: BLE001 - a failed inference must not stop the loop; it is logged
            # the traceback only at debug level (serve --debug): one line per failed request otherwise
            log.error("request %r failed: %s: %s", req.id, type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            body = error_response(req.id, exc)
        return self._answer(req, body, queue_s, t0)

    def run_batch(self, reqs: Sequence[Request]) -> list[dict]:
        """Serve requests of one task in one engine run (``engine.infer_batch``); one response each, in order.
        A failure of the whole run answers every request of the batch with the error."""
        if len(reqs) == 1:
            return [self.run_one(reqs[0])]
        t0 = time.perf_counter()
        now = time.monotonic()
        queued = [max(0.0, now - r.arrival_s) if r.arrival_s else 0.0 for r in reqs]
        try:
            bodies = self.engine.infer_batch(reqs)
        except Exception as exc:  # noqa: BLE001 - a failed batch must not stop the loop; every request is answered
            if not isinstance(exc, EdgemtiError):
                log.error("batch of %d %s requests failed: %s: %s", len(reqs), reqs[0].task, type(exc).__name__,
                          exc, exc_info=log.isEnabledFor(logging.DEBUG))
            bodies = [error_response(r.id, exc) for r in reqs]
        return [self._answer(r, b, q, t0) for r, b, q in zip(reqs, bodies, queued, strict=True)]

    def _answer(self, req: Request, body: dict, queue_s: float, t0: float) -> dict:
        bad = non_finite_outputs(body) if body.get("ok") else []
        if bad:  # never an ok answer with NaN/inf in it: that is a broken model, not a prediction
            log.error("request %r: the model produced non-finite %s", req.id, bad)
            body = {"id": req.id, "ok": False, "error": {
                "type": "NonFiniteOutput", "message": f"the model produced non-finite {'/'.join(bad)} for this "
                "request: the build's weights are likely corrupt; verify the build"}}
        body.setdefault("id", req.id)
        body.update(seq=req.seq, task=req.task, queue_s=queue_s, loop_s=time.perf_counter() - t0)
        return self.respond(body)

    def stats(self) -> dict:
        """The summary so far (no fifo replay): what ``GET /stats`` shows."""
        with self.lock:
            return self.summary.result(replay=False)

    def finish(self) -> ServeResult:
        with self.lock:
            summary = self.summary.result()
        summary["max_bypassed"] = self.scheduler.max_bypassed_seen
        if self.log is not None:
            self.log.summary(summary)
            self.log.close()
        return ServeResult(summary=summary, responses=self.responses)


Line = str | bytes | RequestParseError


def serve_stream(
    engine: ServingEngine,
    lines: Iterable[Line],
    scheduler: SchedulerConfig | None = None,
    log_path: str | Path | None = None,
    emit: Callable[[dict], None] | None = None,
    live: bool = False,
    keep_responses: bool = False,
    stop: threading.Event | None = None,
    batching: BatchingConfig | None = None,
) -> ServeResult:
    """Serve a stream of JSON-line requests to its end; every line gets exactly one response.

    ``batching``: the scheduler's pick runs together with the queued requests of its task, up to
    ``max_batch_size``, in one engine run; a stream never waits for a batch to fill (``max_queue_delay_s`` is for
    the HTTP loop, whose clients arrive concurrently): it batches what has already been read.

    ``lines`` are text or byte lines (bytes are decoded per line by the request parser, see
    :func:`edgemti.runtime.request.split_lines`). SIGTERM or SIGINT (when called from the main thread), or
    ``stop`` being set, end the stream early: reading stops, every line already read is answered and logged, the
    summary is written and this returns normally. A live stream reads ahead at most ``max(window,
    max_batch_size)`` lines beyond the ones waiting to be scheduled (the reader blocks, the pipe fills, the writer
    waits): memory stays flat on an endless pipe, and a stop answers at most twice that many lines.
    """
    scheduler = scheduler or SchedulerConfig()
    batching = batching or BatchingConfig()
    session = Session(engine, scheduler, log_path, emit, keep_responses)
    pending: list[Request | _Rejected] = []
    seq = 0
    stop = stop or threading.Event()

    def admit(line: Line) -> None:
        nonlocal seq
        if isinstance(line, RequestParseError):
            pending.append(_Rejected(seq, dict(error_response(None, line), seq=seq)))
            seq += 1
            return
        if not line.strip():
            return
        try:
            pending.append(parse_request(line, engine.rules, seq=seq, arrival_s=time.monotonic()))
        except RequestParseError as exc:  # answered in its turn, like any request (fifo keeps stream order)
            pending.append(_Rejected(seq, dict(error_response(exc.request_id, exc), seq=seq)))
        seq += 1

    def resident(task: str | None) -> bool:
        return task is None or engine.is_resident(task)

    def in_dram(task: str | None) -> bool:
        return task is None or engine.in_dram(task)

    def run_next() -> None:
        head = session.scheduler.pick(pending, resident, in_dram)
        item = pending[head]
        if isinstance(item, _Rejected):
            del pending[head]
            session.respond(item.response)
        elif not batching.enabled:
            session.run_one(cast(Request, pending.pop(head)))
        else:  # the head and its task's queued requests (a rejected line has no task: never gathered)
            take = same_task(pending, head, batching.max_batch_size)
            take = take[:decide(batching, len(take), 0.0, closing=True).take]
            batch = [cast(Request, pending[i]) for i in take]
            for i in sorted(take, reverse=True):
                del pending[i]
            session.run_batch(batch)

    restore = stop_on_signals(stop, (signal.SIGTERM, signal.SIGINT))
    try:
        if live:
            # bounded read-ahead: the reader blocks once this many lines wait (the pipe then fills and the writer
            # blocks), so memory stays flat on any stream and a stop answers at most window + read-ahead lines
            window = max(scheduler.window, batching.max_batch_size)
            q: queue.Queue[Line | None] = queue.Queue(maxsize=window)
            threading.Thread(target=_pump, args=(lines, q, stop), daemon=True, name="edgemti-stdin").start()
            done = False
            while not done or pending:
                if stop.is_set() and not done:  # stopped: what was read joins the queue, nothing more is read
                    for _ in range(q.qsize()):  # what is queued now; the pump forwards nothing after the stop
                        item = q.get_nowait()
                        if item is not None:
                            admit(item)
                    done = True
                    continue
                if not pending and not done:
                    try:
                        item = q.get(timeout=0.1)
                    except queue.Empty:
                        item = None if stop.is_set() else _NOTHING
                    if item is None:
                        done = True
                    elif item is not _NOTHING:
                        admit(item)
                while not done and len(pending) < window:  # what has arrived meanwhile joins, up to the window
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
            it: Iterator[Line] = iter(lines)
            exhausted = False
            while True:
                while not exhausted and len(pending) < max(scheduler.window, batching.max_batch_size):
                    if stop.is_set():
                        exhausted = True
                        break
                    try:
                        admit(next(it))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                run_next()
        if stop.is_set():
            log.warning("stopped by a signal after %d requests; every request read was answered", seq)
    finally:
        restore()
        result = session.finish()
    return result


_NOTHING: Any = object()  # a queue poll that found nothing yet


@dataclass(frozen=True)
class _Rejected:
    """A line that failed validation, waiting in the queue for its turn to be answered (no task: no swap)."""

    seq: int
    response: dict
    task: None = None


def _pump(lines: Iterable[Line], q: queue.Queue, stop: threading.Event) -> None:
    """Forward lines into the bounded queue ``q`` (blocking while it is full, so no more is read), then None."""
    try:
        for line in lines:
            if not _put(q, line, stop):  # stopped: this line and the rest are not admitted
                break
    except Exception as exc:  # noqa: BLE001 - a broken input stream ends the stream, it does not kill the loop
        log.error("reading requests failed (%s: %s); serving what was read", type(exc).__name__, exc)
    finally:
        _put(q, None, stop)


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False (not put) when ``stop`` is set first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def stdin_lines(fd: int = 0, max_bytes: int = 1 << 20) -> Iterator[bytes | RequestParseError]:
    """Request lines from a file descriptor, read with ``os.read`` (no buffered-reader lock: a thread blocked
    here never aborts interpreter shutdown, unlike one blocked in ``sys.stdin``)."""
    return split_lines(iter(lambda: os.read(fd, 1 << 16), b""), max_bytes)


def stop_on_signals(stop: threading.Event, signums: tuple[int, ...]) -> Callable[[], None]:
    """Make ``signums`` set ``stop`` (a service manager's SIGTERM, a user's Ctrl-C) instead of killing the run.
    Returns a function that restores the previous handlers; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread
    previous = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        signal.signal(s, lambda signum, frame: stop.set())

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (how a service manager stops a server) ends serving like Ctrl-C: the requests already queued
    are answered and logged, and the summary is written. Returns a function that restores the old handler."""
    return stop_on_signals(stop, (signal.SIGTERM,))


def input_lines(stdin: Any, limit: int) -> Iterable[Line]:
    """Request lines of a file descriptor, a binary stream (read by descriptor when it has one) or an iterable."""
    if isinstance(stdin, int):
        return stdin_lines(stdin, limit)
    try:
        return stdin_lines(stdin.fileno(), limit)
    except (AttributeError, OSError, ValueError):  # no descriptor (an in-memory stream, a list of lines)
        pass
    read = getattr(stdin, "read", None)
    if callable(read) and not isinstance(getattr(stdin, "encoding", None), str):
        return split_lines(iter(lambda: read(1 << 16), b""), limit)
    return cast(Iterable[Line], stdin)
