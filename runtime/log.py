"""The serve log: JSON lines, a versioned header first, one record per request, a summary last (docs/LOGS.md).

Every line is a JSON object with ``"type"`` (``header`` / ``request`` / ``summary``) and ``"crc32"``: the CRC-32
of the line's canonical JSON (sorted keys, compact separators) without the ``crc32`` key. The reader checks the
magic, the version and every checksum and raises :class:`FormatError` naming the file and the line. Appending
line by line (flushed) means a crash loses at most the line being written: the reader keeps every complete
(newline-terminated) line of such a torn log and reports how many bytes of the unfinished last line it dropped.
A non-finite float is written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgemti.errors import FormatError
from edgemti.runtime.request import finite_json

log = logging.getLogger(__name__)
LOG_FORMAT = "edgemti-serve-log"
LOG_VERSION = 1
RECORD_TYPES = ("header", "request", "summary")


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def seal(record: dict) -> str:
    """The record as one log line with its CRC-32 (non-finite floats become ``null``: strict JSON)."""
    body = finite_json({k: v for k, v in record.items() if k != "crc32"})
    return json.dumps(dict(body, crc32=zlib.crc32(_canonical(body))), default=str, allow_nan=False)


class LogWriter:
    """Append records to a JSONL log (thread-safe); the header is written on open."""

    def __init__(self, path: str | Path, header: dict) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.records = 0
        self._write(dict({"type": "header", "format": LOG_FORMAT, "format_version": LOG_VERSION}, **header))

    def _write(self, record: dict) -> None:
        with self._lock:
            if self._fh is None:
                raise FormatError(f"log {self.path} is closed")
            self._fh.write(seal(record) + "\n")
            self._fh.flush()

    def request(self, record: dict) -> None:
        self._write(dict({"type": "request"}, **record))
        self.records += 1

    def summary(self, summary: dict) -> None:
        self._write(dict({"type": "summary"}, **summary))

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(frozen=True)
class ServeLog:
    """A read, verified log: the header, the request records in order, the summary (None if the run crashed).

    ``dropped_bytes``: bytes of an unfinished last line (a crash mid-write) that were not read; 0 for a clean log.
    """

    header: dict
    requests: list[dict]
    summary: dict | None
    dropped_bytes: int = 0


def read_log(path: str | Path) -> ServeLog:
    """Read and verify a serve log; :class:`FormatError` names the file, the line and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"serve log {path} does not exist") from None
    complete, _, torn = data.rpartition(b"\n")  # the writer ends every line with a newline: a tail without is torn
    if not complete and not torn.strip():
        raise FormatError(f"serve log {path} is empty: expected a header line first")
    if torn:
        log.warning("serve log %s: dropped %d bytes of an unfinished last line (the run stopped mid-write)", path,
                    len(torn))
    if not complete:
        raise FormatError(f"serve log {path}: no complete line (only {len(torn)} bytes of a torn header)")
    try:
        lines = complete.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise FormatError(f"serve log {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    records = []
    for no, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"serve log {path} line {no}: not JSON ({exc.msg}); torn or corrupt line") from None
        if not isinstance(rec, dict) or "crc32" not in rec:
            raise FormatError(f"serve log {path} line {no}: no crc32 field; not an edgemti serve log line")
        body = {k: v for k, v in rec.items() if k != "crc32"}
        if zlib.crc32(_canonical(body)) != rec["crc32"]:
            raise FormatError(f"serve log {path} line {no}: checksum mismatch (crc32 {rec['crc32']} != "
                              f"{zlib.crc32(_canonical(body))}); the line was altered or corrupted")
        if body.get("type") not in RECORD_TYPES:
            raise FormatError(f"serve log {path} line {no}: unknown record type {body.get('type')!r}")
        records.append(body)
    header = records[0]
    if header.get("type") != "header" or header.get("format") != LOG_FORMAT:
        raise FormatError(f"serve log {path}: first line is not an {LOG_FORMAT} header (got format "
                          f"{header.get('format')!r})")
    if header.get("format_version") != LOG_VERSION:
        raise FormatError(f"serve log {path}: format_version {header.get('format_version')!r} is not supported "
                          f"(this edgemti reads version {LOG_VERSION})")
    reqs = [r for r in records[1:] if r["type"] == "request"]
    sums = [r for r in records[1:] if r["type"] == "summary"]
    if len(sums) > 1 or (sums and records[-1]["type"] != "summary"):
        raise FormatError(f"serve log {path}: the summary must be the one last line, found {len(sums)}")
    if any(r["type"] == "header" for r in records[1:]):
        raise FormatError(f"serve log {path}: a second header appears after line 1")
    return ServeLog(header=header, requests=reqs, summary=sums[0] if sums else None, dropped_bytes=len(torn))
