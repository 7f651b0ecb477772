"""Checking the fields of a parsed JSON document by type and range, every problem collected.

:class:`Fields` gathers ``where: why`` for every bad field (a string, a count, a sha256, a path inside the build,
a shape, a value format ...) so the document's reader raises one :class:`~edgemti.errors.FormatError` naming them
all (STYLE rule 4); :mod:`edgemti.formats.manifest_schema` reads ``manifest.json`` with it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edgemti.errors import ConfigError, FormatError
from edgemti.formats.manifest import path_problem
from edgemti.formats.quant import QFormat

HEX64 = re.compile(r"[0-9a-f]{64}")


MAX_DIM = 1 << 31  # no tensor axis of a build is anywhere near this; a bigger one is corruption


class Fields:
    """Collects every field problem of a manifest (``where: why``) instead of stopping at the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def check(self, where: str, v: Any, kind: str, lo: float | None = None, hi: float | None = None) -> bool:
        why = None
        if kind == "str":
            why = None if isinstance(v, str) and v else "must be a non-empty string"
        elif kind == "bool":
            why = None if isinstance(v, bool) else "must be true or false"
        elif kind in ("int", "count"):
            if isinstance(v, bool) or not isinstance(v, int):
                why = "must be an integer"
            elif kind == "count" and v < 0:
                why = "must be >= 0"
        elif kind == "num":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            why = None if ok else "must be a finite number"
        elif kind == "hex64":
            why = None if isinstance(v, str) and HEX64.fullmatch(v) else "must be a sha256 (64 lowercase hex digits)"
        elif kind == "path":
            why = path_problem(v)
        elif kind == "dict":
            why = None if isinstance(v, dict) else "must be an object"
        if why is None and kind in ("int", "count", "num") and ((lo is not None and v < lo)
                                                                or (hi is not None and v > hi)):
            why = f"must be in [{lo}, {hi}]"
        if why is not None:
            self.problems.append(f"{where} {why}, got {short(v)}")
        return why is None

    def items(self, where: str, v: Any) -> list:
        if not isinstance(v, list):
            self.problems.append(f"{where} must be a list, got {short(v)}")
            return []
        return v

    def obj(self, where: str, v: Any, keys: tuple[str, ...]) -> dict | None:
        if not isinstance(v, dict):
            self.problems.append(f"{where} must be an object, got {short(v)}")
            return None
        missing = [k for k in keys if k not in v]
        if missing:
            self.problems.append(f"{where}: missing {missing}")
            return None
        return v

    def named(self, where: str, v: Any, keys: tuple[str, ...], label: str, name_key: str = "name"
              ) -> tuple[dict | None, str]:
        """An entry of a list: ``v`` checked as an object with ``keys``, and where its problems are reported from now
        on (``label name`` once its ``name_key`` is a non-empty string, else ``where``)."""
        v = self.obj(where, v, keys)
        if v is not None and self.check(f"{where}.{name_key}", v[name_key], "str"):
            where = f"{label} {v[name_key]}"
        return v, where

    def shape(self, where: str, v: Any) -> tuple[int, ...] | None:
        if not isinstance(v, list) or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < MAX_DIM
                                          for s in v):
            self.problems.append(f"{where}.shape must be a list of integers in [0, {MAX_DIM}), got {short(v)}")
            return None
        return tuple(v)

    def qformat(self, where: str, v: Any) -> QFormat | None:
        try:
            return QFormat.from_dict(v)
        except (FormatError, ConfigError, TypeError, AttributeError) as exc:
            self.problems.append(f"{where}.format: {exc}")
            return None


def short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."
