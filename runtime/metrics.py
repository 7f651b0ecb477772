"""Prometheus metrics of one server: requests, swaps, residency per tier, simulated energy and latency, host
latency, queue, batches.

Each :class:`ServerMetrics` owns its own ``CollectorRegistry`` (never the process-global one), so two servers in
one process (tests, a benchmark) count separately. The HTTP transport feeds it one record per answer
(:meth:`ServerMetrics.observe`, the same dict the log gets) and one call per engine run
(:meth:`ServerMetrics.observe_batch`); ``GET /metrics`` renders :meth:`ServerMetrics.render`.

Names follow the Prometheus conventions: counters end in ``_total``, units are base SI units in the name
(``_seconds``, ``_joules``). Simulated quantities (what the modelled accelerator would spend) carry ``simulated``
in the name; ``host`` ones are wall time on this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
NO_TASK = "none"  # the task label of an answer to a body that named no servable task
# simulated latencies of an edge accelerator: tens of microseconds to tens of milliseconds
SIM_LATENCY_BUCKETS_S = (2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25)
# host wall time from arrival to answer (queueing included): a millisecond to tens of seconds
HOST_LATENCY_BUCKETS_S = (1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
EXIT_LAYER_BUCKETS = tuple(range(1, 25))  # early exit: the layer an answer left at (ALBERT-large has 24)
TIERS = ("sram", "dram")  # the pack tiers a request looks a pack up in (runtime/residency.py); disk always holds it


class ServerMetrics:
    """The metrics of one server. ``queue_depth`` and ``resident`` are read at scrape time (callbacks)."""

    def __init__(self, tasks: Iterable[str], queue_depth: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("edgemti_requests_total", "Requests answered, by task and HTTP status code.",
                                ("task", "status"), registry=r)
        self.swaps = Counter("edgemti_swaps_total", "Pack swaps (DRAM -> SRAM) caused, by the task swapped in.",
                             ("task",), registry=r)
        self.energy = Counter("edgemti_simulated_energy_joules_total",
                              "Simulated accelerator energy of answered requests (inference + swaps), by task and "
                              "hardware component.", ("task", "component"), registry=r)
        self.sim_latency = Histogram("edgemti_simulated_latency_seconds",
                                     "Simulated accelerator latency per request (swap + run).", ("task",),
                                     buckets=SIM_LATENCY_BUCKETS_S, registry=r)
        self.host_latency = Histogram("edgemti_host_latency_seconds",
                                      "Host wall time per request from arrival to answer (queueing included).",
                                      ("task",), buckets=HOST_LATENCY_BUCKETS_S, registry=r)
        self.batch_size = Histogram("edgemti_batch_size", "Requests per engine run (one onnxruntime run).",
                                    ("task",), buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.exit_layer = Histogram("edgemti_exit_layer", "Early exit: the layer each answer exited at.", ("task",),
                                    buckets=EXIT_LAYER_BUCKETS, registry=r)
        self.target_misses = Counter("edgemti_latency_target_misses_total",
                                     "Early exit with DVFS: answers whose simulated latency missed the target.",
                                     ("task",), registry=r)
        self.queue = Gauge("edgemti_queue_depth", "Requests waiting for the engine.", registry=r)
        self.resident = Gauge("edgemti_pack_resident", "1 while the task's pack sits in an SRAM slot, else 0.",
                              ("task",), registry=r)
        self.resident_packs = Gauge("edgemti_resident_packs", "Task packs resident in SRAM slots.", registry=r)
        self.draining = Gauge("edgemti_draining", "1 while the server drains (stops taking requests), else 0.",
                              registry=r)
        # residency tiers: SRAM slots, then DRAM (looked up on an SRAM miss), then the pack image on disk
        self.tier_packs = Gauge("edgemti_tier_resident_packs", "Task packs resident in each tier (sram, dram).",
                                ("tier",), registry=r)
        self.tier_pack = Gauge("edgemti_tier_pack_resident", "1 while the task's pack is in the tier, else 0.",
                               ("task", "tier"), registry=r)
        self.tier_hits = Counter("edgemti_tier_hits_total", "Pack lookups that found the pack in the tier: SRAM on "
                                 "every answer, DRAM on an SRAM miss.", ("task", "tier"), registry=r)
        self.tier_misses = Counter("edgemti_tier_misses_total", "Pack lookups that missed the tier (SRAM: a swap "
                                   "from DRAM; DRAM: a load from disk).", ("task", "tier"), registry=r)
        self.tier_loads = Counter("edgemti_tier_loads_total", "Packs loaded into the tier (sram: swaps from DRAM; "
                                  "dram: loads from disk).", ("tier",), registry=r)
        self.tier_evictions = Counter("edgemti_tier_evictions_total", "Packs evicted from the tier to make room.",
                                      ("tier",), registry=r)
        self.disk_bytes = Counter("edgemti_disk_loaded_bytes_total", "Pack bytes read from disk into DRAM.",
                                  registry=r)
        if queue_depth is not None:
            self.queue.set_function(lambda: float(queue_depth()))
        for t in tasks:
            self.resident.labels(task=t).set(0)
            self.swaps.labels(task=t)  # every task shows up from the first scrape, at 0
            for tier in TIERS:
                self.tier_hits.labels(task=t, tier=tier)
                self.tier_misses.labels(task=t, tier=tier)
        for tier in TIERS:
            self.tier_loads.labels(tier=tier)
            self.tier_evictions.labels(tier=tier)

    def observe(self, record: dict, status: int) -> None:
        """Count one answer: ``record`` is the response as logged (ok or error), ``status`` its HTTP code."""
        task = record.get("task") or NO_TASK
        self.requests.labels(task=task, status=str(status)).inc()
        if not record.get("ok"):
            return
        if record.get("swapped"):
            self.swaps.labels(task=task).inc()
        self._observe_tiers(task, record)
        for component, joules in (record.get("energy_by_component_j") or {}).items():
            if joules > 0:
                self.energy.labels(task=task, component=component).inc(float(joules))
        if record.get("latency_s") is not None:
            self.sim_latency.labels(task=task).observe(float(record["latency_s"]))
        if record.get("exit_layer") is not None:
            self.exit_layer.labels(task=task).observe(int(record["exit_layer"]))
            if record.get("latency_target_met") is False:
                self.target_misses.labels(task=task).inc()
        host_s = float(record.get("queue_s") or 0.0) + float(record.get("loop_s") or 0.0)
        self.host_latency.labels(task=task).observe(host_s)

    def _observe_tiers(self, task: str, record: dict) -> None:
        """The tiers one answer looked its pack up in: SRAM always, DRAM on an SRAM miss (module TIERS)."""
        if not record.get("swapped"):
            self.tier_hits.labels(task=task, tier="sram").inc()
            return
        self.tier_misses.labels(task=task, tier="sram").inc()
        self.tier_loads.labels(tier="sram").inc()
        if record.get("evicted"):
            self.tier_evictions.labels(tier="sram").inc()
        if not record.get("loaded"):
            self.tier_hits.labels(task=task, tier="dram").inc()
            return
        self.tier_misses.labels(task=task, tier="dram").inc()
        self.tier_loads.labels(tier="dram").inc()
        if record.get("dram_evicted"):
            self.tier_evictions.labels(tier="dram").inc()
        self.disk_bytes.inc(int((record.get("load") or {}).get("bytes", 0)))

    def observe_batch(self, task: str, size: int, resident: dict[str, bool],
                      in_dram: dict[str, bool] | None = None) -> None:
        """One engine run of ``size`` requests of ``task``; ``resident``: every task -> pack in SRAM now;
        ``in_dram``: every task -> pack in DRAM now."""
        self.batch_size.labels(task=task).observe(size)
        self.set_resident(resident, in_dram)

    def set_resident(self, resident: dict[str, bool], in_dram: dict[str, bool] | None = None) -> None:
        for t, r in resident.items():
            self.resident.labels(task=t).set(1 if r else 0)
        self.resident_packs.set(sum(1 for r in resident.values() if r))
        for tier, where in (("sram", resident), ("dram", in_dram)):
            if where is None:
                continue
            for t, r in where.items():
                self.tier_pack.labels(task=t, tier=tier).set(1 if r else 0)
            self.tier_packs.labels(tier=tier).set(sum(1 for r in where.values() if r))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)
