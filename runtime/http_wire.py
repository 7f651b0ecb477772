"""HTTP/1.1 connection handling: framing by h11, connections by one asyncio loop, limits applied at accept.

The wire layer turns bytes into :class:`WireRequest` values and :class:`WireResponse` values back into bytes;
what a request means is the application's (:mod:`edgemti.runtime.http`). Framing is h11's (a maintained,
RFC 9112-strict HTTP/1.1 state machine): pipelined requests are answered in order, one at a time; a body is
exactly its ``Content-Length``; conflicting lengths, a body cut short, a garbage or HTTP/0.9 request line and an
oversized head are answered with a JSON error and the connection closes.

Connections cost no thread: one event loop reads them all. Limits, all applied by the loop itself (no worker is
needed to refuse): at most ``max_connections`` open and ``max_connections_per_address`` from one address; a new
connection over a limit first evicts the longest-idle connection (one with no request in progress: closing it
is what any keep-alive server may do at any time), and when every connection is mid-request it is answered 503
+ ``Retry-After`` at once. Each request must arrive whole (line, headers, body) within ``read_timeout_s`` of the
accept, or of the previous answer on its connection: an idle connection is then closed, a half-sent one answered
408. Closing is lingering (FIN, then read and discard briefly) so a client whose bytes were not read sees the
answer, not a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import h11

from edgemti import __version__
from edgemti.errors import ConfigError

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_LINGER_S = 0.5  # how long a closing connection's unread bytes are drained (so the client sees the answer)
_LINGER_BYTES = 16 << 20
_SERVER = f"edgemti/{__version__}".encode()
# RFC 9112 request-line: method SP request-target SP HTTP-version (checked as soon as the line is in, so an
# HTTP/0.9 "GET /" or a binary probe is answered at once instead of waiting for a header block that never comes)
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r?")


@dataclass(frozen=True)
class HttpConfig:
    """Transport limits: ``max_connections`` open at once and ``max_connections_per_address`` from one client
    address, ``backlog`` of the listening socket, ``read_timeout_s`` to receive a whole request (line, headers,
    body) from the accept or the previous answer, ``retry_after_s`` told with every 503, ``drain_grace_s`` open
    connections stay open after a stop has answered everything queued (a request then gets 503, not a reset),
    ``max_texts`` per Open Inference Protocol request (its batch dimension), ``max_head_bytes`` of a request's
    line and headers."""

    max_connections: int = 512
    max_connections_per_address: int = 256
    backlog: int = 256
    read_timeout_s: float = 10.0
    retry_after_s: int = 1
    drain_grace_s: float = 0.5
    max_texts: int = 256
    max_head_bytes: int = 16384

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_address", "backlog", "retry_after_s", "max_texts",
                     "max_head_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"HttpConfig: {name} must be an int >= 1, got {v!r}")
        if not isinstance(self.read_timeout_s, (int, float)) or not 0 < float(self.read_timeout_s) < 3600:
            raise ConfigError(f"HttpConfig: read_timeout_s must be in (0, 3600) seconds, got {self.read_timeout_s!r}")
        if not isinstance(self.drain_grace_s, (int, float)) or not 0 <= float(self.drain_grace_s) <= 60:
            raise ConfigError(f"HttpConfig: drain_grace_s must be in [0, 60] seconds, got {self.drain_grace_s!r}")


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


@dataclass(frozen=True)
class WireRequest:
    """One framed request: ``headers`` by lower-case name (repeated fields joined with ", "), the whole body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class WireResponse:
    """One answer: ``close`` ends the connection after it (the client is told ``Connection: close``)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


class Application:
    """What the wire layer calls: ``check_head`` may answer a request before its body is read (411, 413, 415:
    with ``Expect: 100-continue`` the client never sends it), ``handle`` answers a whole request, ``error``
    makes the JSON body of a wire-level refusal, ``observe`` counts one (by status)."""

    def check_head(self, req: WireRequest, length: int | None) -> WireResponse | None:
        raise NotImplementedError

    def handle(self, req: WireRequest) -> Awaitable[WireResponse]:
        raise NotImplementedError

    def error(self, status: int, message: str) -> bytes:
        raise NotImplementedError

    def observe(self, status: int) -> None:
        raise NotImplementedError


class _Closed(Exception):
    """The connection is done (the client went away, or it was answered and must close)."""


class _Conn:
    """One connection's state as the limits see it."""

    def __init__(self, peer: str, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.writer = writer
        self.busy = False  # some bytes of a request have arrived, or one is being answered
        self.idle_since = time.monotonic()
        self.task: asyncio.Task | None = None


class WireServer:
    """An asyncio HTTP/1.1 server on its own thread; :meth:`start` binds, :meth:`stop` closes."""

    def __init__(self, app: Application, host: str, port: int, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Conn] = set()
        self._per_peer: dict[str, int] = {}
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="edgemti-http")
        self.address: tuple[str, int] = (host, port)

    # -- lifecycle (called from other threads) ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[[], Coroutine[Any, Any, None]], timeout_s: float | None = None) -> None:
        """Run a coroutine made by ``fn`` on the loop and wait for its result (from another thread)."""
        asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout_s)

    def stop_accepting(self) -> None:
        """Close the listening socket: a new connection is refused at once; open ones keep being served."""
        async def close() -> None:
            if self._server is not None:
                self._server.close()
        self.call(close)

    def close(self, grace_s: float) -> None:
        """Keep open connections ``grace_s`` longer (the application answers their requests 503), then close
        them (lingering) and stop the loop."""
        async def finish() -> None:
            end = time.monotonic() + grace_s
            while self._conns and time.monotonic() < end:
                await asyncio.sleep(0.02)
            for c in list(self._conns):  # still open after the grace: idle (or stalled mid-request) ones
                if c.task is not None:
                    c.task.cancel()
        with contextlib.suppress(Exception):
            self.call(finish, timeout_s=grace_s + 5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._accept, self._host, self._port, backlog=self.config.backlog, limit=_CHUNK))
            self.address = tuple(self._server.sockets[0].getsockname()[:2])  # type: ignore[assignment]
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the caller's thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._loop.run_forever()
            # what is left (connections closing, cancelled ones lingering) finishes before the loop closes
            left = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            if left:
                self._loop.run_until_complete(asyncio.wait(left, timeout=_LINGER_S + 1.0))
            for t in asyncio.all_tasks(self._loop):
                t.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
        finally:
            self._loop.close()

    # -- connections -----------------------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        accepted = time.monotonic()
        if not self._admit(peer):
            self.app.observe(503)
            await self._write_close(reader, writer, self._refusal(503, "server overloaded: too many connections "
                                                                  "in progress; retry later"))
            return
        conn = _Conn(peer, writer)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        try:
            await self._serve(conn, reader, writer, accepted)
        except (_Closed, ConnectionError, OSError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one connection's failure never takes the loop down
            log.exception("http connection from %s failed", peer)
        finally:
            self._release(conn)
            await self._linger_close(reader, writer)

    def _admit(self, peer: str) -> bool:
        """Room for a connection from ``peer``: under both limits, or made by evicting the longest-idle one."""
        full = len(self._conns) >= self.config.max_connections
        peer_full = self._per_peer.get(peer, 0) >= self.config.max_connections_per_address
        if not (full or peer_full):
            return True
        idle = [c for c in self._conns if not c.busy and (full or c.peer == peer)]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since)
        self._release(victim)  # counted out now: the new connection takes its place at once
        if victim.task is not None:
            victim.task.cancel()
        log.debug("http: evicted an idle connection from %s to make room", victim.peer)
        return True

    def _release(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        left = self._per_peer.get(conn.peer, 1) - 1
        if left:
            self._per_peer[conn.peer] = left
        else:
            self._per_peer.pop(conn.peer, None)

    def _refusal(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> WireResponse:
        if status == 503:
            headers = headers + (("Retry-After", str(self.config.retry_after_s)),)
        return WireResponse(status, self.app.error(status, message), headers=headers, close=True)

    async def _serve(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     since: float) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_bytes)
        while True:
            deadline = since + float(self.config.read_timeout_s)
            try:
                event = await self._next(h, conn, reader, deadline)
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request)
                conn.busy = True
                if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > self.config.max_head_bytes:
                    # h11 bounds a head still arriving; one that arrived in a single read is bounded here
                    raise h11.RemoteProtocolError(f"request head over {self.config.max_head_bytes} bytes", 431)
                req = WireRequest(event.method.decode("ascii", "replace"), event.target.decode("ascii", "replace"),
                                  _headers(event.headers), b"")
                length = _content_length(req.headers)
                early = self.app.check_head(req, length)
                if early is not None:
                    if early.status >= 400:
                        self.app.observe(early.status)
                    await self._send(h, writer, early, close=True, head_only=req.method == "HEAD")
                    raise _Closed
                if h.they_are_waiting_for_100_continue:
                    writer.write(h.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                body = bytearray()
                while True:
                    part = await self._next(h, conn, reader, deadline)
                    if isinstance(part, h11.Data):
                        body += part.data
                    elif isinstance(part, h11.EndOfMessage):
                        break
                    else:
                        raise _Closed
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                self.app.observe(status)
                if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send_raw(writer, self._refusal(status, f"malformed HTTP request: {exc}"))
                raise _Closed from None
            except (TimeoutError, asyncio.TimeoutError):
                if conn.busy or h.trailing_data[0]:  # half a request: say why it is cut off
                    self.app.observe(408)
                    if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await self._send_raw(writer, self._refusal(
                            408, f"the request did not arrive within {self.config.read_timeout_s:g} s"))
                raise _Closed from None
            try:
                resp = await self.app.handle(WireRequest(req.method, req.target, req.headers, bytes(body)))
            except Exception as exc:  # noqa: BLE001 - a handler's bug still gets the request an answer
                log.error("http %s %s failed: %s: %s", req.method, req.target[:80], type(exc).__name__, exc,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                self.app.observe(500)
                resp = WireResponse(500, self.app.error(500, f"internal error: {type(exc).__name__}"), close=True)
            await self._send(h, writer, resp, close=resp.close, head_only=req.method == "HEAD")
            if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                raise _Closed
            h.start_next_cycle()
            conn.busy = False
            conn.idle_since = since = time.monotonic()

    async def _next(self, h: h11.Connection, conn: _Conn, reader: asyncio.StreamReader,
                    deadline: float) -> h11.Event:
        """h11's next event, reading (within ``deadline``) as it needs; a bad request line is refused early."""
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            if h.their_state is h11.IDLE:
                _check_request_line(h.trailing_data[0])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(reader.read(_CHUNK), left)
            if data:
                conn.busy = True
            h.receive_data(data)

    async def _send(self, h: h11.Connection, writer: asyncio.StreamWriter, resp: WireResponse,
                    close: bool, head_only: bool = False) -> None:
        headers = [(b"content-type", resp.content_type.encode()), (b"content-length", str(len(resp.body)).encode()),
                   (b"server", _SERVER)]
        headers += [(k.encode(), v.encode()) for k, v in resp.headers]
        if close:
            headers.append((b"connection", b"close"))
        data = h.send(h11.Response(status_code=resp.status, headers=headers)) or b""
        if not head_only:  # a HEAD answer has the headers of the GET and no body (RFC 9110 9.3.2)
            data += h.send(h11.Data(data=resp.body)) or b""
        data += h.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()

    async def _send_raw(self, writer: asyncio.StreamWriter, resp: WireResponse) -> None:
        """An answer outside h11's state machine (the request was never parsed, or the connection is refused)."""
        head = [f"HTTP/1.1 {resp.status} {_phrase(resp.status)}", f"Content-Type: {resp.content_type}",
                f"Content-Length: {len(resp.body)}", f"Server: {_SERVER.decode()}"]
        head += [f"{k}: {v}" for k, v in resp.headers] + ["Connection: close", "", ""]
        with contextlib.suppress(OSError):
            writer.write("\r\n".join(head).encode("latin-1") + resp.body)
            await writer.drain()

    async def _write_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           resp: WireResponse) -> None:
        await self._send_raw(writer, resp)
        await self._linger_close(reader, writer)

    async def _linger_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """FIN, then read what the client still sends (briefly, bounded) before closing: no reset for unread data."""
        try:
            await asyncio.wait_for(writer.drain(), _LINGER_S)
            if writer.can_write_eof():
                writer.write_eof()
            end, seen = time.monotonic() + _LINGER_S, 0
            while seen < _LINGER_BYTES and (left := end - time.monotonic()) > 0:
                chunk = await asyncio.wait_for(reader.read(_CHUNK), left)
                if not chunk:
                    break
                seen += len(chunk)
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _check_request_line(pending: bytes) -> None:
    pending = pending.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request line are ignored
    end = pending.find(b"\n")
    if end >= 0 and not _REQUEST_LINE.fullmatch(pending[:end]):
        raise h11.RemoteProtocolError("the request line is not METHOD TARGET HTTP/1.x (HTTP/0.9 and non-HTTP "
                                      "bytes are not served)", 400)


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in raw:
        name, value = k.decode("ascii", "replace").lower(), v.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _content_length(headers: dict[str, str]) -> int | None:
    raw = headers.get("content-length")
    return int(raw.split(",")[0]) if raw else None  # h11 has refused differing or non-numeric lengths
