"""The compact dialect over HTTP: ``POST /infer`` (one JSON request -> one JSON response), ``GET /health``,
``GET /stats`` and ``GET /metrics`` (Prometheus text, :mod:`edgemti.runtime.metrics`).

A body is parsed by the shared request boundary (:func:`edgemti.runtime.request.parse_request`, as every stdin
line is) and answered with the response the stream loop would write; its HTTP status follows the body's error type
(:func:`edgemti.runtime.http_routes.status_of`).
"""

from __future__ import annotations

from edgemti.runtime.http_routes import Front, Handler, json_response, raw_response, status_of
from edgemti.runtime.http_types import WireRequest, WireResponse
from edgemti.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE


async def health(front: Front, req: WireRequest) -> WireResponse:
    return json_response(front, 200, {"ok": True, "tasks": list(front.engine.rules.tasks),
                                      "ready": front.ready.is_set(), "draining": front.draining})


async def stats(front: Front, req: WireRequest) -> WireResponse:
    return json_response(front, 200, front.stats())


async def metrics(front: Front, req: WireRequest) -> WireResponse:
    return raw_response(front, 200, front.metrics.render(), METRICS_CONTENT_TYPE)


async def infer(front: Front, req: WireRequest) -> WireResponse:
    resp = await front.submit(req.body)
    return json_response(front, status_of(resp), resp)


HANDLERS: dict[str, Handler] = {"health": health, "stats": stats, "metrics": metrics, "infer": infer}
