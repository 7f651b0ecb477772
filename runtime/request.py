"""Serving requests and responses: parse one JSON line at the boundary, collect every problem, one error.

A request is ``{"id": ..., "task": "sst2", "text": "...", "text_pair": "..."}`` (``text_pair`` only for pair
tasks). Parsing never raises past :func:`parse_request`'s caller in the server loop: a bad line becomes an error
response for its id (or ``null`` when no id could be read), and the next request is served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from edgemti.errors import RequestError, UnknownTaskError

OVERLONG_POLICIES = ("truncate", "reject")
_KNOWN = {"id", "task", "text", "text_pair"}


@dataclass(frozen=True)
class Request:
    """One validated request; ``seq`` is its arrival number in the stream (0, 1, ...)."""

    id: Any
    task: str
    text: str
    text_pair: str | None = None
    seq: int = 0
    arrival_s: float = 0.0  # host monotonic clock at arrival

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise RequestError(f"Request: task must be a non-empty string, got {self.task!r}")


class RequestParseError(RequestError):
    """A request line that could not be turned into a :class:`Request`; ``request_id`` is what could be read."""

    def __init__(self, message: str, request_id: Any = None, kind: str = "RequestError") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.kind = kind


@dataclass(frozen=True)
class RequestRules:
    """What a build accepts: its tasks, which of them take a text pair, and the empty/over-long policy."""

    tasks: tuple[str, ...]
    pair_tasks: tuple[str, ...] = ()
    overlong: str = "truncate"
    max_text_chars: int = 100_000  # a line this long is refused before tokenising (protects the loop)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.overlong not in OVERLONG_POLICIES:
            raise RequestError(f"RequestRules: overlong must be one of {OVERLONG_POLICIES}, got {self.overlong!r}")
        if self.max_text_chars <= 0:
            raise RequestError(f"RequestRules: max_text_chars must be > 0, got {self.max_text_chars}")


def parse_request(line: str | bytes | dict, rules: RequestRules, seq: int = 0, arrival_s: float = 0.0) -> Request:
    """Parse and validate one request; raise :class:`RequestParseError` listing every problem found."""
    if isinstance(line, dict):
        obj: Any = line
    else:
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestParseError(f"malformed JSON ({exc.msg if hasattr(exc, 'msg') else exc}): send one JSON "
                                    "object per line like {\"id\": 1, \"task\": \"sst2\", \"text\": \"...\"}") from None
    if not isinstance(obj, dict):
        raise RequestParseError(f"a request must be a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    problems = []
    if "id" not in obj or rid is None:
        problems.append("missing field 'id'")
    elif not isinstance(rid, (str, int)) or isinstance(rid, bool):
        problems.append(f"'id' must be a string or an integer, got {type(rid).__name__}")
        rid = None
    unknown = sorted(set(obj) - _KNOWN)
    if unknown:
        problems.append(f"unknown field(s) {unknown} (allowed: {sorted(_KNOWN)})")
    task = obj.get("task")
    kind = "RequestError"
    if task is None:
        problems.append("missing field 'task'")
    elif not isinstance(task, str):
        problems.append(f"'task' must be a string, got {type(task).__name__}")
    elif task not in rules.tasks:
        problems.append(f"unknown task {task!r}: this build serves {list(rules.tasks)}")
        kind = "UnknownTaskError"
    for name in ("text", "text_pair"):
        v = obj.get(name)
        if name == "text" and v is None:
            problems.append("missing field 'text'")
        elif v is not None and not isinstance(v, str):
            problems.append(f"'{name}' must be a string, got {type(v).__name__}")
        elif v is not None and not v.strip():
            problems.append(f"'{name}' is empty: send some text")
        elif v is not None and len(v) > rules.max_text_chars:
            problems.append(f"'{name}' has {len(v)} characters, over the limit of {rules.max_text_chars}")
    if isinstance(task, str) and task in rules.tasks:
        pair = task in rules.pair_tasks
        if pair and obj.get("text_pair") is None:
            problems.append(f"task {task!r} takes a sentence pair: add 'text_pair'")
        if not pair and obj.get("text_pair") is not None:
            problems.append(f"task {task!r} takes one sentence: drop 'text_pair'")
    if problems:
        if kind == "UnknownTaskError" and len(problems) > 1:
            kind = "RequestError"
        raise RequestParseError("; ".join(problems), request_id=rid, kind=kind)
    # no problems: task is a str this build serves
    return Request(id=rid, task=cast(str, task), text=obj["text"], text_pair=obj.get("text_pair"), seq=seq,
                   arrival_s=arrival_s)


def error_response(request_id: Any, exc: BaseException) -> dict:
    """The one response of a request that could not be served."""
    kind = getattr(exc, "kind", None) or type(exc).__name__
    if isinstance(exc, UnknownTaskError):
        kind = "UnknownTaskError"
    return {"id": request_id, "ok": False, "error": {"type": kind, "message": str(exc)}}
