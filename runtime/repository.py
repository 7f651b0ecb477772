"""Tasks added and removed at run time (no RRAM writes): the engine's task repository.

``edgemti compile --add-pack`` appends a pack to a build on disk; :meth:`TaskRepository.load_task` then serves it
from the running engine (``POST /v2/repository/models/<task>/load``), when the build on disk is the served one with
packs added (:func:`edgemti.runtime.reload.extension_problems`), and :meth:`TaskRepository.unload_task` stops
serving one. :class:`edgemti.runtime.engine.Engine` takes these methods from here; they act on its public state
(request rules, manifest, HMA, pack tiers, hardware model, charger) between runs, from the thread that runs it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from edgemti.errors import ConfigError, EdgemtiError, FormatError, UnknownTaskError
from edgemti.formats.build import Build, open_build
from edgemti.formats.graph import load_graph
from edgemti.runtime.reload import extension_problems
from edgemti.runtime.request import RequestRules
from edgemti.runtime.tiers import PackStore

log = logging.getLogger(__name__)


class TaskRepository:
    """Load and unload tasks on a running engine (the attributes below are the engine's)."""

    build: Build
    manifest: Any
    spec: Any
    hw: Any
    hma: Any
    rules: RequestRules
    tiers: Any
    slots: Any
    dram: Any
    charger: Any

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
            return {"task": task, "loaded": False, "build_id": self.manifest.build_id, "pack_bytes": 0}
        b = open_build(self.build.path, verify=True)
        m = b.manifest
        changed = extension_problems(self.manifest, m)
        if changed:
            raise FormatError(f"{self.build.path} now holds another build ({m.build_id[:12]}), not the served build "
                              f"{self.manifest.build_id[:12]} with packs added: {', '.join(changed)} differ; "
                              "refusing to load from it (restart the server to serve that build)")
        pack = m.pack(task)  # UnknownTaskError when the build has no such task
        data = PackStore(b).read(pack)  # checks the bytes first: a corrupt pack leaves the engine as it was
        if not self.dram.bounded:  # every pack in DRAM: this one too, now; with a bound it loads on first use
            self.hma.add_pack(pack, data)
            self.dram.admit(task)
        self._adopt(b)
        self.rules = dataclasses.replace(self.rules, tasks=(*self.rules.tasks, task), pair_tasks=(
            *self.rules.pair_tasks, *((task,) if "text_pair" in pack.text_fields else ())))
        log.info("task %s loaded: %d B pack %s, build %s", task, pack.length,
                 "read from disk on first use" if self.dram.bounded else "in DRAM", self.manifest.build_id[:12])
        return {"task": task, "loaded": True, "build_id": self.manifest.build_id, "pack_bytes": pack.length}

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
        resident = self.tiers.remove(task)
        self.rules = dataclasses.replace(self.rules, tasks=tuple(t for t in self.rules.tasks if t != task),
                                         pair_tasks=tuple(t for t in self.rules.pair_tasks if t != task))
        log.info("task %s unloaded (was resident in SRAM: %s)", task, resident)
        return {"task": task, "unloaded": True, "was_resident": resident}

    def _adopt(self, b: Build) -> None:
        """Switch to a newer manifest of the same build (same backbone and graph): re-price with its packs."""
        self.build = b
        self.manifest = b.manifest
        self.hma.manifest = b.manifest
        self.tiers.store.adopt(b)
        self.hw = hw_model(b.manifest, load_graph(b.graph_bytes()), self.spec)
        self.charger.adopt(self.hw)


def hw_model(manifest, graph, spec):
    """The hardware model of a build (one place: the engine's start and a task added at run time)."""
    from edgemti.runtime.workload import hw_model as model  # the hardware model is heavy to import; only here

    return model(manifest, graph, spec)
