"""HTTP/1.1 connections on one asyncio loop, limits applied at accept; each connection's requests are
:mod:`edgemti.runtime.http_exchange`'s (framing by h11), the values exchanged :mod:`edgemti.runtime.http_types`'.

Connections cost no thread: one event loop reads them all. Limits, all applied by the loop itself (no worker is
needed to refuse): at most ``max_connections`` open and ``max_connections_per_address`` from one address; a new
connection over a limit first evicts the longest-idle connection (one with no request in progress: closing it
is what any keep-alive server may do at any time), and when every connection is mid-request it is answered 503
+ ``Retry-After`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from edgemti.runtime.http_exchange import CHUNK, LINGER_S, Closed, Conn, Exchange
from edgemti.runtime.http_types import Application, HttpConfig

log = logging.getLogger(__name__)


class WireServer:
    """An asyncio HTTP/1.1 server on its own thread; :meth:`start` binds, :meth:`stop` closes."""

    def __init__(self, app: Application, host: str, port: int, config: HttpConfig) -> None:
        self.app = app
        self.config = config
        self.exchange = Exchange(app, config)
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[Conn] = set()
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
                self._accept, self._host, self._port, backlog=self.config.backlog, limit=CHUNK))
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
                self._loop.run_until_complete(asyncio.wait(left, timeout=LINGER_S + 1.0))
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
            await self.exchange.write_close(reader, writer, self.exchange.refusal(503, "server overloaded: too many connections "
                                                                  "in progress; retry later"))
            return
        conn = Conn(peer, writer)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        try:
            await self.exchange.serve(conn, reader, writer, accepted)
        except (Closed, ConnectionError, OSError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one connection's failure never takes the loop down
            log.exception("http connection from %s failed", peer)
        finally:
            self._release(conn)
            await self.exchange.linger_close(reader, writer)

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

    def _release(self, conn: Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        left = self._per_peer.get(conn.peer, 1) - 1
        if left:
            self._per_peer[conn.peer] = left
        else:
            self._per_peer.pop(conn.peer, None)
