"""The pack tiers' I/O: disk -> DRAM -> SRAM, doing what :class:`edgemti.runtime.residency.PackResidency` decides.

* the disk tier is the build's pack images, the files its manifest lists (:class:`PackStore`): a pack loaded from
  disk is read from its span of the image (only those bytes) and checked against the manifest's sha256 before it
  is placed, so a pack corrupted on disk is a :class:`FormatError` for the request that needed it, never wrong
  answers, and the server keeps serving the other packs;
* the DRAM tier is the emulated DRAM (:class:`edgemti.runtime.hma.Hma`, region ``pack:<task>``): a load is a
  counted DRAM write of exactly the pack's bytes, priced by the hardware model as a DRAM write;
* the SRAM tier is the pack slots (region ``slot:<task>``): a swap is the counted DMA DRAM -> SRAM, as before.

:class:`PackTiers` runs one access: frees what the policy evicted, loads from disk on a DRAM miss, swaps into SRAM,
and returns a :class:`Placement` with the bytes each memory counted (count first, then price). A step that fails
is undone so the tiers and the memories agree (the packs it evicted stay evicted: those evictions completed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np

from edgemti.errors import EdgemtiError, FormatError, UnknownTaskError
from edgemti.formats.build import Build, open_build
from edgemti.formats.manifest import PackEntry
from edgemti.runtime.hma import Hma, PackLoader
from edgemti.runtime.memory import DRAM, SRAM
from edgemti.runtime.residency import PackResidency
from edgemti.runtime.session import GraphSession

log = logging.getLogger(__name__)


class PackStore:
    """The disk tier: reads one pack's bytes from the build's pack image file, sha256-checked."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.loads = 0
        self.bytes_read = 0

    def adopt(self, build: Build) -> None:
        """Read from a newer manifest of the same build (packs appended: :mod:`edgemti.runtime.reload`)."""
        self.build = build

    def read(self, pack: PackEntry) -> bytes:
        """``pack``'s bytes as the image on disk holds them; :class:`FormatError` when they are not the manifest's.

        ``compile --add-pack`` replaces the image file under a new name (the old one is removed once the manifest
        names the new one): when the served manifest's file is gone, the folder's current manifest is read and its
        file is used, if it is the served build with packs added and holds this very pack entry."""
        path = self.build.file(self.build.manifest.images[pack.image].file)
        if not path.is_file():
            path = self._current_file(pack)
        try:
            with open(path, "rb") as fh:
                fh.seek(pack.offset)
                data = fh.read(pack.length)
        except OSError as exc:
            raise FormatError(f"pack {pack.task!r}: cannot read it from {path.name}: {exc.strerror}") from None
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != pack.length or digest != pack.sha256:
            end = pack.offset + pack.length
            raise FormatError(f"pack {pack.task!r} on disk ({path.name} bytes {pack.offset}..{end}): {len(data)} bytes with sha256 {digest[:12]}..., the manifest says {pack.length} "
                              f"bytes, {pack.sha256[:12]}...: the pack image is corrupt; this task cannot be served "
                              "until the build is repaired (recompile it, or add the pack again)")
        self.loads += 1
        self.bytes_read += len(data)
        return data

    def _current_file(self, pack: PackEntry):
        from edgemti.runtime.reload import extension_problems

        folder = self.build.path
        try:
            now = open_build(folder, verify=False)
        except EdgemtiError as exc:
            raise FormatError(f"pack {pack.task!r}: the image file of the served build is gone and the build folder "
                              f"cannot be read ({exc})") from None
        problems = extension_problems(self.build.manifest, now.manifest)
        if problems or pack.task not in now.manifest.tasks or now.manifest.pack(pack.task) != pack:
            raise FormatError(f"pack {pack.task!r}: the image file of the served build is gone and {folder} now "
                              f"holds another build ({', '.join(problems) or 'other pack entries'} differ): restart "
                              "the server to serve it")
        return now.file(now.manifest.images[pack.image].file)


@dataclass(frozen=True)
class Placement:
    """What making one task's pack resident did, as the memories counted it (0 bytes where nothing moved)."""

    task: str
    swapped: bool  # copied DRAM -> SRAM (an SRAM miss)
    evicted: str | None  # the pack whose SRAM slot it took
    loaded: bool = False  # read from disk into DRAM first (a DRAM miss)
    dram_evicted: str | None = None  # the pack evicted from DRAM for it (it leaves SRAM too, if there)
    dram_read_bytes: int = 0  # the swap's DMA
    sram_written_bytes: int = 0
    dram_written_bytes: int = 0  # the load from disk
    host_load_s: float = 0.0  # wall time of the disk read + DRAM write

    @staticmethod
    def hit(task: str) -> Placement:
        return Placement(task, swapped=False, evicted=None)


class PackTiers:
    """Runs :class:`PackResidency`'s decisions on the HMA and the pack store (module docstring), and keeps each
    resident pack's dequantized tensors bound to the graph session (:class:`edgemti.runtime.hma.PackLoader`)."""

    def __init__(self, hma: Hma, store: PackStore, residency: PackResidency, session: GraphSession) -> None:
        self.hma = hma
        self.store = store
        self.residency = residency
        self.session = session
        self.loaders: dict[str, PackLoader] = {}

    def make_resident(self, pack: PackEntry) -> Placement:
        """Make ``pack`` resident in SRAM and its tensors bound: :meth:`place`, then the datapath's dequantizer
        refills the task's staging buffer from the pack's bytes as they sit in SRAM. The OrtValues and binding of a
        task are made once over its staging views, so a swap is one copy plus one dequantization. A failure undoes
        it all (:meth:`abandon`)."""
        placement, raw = self.place(pack)
        if raw is None:
            return placement
        task = pack.task
        try:
            loader = self.loaders.get(task)
            if loader is None:
                loader = self.loaders[task] = PackLoader(pack)
                loader.load(raw)
                self.session.bind_pack(task, loader.views)  # OrtValues over the staging views: made once per task
            else:
                loader.load(raw)  # same buffers, new contents from SRAM: the binding stays valid
        except BaseException:
            self.abandon(task)
            raise
        return placement

    def abandon(self, task: str) -> None:
        """A swap-in of ``task`` failed part way: undo it (slot, SRAM region, loader, binding), so ``task`` is as if
        it had never been resident and its next request tries again (and fails the same way, never with a stale
        slot). The pack it evicted stays evicted, and a pack it loaded into DRAM stays there: those completed."""
        self.unplace(task, dram=False)
        self.loaders.pop(task, None)
        self.session.unbind(task)

    def remove(self, task: str) -> bool:
        """``task`` was unloaded: out of both tiers and both memories, its binding dropped; True if it was in SRAM.
        A pinned task cannot be removed (:class:`ConfigError` from the policy)."""
        resident = self.residency.slots.discard(task)
        self.residency.dram.discard(task)
        self.hma.remove_pack(task)
        self.session.unbind(task)
        self.loaders.pop(task, None)
        return resident

    def rebind(self, session: GraphSession) -> None:
        """Bind every loaded pack's staging views to a new session (the backbone was re-read: a fault sweep)."""
        self.session = session
        for task, loader in self.loaders.items():
            session.bind_pack(task, loader.views)

    def tensors(self, task: str) -> dict[str, np.ndarray]:
        """The resident pack's decoded tensors (the arrays its graph inputs are bound to)."""
        if task not in self.loaders or not self.residency.slots.peek(task):
            raise UnknownTaskError(f"task {task!r} is not resident in SRAM: make it resident first")
        return dict(self.loaders[task].views)

    def place(self, pack: PackEntry) -> tuple[Placement, np.ndarray | None]:
        """Make ``pack`` resident in SRAM; the placement and, when it was swapped in, its SRAM bytes."""
        task = pack.task
        acc = self.residency.access(task)
        if not acc.swapped:
            return Placement.hit(task), None
        mem = self.hma.mem
        for gone in (acc.sram.evicted, acc.dropped):  # SRAM slots first: a DRAM eviction may hold one
            if gone is not None and f"slot:{gone}" in mem[SRAM]:
                mem[SRAM].free(f"slot:{gone}")
        dram_evicted = acc.dram.evicted if acc.dram is not None else None
        if dram_evicted is not None:
            self.hma.remove_pack(dram_evicted)
            log.debug("pack %s evicted from DRAM for %s", dram_evicted, task)
        written, host_load = 0, 0.0
        if acc.loaded:
            t0 = time.perf_counter()
            try:
                dram0 = mem[DRAM].counts()
                self.hma.add_pack(pack, self.store.read(pack))
                written = (mem[DRAM].counts() - dram0).bytes_written
            except BaseException:
                self.unplace(task, dram=True)
                raise
            assert written == pack.length, "a load writes exactly the pack's bytes into DRAM"  # STYLE rule 7
            host_load = time.perf_counter() - t0
        try:
            dram0, sram0 = mem[DRAM].counts(), mem[SRAM].counts()
            _, raw = self.hma.swap_in(task)
            read = (mem[DRAM].counts() - dram0).bytes_read
            sram_written = (mem[SRAM].counts() - sram0).bytes_written
        except BaseException:
            self.unplace(task, dram=False)
            raise
        return Placement(task, True, acc.sram.evicted, acc.loaded, dram_evicted, read, sram_written, written,
                         host_load), raw

    def unplace(self, task: str, dram: bool) -> None:
        """Undo a placement of ``task`` that failed: out of SRAM, and out of DRAM too when ``dram`` (its load
        failed, or the caller gives up on it)."""
        self.residency.forget(task, dram=dram)
        mem = self.hma.mem
        if f"slot:{task}" in mem[SRAM]:
            mem[SRAM].free(f"slot:{task}")
        if dram and f"pack:{task}" in mem[DRAM]:
            mem[DRAM].free(f"pack:{task}")

    def resident(self) -> dict[str, list[str]]:
        """Tasks whose pack is in each tier now (least recently used first)."""
        return {"sram": self.residency.slots.resident, "dram": self.residency.dram.resident}
