"""Host time of a pack swap (DRAM -> SRAM copy + slot rebind), alternating tasks on one SRAM slot.

    python tools/bench_swap.py BUILD [--iters 200]

Each iteration makes the other task's pack resident (slots=1, so every access is a miss and a swap); the time
is ``Engine.make_resident`` (counted DMA copy of exactly the pack's bytes into SRAM, dequantization into the
slot's staging buffers when the pack is fixed point, OrtValue rebinding; the session is never rebuilt).
Target: under 1 ms for a MiniLM or albert-base adapter pack.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgemti.studies.sized import open_sized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    eng = open_sized(args.build).engine(slots=1, threads=1)
    tasks = list(eng.rules.tasks)
    if len(tasks) < 2:
        raise SystemExit("bench_swap needs a build with at least two tasks")
    times = []
    for i in range(args.warmup + args.iters):
        t = tasks[i % len(tasks)]
        t0 = time.perf_counter()
        swapped, _, _ = eng.make_resident(t)
        dt = time.perf_counter() - t0
        assert swapped
        if i >= args.warmup:
            times.append(dt)
    sizes = {t: eng.manifest.pack(t).length for t in tasks}
    med = statistics.median(times)
    sw = eng.hw.swap(tasks[0])
    print(f"build {eng.build_id[:12]} ({eng.manifest.backbone['name']}, design {eng.manifest.design}, pack format "
          f"{eng.manifest.compile.pack_format.name}), packs {', '.join(f'{t} {n / 1024:.1f} KiB' for t, n in sizes.items())}")
    print(f"host swap time over {args.iters} swaps: median {med * 1e3:.3f} ms, p99 {np.percentile(times, 99) * 1e3:.3f} ms, "
          f"max {max(times) * 1e3:.3f} ms   (target < 1 ms)")
    print(f"simulated swap of {tasks[0]}: {sw.energy_j * 1e6:.3f} uJ, {sw.latency_s * 1e6:.2f} us")
    rep = eng.memory_report()
    print(f"SRAM counts {rep['counts']['SRAM']}, DRAM counts {rep['counts']['DRAM']}, slots {rep['slots']}")


if __name__ == "__main__":
    main()
