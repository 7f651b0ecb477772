"""What the HTTP wire layer and the application exchange: the transport's limits, the listening address, one
framed request and one answer, and the calls the wire layer makes (:class:`Application`).

The wire layer (:mod:`edgemti.runtime.http_wire`, :mod:`edgemti.runtime.http_exchange`) turns bytes into
:class:`WireRequest` values and :class:`WireResponse` values back into bytes; what a request means is the
application's (:mod:`edgemti.runtime.http`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable
from dataclasses import dataclass

from edgemti.errors import ConfigError


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
