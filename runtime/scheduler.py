"""Scheduling policies of the server loop: which pending request runs next.

* ``fifo``: arrival order.
* ``swap-aware``: look at the oldest ``window`` pending requests and run the oldest one whose task pack is
  already resident in SRAM (no swap); if none is, the oldest whose pack is in DRAM (a swap but no load from disk,
  when the DRAM tier is bounded: runtime/residency.py); else the oldest. The extra wait is bounded: a request that has
  been overtaken ``max_bypass`` times runs next whatever it costs, so no request waits more than
  ``max_bypass`` service times longer than under fifo, and none is starved.

Policies are pure: they see the pending queue and a ``resident(task) -> bool`` probe, nothing else, so the same
policy orders a file, a stdin stream or an HTTP queue, and :func:`plan` can replay a stream without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgemti.errors import ConfigError
from edgemti.runtime.slots import PackSlots

POLICIES = ("fifo", "swap-aware")


@dataclass(frozen=True)
class SchedulerConfig:
    """``policy`` name; ``window`` (requests looked at) and ``max_bypass`` (overtakes allowed) for swap-aware."""

    policy: str = "fifo"
    window: int = 8
    max_bypass: int = 8

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"SchedulerConfig: policy must be one of {POLICIES}, got {self.policy!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"SchedulerConfig: window must be an int >= 1, got {self.window!r}")
        if not isinstance(self.max_bypass, int) or self.max_bypass < 0:
            raise ConfigError(f"SchedulerConfig: max_bypass must be an int >= 0, got {self.max_bypass!r}")

    def to_dict(self) -> dict:
        return {"policy": self.policy, "window": self.window, "max_bypass": self.max_bypass}


class Scheduler:
    """Stateful picker: remembers how often each pending request (by ``seq``) has been overtaken."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self._bypassed: dict[int, int] = {}
        self.max_bypassed_seen = 0

    def pick(self, pending: Sequence, resident: Callable[[str], bool],
             in_dram: Callable[[str], bool] | None = None) -> int:
        """Index into ``pending`` (oldest first; items have ``.seq`` and ``.task``) of the request to run next;
        ``resident``: is a task's pack in SRAM; ``in_dram``: in DRAM (None: every pack is)."""
        if not pending:
            raise ConfigError("Scheduler.pick: no pending request")
        if self.config.policy == "fifo":
            return 0
        head = pending[0]
        choice = 0
        if self._bypassed.get(head.seq, 0) < self.config.max_bypass and not resident(head.task):
            for i, r in enumerate(pending[: self.config.window]):
                if resident(r.task):
                    choice = i
                    break
            else:
                if in_dram is not None and not in_dram(head.task):
                    for i, r in enumerate(pending[: self.config.window]):
                        if in_dram(r.task):
                            choice = i
                            break
        for r in pending[:choice]:
            n = self._bypassed.get(r.seq, 0) + 1
            self._bypassed[r.seq] = n
            self.max_bypassed_seen = max(self.max_bypassed_seen, n)
        self._bypassed.pop(pending[choice].seq, None)
        return choice


def plan(requests: Sequence, config: SchedulerConfig, slots: int = 1, pinned: Sequence[str] = ()) -> list:
    """The order a policy serves a stream that is all queued at once (a file), using real slot bookkeeping."""
    pending = list(requests)
    sched = Scheduler(config)
    cache = PackSlots(slots, pinned)
    out = []
    while pending:
        i = sched.pick(pending, cache.peek)
        r = pending.pop(i)
        cache.access(r.task)
        out.append(r)
    return out
