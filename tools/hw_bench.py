"""Benchmark: cost of charging a request on the hardware model, first call vs cached, side by side.

Usage: python tools/hw_bench.py BUILD [--seq-len 128] [--repeat 10000]
Prints the first (uncached) inference pricing time, the cached time per call and their ratio; the target is
"a cached request costs microseconds" (docs/HWMODEL.md).
"""

from __future__ import annotations

import argparse
import time

from edgemti.formats.build import open_build
from edgemti.formats.graph import load_graph
from edgemti.hwmodel import HwModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=10000)
    a = ap.parse_args()
    b = open_build(a.build, verify=False)
    t0 = time.perf_counter()
    hw = HwModel.from_build(b.manifest.to_dict(), load_graph(b.graph_bytes()))
    t1 = time.perf_counter()
    task = hw.tasks[0]
    hw.inference(a.seq_len, task)
    t2 = time.perf_counter()
    for _ in range(a.repeat):
        hw.inference(a.seq_len, task)
        hw.swap(task)
    t3 = time.perf_counter()
    cached = (t3 - t2) / a.repeat
    print(f"from_build {t1 - t0:.3f} s; first inference {t2 - t1:.3f} s; cached inference+swap {cached * 1e6:.2f} us "
          f"per request; first/cached = {(t2 - t1) / cached:,.0f}x")


if __name__ == "__main__":
    main()
