"""The request boundary: one request's raw bytes in, a :class:`Request` or a :class:`RequestParseError` out.

A request is ``{"id": ..., "task": "sst2", "text": "...", "text_pair": "..."}`` (``text_pair`` only for pair
tasks). The rule of this module: nothing a request contains raises past :func:`parse_request` except a
:class:`RequestParseError` naming every problem found, with whatever id could be read. Every stdin line and every
HTTP body goes through it, so each gets exactly one answer:

* sizes are bounded before anything is parsed (:class:`RequestRules`: bytes per request, id and text lengths);
* JSON is parsed with bounded nesting (checked before the recursive parser runs), bounded integers (no 4,300-digit
  ``int`` conversion) and no ``NaN``/``Infinity``;
* bytes are decoded here, per request, so one bad byte costs one error answer, never the stream;
* text must be valid Unicode (no lone surrogates) and contain a visible character (not only NUL or spaces).

:func:`split_lines` splits a binary stream into per-request byte lines without ever holding more than
one bounded line, and :func:`response_json` writes any response as strict JSON (a non-finite float becomes
``null``; bare ``NaN`` is not JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np

from edgemti.errors import RequestError, UnknownTaskError

OVERLONG_POLICIES = ("truncate", "reject")
_KNOWN = {"id", "task", "text", "text_pair"}
_INT_ID_BITS = 63  # an integer id fits a signed 64-bit integer (what most clients can round-trip)
_MAX_INT_DIGITS = 20  # no JSON integer longer than this is converted (int() of 4,300+ digits raises)


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
    """A request that could not be turned into a :class:`Request`; ``request_id`` is what could be read."""

    def __init__(self, message: str, request_id: Any = None, kind: str = "RequestError") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.kind = kind


@dataclass(frozen=True)
class RequestRules:
    """What a build accepts: its tasks, which take a text pair, the over-long policy and the size limits.

    ``max_request_bytes`` bounds one stdin line or HTTP body (UTF-8 bytes), ``max_text_chars`` each text field,
    ``max_id_chars`` a string id, ``max_json_depth`` the nesting of the JSON (a request is a flat object).
    """

    tasks: tuple[str, ...]
    pair_tasks: tuple[str, ...] = ()
    overlong: str = "truncate"
    max_text_chars: int = 100_000  # a text this long is refused before tokenising (protects the loop)
    max_id_chars: int = 256
    max_request_bytes: int = 1 << 20
    max_json_depth: int = 16
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.overlong not in OVERLONG_POLICIES:
            raise RequestError(f"RequestRules: overlong must be one of {OVERLONG_POLICIES}, got {self.overlong!r}")
        for name in ("max_text_chars", "max_id_chars", "max_request_bytes", "max_json_depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise RequestError(f"RequestRules: {name} must be an int > 0, got {v!r}")


class _Refused(ValueError):
    """Raised from inside ``json.loads`` hooks: a value the boundary refuses (message says why)."""


def _parse_int(s: str) -> int:
    digits = len(s.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise _Refused(f"a JSON integer of {digits} digits (at most {_MAX_INT_DIGITS} are read)")
    return int(s)


def _parse_float(s: str) -> float:
    x = float(s)
    if not math.isfinite(x):
        raise _Refused(f"the number {s[:40]} overflows a float")
    return x


def _parse_constant(s: str) -> float:
    raise _Refused(f"{s} is not JSON (send numbers as finite decimals)")


def json_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` outside JSON strings (linear time, vectorised, no recursion).

    A quote is a string delimiter unless an odd run of backslashes precedes it; brackets count only outside
    strings. For the prefix a JSON parser accepts this is exactly the nesting it would recurse to.
    """
    b = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    opens, closes = (b == 0x5B) | (b == 0x7B), (b == 0x5D) | (b == 0x7D)
    if int(opens.sum()) <= 1:
        return int(opens.sum())
    pos = np.arange(b.size)
    last_plain = np.maximum.accumulate(np.where(b != 0x5C, pos, -1))  # last non-backslash at or before i
    run = np.empty(b.size, dtype=np.int64)  # backslashes immediately before i
    run[0] = 0
    run[1:] = pos[:-1] - last_plain[:-1]
    quote = (b == 0x22) & (run % 2 == 0)
    outside = (np.cumsum(quote) - quote) % 2 == 0  # parity of delimiters before i (a delimiter itself: outside)
    step = (opens & outside).astype(np.int64) - (closes & outside).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, refusing a key given twice (json's default keeps the last one silently: a request with two
    ``"task"`` keys would be served as whichever came last, and a proxy may have read the first)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"key {k[:40]!r} appears twice in one object: send each field once")
        out[k] = v
    return out


def strict_json(text: str, max_depth: int) -> Any:
    """Parse JSON the way every request is parsed (bounded nesting, bounded integers, no ``NaN``/``Infinity``, no
    duplicate keys); raises :class:`RequestParseError` naming the problem, and nothing else."""
    depth = json_depth(text)
    if depth > max_depth:
        raise RequestParseError(f"JSON nested {depth} levels deep, over the limit of {max_depth}: a "
                                "request is one flat object like {\"id\": 1, \"task\": \"sst2\", \"text\": \"...\"}")
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                          object_pairs_hook=_object)
    except _Refused as exc:
        raise RequestParseError(f"refused JSON value: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RequestParseError(f"malformed JSON ({exc.msg} at character {exc.pos}): a request is one JSON object "
                                "like {\"id\": 1, \"task\": \"sst2\", \"text\": \"...\"}") from None
    except (ValueError, RecursionError) as exc:  # belt and braces: the depth check should have caught these
        raise RequestParseError(f"unreadable JSON ({type(exc).__name__}): {str(exc)[:200]}") from None


def _loads(text: str, rules: RequestRules) -> Any:
    return strict_json(text, rules.max_json_depth)


def _decode(raw: bytes | bytearray | memoryview, rules: RequestRules) -> str:
    if len(raw) > rules.max_request_bytes:
        raise RequestParseError(f"request of {len(raw)} bytes, over the limit of {rules.max_request_bytes} bytes")
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = bytes(raw)[exc.start:exc.start + 1].hex()
        raise RequestParseError(f"request is not UTF-8 text: invalid byte 0x{bad} at byte {exc.start} "
                                f"({exc.reason}); send UTF-8 encoded JSON",
                                request_id=_id_of(bytes(raw).decode("utf-8", "replace"), rules)) from None


def _id_of(text: str, rules: RequestRules) -> Any:
    """Best effort: the id of a request refused for its bytes, so the client can match the error answer."""
    def lenient(pairs: list[tuple[str, Any]]) -> dict:  # another key twice still names one id; "id" twice not
        ids = [v for k, v in pairs if k == "id"]
        return {"id": ids[0]} if len(ids) == 1 else {}

    if json_depth(text) > rules.max_json_depth:
        return None
    try:
        obj = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                         object_pairs_hook=lenient)
    except (ValueError, RecursionError):
        return None
    rid = obj.get("id") if isinstance(obj, dict) else None
    ok = isinstance(rid, int) and not isinstance(rid, bool) and -(1 << _INT_ID_BITS) <= rid < (1 << _INT_ID_BITS)
    ok = ok or (isinstance(rid, str) and len(rid) <= rules.max_id_chars and _surrogate_at(rid) is None)
    return rid if ok else None


def _surrogate_at(s: str) -> int | None:
    """Index of the first lone surrogate in ``s`` (text JSON can carry as ``\\ud800`` but no encoder takes)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _has_visible(s: str) -> bool:
    return any(c.isprintable() and not c.isspace() for c in s)


def parse_request(line: str | bytes | bytearray | memoryview | dict, rules: RequestRules, seq: int = 0,
                  arrival_s: float = 0.0) -> Request:
    """Parse and validate one request (a stdin line, an HTTP body or an already-decoded object).

    Returns a :class:`Request`; raises :class:`RequestParseError` listing every problem found, and nothing else,
    whatever ``line`` holds.
    """
    try:
        return _parse(line, rules, seq, arrival_s)
    except RequestParseError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary rule: no request content raises past here
        raise RequestParseError(f"request could not be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def _parse(line: str | bytes | bytearray | memoryview | dict, rules: RequestRules, seq: int,
           arrival_s: float) -> Request:
    if isinstance(line, dict):
        obj: Any = line
    else:
        if isinstance(line, str):
            if len(line) > rules.max_request_bytes:  # chars <= UTF-8 bytes: a cheap lower bound first
                raise RequestParseError(f"request of {len(line)} characters, over the limit of "
                                        f"{rules.max_request_bytes} bytes")
            text = line
        else:
            text = _decode(line, rules)
        try:
            obj = _loads(text, rules)
        except RequestParseError as exc:
            exc.request_id = _id_of(text, rules) if exc.request_id is None else exc.request_id
            raise
    if not isinstance(obj, dict):
        raise RequestParseError(f"a request must be a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    problems = []
    if "id" not in obj or rid is None:
        problems.append("missing field 'id'")
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        problems.append(f"'id' must be a string or an integer, got {type(rid).__name__}")
        rid = None
    elif isinstance(rid, int) and not -(1 << _INT_ID_BITS) <= rid < (1 << _INT_ID_BITS):
        problems.append(f"integer 'id' outside the signed {_INT_ID_BITS + 1}-bit range: send it as a string")
        rid = None
    elif isinstance(rid, str) and len(rid) > rules.max_id_chars:
        problems.append(f"'id' has {len(rid)} characters, over the limit of {rules.max_id_chars}")
        rid = rid[:32] + "..."  # enough to find it, never the whole (bounded memory, bounded log lines)
    elif isinstance(rid, str) and _surrogate_at(rid) is not None:
        problems.append(f"'id' holds a lone surrogate at character {_surrogate_at(rid)}: send valid Unicode")
        rid = rid.encode("utf-8", "backslashreplace").decode("ascii")
    unknown = sorted(str(k)[:40] for k in set(obj) - _KNOWN)
    if unknown:
        problems.append(f"unknown field(s) {unknown[:8]} (allowed: {sorted(_KNOWN)})")
    task = obj.get("task")
    kind = "RequestError"
    if task is None:
        problems.append("missing field 'task'")
    elif not isinstance(task, str):
        problems.append(f"'task' must be a string, got {type(task).__name__}")
    elif task not in rules.tasks:
        problems.append(f"unknown task {task[:40]!r}: this build serves {list(rules.tasks)}")
        kind = "UnknownTaskError"
    for name in ("text", "text_pair"):
        v = obj.get(name)
        if name == "text" and v is None:
            problems.append("missing field 'text'")
        elif v is None:
            continue
        elif not isinstance(v, str):
            problems.append(f"'{name}' must be a string, got {type(v).__name__}")
        elif len(v) > rules.max_text_chars:
            problems.append(f"'{name}' has {len(v)} characters, over the limit of {rules.max_text_chars}")
        elif _surrogate_at(v) is not None:
            problems.append(f"'{name}' holds a lone surrogate (an unpaired \\ud800-\\udfff escape) at character "
                            f"{_surrogate_at(v)}: send valid Unicode")
        elif not _has_visible(v):
            problems.append(f"'{name}' is empty (only spaces or control characters): send some text")
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


def parse_rows(rows: Sequence[dict], task: str, rules: RequestRules, arrival_s: float = 0.0) -> list[Request]:
    """The rows of one batched request (an OIP inference's texts) for ``task``, every row validated before any is
    accepted: one bad row refuses the whole request with one :class:`RequestParseError` naming the row. The
    requests carry no id or seq yet (:func:`numbered` gives them once the request is accepted)."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(parse_request(dict(row, id=i, task=task), rules, arrival_s=arrival_s))
        except RequestParseError as exc:
            if len(rows) == 1:
                raise
            raise RequestParseError(f"text {i}: {exc}", kind=exc.kind) from None
    return out


def numbered(reqs: Sequence[Request], seq0: int, request_id: Any) -> list[Request]:
    """The accepted rows of one request, with consecutive seqs from ``seq0`` and ids ``request_id`` (one row) or
    ``request_id/i``."""
    return [replace(r, id=request_id if len(reqs) == 1 else f"{request_id}/{i}", seq=seq0 + i)
            for i, r in enumerate(reqs)]


def error_response(request_id: Any, exc: BaseException) -> dict:
    """The one response of a request that could not be served."""
    kind = getattr(exc, "kind", None) or type(exc).__name__
    if isinstance(exc, UnknownTaskError):
        kind = "UnknownTaskError"
    return {"id": request_id, "ok": False, "error": {"type": kind, "message": str(exc)}}


# -- streams and answers ------------------------------------------------------------------------------------------


def split_lines(chunks: Iterable[bytes], max_bytes: int = 1 << 20) -> Iterator[bytes | RequestParseError]:
    """Byte chunks of a JSON-lines stream -> one item per line, never holding more than ``max_bytes`` of a line.

    Lines stay bytes (:func:`parse_request` decodes each, so a bad byte costs one error answer, never the stream).
    A line over ``max_bytes`` is skipped to its newline and yields one :class:`RequestParseError` instead; a last
    line without a newline is still a line.
    """
    buf = bytearray()
    skipping = 0  # bytes of an over-long line dropped so far (0: not skipping)
    for chunk in chunks:
        start = 0
        while start < len(chunk):
            nl = chunk.find(b"\n", start)
            end = len(chunk) if nl < 0 else nl
            if skipping:
                skipping += end - start
            elif len(buf) + end - start > max_bytes:
                skipping = len(buf) + end - start
                buf.clear()
            else:
                buf += chunk[start:end]
            if nl < 0:
                break
            if skipping:
                yield RequestParseError(f"request line of {skipping} bytes, over the limit of {max_bytes} bytes")
                skipping = 0
            else:
                yield bytes(buf)
                buf.clear()
            start = nl + 1
    if skipping:
        yield RequestParseError(f"request line of {skipping} bytes, over the limit of {max_bytes} bytes")
    elif buf:
        yield bytes(buf)


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def response_json(resp: dict) -> str:
    """One response as strict JSON on one line (never a bare ``NaN``/``Infinity``)."""
    try:
        return json.dumps(resp, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(finite_json(resp), allow_nan=False, default=str)


def non_finite_outputs(body: dict) -> list[str]:
    """Names of a response's output fields holding a non-finite number (``logits``, ``scores``, ``label``)."""
    bad = []
    for k in ("logits", "scores", "label"):
        v = body.get(k)
        vals = v if isinstance(v, list) else [v]
        if any(isinstance(x, float) and not math.isfinite(x) for x in vals):
            bad.append(k)
    return bad
