"""The Open Inference Protocol (KServe v2 REST) codec: one model per task, texts in, labels and scores out.

Pure functions between HTTP bodies and the server's typed values; the transport is :mod:`edgemti.runtime.http`.

* Model metadata (``GET /v2/models/{task}``): inputs ``text`` (and ``text_pair`` for a pair task), BYTES, shape
  ``[-1]``; outputs ``label`` (BYTES ``[-1]``) and ``scores`` (FP32 ``[-1, K]``, class probabilities, or the
  regression value, K = 1); ``parameters`` hold the labels, whether the task is a regression and the pack's
  recorded metrics.
* Inference request: each input's data either inline (``"data"``: a list of strings, nested lists flattened) or in
  the binary extension (``parameters.binary_data_size`` bytes after a JSON header of
  ``Inference-Header-Content-Length`` bytes; BYTES elements are a 4-byte little-endian length, then the bytes).
  A batch dimension is supported: shape ``[N]`` or ``[N, 1]`` carries N texts and gets N answers.
* Inference response: the requested outputs (all by default), inline JSON or binary as the request asks
  (``binary_data_output``, or an output's ``parameters.binary_data``); ``parameters`` carry the simulated cost.

Errors are :class:`OipError` with the HTTP status to answer; the body is ``{"error": "..."}`` as the protocol
(and ``tritonclient``) expect.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTPUTS = ("label", "scores")
MODEL_VERSION = "1"


class OipError(Exception):
    """A request the protocol layer refuses; ``status`` is the HTTP status code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferBody:
    """A decoded inference request: its id, N rows of request fields, and how each output is to be returned."""

    id: str | None
    rows: tuple[dict, ...]  # {"text": ..., "text_pair": ...} per row
    outputs: tuple[tuple[str, bool], ...]  # (name, binary) in the order to return them


def model_metadata(task: str, pack: Any, pair: bool) -> dict:
    """``GET /v2/models/{task}``: the task as a model (``pack`` is the build's manifest entry of the task)."""
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    if pair:
        inputs.append({"name": "text_pair", "datatype": "BYTES", "shape": [-1]})
    k = 1 if pack.is_regression else len(pack.labels)
    metrics = dict(pack.metrics or {})
    # the headline metric: the first dev-set score the pack recorded (training writes the task's official metric
    # first: f1 for mrpc, accuracy for sst2); none for a synthetic pack
    dev = [(name[len("dev_"):], v) for name, v in metrics.items() if name.startswith("dev_")]
    metric, value = dev[0] if dev else (None, None)
    return {"name": task, "versions": [MODEL_VERSION], "platform": "edgemti", "inputs": inputs,
            "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "scores", "datatype": "FP32", "shape": [-1, k]}],
            "parameters": {"labels": list(pack.labels), "is_regression": bool(pack.is_regression),
                           "metric": metric, "metric_dev_value": value, "metrics": metrics}}


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header of a request and the binary section after it (empty without the binary extension)."""
    n = len(body)
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise OipError(400, f"Inference-Header-Content-Length {header_length!r}: give the JSON header's size in "
                                f"bytes, 0..{len(body)}")
    try:
        head = json.loads(body[:n].decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except OipError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise OipError(400, f"the inference request header is not JSON: {str(exc)[:200]}") from None
    if not isinstance(head, dict):
        raise OipError(400, f"the inference request must be a JSON object, got {type(head).__name__}")
    return head, body[n:]


def _no_constant(name: str) -> Any:
    raise OipError(400, f"the inference request header holds {name}: JSON has no NaN or infinity")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise OipError(400, f"the inference request header gives {k[:40]!r} twice")
        d[k] = v
    return d


# parameters this server understands; any other is refused (an ignored one would change what a request means:
# content_type "base64" served as text would classify the encoding)
_REQUEST_PARAMETERS = ("binary_data_output",)
_INPUT_PARAMETERS = ("binary_data_size", "content_type")
_OUTPUT_PARAMETERS = ("binary_data",)
_CONTENT_TYPES = ("str",)  # KServe's name for UTF-8 text in a BYTES tensor


def _parameters(where: str, params: Any, known: tuple[str, ...]) -> dict:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise OipError(400, f"{where}: 'parameters' must be an object")
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise OipError(400, f"{where}: parameter(s) {[u[:40] for u in unknown[:5]]} are not supported (this server "
                            f"takes {list(known)})")
    return params


def _flatten(data: Any) -> list:
    out: list = []
    stack = [data]
    while stack:  # iterative: nesting depth is bounded by the request parser's JSON depth check anyway
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def _bytes_elements(raw: bytes, name: str) -> list[str]:
    out = []
    i = 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise OipError(400, f"input {name!r}: binary BYTES data ends inside an element's 4-byte length")
        (k,) = struct.unpack_from("<I", raw, i)
        if i + 4 + k > len(raw):
            raise OipError(400, f"input {name!r}: a BYTES element of {k} bytes overruns the binary data")
        try:
            out.append(raw[i + 4:i + 4 + k].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise OipError(400, f"input {name!r}: element {len(out)} is not UTF-8 (byte {exc.start})") from None
        i += 4 + k
    return out


def decode_infer(head: dict, binary: bytes, pair: bool, max_rows: int) -> InferBody:
    """Validate an inference request's header against the task's inputs and take its texts out."""
    names = ("text", "text_pair") if pair else ("text",)
    rid = head.get("id")
    if rid is not None and not isinstance(rid, str):
        raise OipError(400, f"'id' must be a string, got {type(rid).__name__}")
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise OipError(400, f"'inputs' must be a non-empty list of tensors named {list(names)}")
    params = _parameters("request", head.get("parameters"), _REQUEST_PARAMETERS)
    columns: dict[str, list] = {}
    offset = 0
    for t in inputs:
        if not isinstance(t, dict):
            raise OipError(400, "each input must be an object with name, shape, datatype and data")
        name = str(t.get("name"))
        if name not in names:
            raise OipError(400, f"unknown input {str(name)[:40]!r}: this model takes {list(names)}")
        if name in columns:
            raise OipError(400, f"input {name!r} given twice")
        if t.get("datatype") != "BYTES":
            raise OipError(400, f"input {name!r}: datatype must be BYTES, got {str(t.get('datatype'))[:20]!r}")
        shape = t.get("shape")
        if (not isinstance(shape, list) or len(shape) not in (1, 2) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                or (len(shape) == 2 and shape[1] != 1)):
            raise OipError(400, f"input {name!r}: shape must be [N] or [N, 1], got {str(shape)[:40]}")
        tparams = _parameters(f"input {name!r}", t.get("parameters"), _INPUT_PARAMETERS)
        ctype = tparams.get("content_type", "str")
        if ctype not in _CONTENT_TYPES:
            raise OipError(400, f"input {name!r}: content_type {str(ctype)[:20]!r} is not supported: send the texts "
                                f"as UTF-8 strings (content_type {_CONTENT_TYPES[0]!r})")
        size = tparams.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise OipError(400, f"input {name!r}: binary_data_size {str(size)[:20]} does not fit the "
                                    f"{len(binary) - offset} binary bytes left")
            values: list = _bytes_elements(binary[offset:offset + size], name)
            offset += size
        else:
            if "data" not in t:
                raise OipError(400, f"input {name!r}: give 'data' or the binary extension's binary_data_size")
            values = _flatten(t["data"])
            if not all(isinstance(v, str) for v in values):
                raise OipError(400, f"input {name!r}: BYTES data must be strings")
        if len(values) != shape[0]:
            raise OipError(400, f"input {name!r}: shape {shape} says {shape[0]} elements, data has {len(values)}")
        columns[name] = values
    if offset != len(binary):
        raise OipError(400, f"{len(binary) - offset} binary bytes after the inputs that no input claims")
    missing = [n for n in names if n not in columns]
    if missing:
        raise OipError(400, f"missing input(s) {missing}: this model takes {list(names)}")
    n = len(columns["text"])
    if any(len(v) != n for v in columns.values()):
        raise OipError(400, f"inputs hold different numbers of texts: { {k: len(v) for k, v in columns.items()} }")
    if not 1 <= n <= max_rows:
        raise OipError(400, f"{n} texts in one request: send 1..{max_rows}")
    rows = tuple({k: columns[k][i] for k in columns} for i in range(n))
    return InferBody(id=rid, rows=rows, outputs=_requested(head, params))


def _requested(head: dict, params: dict) -> tuple[tuple[str, bool], ...]:
    default_binary = params.get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise OipError(400, "parameters.binary_data_output must be true or false")
    outs = head.get("outputs")
    if outs is None:
        return tuple((n, default_binary) for n in OUTPUTS)
    if not isinstance(outs, list):
        raise OipError(400, "'outputs' must be a list of {\"name\": ...}")
    chosen = []
    for o in outs:
        name = o.get("name") if isinstance(o, dict) else None
        if name not in OUTPUTS:
            raise OipError(400, f"unknown output {str(name)[:40]!r}: this model returns {list(OUTPUTS)}")
        binary = _parameters(f"output {name!r}", o.get("parameters"), _OUTPUT_PARAMETERS).get("binary_data",
                                                                                               default_binary)
        if not isinstance(binary, bool):
            raise OipError(400, f"output {name!r}: parameters.binary_data must be true or false")
        chosen.append((name, binary))
    return tuple(chosen)


def cost_parameters(answers: Sequence[dict]) -> dict:
    """The simulated cost of a request's answers as OIP ``parameters`` (scalars, SI units in the names).

    Energy adds over the rows, per component too. ``sim_latency_s`` is the request's share of the runs it took part
    in: a row's load and swap latency plus its run's latency divided by the rows in that run, summed (exact when a
    run holds only this request's rows; serial latencies add). ``loads``: packs read from disk into DRAM for it.
    """
    energy = sum(float(a["energy_j"]) for a in answers)
    latency = 0.0
    for a in answers:
        latency += float((a.get("swap") or {}).get("latency_s", 0.0))
        latency += float((a.get("load") or {}).get("latency_s", 0.0))
        latency += float(a["inference"]["latency_s"]) / max(1, int(a.get("batch_size", 1)))
    out: dict[str, Any] = {"sim_energy_j": energy, "sim_latency_s": latency,
                           "swaps": sum(1 for a in answers if a.get("swapped")),
                           "loads": sum(1 for a in answers if a.get("loaded"))}
    evicted = [a["evicted"] for a in answers if a.get("evicted")]
    if evicted:
        out["evicted"] = ",".join(evicted)
    comps: dict[str, float] = {}
    for a in answers:
        for k, v in (a.get("energy_by_component_j") or {}).items():
            comps[k] = comps.get(k, 0.0) + float(v)
    for k, v in sorted(comps.items()):
        out[f"sim_energy_j.{k}"] = v
    out["batch_size"] = max(int(a.get("batch_size", 1)) for a in answers)
    out["host_s"] = sum(float(a.get("host_s", 0.0)) for a in answers)
    return out


def encode_infer(task: str, body: InferBody, answers: Sequence[dict]) -> tuple[bytes, int | None]:
    """The response body of a served request and, when any output is binary, the JSON header's length."""
    labels = [str(a["label"]) for a in answers]
    scores = np.asarray([a["scores"] for a in answers], dtype="<f4")  # [N, K]
    outputs = []
    chunks = []
    for name, binary in body.outputs:
        if name == "label":
            meta: dict[str, Any] = {"name": "label", "datatype": "BYTES", "shape": [len(labels)]}
            if binary:
                raw = b"".join(struct.pack("<I", len(b)) + b for b in (s.encode("utf-8") for s in labels))
            else:
                meta["data"] = labels
        else:
            meta = {"name": "scores", "datatype": "FP32", "shape": list(scores.shape)}
            if binary:
                raw = scores.tobytes()
            else:
                meta["data"] = [float(x) for x in scores.reshape(-1)]
        if binary:
            meta["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(meta)
    head: dict[str, Any] = {"model_name": task, "model_version": MODEL_VERSION, "outputs": outputs,
                            "parameters": cost_parameters(answers)}
    if body.id is not None:
        head["id"] = body.id
    data = json.dumps(head, allow_nan=False).encode()
    if not chunks:
        return data, None
    return data + b"".join(chunks), len(data)


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
