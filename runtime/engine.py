"""The inference engine: a build loaded into the emulated HMA, run on onnxruntime, charged by the hardware model.

``Engine.open(build)`` programs the backbone images into RRAM (charged once: :attr:`Engine.program_cost`),
writes every pack into DRAM, decodes the backbone from what the RRAM returns (faults applied) and bakes it into
the graph's initializers. ``engine.infer(task, text, text_pair)`` tokenizes, makes the task's pack resident in
SRAM (a swap on a slot miss: DRAM -> SRAM copy, charged, slot rebound; the session is never rebuilt), runs the
graph and charges the request with the hardware model's cost of one inference at its sequence length plus the
swap it caused.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemti.errors import ConfigError, EdgemtiError, FormatError, RequestError, UnknownTaskError
from edgemti.formats.build import Build, open_build
from edgemti.formats.graph import load_graph
from edgemti.hwmodel.spec import ArchSpec, load_spec
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.hma import Hma, PackLoader, capacities_from_spec
from edgemti.runtime.request import OVERLONG_POLICIES, Request, RequestRules, error_response
from edgemti.runtime.residency import PackResidency
from edgemti.runtime.session import DATA_INPUTS, GraphSession, bind_initializers
from edgemti.runtime.tiers import PackStore, PackTiers, Placement
from edgemti.runtime.tokenize import BuildTokenizer, Encoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferResult:
    """One served inference: prediction, simulated cost (inference + the swap it caused), host timing."""

    task: str
    label: str | float
    scores: list[float]
    logits: list[float]
    seq_len: int  # tokens priced: the run's length padded up to the sequence bucket (the accelerator's tiles)
    tokens: int  # the request's own tokens
    truncated: bool
    swapped: bool
    evicted: str | None
    inference: dict  # energy_j, latency_s, energy_by_component_j of the inference alone (its share of a batch's
    # energy, split evenly; the batch run's latency)
    swap: dict | None  # the same for the swap, or None on a slot hit
    energy_j: float
    latency_s: float
    energy_by_component_j: dict
    host_s: float  # wall time of the whole call (tokenize + swap + run + charge)
    host_run_s: float  # wall time of the onnxruntime run alone
    host_swap_s: float  # wall time of the host-side swap (copy + rebind), 0 on a hit
    host_charge_s: float  # wall time spent pricing and composing the costs
    batch_size: int = 1  # requests run together in one onnxruntime run (the energy of the run split over them)
    # the pack was read from disk into DRAM first (a DRAM miss: only with a bound on the DRAM tier), the pack
    # evicted from DRAM for it, and the load's cost (a DRAM write of the pack's bytes; ``bytes``), or None
    loaded: bool = False
    dram_evicted: str | None = None
    load: dict | None = None
    # the accelerator's idle time before this run (host arrival - the previous run's simulated end) and its cost
    # under the spec's power gating (hwmodel HwModel.idle), charged to the batch's first row; None: no idle time
    idle: dict | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _cost_dict(cost: Any) -> dict:
    return {"energy_j": float(cost.energy_j), "latency_s": float(cost.latency_s),
            "energy_by_component_j": {k: float(v) for k, v in dict(cost.energy_by_component_j).items()}}


@dataclass
class EngineStats:
    requests: int = 0
    batches: int = 0
    # the most recent swaps' host times only: a long-running server's memory stays flat
    host_swap_s: deque[float] = field(default_factory=lambda: deque(maxlen=1024))


class Engine:
    """Use :meth:`Engine.open`. Not thread-safe: one caller at a time (the server's worker thread)."""

    def __init__(self, build, spec: ArchSpec, hw, hma: Hma, session: GraphSession, tokenizer,
                 residency: PackResidency, overlong: str, fault: FaultModel | None, threads: int | None = None,
                 seq_bucket: int = 16, spin: bool = False) -> None:
        self.build = build
        self.manifest = build.manifest
        self.spec = spec
        self.hw = hw
        self.hma = hma
        self.session = session
        self.tokenizer = tokenizer
        self.residency = residency
        self.slots = residency.slots  # the SRAM tier
        self.dram = residency.dram  # the DRAM tier
        self.tiers = PackTiers(hma, PackStore(build), residency)
        self.fault = fault
        self._threads = threads
        self._spin = spin
        if not isinstance(seq_bucket, int) or seq_bucket < 0:
            raise ConfigError(f"seq_bucket must be an int >= 0 (0 or 1: no bucketing), got {seq_bucket!r}")
        self.seq_bucket = seq_bucket
        self._pad_id = int(tokenizer.pad_token_id)
        self.max_seq_len = self.manifest.compile.max_seq_len
        tasks = tuple(self.manifest.tasks)
        self.rules = RequestRules(tasks=tasks, pair_tasks=tuple(p.task for p in self.manifest.packs if "text_pair" in p.text_fields),
                                  overlong=overlong)
        self._loaders: dict[str, PackLoader] = {}
        self._placement = Placement.hit("")  # what the most recent make_resident did
        self._swap_cost: dict[str, Any] = {}
        self._busy_until: float | None = None  # host time the simulated accelerator finishes its last run
        self.stats = EngineStats()
        self.program_cost = _cost_dict(hw.program_rram())

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, build: str | Path, spec: ArchSpec | str | Path | None = None, slots: int = 1,
             fault: FaultModel | None = None, pinned: tuple[str, ...] = (), threads: int | None = None,
             overlong: str = "truncate", verify: bool = True, seq_bucket: int = 16, spin: bool = False,
             verify_key: str | Path | None = None, dram_packs: int | None = None) -> Engine:
        """Load ``build`` (a build folder) into the emulated HMA of ``spec`` (default: the shipped spec of the
        build's design) with ``slots`` SRAM pack slots (``pinned`` packs never evicted, in SRAM or DRAM);
        ``dram_packs``: at most this many packs in DRAM, loaded from disk on demand (None: every pack, placed at
        start; docs/RUNTIME.md "Residency tiers"); ``seq_bucket``: requests
        run padded to a multiple of this many tokens (0 = their exact length); ``spin``: onnxruntime's threads
        busy-wait between parallel sections (off by default, see :func:`edgemti.runtime.session.session_options`)."""
        if overlong not in OVERLONG_POLICIES:
            raise ConfigError(f"overlong must be one of {OVERLONG_POLICIES}, got {overlong!r}")
        b = open_build(build, verify=verify, verify_key=verify_key)  # verify_key: the build must be signed by it
        if not isinstance(spec, ArchSpec):
            spec = load_spec(spec, design=b.manifest.design)
        return cls.from_build(b, spec, slots=slots, fault=fault, pinned=pinned, threads=threads, overlong=overlong,
                              seq_bucket=seq_bucket, spin=spin, dram_packs=dram_packs)

    @classmethod
    def from_build(cls, b: Build, spec: ArchSpec, slots: int = 1, fault: FaultModel | None = None,
                   pinned: tuple[str, ...] = (), threads: int | None = None, overlong: str = "truncate",
                   seq_bucket: int = 16, spin: bool = False, dram_packs: int | None = None) -> Engine:
        """The engine of an opened build ``b`` (:func:`edgemti.formats.build.open_build`, checked there once) on
        the resolved ``spec``: nothing is opened or loaded again (a caller that sized the spec to the build hands
        both down). Options as :meth:`open`."""
        if overlong not in OVERLONG_POLICIES:
            raise ConfigError(f"overlong must be one of {OVERLONG_POLICIES}, got {overlong!r}")
        m = b.manifest
        unknown = [t for t in pinned if t not in m.tasks]
        if unknown:
            raise UnknownTaskError(f"cannot pin {unknown}: this build serves {m.tasks}")
        # no bound: every pack placed in DRAM now (no load cost); a bound: DRAM starts empty, packs come on demand
        residency = PackResidency(slots, dram_packs, pinned, dram_resident=m.tasks if dram_packs is None else ())
        graph = load_graph(b.graph_bytes())
        hw = _hw_model(m, graph, spec)
        images = {name: b.image_bytes(name) for name in ("rram_mlc", "rram_slc", *(("dram",) if dram_packs is None
                                                                                   else ()))}
        hma = Hma(m, images, capacities_from_spec(spec), activation_bytes=_activation_bytes(hw, m), fault=fault)
        backbone = hma.read_backbone()
        session = GraphSession(bind_initializers(graph, backbone), threads=threads,
                               output=m.graph.get("output", "logits"), spin=spin)
        tokenizer = _load_tokenizer(b.path, m)
        return cls(b, spec, hw, hma, session, tokenizer, residency, overlong, fault, threads, seq_bucket, spin)

    def set_fault(self, fault: FaultModel | None) -> None:
        """Re-read the backbone from RRAM through another fault model (a fault sweep's next point).

        The RRAM cells are not reprogrammed (errors are read-margin failures, not writes); the backbone is decoded
        again from what the cells now return and the session is rebuilt with it, resident packs rebound.
        """
        self.fault = fault
        active = fault if fault is not None and fault.active else None
        self.hma.fault = active
        for lv in ("RRAM_SLC", "RRAM_MLC2"):
            self.hma.mem[lv].read_filter = active
        backbone = self.hma.read_backbone()
        self.session = GraphSession(bind_initializers(load_graph(self.build.graph_bytes()), backbone),
                                    threads=self._threads, output=self.session.output, spin=self._spin)
        for task, loader in self._loaders.items():
            self.session.bind_pack(task, loader.views)

    # -- tasks added and removed at run time ----------------------------------------------------------------------
    def load_task(self, task: str) -> dict:
        """Serve ``task`` from now on, without a restart and without writing RRAM.

        Re-reads the build's manifest (verified): the task must be in it (``edgemti compile --add-pack`` appends
        it) and the build must be the one this engine serves, or it with packs added
        (:func:`edgemti.runtime.reload.extension_problems`): anything else -- a build recompiled into the folder,
        other packs, formats or tokenizer -- is refused with :class:`FormatError` and changes nothing (restart to
        serve it). On success the engine switches to the new manifest whole: its ``build_id`` is the new one (the
        log's records name it from then on). The task's pack is written into DRAM; it is swapped into SRAM on its
        first request like any pack. Call it from the thread that runs the engine, between batches. Loading a task
        that is already served is a no-op. Returns what was done (``loaded``, pack bytes, build id).
        """
        if task in self.rules.tasks:
            return {"task": task, "loaded": False, "build_id": self.build_id, "pack_bytes": 0}
        from edgemti.runtime.reload import extension_problems

        b = open_build(self.build.path, verify=True)
        m = b.manifest
        changed = extension_problems(self.manifest, m)
        if changed:
            raise FormatError(f"{self.build.path} now holds another build ({m.build_id[:12]}), not the served build "
                              f"{self.build_id[:12]} with packs added: {', '.join(changed)} differ; refusing to "
                              "load from it (restart the server to serve that build)")
        pack = m.pack(task)  # UnknownTaskError when the build has no such task
        data = PackStore(b).read(pack)  # checks the bytes first: a corrupt pack leaves the engine as it was
        if not self.dram.bounded:  # every pack in DRAM: this one too, now; with a bound it loads on first use
            self.hma.add_pack(pack, data)
            self.dram.admit(task)
        self._adopt(b)
        self.rules = dataclasses.replace(self.rules, tasks=(*self.rules.tasks, task), pair_tasks=(
            *self.rules.pair_tasks, *((task,) if "text_pair" in pack.text_fields else ())))
        log.info("task %s loaded: %d B pack %s, build %s", task, pack.length,
                 "read from disk on first use" if self.dram.bounded else "in DRAM", self.build_id[:12])
        return {"task": task, "loaded": True, "build_id": self.build_id, "pack_bytes": pack.length}

    @property
    def known_tasks(self) -> list[str]:
        """Every task of the build on disk, served or not (an added pack shows here before it is loaded)."""
        try:
            return open_build(self.build.path, verify=False).manifest.tasks
        except EdgemtiError:  # the folder is mid-change or gone: what this engine last read
            return list(self.manifest.tasks)

    def unload_task(self, task: str) -> dict:
        """Stop serving ``task``: its SRAM slot (if resident) and DRAM region are freed; the build is unchanged, so
        :meth:`load_task` serves it again. A pinned task cannot be unloaded."""
        if task not in self.rules.tasks:
            raise UnknownTaskError(f"task {task!r} is not loaded: this engine serves {list(self.rules.tasks)}")
        if task in self.slots.pinned:
            raise ConfigError(f"task {task!r} is pinned in SRAM; it cannot be unloaded while pinned")
        resident = self.slots.discard(task)
        self.dram.discard(task)
        self.hma.remove_pack(task)
        self.session.unbind(task)
        self._loaders.pop(task, None)
        self.rules = dataclasses.replace(self.rules, tasks=tuple(t for t in self.rules.tasks if t != task),
                                         pair_tasks=tuple(t for t in self.rules.pair_tasks if t != task))
        log.info("task %s unloaded (was resident in SRAM: %s)", task, resident)
        return {"task": task, "unloaded": True, "was_resident": resident}

    def _adopt(self, b) -> None:
        """Switch to a newer manifest of the same build (same backbone and graph): re-price with its packs."""
        self.build = b
        self.manifest = b.manifest
        self.hma.manifest = b.manifest
        self.tiers.store.adopt(b)
        self.hw = _hw_model(b.manifest, load_graph(b.graph_bytes()), self.spec)
        self._swap_cost.clear()

    # -- serving -------------------------------------------------------------------------------------------------
    @property
    def build_id(self) -> str:
        return self.manifest.build_id

    def is_resident(self, task: str) -> bool:
        return self.slots.peek(task)

    def in_dram(self, task: str) -> bool:
        """Is ``task``'s pack in the emulated DRAM now (the DRAM tier; always, without a bound)?"""
        return self.dram.peek(task)

    def swap_cost(self, task: str) -> tuple[float, float]:
        c = self._swap(task)
        return float(c.energy_j), float(c.latency_s)

    def price_swap_counts(self, dram_bytes_read: int, sram_bytes_written: int):
        """Price a swap from the bytes the memories counted (DRAM read, SRAM written) with the hardware model."""
        from edgemti.hwmodel.cost import ActionCounts

        return self.hw.price(ActionCounts(read_bits={"dram": 8.0 * dram_bytes_read},
                                          write_bits={"sram": 8.0 * sram_bytes_written}))

    def _swap(self, task: str):
        if task not in self._swap_cost:
            self._swap_cost[task] = self.hw.swap(task)
        return self._swap_cost[task]

    def tokenize(self, text: str, text_pair: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """int64 ``[1, n]`` data inputs (``n`` the token count) and whether the text was truncated (overlong='reject'
        raises).

        The host runs the real length; the simulated cost is priced at ``n`` rounded up to the engine's sequence
        bucket (``seq_bucket`` tokens, capped at ``max_seq_len``, :meth:`bucket`): the accelerator runs fixed-size
        tiles, and the cost table stays small (one entry per bucket and task). Padding the host run to the bucket
        as well cost ~20 % of HTTP throughput for the same answers (tools/bench_http.py).
        """
        enc, truncated = self._encode(text, text_pair)
        return self._pad([enc], len(enc.ids)), truncated

    def _encode(self, text: str, text_pair: str | None) -> tuple[Encoded, bool]:
        """Token ids of one request (truncated to ``max_seq_len``, or refused under overlong='reject')."""
        enc = self.tokenizer.encode(text, text_pair)
        n = len(enc.ids)
        if n <= self.max_seq_len:
            return enc, False
        if self.rules.overlong == "reject":
            raise RequestError(f"text is {n} tokens, over the build's max_seq_len {self.max_seq_len}: shorten "
                               "it, or serve with overlong texts truncated", options=("overlong",))
        return self.tokenizer.encode(text, text_pair, max_length=self.max_seq_len), True

    def _pad(self, rows: Sequence[Encoded], length: int) -> dict[str, np.ndarray]:
        """int64 ``[len(rows), length]`` data inputs, each row padded with the pad id and attention mask 0."""
        feeds = {k: np.zeros((len(rows), length), dtype=np.int64) for k in DATA_INPUTS}
        feeds["input_ids"].fill(self._pad_id)
        for i, enc in enumerate(rows):
            n = len(enc.ids)
            feeds["input_ids"][i, :n] = enc.ids
            feeds["attention_mask"][i, :n] = 1
            feeds["token_type_ids"][i, :n] = enc.type_ids
        return feeds

    def bucket(self, n_tokens: int) -> int:
        """The sequence length a request of ``n_tokens`` runs at (see :meth:`tokenize`)."""
        if self.seq_bucket <= 1:
            return n_tokens
        return min(self.max_seq_len, -(-n_tokens // self.seq_bucket) * self.seq_bucket)

    def warm(self, tasks: tuple[str, ...] | None = None, max_batch: int = 1) -> int:
        """Price every (task, bucket, batch size <= ``max_batch``) now, so no request pays the first pricing (a cold
        entry is tens of ms of host time for MiniLM); returns the entries priced."""
        lengths = sorted({self.bucket(n) for n in range(1, self.max_seq_len + 1)})
        n = 0
        for t in tasks or self.rules.tasks:
            self._swap(t)
            for L in lengths:
                for b in range(1, max(1, int(max_batch)) + 1):
                    self.hw.inference(L, t, batch=b)
                    n += 1
        return n

    def make_resident(self, task: str) -> tuple[bool, str | None, float]:
        """Ensure ``task``'s pack is in an SRAM slot (loading it from disk into DRAM first when the DRAM tier does
        not hold it): (swapped, evicted task, host seconds spent). :attr:`last_placement` tells the rest."""
        if task not in self.rules.tasks:
            raise UnknownTaskError(f"unknown task {task!r}: this build serves {list(self.rules.tasks)}")
        t0 = time.perf_counter()
        self._placement = Placement.hit(task)
        # count first, then price: what the load and the DMA did, as the memories counted it (tiers undo a failure)
        placement, raw = self.tiers.place(self.manifest.pack(task))
        self._placement = placement
        if raw is None:
            return False, None, 0.0
        try:
            loader = self._loaders.get(task)
            if loader is None:
                loader = self._loaders[task] = PackLoader(self.manifest.pack(task))
                loader.load(raw)
                self.session.bind_pack(task, loader.views)  # OrtValues over the staging views: made once per task
            else:
                loader.load(raw)  # same buffers, new contents from SRAM: the binding stays valid
        except BaseException:
            self._not_resident(task)
            raise
        dt = time.perf_counter() - t0
        self.stats.host_swap_s.append(dt)
        return True, placement.evicted, dt

    @property
    def last_placement(self) -> Placement:
        """What the most recent :meth:`make_resident` did (swap, load from disk, evictions, bytes counted)."""
        return self._placement

    @property
    def last_swap_counts(self) -> tuple[int, int]:
        """(DRAM bytes read, SRAM bytes written) of the most recent swap, as the memories counted them."""
        return self._placement.dram_read_bytes, self._placement.sram_written_bytes

    def price_load_counts(self, dram_bytes_written: int):
        """Price a load from disk from the bytes the DRAM counted: a DRAM write (the spec's
        ``dram.write_pj_per_bit``, its bandwidth and first-access latency); the storage read is not modelled."""
        from edgemti.hwmodel.cost import ActionCounts

        return self.hw.price(ActionCounts(write_bits={"dram": 8.0 * dram_bytes_written}))

    def load_cost(self, task: str) -> tuple[float, float]:
        """(energy J, latency s) of loading ``task``'s pack from disk into DRAM (the summary's fifo replay)."""
        c = self.price_load_counts(self.manifest.pack(task).length)
        return float(c.energy_j), float(c.latency_s)

    def placement_costs(self, p: Placement | None = None) -> tuple[Any, Any]:
        """(swap cost, load cost) of placement ``p`` (default: the most recent), each a hardware-model ``Cost``
        priced from the counted bytes, or None where nothing moved."""
        p = p or self._placement
        swap = self.price_swap_counts(p.dram_read_bytes, p.sram_written_bytes) if p.swapped else None
        return swap, (self.price_load_counts(p.dram_written_bytes) if p.loaded else None)

    def pack_tensors(self, task: str) -> dict[str, np.ndarray]:
        """The resident pack's decoded tensors (the arrays its graph inputs are bound to); call after
        :meth:`make_resident` (runtime/early_exit.py feeds them to its per-layer stages)."""
        if task not in self._loaders or not self.slots.peek(task):
            raise UnknownTaskError(f"task {task!r} is not resident in SRAM: make it resident first")
        return dict(self._loaders[task].views)

    def _not_resident(self, task: str) -> None:
        """A swap-in of ``task`` failed part way: undo it (slot, SRAM region, loader, binding), so the engine is as
        if ``task`` had never been resident and its next request tries the swap again (and fails the same way,
        never with a stale slot). The pack it evicted stays evicted: that swap-out had completed. A pack it
        loaded into DRAM stays there (that load completed)."""
        self.tiers.unplace(task, dram=False)
        self._loaders.pop(task, None)
        self.session.unbind(task)

    def run_ids(self, task: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits ``[batch, num_labels]`` for ready-made int64 inputs (swapping the pack in if needed)."""
        self.make_resident(task)
        return self.session.run(task, feeds)

    def infer(self, task: str, text: str, text_pair: str | None = None) -> InferResult:
        """Serve one request; see :class:`InferResult`."""
        t0 = time.perf_counter()
        if task not in self.rules.tasks:
            raise UnknownTaskError(f"unknown task {task!r}: this build serves {list(self.rules.tasks)}")
        if not isinstance(text, str) or not text.strip():
            raise RequestError("text is empty: send some text")
        feeds, truncated = self.tokenize(text, text_pair)
        return self.infer_ids(task, feeds, truncated=truncated, t0=t0)

    def infer_ids(self, task: str, feeds: dict[str, np.ndarray], truncated: bool = False,
                  t0: float | None = None) -> InferResult:
        """Serve one already-tokenized request (int64 ``[1, L]`` inputs): swap if needed, run, charge (priced at
        ``L``'s bucket)."""
        return self._run_batch(task, feeds, [truncated], t0)[0]

    def _run_batch(self, task: str, feeds: dict[str, np.ndarray], truncated: Sequence[bool],
                   t0: float | None = None) -> list[InferResult]:
        """One onnxruntime run over ``B`` rows of ``task`` (int64 ``[B, L]`` inputs), charged at batch ``B``.

        The run's energy is split evenly over its rows (the weights are read once per batch, which is why it falls
        per inference); every row waits for the whole run, so each carries the run's latency. A swap is caused by,
        and charged to, the batch's first row (the others find the pack resident).
        """
        t0 = time.perf_counter() if t0 is None else t0
        idle_s = max(0.0, t0 - self._busy_until) if self._busy_until is not None else 0.0
        swapped, evicted, host_swap = self.make_resident(task)
        placement = self._placement
        t1 = time.perf_counter()
        logits = self.session.run(task, feeds)
        t2 = time.perf_counter()
        from edgemti.hwmodel.cost import Cost

        n_rows, run_len = (int(x) for x in feeds["input_ids"].shape)
        seq_len = self.bucket(run_len)  # priced at the bucket the accelerator would run
        run = self.hw.inference(seq_len, task, batch=n_rows)  # cached per (task, seq_len, batch)
        share = Cost(run.energy_j / n_rows, run.latency_s,
                     {k: v / n_rows for k, v in run.energy_by_component_j.items()})
        swap_cost, load_cost = self.placement_costs(placement)
        # the first row carries the load and the swap (load, swap, then run: serial); the others the run's share
        first = share + swap_cost if swap_cost is not None else share
        if load_cost is not None:
            first = load_cost + first
        charge_idle = self.hw.spec.execution.charge_idle and idle_s > 0
        idle_cost = self.hw.idle(idle_s, None if swapped else task) if charge_idle else None
        if idle_cost is not None:  # idle (and any wake-up reload), then the run
            first = idle_cost + first
        self._busy_until = max(t0, self._busy_until or t0) + float(first.latency_s)
        idle = dict(_cost_dict(idle_cost), idle_s=idle_s) if idle_cost is not None else None
        inf, swap = _cost_dict(share), (_cost_dict(swap_cost) if swap_cost is not None else None)
        load = dict(_cost_dict(load_cost), bytes=placement.dram_written_bytes) if load_cost is not None else None
        pack = self.manifest.pack(task)
        tokens = feeds["attention_mask"].sum(axis=1)
        out = []
        for i in range(n_rows):
            row_swap, total = (swap, first) if i == 0 else (None, share)
            energy, latency = float(total.energy_j), float(total.latency_s)
            comp = {k: float(v) for k, v in total.energy_by_component_j.items()}
            row = logits[i]
            if pack.is_regression:
                label: str | float = float(row[0])
                scores = [float(row[0])]
            else:
                z = row.astype(np.float64) - float(np.max(row))
                p = np.exp(z) / np.exp(z).sum()
                scores = [float(x) for x in p]
                label = pack.labels[int(np.argmax(row))]
            out.append((label, scores, [float(x) for x in row], int(tokens[i]), row_swap, energy, latency, comp))
        t3 = time.perf_counter()
        self.stats.requests += n_rows
        self.stats.batches += 1
        return [InferResult(task=task, label=label, scores=scores, logits=lg, seq_len=seq_len, tokens=ntok,
                            truncated=bool(truncated[i]), swapped=swapped and i == 0,
                            evicted=evicted if i == 0 else None, inference=inf, swap=row_swap, energy_j=energy,
                            latency_s=latency, energy_by_component_j=comp, host_s=t3 - t0, host_run_s=t2 - t1,
                            host_swap_s=host_swap if i == 0 else 0.0, host_charge_s=t3 - t2, batch_size=n_rows,
                            idle=idle if i == 0 else None, loaded=placement.loaded and i == 0,
                            dram_evicted=placement.dram_evicted if i == 0 else None, load=load if i == 0 else None)
                for i, (label, scores, lg, ntok, row_swap, energy, latency, comp) in enumerate(out)]

    def infer_request(self, req: Request) -> dict:
        """A server response body for a validated request."""
        r = self.infer(req.task, req.text, req.text_pair)
        return dict({"id": req.id, "ok": True}, **r.to_dict())

    def infer_batch(self, reqs: Sequence[Request]) -> list[dict]:
        """Serve requests of one task in one onnxruntime run: one response body per request, in order, each with
        the fields of :meth:`infer_request` (and ``batch_size``).

        Rows are padded to the batch's longest row (priced at that length's sequence bucket). A request that cannot be tokenized (over-long under
        overlong='reject', empty text) gets its error response and the others are served; a batch that mixes tasks
        is refused (the swap-aware scheduler picks the task, the batcher only gathers that task's requests).
        """
        if not reqs:
            return []
        t0 = time.perf_counter()
        task = reqs[0].task
        tasks = sorted({r.task for r in reqs})
        if len(tasks) > 1:
            raise ConfigError(f"a batch runs one task's pack, got requests for {tasks}: batch per task")
        if task not in self.rules.tasks:
            raise UnknownTaskError(f"unknown task {task!r}: this build serves {list(self.rules.tasks)}")
        out: list[dict | None] = [None] * len(reqs)
        rows: list[tuple[int, Encoded, bool]] = []
        for i, r in enumerate(reqs):
            try:
                if not isinstance(r.text, str) or not r.text.strip():
                    raise RequestError("text is empty: send some text")
                enc, truncated = self._encode(r.text, r.text_pair)
                rows.append((i, enc, truncated))
            except RequestError as exc:
                out[i] = error_response(r.id, exc)
        if rows:
            length = max(len(enc.ids) for _, enc, _ in rows)  # run at the longest row; priced at its bucket
            feeds = self._pad([enc for _, enc, _ in rows], length)
            results = self._run_batch(task, feeds, [t for _, _, t in rows], t0)
            for (i, _, _), res in zip(rows, results, strict=True):
                out[i] = dict({"id": reqs[i].id, "ok": True}, **res.to_dict())
        return [o for o in out if o is not None]

    def log_header(self) -> dict:
        """What every serve log records about this engine (build, spec, slots, faults)."""
        return {"build_id": self.build_id, "design": self.manifest.design, "synthetic": self.manifest.synthetic,
                "backbone": self.manifest.backbone.get("name"), "tasks": list(self.rules.tasks),
                "compile": {k: getattr(self.manifest.compile, k) for k in ("quant", "max_seq_len", "cumulative_sparsity")},
                "spec": {"name": self.spec.name, "design": self.spec.design, "path": self.spec.path,
                         "sha256": self.spec.spec_hash()},
                "slots": self.slots.slots, "pinned": list(self.slots.pinned), "dram_packs": self.dram.max_packs,
                "overlong": self.rules.overlong,
                "fault": self.fault.to_dict() if self.fault else None, "program_rram": self.program_cost}

    def memory_report(self) -> dict:
        """Occupancy and access counts per memory level, plus slot statistics and RRAM programming."""
        counts = self.hma.mem.counts()
        return {"occupancy": self.hma.mem.occupancy(), "counts": {k: v.to_dict() for k, v in counts.items()},
                "slots": self.slots.stats(), "dram_tier": self.dram.stats(), "disk_loads": self.tiers.store.loads,
                "disk_bytes_read": self.tiers.store.bytes_read, "program_rram": self.program_cost,
                "rram_max_cell_writes": {lv: self.hma.mem[lv].max_cell_writes() for lv in ("RRAM_SLC", "RRAM_MLC2")}}


def _hw_model(manifest, graph, spec: ArchSpec):
    """The hardware model of a build (one place: :meth:`Engine.open` and a task added at run time)."""
    from edgemti.runtime.workload import hw_model  # the hardware model is heavy to import; only here

    return hw_model(manifest, graph, spec)


def _activation_bytes(hw, manifest) -> int:
    """SRAM bytes the activations need at the build's max_seq_len, as the hardware model sizes them."""
    f = getattr(hw, "activation_peak_bytes", None)
    if not callable(f):
        raise FormatError("the hardware model exposes no activation size; cannot reserve SRAM for activations")
    return int(f())


def _load_tokenizer(build: Path, manifest) -> BuildTokenizer:
    rel = manifest.backbone.get("tokenizer")
    if not rel:
        raise FormatError(f"{build}/manifest.json: backbone.tokenizer is null; the build cannot tokenize text "
                          "(recompile with a backbone that has a tokenizer)")
    path = build / rel
    if not path.is_dir():
        raise FormatError(f"{build}: tokenizer folder {rel!r} is missing; the build is incomplete, recompile it")
    return BuildTokenizer(path)
