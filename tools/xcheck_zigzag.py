"""Cross-check the hardware model against zigzag on albert-base's matmuls (docs/HWMODEL.md, "Cross-check against
zigzag").

Usage: python tools/xcheck_zigzag.py BUILD [--seq-len 128] [--task mnli] [--spec file.toml] [--json out.json]
       [--workdir DIR] [--quant q3.5] [--opt energy] [--lpf-limit 6]

BUILD is a build folder; if it has no manifest.json, albert-base is compiled into it first (design adapter,
``--quant``, synthetic MNLI/MRPC/QNLI packs, 50 % embedding / transformer sparsity: the configuration of
``edgemti report --paper``). Needs the ``[xcheck]`` extra (zigzag-dse). Prints the agreement table (Markdown),
writes the JSON if asked, exits 1 when the two models disagree beyond the tolerance.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgemti.studies.xcheck import cross_check_build, format_table, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--task", default=None, help="default: the task with the largest pack")
    ap.add_argument("--spec", type=Path, default=None, help="architecture spec TOML (default: the build's design)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None, help="keep zigzag's inputs and outputs here")
    ap.add_argument("--quant", default="q3.5", help="value format when BUILD has to be compiled")
    ap.add_argument("--design", default="adapter", help="design when BUILD has to be compiled")
    ap.add_argument("--opt", default="energy", choices=("energy", "latency", "EDP"), help="zigzag's mapping goal")
    ap.add_argument("--lpf-limit", type=int, default=6, help="zigzag LOMA loop-prime-factor limit")
    a = ap.parse_args()
    t0 = time.perf_counter()
    if not (a.build / "manifest.json").is_file():
        from edgemti.compiler import CompileConfig, compile_build

        print(f"compiling albert-base {a.design} {a.quant} into {a.build} ...", file=sys.stderr)
        cfg = CompileConfig(backbone="albert-base", synthetic_tasks=("mnli", "mrpc", "qnli"), design=a.design,
                            quant=a.quant, sparsity_embedding=0.5, sparsity_transformer=0.5, max_seq_len=a.seq_len)
        compile_build(cfg, a.build, force=True)
    spec = None
    if a.spec is not None:
        from edgemti.hwmodel import load_spec

        spec = load_spec(a.spec)
    cc = cross_check_build(a.build, seq_len=a.seq_len, task=a.task, spec=spec, workdir=a.workdir, opt=a.opt,
                           lpf_limit=a.lpf_limit, progress=lambda s: print(s, file=sys.stderr))
    print(format_table(cc))
    print(f"\n({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if a.json is not None:
        write_json(cc, a.json)
    return 1 if cc.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
