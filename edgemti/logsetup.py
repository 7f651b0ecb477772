"""The command line's logging: one line per record, ``LEVEL logger: message``, at WARNING by default (``-v`` INFO,
``-vv`` DEBUG). A message that already starts with its level (``WARNING: ...``, from text also shown elsewhere)
is not prefixed twice."""

from __future__ import annotations

import logging


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        doubled = f"{record.levelname} {record.name}: {record.levelname}: "
        if text.startswith(doubled):
            text = f"{record.levelname} {record.name}: " + text[len(doubled):]
        return text


def setup_logging(verbose: int = 0) -> None:
    """Route edgemti's log records to stderr at the level ``verbose`` asks for (0 WARNING, 1 INFO, 2+ DEBUG)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):  # a second call (tests run many commands in one process) replaces, not adds
        if isinstance(h.formatter, _Formatter):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING - 10 * verbose, logging.DEBUG))
