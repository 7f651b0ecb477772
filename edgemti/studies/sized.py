"""A build opened once for a study, on its spec resolved once.

The studies that serve a build (``eval --build``, ``faults``, ``demo``, early exit) follow the flow of ``serve``
(:func:`edgemti.runtime.serving.serve`): one :func:`~edgemti.formats.build.open_build` -> a typed ``Build``; the
spec resolved on that open by :func:`~edgemti.runtime.hma.build_spec` (sized to the build by default: accuracy
does not depend on capacities, and MiniLM's embeddings outgrow the shipped specs) -> an ``ArchSpec``; the engine
made from both with ``Engine.from_build``, which opens and loads nothing again. Nothing re-reads the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgemti.formats.build import Build, open_build
from edgemti.hwmodel.spec import ArchSpec

if TYPE_CHECKING:
    from edgemti.runtime.engine import Engine


@dataclass(frozen=True)
class SizedBuild:
    """An opened build, the spec it is priced on, and the sizing lines (``build_spec``'s changes, empty if none)."""

    build: Build
    spec: ArchSpec
    changes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.build, Build):
            raise TypeError(f"SizedBuild: build must be an opened Build, got {type(self.build).__name__}")
        if not isinstance(self.spec, ArchSpec):
            raise TypeError(f"SizedBuild: spec must be an ArchSpec, got {type(self.spec).__name__}")

    def engine(self, **options: Any) -> Engine:
        """The runtime engine of this build on this spec (options as ``Engine.from_build``)."""
        from edgemti.runtime.engine import Engine  # onnxruntime is heavy to import: only when a study serves

        return Engine.from_build(self.build, self.spec, **options)


def open_sized(build: str | Path, spec: str | Path | None = None, fit: bool = True, verify: bool = True) -> SizedBuild:
    """Open the build folder ``build`` once (``verify``: every checksum, as serve does) and resolve its spec
    (``spec``, default the shipped spec of its design; ``fit``: sized to the build) on that open."""
    from edgemti.runtime.hma import build_spec

    b = open_build(build, verify=verify)
    arch, changes = build_spec(b, spec, fit=fit)
    return SizedBuild(b, arch, tuple(changes))
