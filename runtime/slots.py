"""SRAM pack slots: which task packs stay resident on chip, least-recently-used eviction, optional pinning.

The paper provisions SRAM for one pack (the largest) and swaps on every task change; more slots trade SRAM
capacity for fewer swaps. This module is pure bookkeeping (no bytes): the engine asks :meth:`PackSlots.access`
for a task and gets back whether it hit and which task, if any, it must evict to make room.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from edgemti.errors import ConfigError


@dataclass(frozen=True)
class SlotAccess:
    """Outcome of one access: ``hit`` (already resident), else the task evicted to make room (or None)."""

    task: str
    hit: bool
    evicted: str | None = None


class PackSlots:
    """``slots`` resident packs, LRU order; pinned tasks are never evicted (and take a slot each)."""

    def __init__(self, slots: int = 1, pinned: Iterable[str] = ()) -> None:
        pinned = tuple(dict.fromkeys(pinned))
        if not isinstance(slots, int) or slots < 1:
            raise ConfigError(f"PackSlots: slots must be an int >= 1, got {slots!r}")
        if len(pinned) >= slots and pinned:
            raise ConfigError(f"PackSlots: {len(pinned)} pinned pack(s) {list(pinned)} need at least "
                              f"{len(pinned) + 1} slots (one stays free for swapping), got slots={slots}")
        self.slots = slots
        self.pinned = pinned
        self._lru: OrderedDict[str, None] = OrderedDict()
        self.hits = self.misses = self.swaps = self.evictions = 0

    @property
    def resident(self) -> list[str]:
        """Resident tasks, least recently used first."""
        return list(self._lru)

    def __contains__(self, task: str) -> bool:
        return task in self._lru

    def access(self, task: str) -> SlotAccess:
        """Use ``task``'s pack: a hit refreshes it; a miss loads it (a swap), evicting the LRU unpinned pack."""
        if task in self._lru:
            self._lru.move_to_end(task)
            self.hits += 1
            return SlotAccess(task, hit=True)
        self.misses += 1
        self.swaps += 1
        evicted = None
        if len(self._lru) >= self.slots:
            evicted = next(t for t in self._lru if t not in self.pinned)
            del self._lru[evicted]
            self.evictions += 1
        self._lru[task] = None
        return SlotAccess(task, hit=False, evicted=evicted)

    def discard(self, task: str) -> bool:
        """Forget ``task``'s pack (its task was unloaded); True if it was resident. A pinned task cannot go."""
        if task in self.pinned:
            raise ConfigError(f"PackSlots: task {task!r} is pinned; it cannot be discarded")
        if task not in self._lru:
            return False
        del self._lru[task]
        return True

    def forget(self, task: str) -> None:
        """Undo an access whose load failed (pinned or not): ``task`` is not resident, its next access is a miss."""
        self._lru.pop(task, None)

    def peek(self, task: str) -> bool:
        """Would ``task`` hit now (no state change)?"""
        return task in self._lru

    def stats(self) -> dict:
        return {"slots": self.slots, "pinned": list(self.pinned), "resident": self.resident, "hits": self.hits,
                "misses": self.misses, "swaps": self.swaps, "evictions": self.evictions}


def count_swaps(tasks: Iterable[str], slots: int = 1, pinned: Iterable[str] = ()) -> int:
    """Swaps a task sequence causes on fresh slots (what a policy would cost, without running anything)."""
    s = PackSlots(slots, pinned)
    for t in tasks:
        s.access(t)
    return s.swaps
