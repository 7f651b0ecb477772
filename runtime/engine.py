"""The inference engine: a build loaded into the emulated HMA, run on onnxruntime, charged by the hardware model.

``Engine.open(build)`` programs the backbone images into RRAM (charged once: :attr:`Engine.program_cost`),
writes every pack into DRAM (or none, with a bound: runtime/tiers.py), decodes the backbone from what the RRAM returns (faults applied) and bakes it into
the graph's initializers. ``engine.infer(task, text, text_pair)`` tokenizes, makes the task's pack resident in
SRAM (a swap on a slot miss: DRAM -> SRAM copy, charged, slot rebound; the session is never rebuilt), runs the
graph and charges the request with the hardware model's cost of one inference at its sequence length plus the
swap (and, with a bound on the DRAM tier, the load from disk) it caused.

The engine composes its parts, one idea each: :mod:`~edgemti.runtime.feeds` (texts -> graph inputs, the priced
bucket), :mod:`~edgemti.runtime.tiers` and :mod:`~edgemti.runtime.residency` (where packs live: disk, DRAM, SRAM,
and their bindings), :mod:`~edgemti.runtime.charge` (what a run costs), :mod:`~edgemti.runtime.answer` (the
answer) and :mod:`~edgemti.runtime.repository` (tasks added and removed at run time).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemti.errors import ConfigError, FormatError, RequestError, UnknownTaskError
from edgemti.formats.build import Build, open_build
from edgemti.formats.graph import load_graph
from edgemti.hwmodel.spec import ArchSpec, load_spec
from edgemti.runtime.answer import InferResult, cost_dict, prediction
from edgemti.runtime.charge import RunCharger
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.feeds import RequestEncoder, load_tokenizer
from edgemti.runtime.hma import Hma, capacities_from_spec
from edgemti.runtime.repository import TaskRepository, hw_model
from edgemti.runtime.request import OVERLONG_POLICIES, Request, RequestRules, error_response
from edgemti.runtime.residency import PackResidency
from edgemti.runtime.session import GraphSession, bind_initializers
from edgemti.runtime.tiers import PackStore, PackTiers, Placement
from edgemti.runtime.tokenize import Encoded

log = logging.getLogger(__name__)


@dataclass
class EngineStats:
    requests: int = 0
    batches: int = 0
    # the most recent swaps' host times only: a long-running server's memory stays flat
    host_swap_s: deque[float] = field(default_factory=lambda: deque(maxlen=1024))


class Engine(TaskRepository):
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
        self.tiers = PackTiers(hma, PackStore(build), residency, session)
        self.fault = fault
        self._threads = threads
        self._spin = spin
        self.max_seq_len = self.manifest.compile.max_seq_len
        self.encoder = RequestEncoder(tokenizer, self.max_seq_len, overlong, seq_bucket)
        self.seq_bucket = seq_bucket
        tasks = tuple(self.manifest.tasks)
        self.rules = RequestRules(tasks=tasks, pair_tasks=tuple(p.task for p in self.manifest.packs if "text_pair" in p.text_fields),
                                  overlong=overlong)
        self._placement = Placement.hit("")  # what the most recent make_resident did
        self.charger = RunCharger(hw)  # prices runs and placements, keeps the accelerator's clock
        self.stats = EngineStats()
        self.program_cost = cost_dict(hw.program_rram())

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
        hw = hw_model(m, graph, spec)
        images = {name: b.image_bytes(name) for name in ("rram_mlc", "rram_slc", *(("dram",) if dram_packs is None
                                                                                   else ()))}
        hma = Hma(m, images, capacities_from_spec(spec), activation_bytes=_activation_bytes(hw, m), fault=fault)
        backbone = hma.read_backbone()
        session = GraphSession(bind_initializers(graph, backbone), threads=threads,
                               output=m.graph.get("output", "logits"), spin=spin)
        tokenizer = load_tokenizer(b.path, m)
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
        self.tiers.rebind(self.session)

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
        """(energy J, latency s) of swapping ``task``'s pack into SRAM (the summary's fifo replay)."""
        c = self.charger.swap(task)
        return float(c.energy_j), float(c.latency_s)

    def load_cost(self, task: str) -> tuple[float, float]:
        """(energy J, latency s) of loading ``task``'s pack from disk into DRAM (the summary's fifo replay)."""
        c = self.charger.price_load_counts(self.manifest.pack(task).length)
        return float(c.energy_j), float(c.latency_s)

    def placement_costs(self, p: Placement | None = None) -> tuple[Any, Any]:
        """(swap cost, load cost) of placement ``p`` (default: the most recent), each a hardware-model ``Cost``
        priced from the counted bytes (:mod:`edgemti.runtime.charge`), or None where nothing moved."""
        return self.charger.placement_costs(p or self._placement)

    def tokenize(self, text: str, text_pair: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """int64 ``[1, n]`` data inputs (``n`` the token count) and whether the text was truncated (overlong='reject'
        raises); priced at :meth:`bucket` of ``n`` (:mod:`edgemti.runtime.feeds`)."""
        return self.encoder.tokenize(text, text_pair)

    def require_task(self, task: str) -> None:
        """:class:`UnknownTaskError` unless this build serves ``task``."""
        if task not in self.rules.tasks:
            raise UnknownTaskError(f"unknown task {task!r}: this build serves {list(self.rules.tasks)}")

    def encode_request(self, task: str, text: str, text_pair: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """One request's checks (a task this build serves, a non-empty text), then :meth:`tokenize`."""
        self.require_task(task)
        if not isinstance(text, str) or not text.strip():
            raise RequestError("text is empty: send some text")
        return self.tokenize(text, text_pair)

    def bucket(self, n_tokens: int) -> int:
        """The sequence length a request of ``n_tokens`` is priced at (the accelerator's tiles)."""
        return self.encoder.bucket(n_tokens)

    def warm(self, tasks: tuple[str, ...] | None = None, max_batch: int = 1) -> int:
        """Price every (task, bucket, batch size <= ``max_batch``) now, so no request pays the first pricing (a cold
        entry is tens of ms of host time for MiniLM); returns the entries priced."""
        lengths = sorted({self.bucket(n) for n in range(1, self.max_seq_len + 1)})
        n = 0
        for t in tasks or self.rules.tasks:
            self.charger.swap(t)
            for L in lengths:
                for b in range(1, max(1, int(max_batch)) + 1):
                    self.hw.inference(L, t, batch=b)
                    n += 1
        return n

    def make_resident(self, task: str) -> tuple[bool, str | None, float]:
        """Ensure ``task``'s pack is in an SRAM slot (loading it from disk into DRAM first when the DRAM tier does
        not hold it): (swapped, evicted task, host seconds spent). :attr:`last_placement` tells the rest."""
        self.require_task(task)
        t0 = time.perf_counter()
        self._placement = Placement.hit(task)
        # count first, then price: what the load and the DMA did, as the memories counted it (tiers undo a failure)
        placement = self._placement = self.tiers.make_resident(self.manifest.pack(task))
        if not placement.swapped:
            return False, None, 0.0
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

    def pack_tensors(self, task: str) -> dict[str, np.ndarray]:
        """The resident pack's decoded tensors (the arrays its graph inputs are bound to); call after
        :meth:`make_resident` (runtime/early_exit.py feeds them to its per-layer stages)."""
        return self.tiers.tensors(task)

    def run_ids(self, task: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits ``[batch, num_labels]`` for ready-made int64 inputs (swapping the pack in if needed)."""
        self.make_resident(task)
        return self.session.run(task, feeds)

    def infer(self, task: str, text: str, text_pair: str | None = None) -> InferResult:
        """Serve one request; see :class:`InferResult`."""
        t0 = time.perf_counter()
        feeds, truncated = self.encode_request(task, text, text_pair)
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
        swapped, evicted, host_swap = self.make_resident(task)
        placement = self._placement
        t1 = time.perf_counter()
        logits = self.session.run(task, feeds)
        t2 = time.perf_counter()
        n_rows, run_len = (int(x) for x in feeds["input_ids"].shape)
        seq_len = self.bucket(run_len)  # priced at the bucket the accelerator would run
        # the first row carries idle, load and swap (serial, then the run); the others the run's share alone
        c = self.charger.run(task, seq_len, n_rows, placement, t0)
        share, first = c.share, c.first
        idle = dict(cost_dict(c.idle), idle_s=c.idle_s) if c.idle is not None else None
        inf, swap = cost_dict(share), (cost_dict(c.swap) if c.swap is not None else None)
        load = dict(cost_dict(c.load), bytes=placement.dram_written_bytes) if c.load is not None else None
        pack = self.manifest.pack(task)
        tokens = feeds["attention_mask"].sum(axis=1)
        out = []
        for i in range(n_rows):
            row_swap, total = (swap, first) if i == 0 else (None, share)
            energy, latency = float(total.energy_j), float(total.latency_s)
            comp = {k: float(v) for k, v in total.energy_by_component_j.items()}
            row = logits[i]
            label, scores = prediction(pack, row)
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
        self.require_task(task)
        out: list[dict | None] = [None] * len(reqs)
        rows: list[tuple[int, Encoded, bool]] = []
        for i, r in enumerate(reqs):
            try:
                if not isinstance(r.text, str) or not r.text.strip():
                    raise RequestError("text is empty: send some text")
                enc, truncated = self.encoder.encode(r.text, r.text_pair)
                rows.append((i, enc, truncated))
            except RequestError as exc:
                out[i] = error_response(r.id, exc)
        if rows:
            length = max(len(enc.ids) for _, enc, _ in rows)  # run at the longest row; priced at its bucket
            feeds = self.encoder.pad([enc for _, enc, _ in rows], length)
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


def _activation_bytes(hw, manifest) -> int:
    """SRAM bytes the activations need at the build's max_seq_len, as the hardware model sizes them."""
    f = getattr(hw, "activation_peak_bytes", None)
    if not callable(f):
        raise FormatError("the hardware model exposes no activation size; cannot reserve SRAM for activations")
    return int(f())
