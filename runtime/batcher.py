"""Dynamic batching per task, with the semantics of Triton's ``dynamic_batcher``: which queued requests run together.

A batch holds requests of one task only (one pack bound, one onnxruntime run); the swap-aware scheduler still
picks *which* task runs next (runtime/scheduler.py), and this policy decides *how many* of that task's queued
requests go with it:

* as soon as ``max_batch_size`` requests of the task are queued, they run now (a full batch never waits);
* otherwise the batch waits for more until the oldest of them has waited ``max_queue_delay_s`` since it arrived,
  then runs with what is there (``max_queue_delay_s = 0``: never wait, take what has arrived);
* ``max_batch_size = 1`` is batching off: one request per run, no waiting (today's behaviour).

Like the scheduler, the policy is pure: it sees counts and a wait time, never a clock or a queue, so the HTTP
loop, the stdin loop and tests drive it the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgemti.errors import ConfigError


@dataclass(frozen=True)
class BatchingConfig:
    """``max_batch_size`` requests per run (1 = off); ``max_queue_delay_s`` the longest a partial batch's oldest
    request waits for company (seconds)."""

    max_batch_size: int = 1
    max_queue_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_size, int) or isinstance(self.max_batch_size, bool) \
                or self.max_batch_size < 1:
            raise ConfigError(f"BatchingConfig: max_batch_size must be an int >= 1, got {self.max_batch_size!r}")
        if not isinstance(self.max_queue_delay_s, (int, float)) or isinstance(self.max_queue_delay_s, bool) \
                or not 0.0 <= float(self.max_queue_delay_s) < float("inf"):
            raise ConfigError(f"BatchingConfig: max_queue_delay_s must be a finite number >= 0, got "
                              f"{self.max_queue_delay_s!r}")

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    def to_dict(self) -> dict:
        return {"max_batch_size": self.max_batch_size, "max_queue_delay_s": float(self.max_queue_delay_s)}


@dataclass(frozen=True)
class BatchDecision:
    """``take`` requests now (> 0), or none yet and look again after ``wait_s`` seconds (or when one arrives)."""

    take: int
    wait_s: float = 0.0

    @property
    def ready(self) -> bool:
        return self.take > 0


def decide(config: BatchingConfig, queued: int, oldest_wait_s: float, closing: bool = False) -> BatchDecision:
    """How many of ``queued`` same-task requests to run now, the oldest of which has waited ``oldest_wait_s``.

    ``closing``: no more requests will arrive (end of a stream, a draining server): never wait.
    """
    if queued < 1:
        raise ConfigError(f"decide: queued must be >= 1, got {queued}")
    full = min(queued, config.max_batch_size)
    if full == config.max_batch_size or closing:
        return BatchDecision(full)
    left = float(config.max_queue_delay_s) - max(0.0, float(oldest_wait_s))
    if left <= 0.0:
        return BatchDecision(full)
    return BatchDecision(0, left)


def same_task(pending: Sequence, head: int, limit: int | None = None) -> list[int]:
    """Indices into ``pending`` (oldest first; items have ``.task``) of ``pending[head]`` and the requests of its
    task queued after it, in arrival order, at most ``limit`` of them (default: all)."""
    task = pending[head].task
    out = [head]
    for i in range(head + 1, len(pending)):
        if limit is not None and len(out) >= limit:
            break
        if pending[i].task == task:
            out.append(i)
    return out
