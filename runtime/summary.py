"""The end-of-run summary of a serve session: counts, energy per inference, latency percentiles, fifo baseline.

The fifo baseline replays the *same* stream of served requests in arrival order through fresh pack slots and
prices it with the same per-request inference costs and per-task swap costs; since simulated costs depend only
on (task, sequence length) and on which pack is swapped in, the replay is exact, not an estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgemti.runtime.slots import PackSlots


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), or None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def summarize(
    records: Sequence[dict],
    swap_cost: Callable[[str], tuple[float, float]] | None = None,
    slots: int = 1,
    pinned: Sequence[str] = (),
    policy: str = "fifo",
) -> dict:
    """Summary of a session's response records (ok and error ones, in served order).

    ``swap_cost(task) -> (energy_j, latency_s)`` prices a swap for the fifo replay; without it the replay is
    skipped. Energy per inference counts the swaps the inferences caused (the paper's MTI energy/inference).
    """
    ok = [r for r in records if r.get("ok")]
    errors = len(records) - len(ok)
    n = len(ok)
    energy = [r["energy_j"] for r in ok]
    swaps = sum(1 for r in ok if r.get("swapped"))
    swap_energy = sum(r["swap"]["energy_j"] for r in ok if r.get("swap"))
    inf_energy = [r["inference"]["energy_j"] for r in ok]
    out: dict = {
        "policy": policy,
        "requests": len(records),
        "ok": n,
        "errors": errors,
        "swaps": swaps,
        "slot_hits": n - swaps,
        "energy_j_total": float(sum(energy)),
        "energy_per_inference_j": float(sum(energy) / n) if n else None,
        "inference_energy_per_inference_j": float(sum(inf_energy) / n) if n else None,
        "swap_energy_j_total": float(swap_energy),
        "sim_latency_s": {"p50": percentile([r["latency_s"] for r in ok], 50),
                          "p99": percentile([r["latency_s"] for r in ok], 99),
                          "mean": float(np.mean([r["latency_s"] for r in ok])) if n else None},
        "host_latency_s": {"p50": percentile([r["host_s"] for r in ok], 50),
                           "p99": percentile([r["host_s"] for r in ok], 99),
                           "mean": float(np.mean([r["host_s"] for r in ok])) if n else None},
        "energy_by_component_j": _sum_components(ok),
    }
    if swap_cost is not None and n:
        by_arrival = sorted(ok, key=lambda r: r["seq"])
        cache = PackSlots(slots, pinned)
        fifo_energy = 0.0
        fifo_latency = 0.0
        for r in by_arrival:
            fifo_energy += r["inference"]["energy_j"]
            fifo_latency += r["inference"]["latency_s"]
            if not cache.access(r["task"]).hit:
                e, t = swap_cost(r["task"])
                fifo_energy += e
                fifo_latency += t
        out["fifo_baseline"] = {"swaps": cache.swaps, "energy_j_total": fifo_energy,
                                "energy_per_inference_j": fifo_energy / n, "sim_latency_s_total": fifo_latency}
        out["saved_vs_fifo"] = {
            "swaps": cache.swaps - swaps,
            "energy_j": fifo_energy - float(sum(energy)),
            "energy_fraction": (fifo_energy - float(sum(energy))) / fifo_energy if fifo_energy > 0 else 0.0,
        }
    return out


def _sum_components(records: Sequence[dict]) -> dict:
    total: dict[str, float] = {}
    for r in records:
        for k, v in (r.get("energy_by_component_j") or {}).items():
            total[k] = total.get(k, 0.0) + float(v)
    return total


def format_summary(s: dict) -> str:
    """A few human lines (the CLI prints these; the JSON is in the log)."""
    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 1e3:.3f} ms"

    def uj(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 1e6:.3f} uJ"

    lines = [
        f"requests {s['requests']} (ok {s['ok']}, errors {s['errors']}), policy {s['policy']}, "
        f"swaps {s['swaps']}, slot hits {s['slot_hits']}",
        f"energy per inference {uj(s['energy_per_inference_j'])} (inference only "
        f"{uj(s['inference_energy_per_inference_j'])}; swaps {uj(s['swap_energy_j_total'])} in total)",
        f"simulated latency p50 {ms(s['sim_latency_s']['p50'])} p99 {ms(s['sim_latency_s']['p99'])}; "
        f"host latency p50 {ms(s['host_latency_s']['p50'])} p99 {ms(s['host_latency_s']['p99'])}",
    ]
    if "fifo_baseline" in s:
        f, sv = s["fifo_baseline"], s["saved_vs_fifo"]
        lines.append(f"vs fifo on the same stream: fifo swaps {f['swaps']}, energy/inference "
                     f"{uj(f['energy_per_inference_j'])}; saved {sv['swaps']} swaps, "
                     f"{uj(sv['energy_j'])} ({100 * sv['energy_fraction']:.1f}%)")
    return "\n".join(lines)
