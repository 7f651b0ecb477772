"""One HTTP/1.1 connection's requests, framed by h11: read each request whole within its deadline, hand it to the
application, write the answer; refuse malformed HTTP with a JSON error; close lingering.

Framing is h11's (a maintained, RFC 9112-strict HTTP/1.1 state machine): pipelined requests are answered in order,
one at a time; a body is exactly its ``Content-Length``; conflicting lengths, a body cut short, a garbage or
HTTP/0.9 request line and an oversized head are answered with a JSON error and the connection closes. Each request
must arrive whole (line, headers, body) within ``read_timeout_s`` of the accept, or of the previous answer on its
connection: an idle connection is then closed, a half-sent one answered 408. Closing is lingering (FIN, then read
and discard briefly) so a client whose bytes were not read sees the answer, not a reset. Which connections are
open at all is :mod:`edgemti.runtime.http_wire`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import time
from collections.abc import Iterable

import h11

from edgemti import __version__
from edgemti.runtime.http_types import Application, HttpConfig, WireRequest, WireResponse

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # bytes read at a time
LINGER_S = 0.5  # how long a closing connection's unread bytes are drained (so the client sees the answer)
_LINGER_BYTES = 16 << 20
_SERVER = f"edgemti/{__version__}".encode()
# RFC 9112 request-line: method SP request-target SP HTTP-version (checked as soon as the line is in, so an
# HTTP/0.9 "GET /" or a binary probe is answered at once instead of waiting for a header block that never comes)
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r?")


class Closed(Exception):
    """The connection is done (the client went away, or it was answered and must close)."""


class Conn:
    """One connection's state as the limits see it."""

    def __init__(self, peer: str, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.writer = writer
        self.busy = False  # some bytes of a request have arrived, or one is being answered
        self.idle_since = time.monotonic()
        self.task: asyncio.Task | None = None


class Exchange:
    """Serves the requests of connections for ``app`` under ``config`` (one instance per server)."""

    def __init__(self, app: Application, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def refusal(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> WireResponse:
        """A wire-level refusal (JSON body, connection closed; a 503 says when to retry)."""
        if status == 503:
            headers = headers + (("Retry-After", str(self.config.retry_after_s)),)
        return WireResponse(status, self.app.error(status, message), headers=headers, close=True)

    async def serve(self, conn: Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    since: float) -> None:
        """Answer ``conn``'s requests in order until it closes (raises :class:`Closed` when it must)."""
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_bytes)
        while True:
            deadline = since + float(self.config.read_timeout_s)
            try:
                event = await self.next_event(h, conn, reader, deadline)
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
                    await self.send(h, writer, early, close=True, head_only=req.method == "HEAD")
                    raise Closed
                if h.they_are_waiting_for_100_continue:
                    writer.write(h.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                body = bytearray()
                while True:
                    part = await self.next_event(h, conn, reader, deadline)
                    if isinstance(part, h11.Data):
                        body += part.data
                    elif isinstance(part, h11.EndOfMessage):
                        break
                    else:
                        raise Closed
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                self.app.observe(status)
                if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self.send_raw(writer, self.refusal(status, f"malformed HTTP request: {exc}"))
                raise Closed from None
            except (TimeoutError, asyncio.TimeoutError):
                if conn.busy or h.trailing_data[0]:  # half a request: say why it is cut off
                    self.app.observe(408)
                    if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await self.send_raw(writer, self.refusal(
                            408, f"the request did not arrive within {self.config.read_timeout_s:g} s"))
                raise Closed from None
            try:
                resp = await self.app.handle(WireRequest(req.method, req.target, req.headers, bytes(body)))
            except Exception as exc:  # noqa: BLE001 - a handler's bug still gets the request an answer
                log.error("http %s %s failed: %s: %s", req.method, req.target[:80], type(exc).__name__, exc,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                self.app.observe(500)
                resp = WireResponse(500, self.app.error(500, f"internal error: {type(exc).__name__}"), close=True)
            await self.send(h, writer, resp, close=resp.close, head_only=req.method == "HEAD")
            if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                raise Closed
            h.start_next_cycle()
            conn.busy = False
            conn.idle_since = since = time.monotonic()

    async def next_event(self, h: h11.Connection, conn: Conn, reader: asyncio.StreamReader,
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
            data = await asyncio.wait_for(reader.read(CHUNK), left)
            if data:
                conn.busy = True
            h.receive_data(data)

    async def send(self, h: h11.Connection, writer: asyncio.StreamWriter, resp: WireResponse,
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

    async def send_raw(self, writer: asyncio.StreamWriter, resp: WireResponse) -> None:
        """An answer outside h11's state machine (the request was never parsed, or the connection is refused)."""
        head = [f"HTTP/1.1 {resp.status} {_phrase(resp.status)}", f"Content-Type: {resp.content_type}",
                f"Content-Length: {len(resp.body)}", f"Server: {_SERVER.decode()}"]
        head += [f"{k}: {v}" for k, v in resp.headers] + ["Connection: close", "", ""]
        with contextlib.suppress(OSError):
            writer.write("\r\n".join(head).encode("latin-1") + resp.body)
            await writer.drain()

    async def write_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           resp: WireResponse) -> None:
        await self.send_raw(writer, resp)
        await self.linger_close(reader, writer)

    async def linger_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """FIN, then read what the client still sends (briefly, bounded) before closing: no reset for unread data."""
        try:
            await asyncio.wait_for(writer.drain(), LINGER_S)
            if writer.can_write_eof():
                writer.write_eof()
            end, seen = time.monotonic() + LINGER_S, 0
            while seen < _LINGER_BYTES and (left := end - time.monotonic()) > 0:
                chunk = await asyncio.wait_for(reader.read(CHUNK), left)
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
