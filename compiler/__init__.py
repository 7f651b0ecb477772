"""edgemti.compiler: backbone + task packs -> a build (pruned, quantized, bitmask-encoded images + graph).

Entry point: :func:`compile_build` with a :class:`CompileConfig`.
"""

from edgemti.compiler.compile import STEPS, compile_build, plan_build
from edgemti.compiler.config import CompileConfig

__all__ = ["CompileConfig", "STEPS", "compile_build", "plan_build"]
