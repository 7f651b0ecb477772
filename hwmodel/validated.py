"""Validated frozen dataclasses: per-field rules, the check on construction, the build from a parsed table.

A field declares its rule with ``rule(check)``: ``check(value)`` returns ``None`` when the value is good, else the
reason (``"must be > 0"``). A dataclass deriving from :class:`Validated` runs every rule in ``__post_init__`` and
raises one :class:`~edgemti.errors.SpecError` naming the class, each bad field and its value
(``ClockSpec: freq_hz must be > 0, got 0``); a nested dataclass has validated itself.

:func:`build_checked` is the boundary for a parsed file (a TOML table): it checks unknown keys, missing fields and
sections, each value's type (an int is a good float) and rule, appends *every* problem with its dotted path to the
caller's list and returns the instance, or None when there was a problem, so that the caller raises one error for
the whole file. The architecture spec (:mod:`edgemti.hwmodel.spec`) is built this way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields
from typing import Any, get_type_hints

from edgemti.errors import SpecError

# -- rules: value -> None when good, else the reason ----------------------------------------------------------


def positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def in_unit_interval(v: Any) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def one_of(*options: str):
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}"

    return check


def table_of_non_negative(required: tuple[str, ...]):
    def check(v: dict) -> str | None:
        missing = [k for k in required if k not in v]
        if missing:
            return f"is missing keys {missing}"
        extra = [k for k in v if k not in required]
        if extra:
            return f"has unknown keys {extra} (known: {list(required)})"
        bad = {k: x for k, x in v.items() if not isinstance(x, (int, float)) or isinstance(x, bool) or x < 0}
        return f"must map to numbers >= 0, bad entries {bad}" if bad else None

    return check


def rule(check, **kw):
    """A dataclass field checked by ``check`` (``None``: no rule); ``kw`` as for :func:`dataclasses.field`."""
    return field(metadata={"check": check} if check else {}, **kw)


# -- the check on construction and the build from a parsed table ------------------------------------------------


class Validated:
    """Frozen spec dataclasses validate on construction; the message names the class, field and value."""

    def __post_init__(self) -> None:
        problems = field_problems(self, "")
        if problems:
            raise SpecError(f"{type(self).__name__}: " + "; ".join(problems))


def field_problems(obj: Any, prefix: str) -> list[str]:
    """Every field of ``obj`` whose rule fails, as ``"<prefix><field> <why>, got <value>"``."""
    problems = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            continue  # nested specs validated themselves on construction
        check = f.metadata.get("check")
        if check is None or value is None:
            continue
        try:
            why = check(value)
        except TypeError:
            why = "has the wrong type"
        if why:
            problems.append(f"{prefix}{f.name} {why}, got {value!r}")
    return problems


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


def build_checked(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    """Instance of dataclass ``cls`` from ``data`` or None; every problem appended with its dotted path."""
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or '<root>'} must be a table, got {data!r}")
        return None
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)} - {"path"}
    for key in data:
        if key not in known:
            problems.append(f"{prefix}{key} is not a known field (known: {sorted(known)})")
    kwargs: dict[str, Any] = {}
    ok = True
    for f in fields(cls):
        if f.name == "path":
            continue
        name = f"{prefix}{f.name}"
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if f.name not in data:
                problems.append(f"{name} section is missing")
                ok = False
                continue
            sub = build_checked(hint, data[f.name], name + ".", problems)
            ok = ok and sub is not None
            kwargs[f.name] = sub
            continue
        if f.name not in data:
            if has_default:
                continue
            if f.name == "source":
                continue
            problems.append(f"{name} is missing")
            ok = False
            continue
        value = data[f.name]
        want = _TYPES.get(hint if isinstance(hint, str) else getattr(hint, "__name__", ""), None)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is not None and (not isinstance(value, want) or (want is not bool and isinstance(value, bool))):
            problems.append(f"{name} must be {want.__name__}, got {value!r}")
            ok = False
            continue
        check = f.metadata.get("check")
        if check is not None:
            why = check(value)
            if why:
                problems.append(f"{name} {why}, got {value!r}")
                ok = False
                continue
        kwargs[f.name] = value
    if not ok:
        return None
    return cls(**kwargs)

