"""Loaders: GLUE TSV folders, Hugging Face ``datasets`` (optional) and a user's own CSV / JSONL task.

Every loader returns a list of :class:`Example` with the label already mapped to an index (classification) or a
float (regression). Malformed input raises :class:`DataError` naming the file, the line and the problem.

GLUE TSV pitfalls handled here: fields are never quoted (``csv.reader(..., quotechar=None)``: SST-2 and CoLA
hold bare ``"`` characters), MRPC starts with a UTF-8 BOM (read as ``utf-8-sig``), CoLA has no header row.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgemti.errors import ConfigError, DataError
from edgemti.tasks.glue import TaskSpec, custom_task

csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Example:
    """One input: a text (and a second text for pair tasks) and its label index or regression target."""

    text: str
    text_pair: str | None
    label: int | float


def glue_dir(data_dir: str | Path | None = None) -> Path:
    """The GLUE root folder: ``data_dir`` if given, else ``default_data_dir()/glue``."""
    if data_dir is not None:
        return Path(data_dir)
    from edgemti.tasks.backbones import default_data_dir

    return default_data_dir() / "glue"


def _label_value(task: TaskSpec, raw: str, where: str) -> int | float:
    raw = raw.strip()
    if task.is_regression:
        try:
            return float(raw)
        except ValueError:
            raise DataError(f"{where}: regression target {raw!r} is not a number") from None
    index = task.label_index(raw)
    if index is None:
        raise DataError(f"{where}: label {raw!r} is not one of {list(task.label_values or task.labels)}")
    return index


def read_glue_tsv(task: TaskSpec, path: str | Path) -> list[Example]:
    """Read one GLUE TSV file of ``task`` (train or dev layout)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file: give the GLUE data folder holding {task.folder}/ "
                        f"(default: $EDGEMTI_DATA/glue)", options=("data_dir",))
    examples: list[Example] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quotechar=None)
        ncols = None
        if task.has_header:
            header = next(rows, None)
            if header is None:
                raise DataError(f"{path}: empty file (expected a header row)")
            cols = [*task.text_columns, task.label_column]
            missing = [c for c in cols if c not in header]
            if missing:
                raise DataError(f"{path}:1: header lacks column(s) {missing} (has {header}): is this {task.folder}?")
            idx = [header.index(str(c)) for c in cols]  # all present, so all header names
            ncols = len(header)
        else:
            idx = [int(c) for c in [*task.text_columns, task.label_column]]
        need = max(idx) + 1
        for row in rows:
            line = rows.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            where = f"{path}:{line}"
            if ncols is not None and len(row) != ncols:
                raise DataError(f"{where}: expected {ncols} tab-separated columns (as the header), got {len(row)}")
            if len(row) < need:
                raise DataError(f"{where}: expected at least {need} tab-separated columns, got {len(row)}")
            texts = [row[i] for i in idx[:-1]]
            examples.append(Example(texts[0], texts[1] if len(texts) > 1 else None,
                                    _label_value(task, row[idx[-1]], where)))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def load_glue(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> list[Example]:
    """Examples of a GLUE task split (``train``/``dev``) from the standard GLUE folder layout."""
    root = glue_dir(data_dir)
    if not root.is_dir():
        raise DataError(f"GLUE data folder {root} does not exist: give the folder holding CoLA/, SST-2/, ... "
                        "or set EDGEMTI_DATA", options=("data_dir",))
    folder = root / task.folder
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist: the GLUE folder {root} has no {task.folder}/ for task "
                        f"{task.name} (download it with GLUE's download_glue_data.py)")
    return read_glue_tsv(task, folder / task.split_file(split))


def load_hf(task: TaskSpec, split: str) -> list[Example]:  # pragma: no cover - needs `datasets` and internet
    """Examples from Hugging Face ``datasets`` (``glue/<config>``), when the package is installed."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("loading from Hugging Face needs the `datasets` package: pip install datasets, or use "
                          "the GLUE TSV folder", options=("data_dir",)) from None
    if task.hf_name is None:
        raise ConfigError(f"task {task.name} has no Hugging Face dataset")
    hf_split = {"train": "train", "dev": task.hf_dev_split}.get(split)
    if hf_split is None:
        raise ConfigError(f"unknown split {split!r}: use 'train' or 'dev'")
    try:
        ds = datasets.load_dataset(*task.hf_name, split=hf_split)
    except Exception as exc:
        raise DataError(f"could not load {'/'.join(task.hf_name)} [{hf_split}] from Hugging Face "
                        f"({type(exc).__name__}: {exc}); check your network or use the GLUE TSV folder",
                        options=("data_dir",)) from None
    cols = task.hf_text_columns
    return [Example(r[cols[0]], r[cols[1]] if len(cols) > 1 else None,
                    float(r["label"]) if task.is_regression else int(r["label"])) for r in ds]


def _read_records(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in (".jsonl", ".json"):
        out = []
        with open(path, encoding="utf-8-sig") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{i}: expected a JSON object per line, got {type(rec).__name__}")
                out.append((i, rec))
        return out
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            return [(reader.line_num, row) for row in reader]
    raise DataError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .jsonl")


def load_custom(path: str | Path, text_column: str = "text", text_pair_column: str | None = None,
                label_column: str = "label", labels: Sequence[str] | None = None,
                regression: bool = False) -> tuple[list[Example], tuple[str, ...]]:
    """Examples of a user's CSV/TSV/JSONL file and the label names (sorted unique labels unless ``labels``)."""
    path = Path(path)
    records = _read_records(path)
    if not records:
        raise DataError(f"{path}: no examples")
    cols = [c for c in (text_column, text_pair_column, label_column) if c]
    for line, rec in records:
        missing = [c for c in cols if c not in rec or rec[c] is None]
        if missing:
            raise DataError(f"{path}:{line}: missing column(s) {missing} (has {sorted(rec)}): name the text, "
                            "text-pair and label columns", options=("text_column", "text_pair_column",
                                                                    "label_column"))
    if regression:
        names: tuple[str, ...] = ()
    elif labels is not None:
        names = tuple(str(x) for x in labels)
    else:
        names = tuple(sorted({str(rec[label_column]).strip() for _, rec in records}))
    if not regression and len(names) < 2:
        raise DataError(f"{path}: a classification task needs >= 2 distinct labels in column {label_column!r}, "
                        f"found {list(names)} (a numeric target is a regression task)", options=("regression",))
    spec = custom_task(path.stem, names, text_pair_column is not None)
    out = []
    for line, rec in records:
        out.append(Example(str(rec[text_column]), str(rec[text_pair_column]) if text_pair_column else None,
                           _label_value(spec, str(rec[label_column]), f"{path}:{line}")))
    return out, names


def subsample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random subset of ``n`` examples (all of them when ``n`` is None or >= len)."""
    if n is None or n >= len(examples):
        return list(examples)
    if n <= 0:
        raise ConfigError(f"max examples must be > 0, got {n}")
    rng = random.Random(seed)
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), n))]
