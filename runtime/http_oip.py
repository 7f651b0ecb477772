"""The Open Inference Protocol (KServe v2 REST) over HTTP: one model per task (codec: :mod:`edgemti.runtime.oip`).

``GET /v2``, ``GET /v2/health/live|ready``, ``GET /v2/models/{task}[/versions/1]`` and ``.../ready``,
``POST .../infer`` (a batch dimension: N texts, N answers), ``POST /v2/repository/index`` and
``POST /v2/repository/models/{task}/load|unload``. Errors are ``{"error": "..."}`` as the protocol (and
``tritonclient``) expect. Each text of an inference request becomes one request of the shared boundary
(:func:`edgemti.runtime.request.parse_request`): one ``seq``, one log record, one answer.
"""

from __future__ import annotations

import asyncio
import time

from edgemti import __version__
from edgemti.runtime.http_routes import Front, Handler, json_response, raw_response, status_of
from edgemti.runtime.http_types import WireRequest, WireResponse
from edgemti.runtime.metrics import NO_TASK
from edgemti.runtime.oip import OipError, decode_infer, encode_infer, error_body, model_metadata, split_body
from edgemti.runtime.request import RequestParseError, error_response, numbered, parse_rows


def oip_error(front: Front, status: int, message: str) -> WireResponse:
    return raw_response(front, status, error_body(message), "application/json")


def _not_ready(front: Front) -> str:
    return "draining" if front.draining else "warming up"


def _unknown(front: Front, task: str) -> WireResponse | None:
    if task in front.engine.rules.tasks:
        return None
    return oip_error(front, 404, f"unknown model {task[:80]!r}: this server serves {list(front.engine.rules.tasks)}")


async def server(front: Front, req: WireRequest) -> WireResponse:
    return json_response(front, 200, {"name": "edgemti", "version": __version__,
                                      "extensions": ["binary_tensor_data", "model_repository"]})


async def live(front: Front, req: WireRequest) -> WireResponse:
    return json_response(front, 200, {"live": True})


async def ready(front: Front, req: WireRequest) -> WireResponse:
    if front.ready.is_set() and not front.draining:
        return json_response(front, 200, {"ready": True})
    return oip_error(front, 503, "not ready: " + _not_ready(front))


async def model(front: Front, req: WireRequest, task: str) -> WireResponse:
    return _unknown(front, task) or json_response(front, 200, model_metadata(
        task, front.engine.manifest.pack(task), task in front.engine.rules.pair_tasks))


async def model_ready(front: Front, req: WireRequest, task: str) -> WireResponse:
    refused = _unknown(front, task)
    if refused is not None:
        return refused
    if front.ready.is_set() and not front.draining:
        return json_response(front, 200, {"name": task, "ready": True})
    return oip_error(front, 503, f"model {task!r} not ready: " + _not_ready(front))


async def infer(front: Front, req: WireRequest, task: str) -> WireResponse:
    rules = front.engine.rules
    refused = _unknown(front, task)
    if refused is not None:
        front.metrics.requests.labels(task=NO_TASK, status="404").inc()
        return refused
    try:
        head, binary = split_body(req.body, req.headers.get("inference-header-content-length"))
        ib = decode_infer(head, binary, task in rules.pair_tasks, front.config.max_texts)
    except OipError as exc:
        front.answer_unparsed({"id": None, "ok": False, "seq": front.next_seq(), "task": task,
                               "error": {"type": "RequestError", "message": str(exc)}})
        return oip_error(front, exc.status, str(exc))
    n = len(ib.rows)
    try:  # every row checked before any seq is taken: a refused request is one log record with one seq (no gap)
        reqs = parse_rows(ib.rows, task, rules, arrival_s=time.monotonic())
    except RequestParseError as exc:
        seq = front.next_seq()
        front.answer_unparsed(dict(error_response(ib.id if ib.id is not None else f"v2-{seq}", exc), seq=seq,
                                   task=task))
        return oip_error(front, 400, str(exc))
    seq0 = front.next_seq(n)
    reqs = numbered(reqs, seq0, ib.id if ib.id is not None else f"v2-{seq0}")
    answers = await front.submit_many(reqs)
    if answers is None:
        front.metrics.requests.labels(task=task, status="503").inc(n)
        return oip_error(front, 503, "server is draining (shutting down); retry later")
    bad = [a for a in answers if not a.get("ok")]
    if bad:
        err = bad[0].get("error") or {}
        return oip_error(front, status_of(bad[0]), f"{err.get('type')}: {err.get('message')}")
    data, header_len = encode_infer(task, ib, answers)
    if header_len is None:
        return raw_response(front, 200, data, "application/json")
    return raw_response(front, 200, data, "application/octet-stream",
                        (("Inference-Header-Content-Length", str(header_len)),))


async def index(front: Front, req: WireRequest) -> WireResponse:
    return json_response(front, 200, front.repository_index())


async def repository(front: Front, req: WireRequest, task: str, action: str) -> WireResponse:
    code, obj = await asyncio.to_thread(front.repository, task, action)  # waits for the engine between runs
    if code == 200:
        return json_response(front, 200, obj)
    return oip_error(front, code, str(obj.get("error")))


HANDLERS: dict[str, Handler] = {"v2_server": server, "v2_live": live, "v2_ready": ready, "v2_model": model,
                                "v2_model_ready": model_ready, "v2_infer": infer, "v2_index": index,
                                "v2_repository": repository}
