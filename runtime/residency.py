"""Pack residency: which task packs sit in DRAM, and how the DRAM and SRAM tiers compose (pure policy, no bytes).

A pack lives on three tiers: the build's pack image on disk (always there), the emulated DRAM (a bounded number of
packs, LRU with pinning: :class:`DramPacks`) and the SRAM pack slots (:class:`edgemti.runtime.slots.PackSlots`).
The tiers are inclusive: a pack in SRAM is also in DRAM (it was copied from there), so evicting a pack from DRAM
drops it from SRAM too, and the DRAM bound must hold at least as many packs as there are SRAM slots.

:class:`PackResidency` composes the two, the way a cache hierarchy does: every request uses its task's pack; an
SRAM hit refreshes the pack in both tiers (so a pack hot in SRAM never ages out of DRAM); an SRAM miss is a swap,
and looks the pack up in DRAM: a DRAM hit swaps it from there, a DRAM miss first loads it from disk (evicting the
least recently used unpinned DRAM pack). Pinned packs are pinned in both tiers: never evicted once loaded, and
loaded on their first request like any pack (as the SRAM slots do). The engine does the I/O these decisions
name; the summary's fifo replay runs the same class over the served stream, so both agree by construction.

``max_packs=None`` (the default) is no bound: every pack of the build is placed in DRAM at start and never
evicted, exactly what the runtime did before the DRAM tier was a policy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from edgemti.errors import ConfigError
from edgemti.runtime.slots import PackSlots, SlotAccess


@dataclass(frozen=True)
class DramAccess:
    """Outcome of one DRAM lookup: ``hit`` (already in DRAM), else a load from disk evicting ``evicted`` (or None)."""

    task: str
    hit: bool
    evicted: str | None = None


class DramPacks:
    """At most ``max_packs`` packs in DRAM (None: no bound), LRU order; pinned packs are never evicted.

    Pinned packs count against the bound and one place always stays free for loading, so at most
    ``max_packs - 1`` packs can be pinned (more is refused here, naming the numbers)."""

    def __init__(self, max_packs: int | None = None, pinned: Iterable[str] = (), resident: Iterable[str] = ()) -> None:
        pinned = tuple(dict.fromkeys(pinned))
        if max_packs is not None and (not isinstance(max_packs, int) or isinstance(max_packs, bool)
                                      or max_packs < 1):
            raise ConfigError(f"DramPacks: max_packs must be an int >= 1 or None (no bound), got {max_packs!r}",
                              options=("dram_packs",))
        if max_packs is not None and pinned and len(pinned) >= max_packs:
            raise ConfigError(f"DramPacks: {len(pinned)} pinned pack(s) {list(pinned)} need max_packs >= "
                              f"{len(pinned) + 1} (pinned packs count against the bound and one place stays free "
                              f"for loading), got max_packs={max_packs}", options=("dram_packs", "pinned"))
        self.max_packs = max_packs
        self.pinned = pinned
        self._lru: OrderedDict[str, None] = OrderedDict()
        self.hits = self.misses = self.loads = self.evictions = 0
        for t in resident:
            self.admit(t)

    @property
    def bounded(self) -> bool:
        return self.max_packs is not None

    @property
    def resident(self) -> list[str]:
        """Tasks whose pack is in DRAM, least recently used first."""
        return list(self._lru)

    def __contains__(self, task: str) -> bool:
        return task in self._lru

    def peek(self, task: str) -> bool:
        """Is ``task``'s pack in DRAM now (no state change)?"""
        return task in self._lru

    def admit(self, task: str) -> None:
        """Record ``task``'s pack as placed in DRAM without a request (the unbounded start, a task loaded at run
        time with no bound): not a load, not counted. Refused when it would exceed the bound."""
        if task in self._lru:
            return
        if self.max_packs is not None and len(self._lru) >= self.max_packs:
            raise ConfigError(f"DramPacks: cannot place {task!r}: DRAM already holds {len(self._lru)} of "
                              f"max_packs={self.max_packs} packs", options=("dram_packs",))
        self._lru[task] = None

    def touch(self, task: str) -> None:
        """``task``'s pack was used from SRAM: refresh its DRAM recency (not a lookup, not counted)."""
        if task in self._lru:
            self._lru.move_to_end(task)

    def access(self, task: str) -> DramAccess:
        """Look ``task``'s pack up (an SRAM miss): a hit refreshes it; a miss loads it from disk, evicting the LRU
        unpinned pack when DRAM is full."""
        if task in self._lru:
            self._lru.move_to_end(task)
            self.hits += 1
            return DramAccess(task, hit=True)
        self.misses += 1
        self.loads += 1
        evicted = None
        if self.max_packs is not None and len(self._lru) >= self.max_packs:
            evicted = next(t for t in self._lru if t not in self.pinned)
            del self._lru[evicted]
            self.evictions += 1
        self._lru[task] = None
        return DramAccess(task, hit=False, evicted=evicted)

    def forget(self, task: str) -> None:
        """Undo a load that failed (a corrupt image on disk, DRAM exhausted): ``task`` is not in DRAM."""
        self._lru.pop(task, None)

    def discard(self, task: str) -> bool:
        """Forget ``task``'s pack (its task was unloaded); True if it was in DRAM. A pinned task cannot go."""
        if task in self.pinned:
            raise ConfigError(f"DramPacks: task {task!r} is pinned; it cannot be discarded")
        if task not in self._lru:
            return False
        del self._lru[task]
        return True

    def stats(self) -> dict:
        return {"max_packs": self.max_packs, "pinned": list(self.pinned), "resident": self.resident,
                "hits": self.hits, "misses": self.misses, "loads": self.loads, "evictions": self.evictions}


@dataclass(frozen=True)
class TierAccess:
    """What one use of ``task``'s pack asks of the tiers: the SRAM lookup, and on an SRAM miss the DRAM lookup.

    ``dropped``: a pack evicted from DRAM that was still in an SRAM slot (inclusion: it leaves SRAM too)."""

    task: str
    sram: SlotAccess
    dram: DramAccess | None = None
    dropped: str | None = None

    @property
    def swapped(self) -> bool:
        return not self.sram.hit

    @property
    def loaded(self) -> bool:
        return self.dram is not None and not self.dram.hit


class PackResidency:
    """The SRAM slots and the DRAM tier together (module docstring). ``pinned`` pins in both tiers."""

    def __init__(self, slots: int = 1, max_dram_packs: int | None = None, pinned: Iterable[str] = (),
                 dram_resident: Iterable[str] = ()) -> None:
        pinned = tuple(dict.fromkeys(pinned))
        self.slots = PackSlots(slots, pinned)
        if max_dram_packs is not None and isinstance(max_dram_packs, int) and max_dram_packs < slots:
            raise ConfigError(f"PackResidency: max_dram_packs={max_dram_packs} is below slots={slots}: a pack in "
                              "SRAM is also in DRAM (it is copied from there), so DRAM must hold at least as many "
                              "packs as there are SRAM slots", options=("dram_packs", "slots"))
        self.dram = DramPacks(max_dram_packs, pinned, dram_resident)

    @property
    def pinned(self) -> tuple[str, ...]:
        return self.slots.pinned

    def access(self, task: str) -> TierAccess:
        """Use ``task``'s pack: what to load, swap and evict (the caller does it, or undoes with :meth:`forget`)."""
        s = self.slots.access(task)
        if s.hit:
            self.dram.touch(task)
            return TierAccess(task, s)
        d = self.dram.access(task)
        dropped = None
        if d.evicted is not None and d.evicted in self.slots:
            self.slots.forget(d.evicted)
            dropped = d.evicted
        return TierAccess(task, s, d, dropped)

    def forget(self, task: str, dram: bool) -> None:
        """Undo an access whose swap failed: ``task`` leaves SRAM, and DRAM too when ``dram`` (its load failed)."""
        self.slots.forget(task)
        if dram:
            self.dram.forget(task)

    def stats(self) -> dict:
        return {"sram": self.slots.stats(), "dram": self.dram.stats()}
