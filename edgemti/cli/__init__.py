"""The ``edgemti`` command line: thin wrappers that parse options, call one library function, format the result.

One module per command group, each registering its commands on :data:`main` (the console entry point
``edgemti.cli:main``): :mod:`~edgemti.cli.group` (the group itself and the one place library errors become
messages and exit code 2), :mod:`~edgemti.cli.flags` (the library's parameter names as flags: the error hints),
:mod:`~edgemti.cli.serving` (``serve``), :mod:`~edgemti.cli.tasks` (``params``, ``train``, ``calibrate-exit``,
``eval``, ``import-pack``, ``export-pack``), :mod:`~edgemti.cli.builds` (``compile``, ``keygen``, ``inspect``) and
:mod:`~edgemti.cli.studies` (``faults``, ``sweep``, ``study``, ``demo``, ``report``). Nothing else in edgemti
prints or exits. Heavy libraries (torch, onnxruntime) are imported inside the commands, after the options are
checked.
"""

from __future__ import annotations

from edgemti.cli import builds, serving, studies, tasks
from edgemti.cli.flags import error_message
from edgemti.cli.group import main

__all__ = ["builds", "error_message", "main", "serving", "studies", "tasks"]
