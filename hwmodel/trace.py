"""Per-op trace export: a CSV table and a Chrome-trace JSON (chrome://tracing, ui.perfetto.dev).

Both are versioned and checksummed. CSV: ``# format`` / ``# format_version`` / ``# body_sha256`` header lines,
then one row per charged stage (its fusion group, group kind and scratchpad tiles included). Chrome trace:
``traceEvents`` of ``ph: "X"`` complete events with ``ts``/``dur`` in microseconds (like onnxruntime's
profiler): one row (``tid``) per op kind, a ``fused groups`` row with one event per fusion group spanning its
stages, and a ``tiles`` row splitting each matmul stage into its scratchpad tiles; ``otherData`` carries the
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
from edgemti.hwmodel.spec import PRICED_LEVELS

CSV_FORMAT = "edgemti-op-trace-csv"
JSON_FORMAT = "edgemti-op-trace-chrome"
TRACE_VERSION = 3  # 2: one row per fused-group stage, group/group_kind/tiles columns, group and tile events;
# 3: bytes of the PE array's buffers (spad_a, spad_b, psum) per row
_KINDS = ("gather", "matmul", "sfu", "layout", "control")
GROUP_TID, TILE_TID = len(_KINDS) + 1, len(_KINDS) + 2
MAX_TILE_EVENTS = 64  # per stage; beyond it the last event stands for the remaining tiles


def _columns(components: list[str]) -> list[str]:
    return (["index", "node", "op_type", "kind", "group", "group_kind", "tiles", "macs", "cycles", "start_s",
             "latency_s", "energy_j", "compute_energy_j"] + [f"{lv}_bytes" for lv in PRICED_LEVELS] + [f"{c}_energy_j" for c in components])


def to_csv(cost: InferenceCost, provenance: dict | None = None) -> str:
    components = sorted({k for r in cost.records for k in r.energy_by_component_j})
    cols = _columns(components)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in cost.records:
        w.writerow([r.index, r.node, r.op_type, r.kind, r.group, r.group_kind, r.tiles, r.macs, repr(r.cycles), repr(r.start_s), repr(r.latency_s),
                    repr(r.energy_j), repr(r.compute_energy_j)]
                   + [repr(float(r.bytes_by_level.get(lv, 0.0))) for lv in PRICED_LEVELS]
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
    events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": GROUP_TID, "args": {"name": "fused groups"}})
    events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": TILE_TID, "args": {"name": "tiles"}})
    for r in cost.records:
        if r.latency_s <= 0 and r.energy_j <= 0:
            continue  # layout/control nodes: free, would only clutter the view
        events.append({
            "name": r.node, "cat": r.kind, "ph": "X", "pid": 1, "tid": _KINDS.index(r.kind.split(":")[0]) + 1,
            "ts": r.start_s * 1e6, "dur": r.latency_s * 1e6,
            "args": {"op_type": r.op_type, "macs": r.macs, "cycles": r.cycles, "energy_nj": r.energy_j * 1e9,
                     "bytes_by_level": r.bytes_by_level,
                     "energy_by_component_nj": {k: v * 1e9 for k, v in r.energy_by_component_j.items() if v},
                     "group": r.group, "tiles": r.tiles},
        })
        events += _tile_events(r)
    events += _group_events(cost)
    digest = hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"format": JSON_FORMAT, "format_version": TRACE_VERSION, "task": cost.task,
                          "seq_len": cost.seq_len, "energy_j": cost.energy_j, "latency_s": cost.latency_s,
                          "events_sha256": digest, **(provenance or {})}}


def _tile_events(r) -> list[dict]:
    """A matmul stage cut into its scratchpad tiles (equal shares of the stage's time)."""
    if r.tiles <= 0 or r.latency_s <= 0:
        return []
    n = min(r.tiles, MAX_TILE_EVENTS)
    dur = r.latency_s * 1e6 / r.tiles
    out = []
    for k in range(n):
        count = 1 if k < n - 1 else r.tiles - (n - 1)
        out.append({"name": f"{r.node} tile {k + 1}" + (f"-{r.tiles}" if count > 1 else f"/{r.tiles}"),
                    "cat": "tile", "ph": "X", "pid": 1, "tid": TILE_TID, "ts": r.start_s * 1e6 + k * dur,
                    "dur": dur * count, "args": {"stage": r.node, "tiles": count}})
    return out


def _group_events(cost: InferenceCost) -> list[dict]:
    """One event per fusion group, spanning its stages (consecutive records of one group)."""
    out: list[dict] = []
    cur: list = []
    for r in [*cost.records, None]:
        if cur and (r is None or r.group != cur[0].group or not r.group):
            first, last = cur[0], cur[-1]
            out.append({"name": f"{first.group_kind}: {first.group}", "cat": "group", "ph": "X", "pid": 1,
                        "tid": GROUP_TID, "ts": first.start_s * 1e6,
                        "dur": (last.start_s + last.latency_s - first.start_s) * 1e6,
                        "args": {"kind": first.group_kind, "stages": [x.node for x in cur],
                                 "macs": sum(x.macs for x in cur), "energy_nj": sum(x.energy_j for x in cur) * 1e9}})
            cur = []
        if r is not None and r.group:
            cur.append(r)
    return out


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
