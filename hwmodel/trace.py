"""Per-op trace export: a CSV table and a Chrome-trace JSON (chrome://tracing, ui.perfetto.dev).

Both are versioned and checksummed. CSV: ``# format`` / ``# format_version`` / ``# body_sha256`` header lines,
then one row per graph node. Chrome trace: ``traceEvents`` of ``ph: "X"`` complete events with ``ts``/``dur``
in microseconds (like onnxruntime's profiler), one row (``tid``) per op kind; ``otherData`` carries the
format, version, provenance and ``events_sha256`` (sha256 of the canonical JSON of ``traceEvents``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from edgemti.errors import FormatError
from edgemti.hwmodel.model import InferenceCost
from edgemti.hwmodel.spec import LEVELS

CSV_FORMAT = "edgemti-op-trace-csv"
JSON_FORMAT = "edgemti-op-trace-chrome"
TRACE_VERSION = 1
_KINDS = ("gather", "matmul", "sfu", "layout", "control")


def _columns(components: list[str]) -> list[str]:
    return (["index", "node", "op_type", "kind", "macs", "cycles", "start_s", "latency_s", "energy_j",
             "compute_energy_j"] + [f"{lv}_bytes" for lv in LEVELS] + [f"{c}_energy_j" for c in components])


def to_csv(cost: InferenceCost, provenance: dict | None = None) -> str:
    components = sorted({k for r in cost.records for k in r.energy_by_component_j})
    cols = _columns(components)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in cost.records:
        w.writerow([r.index, r.node, r.op_type, r.kind, r.macs, repr(r.cycles), repr(r.start_s), repr(r.latency_s),
                    repr(r.energy_j), repr(r.compute_energy_j)]
                   + [repr(float(r.bytes_by_level.get(lv, 0.0))) for lv in LEVELS]
                   + [repr(r.energy_by_component_j.get(c, 0.0)) for c in components])
    body = buf.getvalue()
    prov = json.dumps({"task": cost.task, "seq_len": cost.seq_len, **(provenance or {})}, sort_keys=True)
    head = (f"# format: {CSV_FORMAT}\n# format_version: {TRACE_VERSION}\n# provenance: {prov}\n"
            f"# body_sha256: {hashlib.sha256(body.encode()).hexdigest()}\n")
    return head + body


def read_csv(text: str, origin: str = "trace.csv") -> list[dict]:
    """Parse and verify a trace CSV; rows as dicts of strings."""
    lines = text.splitlines(keepends=True)
    meta, i = {}, 0
    while i < len(lines) and lines[i].startswith("#"):
        k, _, v = lines[i][1:].partition(":")
        meta[k.strip()] = v.strip()
        i += 1
    if meta.get("format") != CSV_FORMAT:
        raise FormatError(f"{origin}: not an edgemti op trace (format {meta.get('format')!r})")
    if meta.get("format_version") != str(TRACE_VERSION):
        raise FormatError(f"{origin}: trace format_version {meta.get('format_version')!r} is not supported "
                          f"(this edgemti reads {TRACE_VERSION})")
    body = "".join(lines[i:])
    if hashlib.sha256(body.encode()).hexdigest() != meta.get("body_sha256"):
        raise FormatError(f"{origin}: body_sha256 mismatch: the trace is corrupt or truncated; re-export it")
    return list(csv.DictReader(io.StringIO(body)))


def to_chrome(cost: InferenceCost, provenance: dict | None = None) -> dict:
    events = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
               "args": {"name": f"edgemti accelerator: {cost.task} seq {cost.seq_len}"}}]
    for t, kind in enumerate(_KINDS, start=1):
        events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": t, "args": {"name": kind}})
    for r in cost.records:
        if r.latency_s <= 0 and r.energy_j <= 0:
            continue  # layout/control nodes: free, would only clutter the view
        events.append({
            "name": r.node, "cat": r.kind, "ph": "X", "pid": 1, "tid": _KINDS.index(r.kind.split(":")[0]) + 1,
            "ts": r.start_s * 1e6, "dur": r.latency_s * 1e6,
            "args": {"op_type": r.op_type, "macs": r.macs, "cycles": r.cycles, "energy_nj": r.energy_j * 1e9,
                     "bytes_by_level": r.bytes_by_level,
                     "energy_by_component_nj": {k: v * 1e9 for k, v in r.energy_by_component_j.items() if v}},
        })
    digest = hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"format": JSON_FORMAT, "format_version": TRACE_VERSION, "task": cost.task,
                          "seq_len": cost.seq_len, "energy_j": cost.energy_j, "latency_s": cost.latency_s,
                          "events_sha256": digest, **(provenance or {})}}


def read_chrome(text: str, origin: str = "trace.json") -> dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{origin}: not valid JSON ({exc}); re-export the trace") from None
    other = d.get("otherData", {}) if isinstance(d, dict) else {}
    if other.get("format") != JSON_FORMAT:
        raise FormatError(f"{origin}: not an edgemti chrome trace (format {other.get('format')!r})")
    if other.get("format_version") != TRACE_VERSION:
        raise FormatError(f"{origin}: trace format_version {other.get('format_version')!r} is not supported")
    if hashlib.sha256(json.dumps(d["traceEvents"], sort_keys=True).encode()).hexdigest() != other.get("events_sha256"):
        raise FormatError(f"{origin}: events_sha256 mismatch: the trace is corrupt; re-export it")
    return d


def write_traces(cost: InferenceCost, csv_path: str | Path | None = None, json_path: str | Path | None = None,
                 provenance: dict | None = None) -> None:
    if csv_path:
        Path(csv_path).write_text(to_csv(cost, provenance))
    if json_path:
        Path(json_path).write_text(json.dumps(to_chrome(cost, provenance)))
