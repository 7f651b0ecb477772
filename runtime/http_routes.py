"""Routing of the HTTP front end: which handler a (method, path) reaches, and the status of a response body.

Routes (query strings are ignored, a trailing slash too):

* compact dialect (:mod:`edgemti.runtime.http_compact`): ``POST /infer``, ``GET /health``, ``GET /stats``,
  ``GET /metrics``;
* Open Inference Protocol (:mod:`edgemti.runtime.http_oip`): ``GET /v2``, ``GET /v2/health/live|ready``,
  ``GET /v2/models/{task}[/versions/V]``, ``.../ready``, ``POST .../infer``, ``POST /v2/repository/index``,
  ``POST /v2/repository/models/{task}/load|unload``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from edgemti.runtime.http_types import HttpConfig, WireResponse
from edgemti.runtime.metrics import ServerMetrics
from edgemti.runtime.request import Request, response_json

UNAVAILABLE = "ServiceUnavailable"  # error type of a request refused because the server is draining
_BAD_REQUEST = {"RequestError", "RequestParseError", "OverlongError"}

_MODEL = r"/v2/models/(?P<task>[^/]+)(?:/versions/[^/]+)?"
ROUTES: list[tuple[re.Pattern, str, str]] = [  # (path, method, handler name)
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


def path_of(target: str) -> str:
    """The routed path of a request target: no query string, no trailing slash."""
    return urlsplit(target).path.rstrip("/") or "/"


def route(method: str, path: str) -> tuple[str | None, dict, list[str]]:
    """(handler name, path parameters, methods the path allows) for a request line."""
    allowed = []
    for pattern, m, name in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if m == method:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}, [m]
        allowed.append(m)
    return None, {}, sorted(set(allowed))


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


class Front(Protocol):
    """What the route handlers need of the server (:class:`edgemti.runtime.http.HttpServer`)."""

    engine: Any
    config: HttpConfig
    metrics: ServerMetrics
    ready: threading.Event

    @property
    def draining(self) -> bool: ...
    def next_seq(self, n: int = 1) -> int: ...
    def answer_unparsed(self, resp: dict) -> dict: ...
    async def submit(self, body: bytes) -> dict: ...
    async def submit_many(self, reqs: list[Request]) -> list[dict] | None: ...
    def stats(self) -> dict: ...
    def repository(self, task: str, action: str) -> tuple[int, dict]: ...
    def repository_index(self) -> list[dict]: ...


Handler = Callable[..., Awaitable[WireResponse]]


def json_response(front: Front, status: int, obj: dict | list, headers: tuple[tuple[str, str], ...] = ()
                  ) -> WireResponse:
    """A JSON answer; a 503 tells ``Retry-After``; while draining every answer closes its connection."""
    data = response_json(obj).encode() if isinstance(obj, dict) else json.dumps(obj).encode()
    return raw_response(front, status, data, "application/json", headers)


def raw_response(front: Front, status: int, data: bytes, content_type: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> WireResponse:
    if status == 503:
        headers = headers + (("Retry-After", str(front.config.retry_after_s)),)
    return WireResponse(status, data, content_type, headers, close=front.draining)


def compact_error(front: Front, status: int, kind: str, message: str,
                  headers: tuple[tuple[str, str], ...] = ()) -> WireResponse:
    return json_response(front, status, {"ok": False, "error": {"type": kind, "message": message}}, headers)
