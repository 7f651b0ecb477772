"""Versioned TOML files: one way to parse them and to check their header, for every loader that reads one.

The architecture spec (:mod:`edgemti.hwmodel.spec`), the paper's targets (:mod:`edgemti.hwmodel.targets`) and the
studies' files (a compression study, its section-III numbers, a sweep grid) are TOML files with a ``format`` name
and a ``format_version``. Their loaders parse with :func:`read_toml`: a file that cannot be read, is not UTF-8 or
is not TOML raises the loader's own error class (a subclass of :class:`~edgemti.errors.EdgemtiError`) naming the
file and what it should hold. :func:`header_problems` checks the header and returns its problems for the
loader's list (STYLE rule 4: collect every problem of a file, raise one error). Whether a missing file deserves a
hint of its own (an example to copy) stays with the loader.

``tomllib`` is the standard library's on Python >= 3.11, else ``tomli`` (a dependency there).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgemti.errors import EdgemtiError

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["header_problems", "read_toml", "tomllib"]


def read_toml(path: str | Path, error: type[EdgemtiError], what: str) -> dict[str, Any]:
    """The parsed TOML file ``path`` (``what``: what it holds, for the message, e.g. "the architecture spec").

    An unreadable file raises ``error("<path>: cannot read <what> (<why>)")``; bytes that are not UTF-8 or text
    that is not TOML raise ``error("<path>: <what> is not valid TOML (<why>); fix the syntax")``.
    """
    path = Path(path)
    try:
        text = path.read_text()
        return tomllib.loads(text)
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {what} is not valid TOML ({exc}); fix the syntax") from None


def header_problems(data: Mapping[str, Any], fmt: str, version: int,
                    notes: Mapping[int, str] | None = None) -> list[str]:
    """The problems of a parsed file's ``format`` / ``format_version`` (none when it is ``fmt`` at ``version``).

    ``notes``: a hint per known old version, appended to its message (``{1: ": version 1 has no ..."}``).
    """
    problems = []
    if data.get("format") != fmt:
        problems.append(f"format must be {fmt!r}, got {data.get('format')!r}")
    got = data.get("format_version")
    if got != version:
        why = next((n for v, n in (notes or {}).items() if got == v), "")
        problems.append(f"format_version {got!r} is not supported (this edgemti reads {version}){why}")
    return problems
