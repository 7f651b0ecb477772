"""Benchmark: the whole ``compile_build`` of albert-base + 3 packs vs a bare ``torch.onnx.export`` of the same model.

Both are measured side by side in one run (same machine load); the target is compile <= 3x the bare export.
The bare export is ``torch.onnx.export(model, args, dynamo=True)``: torch's default path, with its default
optimisation, which the compiler cannot use (it renames weights, see tests/test_export_traps.py). The ratio to the
un-optimised export (the one the compiler runs) is printed too: it isolates what compiling adds to exporting.

    python tools/bench_compile.py [--backbone albert-base] [--tasks mnli,mrpc,qnli] [--quant q3.5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

from edgemti.compiler import STEPS, CompileConfig, compile_build
from edgemti.compiler.compile import clear_graph_cache
from edgemti.compiler.export import _example_inputs
from edgemti.formats.graph import DATA_INPUTS
from edgemti.tasks.backbones import build_model


def bare_export(backbone: str, optimize: bool = True) -> float:
    model = build_model(backbone, num_labels=3)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", min=2, max=512)
        prog = torch.onnx.export(model, _example_inputs(), dynamo=True, optimize=optimize,
                                 input_names=list(DATA_INPUTS), output_names=["logits"],
                                 dynamic_shapes={n: {0: batch, 1: seq} for n in DATA_INPUTS})
        _ = prog.model_proto.SerializeToString()
    return time.perf_counter() - t0


def compile_once(cfg: CompileConfig, root: Path) -> tuple[float, dict[str, float]]:
    marks: list[tuple[str, float]] = []
    clear_graph_cache()  # measure a cold compile: the export is part of it
    t0 = time.perf_counter()
    compile_build(cfg, root / "build", force=True, progress=lambda s: marks.append((s, time.perf_counter())))
    total = time.perf_counter() - t0
    ends = [m[1] for m in marks[1:]] + [t0 + total]
    return total, {name: end - start for (name, start), end in zip(marks, ends, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="albert-base")
    ap.add_argument("--tasks", default="mnli,mrpc,qnli")
    ap.add_argument("--quant", default="q3.5")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)
    cfg = CompileConfig(backbone=args.backbone, synthetic_tasks=tuple(args.tasks.split(",")), quant=args.quant,
                        sparsity_embedding=0.6, sparsity_transformer=0.4)
    root = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    try:
        for i in range(args.repeat):
            t_bare = bare_export(args.backbone)
            t_compile, steps = compile_once(cfg, root)
            t_plain = bare_export(args.backbone, optimize=False)
            print(f"run {i + 1}: compile_build {t_compile:.2f} s | bare torch.onnx.export (default, optimize=True) "
                  f"{t_bare:.2f} s -> ratio {t_compile / t_bare:.2f}x (target <= 3x) | bare export with "
                  f"optimize=False {t_plain:.2f} s -> ratio {t_compile / t_plain:.2f}x")
            for name in STEPS:
                print(f"    {name:38} {steps.get(name, 0.0):7.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
