"""Sweep results storage: :class:`ResultStore`, a results folder of Parquet (CSV without pyarrow) part files and a
checksummed index, appended to as rows come and read back (checked) to resume or plot."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.studies.sweep.point import POINT_TYPES

RESULTS_FORMAT, RESULTS_VERSION = "edgemti-sweep-results", 1
INDEX_FILE, PARTS_DIR, CACHE_DIR = "sweep.json", "parts", "cache"
_METRICS = {"status": str, "error": str, "eval_s": float, "fits": bool, "overflow": str, "cumulative_sparsity": float,
            **{f"need_{lv}_bytes": int for lv in ("rram_mlc", "rram_slc", "sram", "dram")}, "pack_bytes": int,
            "activation_peak_bytes": int, "area_mm2": float,
            **{f"area_{lv}_mm2": float for lv in ("sram", "rram_slc", "rram_mlc")}, "area_pe_mm2": float,
            "area_logic_mm2": float, "area_buffers_mm2": float,
            "inference_energy_j": float, "inference_latency_s": float, "macs": int,
            "switch_energy_j": float, "switch_latency_s": float, "energy_per_inference_j": float,
            "latency_per_inference_s": float}
COLUMNS: dict[str, type] = {"id": str, **POINT_TYPES, **_METRICS}



def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


class ResultStore:
    """A results folder: ``sweep.json`` (format, version, resolved config, parts with row counts and sha256,
    sha256 of itself) and ``parts/part-NNNNNN.{parquet,csv}``, each written whole and renamed into place.

    Other studies store their rows the same way: a subclass names its own ``FORMAT``, ``VERSION``, ``INDEX`` file
    and ``COLUMNS`` (name -> str | int | float | bool).
    """

    FORMAT, VERSION, INDEX, COLUMNS = RESULTS_FORMAT, RESULTS_VERSION, INDEX_FILE, COLUMNS

    def __init__(self, folder: str | Path, storage: str | None = None) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / self.INDEX
        self.parts: list[dict] = []
        self.config: dict = {}
        if self.index_path.is_file():
            doc = self._read_index()
            self.parts, self.config, self.storage = doc["parts"], doc["config"], doc["storage"]
        else:
            self.storage = storage or ("parquet" if _have_pyarrow() else "csv")
        if self.storage == "parquet" and not _have_pyarrow():
            raise ConfigError(f"{self.folder} holds Parquet results and pyarrow is not installed: "
                              "pip install 'edgemti[sweep]'")

    def _read_index(self) -> dict:
        origin = str(self.index_path)
        try:
            doc = json.loads(self.index_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise FormatError(f"{origin}: not JSON ({exc}): the results index is corrupt") from None
        problems = []
        if not isinstance(doc, dict) or doc.get("format") != self.FORMAT:
            raise FormatError(f"{origin}: not an {self.FORMAT} index: is {self.folder} a results folder of it?")
        if doc.get("format_version") != self.VERSION:
            problems.append(f"format_version {doc.get('format_version')!r} is not supported (this edgemti reads "
                            f"{self.VERSION})")
        body = {k: v for k, v in doc.items() if k != "sha256"}
        if hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != doc.get("sha256"):
            problems.append("sha256 does not match the content")
        if doc.get("storage") not in ("parquet", "csv"):
            problems.append(f"storage must be parquet or csv, got {doc.get('storage')!r}")
        parts = doc.get("parts")
        if not isinstance(parts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("file"), str) and "/" not in p["file"]
                and isinstance(p.get("rows"), int) and isinstance(p.get("sha256"), str) for p in parts):
            problems.append("parts must be a list of {file, rows, sha256} (file names inside parts/)")
        if not isinstance(doc.get("config"), dict):
            problems.append("config is missing")
        if problems:
            raise FormatError(f"{origin}: " + "; ".join(problems) + ": the results index is corrupt")
        return doc

    def _write_index(self) -> None:
        from edgemti import __version__

        body = {"format": self.FORMAT, "format_version": self.VERSION, "edgemti_version": __version__,
                "storage": self.storage, "columns": {k: v.__name__ for k, v in self.COLUMNS.items()},
                "config": self.config, "parts": self.parts}
        doc = {**body, "sha256": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}
        write_atomic(self.index_path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())

    def set_config(self, config: dict) -> None:
        self.config = config
        self._write_index()

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` as one new part, then record it in the index (a crash in between loses only them)."""
        if not rows:
            return
        name = f"part-{len(self.parts):06d}.{self.storage}"
        path = self.folder / PARTS_DIR / name
        clean = [{k: row.get(k) for k in self.COLUMNS} for row in rows]
        if self.storage == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
            schema = pa.schema([(k, types[t]) for k, t in self.COLUMNS.items()])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp")
            pq.write_table(pa.Table.from_pylist(clean, schema=schema), tmp)
            data = tmp.read_bytes()
            tmp.replace(path)
        else:
            import csv
            import io

            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(self.COLUMNS), lineterminator="\n")
            w.writeheader()
            w.writerows([{k: "" if v is None else v for k, v in r.items()} for r in clean])
            data = buf.getvalue().encode()
            write_atomic(path, data)
        self.parts.append({"file": name, "rows": len(clean), "sha256": hashlib.sha256(data).hexdigest()})
        self._write_index()

    def rows(self) -> list[dict]:
        """Every stored row, each part checked against its sha256 and row count."""
        out: list[dict] = []
        for part in self.parts:
            path = self.folder / PARTS_DIR / part["file"]
            if not path.is_file():
                raise FormatError(f"{path}: missing (listed in {self.index_path}): the results folder is incomplete")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise FormatError(f"{path}: sha256 does not match {self.INDEX}: the part is corrupt or was edited")
            rows = self._parse(data, path)
            if len(rows) != part["rows"]:
                raise FormatError(f"{path}: {len(rows)} rows, the index says {part['rows']}")
            out += rows
        return out

    def _parse(self, data: bytes, path: Path) -> list[dict]:
        if self.storage == "parquet":
            import io

            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data))
            if table.column_names != list(self.COLUMNS):
                raise FormatError(f"{path}: columns {table.column_names[:4]}... are not this edgemti's {self.FORMAT} "
                                  "columns")
            return table.to_pylist()
        import csv
        import io

        reader = csv.DictReader(io.StringIO(data.decode()))
        if reader.fieldnames != list(self.COLUMNS):
            raise FormatError(f"{path}: columns are not this edgemti's {self.FORMAT} columns")
        conv: dict[type, Callable[[str], Any]] = {str: str, float: float, int: int, bool: lambda s: s == "True"}
        try:
            return [{k: None if v == "" else conv[self.COLUMNS[k]](v) for k, v in r.items()} for r in reader]
        except ValueError as exc:
            raise FormatError(f"{path}: bad value ({exc})") from None

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self.rows()}
