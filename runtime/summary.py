"""The end-of-run summary of a serve session: counts, energy per inference, latency percentiles, fifo baseline.

The fifo baseline replays the *same* stream of served requests in arrival order through fresh pack slots and
prices it with the same per-request inference costs and per-task swap costs; since simulated costs depend only
on (task, sequence length) and on which pack is swapped in, the replay is exact, not an estimate. The summary is
accumulated record by record (:class:`SummaryAccumulator`): a long-running server keeps counters, not responses.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from edgemti.runtime.residency import PackResidency
from edgemti.units import si


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), or None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


class Quantiles:
    """Percentiles of a stream in bounded memory: exact for the first ``exact_limit`` values, then from a
    log-spaced histogram (bins ``ratio`` wide: relative error under ``(ratio - 1) / 2``) of every value."""

    LO, HI, RATIO = 1e-12, 1e6, 1.001  # seconds (or joules): far beyond anything a request costs

    def __init__(self, exact_limit: int = 10_000) -> None:
        self.exact_limit = exact_limit
        self._exact: array[float] = array("d")
        self._hist: np.ndarray | None = None
        self.n = 0
        self.total = 0.0

    def _bin(self, x: float) -> int:
        if not x > self.LO:  # also NaN
            return 0
        return min(int(math.log(x / self.LO) / math.log(self.RATIO)) + 1, self._nbins - 1)

    @property
    def _nbins(self) -> int:
        return int(math.log(self.HI / self.LO) / math.log(self.RATIO)) + 2

    def add(self, x: float) -> None:
        x = float(x)
        self.n += 1
        self.total += x
        if self._hist is None and len(self._exact) < self.exact_limit:
            self._exact.append(x)
            return
        if self._hist is None:
            self._hist = np.zeros(self._nbins, dtype=np.int64)
            for v in self._exact:
                self._hist[self._bin(v)] += 1
            self._exact = array("d")
        self._hist[self._bin(x)] += 1

    def percentile(self, q: float) -> float | None:
        if self._hist is None:
            return percentile(self._exact, q)
        rank = q / 100.0 * (self.n - 1)
        i = int(np.searchsorted(np.cumsum(self._hist), rank, side="right"))
        return 0.0 if i == 0 else self.LO * self.RATIO ** (i - 0.5)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


class SummaryAccumulator:
    """The end-of-run summary, built one response record at a time in bounded memory (counters, not records).

    ``swap_cost(task) -> (energy_j, latency_s)`` prices a swap for the fifo replay; without it the replay is
    skipped. With a bound on the DRAM tier (``dram_packs``), the replay runs both tiers
    (:class:`edgemti.runtime.residency.PackResidency`, as the engine does) and adds ``load_cost(task)`` for every
    pack it loads from disk. The replay needs the served requests in arrival (``seq``) order: records arriving out of order wait
    in a small buffer until the gap before them is filled (at most ``hold`` of them; past that a missing ``seq``
    is skipped, so a request that never got a record cannot grow the buffer).
    """

    def __init__(self, swap_cost: Callable[[str], tuple[float, float]] | None = None, slots: int = 1,
                 pinned: Sequence[str] = (), policy: str = "fifo", hold: int = 4096, dram_packs: int | None = None,
                 load_cost: Callable[[str], tuple[float, float]] | None = None) -> None:
        self.swap_cost = swap_cost
        self.load_cost = load_cost
        self.policy = policy
        self.hold = hold
        self.requests = self.ok = self.swaps = 0
        self.energy_j = self.swap_energy_j = self.inference_energy_j = 0.0
        self.idle_energy_j = self.idle_s = 0.0  # the accelerator idling between requests (power-gated per spec)
        self.components: dict[str, float] = {}
        self.sim_latency, self.host_latency = Quantiles(), Quantiles()
        self.dram_packs = dram_packs
        self.loads = self.sram_evictions = self.dram_evictions = self.loaded_bytes = 0
        self.load_energy_j = 0.0
        self.by_task: dict[str, dict[str, int]] = {}  # task -> hits / misses per tier
        self._cache = PackResidency(slots, dram_packs, pinned)
        self._next_seq = 0
        self._held: dict[int, tuple[str, float, float] | None] = {}
        self.fifo_energy_j = self.fifo_latency_s = 0.0
        self.exit_layers: dict[int, int] = {}  # early exit (runtime/early_exit.py): exit layer -> answers
        self.target_misses = 0

    def add(self, r: dict) -> None:
        self.requests += 1
        ok = bool(r.get("ok"))
        if ok:
            self.ok += 1
            self.energy_j += float(r["energy_j"])
            self.swaps += 1 if r.get("swapped") else 0
            self.swap_energy_j += float(r["swap"]["energy_j"]) if r.get("swap") else 0.0
            self.idle_energy_j += float(r["idle"]["energy_j"]) if r.get("idle") else 0.0
            self.idle_s += float(r["idle"]["idle_s"]) if r.get("idle") else 0.0
            self.inference_energy_j += float(r["inference"]["energy_j"])
            self._count_tiers(r)
            self.sim_latency.add(r["latency_s"])
            self.host_latency.add(r["host_s"])
            for k, v in (r.get("energy_by_component_j") or {}).items():
                self.components[k] = self.components.get(k, 0.0) + float(v)
            if "exit_layer" in r:
                self.exit_layers[int(r["exit_layer"])] = self.exit_layers.get(int(r["exit_layer"]), 0) + 1
                self.target_misses += int(r.get("latency_target_met") is False)
        seq = r.get("seq")
        if self.swap_cost is None or not isinstance(seq, int) or seq < self._next_seq:
            return
        self._held[seq] = (str(r["task"]), float(r["inference"]["energy_j"]),
                           float(r["inference"]["latency_s"])) if ok else None
        self._drain()
        if len(self._held) > self.hold:
            self._next_seq = min(self._held)
            self._drain()

    def _drain(self) -> None:
        while self._next_seq in self._held:
            item = self._held.pop(self._next_seq)
            self._next_seq += 1
            if item is None:
                continue
            task, e_inf, t_inf = item
            self.fifo_energy_j += e_inf
            self.fifo_latency_s += t_inf
            acc = self._cache.access(task)
            if acc.swapped:
                assert self.swap_cost is not None
                e, t = self.swap_cost(task)
                self.fifo_energy_j += e
                self.fifo_latency_s += t
            if acc.loaded and self.dram_packs is not None and self.load_cost is not None:
                e, t = self.load_cost(task)
                self.fifo_energy_j += e
                self.fifo_latency_s += t

    def _count_tiers(self, r: dict) -> None:
        """Hits and misses per tier of one served answer: SRAM on every answer, DRAM on an SRAM miss."""
        t = self.by_task.setdefault(str(r.get("task")), {"sram_hits": 0, "sram_misses": 0, "dram_hits": 0,
                                                          "dram_misses": 0})
        if not r.get("swapped"):
            t["sram_hits"] += 1
            return
        t["sram_misses"] += 1
        self.sram_evictions += 1 if r.get("evicted") else 0
        if r.get("loaded"):
            t["dram_misses"] += 1
            self.loads += 1
            self.dram_evictions += 1 if r.get("dram_evicted") else 0
            load = r.get("load") or {}
            self.loaded_bytes += int(load.get("bytes", 0))
            self.load_energy_j += float(load.get("energy_j", 0.0))
        else:
            t["dram_hits"] += 1

    def result(self, replay: bool = True) -> dict:
        """The summary dict (docs/LOGS.md). With ``replay`` (the end of a run) the fifo replay is finished with
        whatever is still held, in seq order, and reported; without it (a snapshot mid-run) nothing changes."""
        while replay and self._held:
            self._next_seq = min(self._held)
            self._drain()
        n = self.ok
        out: dict = {
            "policy": self.policy,
            "requests": self.requests,
            "ok": n,
            "errors": self.requests - n,
            "swaps": self.swaps,
            "slot_hits": n - self.swaps,
            "energy_j_total": self.energy_j,
            "energy_per_inference_j": self.energy_j / n if n else None,
            "inference_energy_per_inference_j": self.inference_energy_j / n if n else None,
            "swap_energy_j_total": self.swap_energy_j,
            "idle_energy_j_total": self.idle_energy_j,
            "idle_s_total": self.idle_s,
            "sim_latency_s": {"p50": self.sim_latency.percentile(50), "p99": self.sim_latency.percentile(99),
                              "mean": self.sim_latency.mean},
            "host_latency_s": {"p50": self.host_latency.percentile(50), "p99": self.host_latency.percentile(99),
                               "mean": self.host_latency.mean},
            "energy_by_component_j": dict(self.components),
            "dram_packs": self.dram_packs,  # the DRAM tier's bound (None: every pack in DRAM from the start)
            "dram_loads": self.loads,  # packs read from disk into DRAM (each a priced DRAM write)
            "loaded_bytes_total": self.loaded_bytes,
            "load_energy_j_total": self.load_energy_j,
            "sram_evictions": self.sram_evictions,
            "dram_evictions": self.dram_evictions,
            "residency_by_task": {t: dict(v) for t, v in sorted(self.by_task.items())},
        }
        if self.exit_layers:
            k = sum(self.exit_layers.values())
            out["early_exit"] = {"exit_layer_histogram": {str(x): self.exit_layers[x] for x in sorted(self.exit_layers)},
                                 "mean_exit_layer": sum(x * c for x, c in self.exit_layers.items()) / k,
                                 "latency_target_misses": self.target_misses}
        if replay and self.swap_cost is not None and n:
            # the idle time between arrivals is the stream's, not the policy's: both carry the same idle energy
            fifo_e, fifo_swaps = self.fifo_energy_j + self.idle_energy_j, self._cache.slots.swaps
            out["fifo_baseline"] = {"swaps": fifo_swaps, "dram_loads": self._cache.dram.loads if self.dram_packs
                                    is not None else 0, "energy_j_total": fifo_e,
                                    "energy_per_inference_j": fifo_e / n, "sim_latency_s_total": self.fifo_latency_s}
            out["saved_vs_fifo"] = {
                "swaps": fifo_swaps - self.swaps,
                "energy_j": fifo_e - self.energy_j,
                "energy_fraction": (fifo_e - self.energy_j) / fifo_e if fifo_e > 0 else 0.0,
            }
        return out


def summarize(
    records: Iterable[dict],
    swap_cost: Callable[[str], tuple[float, float]] | None = None,
    slots: int = 1,
    pinned: Sequence[str] = (),
    policy: str = "fifo",
    dram_packs: int | None = None,
    load_cost: Callable[[str], tuple[float, float]] | None = None,
) -> dict:
    """Summary of a session's response records (ok and error ones, in served order); see
    :class:`SummaryAccumulator`. Energy per inference counts the swaps the inferences caused (the paper's MTI
    energy/inference)."""
    acc = SummaryAccumulator(swap_cost, slots, pinned, policy, dram_packs=dram_packs, load_cost=load_cost)
    for r in records:
        acc.add(r)
    return acc.result()


def format_summary(s: dict) -> str:
    """A few human lines (the CLI prints these; the JSON is in the log)."""
    def ms(x: float | None) -> str:  # engineering units: 1.698 ms, 2.792 mJ, never 2791.560 uJ
        return "n/a" if x is None else si(x, "s")

    def uj(x: float | None) -> str:
        return "n/a" if x is None else si(x, "J")

    lines = [
        f"requests {s['requests']} (ok {s['ok']}, errors {s['errors']}), policy {s['policy']}, "
        f"swaps {s['swaps']}, slot hits {s['slot_hits']}",
        f"energy per inference {uj(s['energy_per_inference_j'])} (inference only "
        f"{uj(s['inference_energy_per_inference_j'])}; swaps {uj(s['swap_energy_j_total'])} in total)",
        *([f"DRAM tier (at most {s['dram_packs']} packs): {s['dram_loads']} loads from disk "
           f"({s['loaded_bytes_total']} B, {uj(s['load_energy_j_total'])}), {s['dram_evictions']} evictions"]
          if s.get("dram_packs") is not None else []),
        f"simulated latency p50 {ms(s['sim_latency_s']['p50'])} p99 {ms(s['sim_latency_s']['p99'])}; "
        f"host latency p50 {ms(s['host_latency_s']['p50'])} p99 {ms(s['host_latency_s']['p99'])}",
    ]
    if "early_exit" in s:
        x = s["early_exit"]
        lines.append(f"early exit: mean exit layer {x['mean_exit_layer']:.2f}, histogram {x['exit_layer_histogram']}, "
                     f"latency-target misses {x['latency_target_misses']}")
    if "fifo_baseline" in s:
        f, sv = s["fifo_baseline"], s["saved_vs_fifo"]
        lines.append(f"vs fifo on the same stream: fifo swaps {f['swaps']}, energy/inference "
                     f"{uj(f['energy_per_inference_j'])}; saved {sv['swaps']} swaps, "
                     f"{uj(sv['energy_j'])} ({100 * sv['energy_fraction']:.1f}%)")
    return "\n".join(lines)
