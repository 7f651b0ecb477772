"""edgemti.compiler: backbone + task packs -> a build (pruned, quantized, bitmask-encoded images + graph).

Entry point: :func:`compile_build` with a :class:`CompileConfig`. Names are resolved lazily so that light users
(``edgemti inspect``, footprint tables) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"CompileConfig": "edgemti.compiler.config", "STEPS": "edgemti.compiler.compile",
            "compile_build": "edgemti.compiler.compile", "plan_build": "edgemti.compiler.compile"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgemti.compiler' has no attribute {name!r}")
