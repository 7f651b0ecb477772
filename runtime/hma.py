"""A build laid out in the emulated heterogeneous memory: RRAM programmed once, packs in DRAM, slots in SRAM.

* ``rram_mlc`` / ``rram_slc`` images are programmed into RRAM-MLC / RRAM-SLC at load (one write per cell, counted)
  and only read afterwards, through the fault model if one is set;
* every task pack is written into DRAM (its own region, ``pack:<task>``), or, with a bound on the DRAM tier, only
  the packs loaded from disk on demand (:mod:`edgemti.runtime.tiers`);
* SRAM holds an ``activations`` region (the working set of one inference at the build's maximum sequence
  length, as the hardware model sizes it) and one region per resident pack (``slot:<task>``);
* a swap copies a pack DRAM -> SRAM (a counted DMA of exactly the pack's bytes) and returns the SRAM bytes the
  graph binds to.

Capacities come from the architecture spec; anything that does not fit raises :class:`CapacityError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgemti.errors import CapacityError, FormatError
from edgemti.formats.bitmask import decode, mask_bits
from edgemti.formats.manifest import Manifest, PackEntry, TensorEntry
from edgemti.formats.quant import QFormat, codes_from_bytes, dequantize, packed_nbytes
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.memory import DRAM, RRAM_MLC2, RRAM_SLC, SRAM, MemorySystem, Region

SPEC_LEVELS = {SRAM: "sram", DRAM: "dram", RRAM_SLC: "rram_slc", RRAM_MLC2: "rram_mlc"}


def capacities_from_spec(spec) -> dict[str, int]:
    """``spec.capacities_bytes()`` of an :class:`edgemti.hwmodel.spec.ArchSpec`, keyed by the emulator's levels."""
    caps = spec.capacities_bytes()
    return {lv: caps[name] for lv, name in SPEC_LEVELS.items()}


class Hma:
    """The memory system holding one build."""

    def __init__(self, manifest: Manifest, images: Mapping[str, bytes], capacities_bytes: Mapping[str, int],
                 activation_bytes: int = 0, fault: FaultModel | None = None) -> None:
        self.manifest = manifest
        self.mem = MemorySystem(dict(capacities_bytes))
        self.fault = fault
        for image, level in (("rram_mlc", RRAM_MLC2), ("rram_slc", RRAM_SLC)):
            data = images[image]
            try:
                region = self.mem[level].allocate(image, len(data))
            except CapacityError as exc:
                raise CapacityError(f"backbone image {image} ({len(data)} B) does not fit {level}: {exc}") from None
            self.mem[level].program(region, data)
        if fault is not None and fault.active:
            self.mem[RRAM_MLC2].read_filter = fault
            self.mem[RRAM_SLC].read_filter = fault
        dram = images.get("dram")  # None: packs are placed on demand (a bound on the DRAM tier, runtime/tiers.py)
        if dram is not None:
            for p in manifest.packs:
                region = self.mem[DRAM].allocate(f"pack:{p.task}", p.length)
                self.mem[DRAM].write(region, dram[p.offset:p.offset + p.length])
        self.activations = self.mem[SRAM].allocate("activations", int(activation_bytes))

    # -- backbone ------------------------------------------------------------------------------------------------
    def read_backbone(self) -> dict[str, np.ndarray]:
        """Decode every backbone tensor from what the RRAM returns (faults applied), as float32 arrays."""
        mlc = self.mem[RRAM_MLC2].read(self.mem[RRAM_MLC2].region("rram_mlc"))
        slc = self.mem[RRAM_SLC].read(self.mem[RRAM_SLC].region("rram_slc"))
        faulty = self.fault is not None and self.fault.active
        out = {}
        for t in self.manifest.tensors:
            values = mlc[t.values.offset:t.values.end]
            mask = slc[t.mask.offset:t.mask.end]
            out[t.name] = decode_faulty(t, values, mask) if faulty else decode(values, mask, t.shape, t.format)
        return out

    # -- packs ---------------------------------------------------------------------------------------------------
    def pack_nbytes(self, task: str) -> int:
        return self.manifest.pack(task).length

    def swap_in(self, task: str, evict: str | None = None) -> tuple[Region, np.ndarray]:
        """Copy ``task``'s pack DRAM -> SRAM (after freeing ``evict``'s slot); the SRAM region and its bytes."""
        if evict is not None:
            self.mem[SRAM].free(f"slot:{evict}")
        p = self.manifest.pack(task)
        src = self.mem[DRAM].region(f"pack:{task}")
        try:
            dst = self.mem[SRAM].allocate(f"slot:{task}", p.length)
        except CapacityError as exc:
            raise CapacityError(f"pack {task!r} does not fit SRAM next to the activations and resident packs: "
                                f"{exc}") from None
        moved = self.mem[DRAM].copy_to(src, self.mem[SRAM], dst)
        assert moved == p.length, "a swap moves exactly the pack's bytes"  # STYLE rule 7
        return dst, self.mem[SRAM].view(dst)

    def add_pack(self, pack: PackEntry, data: bytes) -> Region:
        """Write a pack into DRAM (its own region): one added at run time, or one loaded from disk on demand; RRAM
        is neither written nor read."""
        if len(data) != pack.length or hashlib.sha256(data).hexdigest() != pack.sha256:
            raise FormatError(f"pack {pack.task!r}: {len(data)} bytes with sha256 "
                              f"{hashlib.sha256(data).hexdigest()[:12]}..., the manifest says {pack.length} bytes, "
                              f"{pack.sha256[:12]}...: the DRAM image is corrupt, add the pack again")
        try:
            region = self.mem[DRAM].allocate(f"pack:{pack.task}", pack.length)
        except CapacityError as exc:
            raise CapacityError(f"pack {pack.task!r} does not fit DRAM next to the packs already there: "
                                f"{exc}") from None
        self.mem[DRAM].write(region, data)
        return region

    def remove_pack(self, task: str) -> None:
        """Free ``task``'s DRAM region and SRAM slot, those it has."""
        if f"slot:{task}" in self.mem[SRAM]:
            self.mem[SRAM].free(f"slot:{task}")
        if f"pack:{task}" in self.mem[DRAM]:
            self.mem[DRAM].free(f"pack:{task}")

    def verify_pack(self, task: str, sram_bytes: np.ndarray) -> None:
        p = self.manifest.pack(task)
        digest = hashlib.sha256(sram_bytes.tobytes()).hexdigest()
        if digest != p.sha256:
            raise FormatError(f"pack {task!r} in SRAM has sha256 {digest[:12]}..., manifest says {p.sha256[:12]}...")


_NATIVE_CODES = {8: "<i1", 16: "<i2", 32: "<i4"}


class PackLoader:
    """One task's pack as the graph sees it: a float32 staging buffer (the datapath's dequantizer output) with
    one view per tensor. :meth:`load` refills it from the pack's bytes *as they sit in SRAM* on every swap-in.

    The buffer and its views live as long as the engine, so the OrtValues bound over them are made once per task;
    a swap is then one DMA copy plus one vectorised dequantization (one ufunc call when, as the compiler writes
    them, the pack's tensors share a byte-aligned format and lie back to back).
    """

    def __init__(self, pack: PackEntry) -> None:
        self.pack = pack
        total = sum(t.numel for t in pack.tensors)
        self.staging = np.empty(total, dtype=np.float32)
        self.views: dict[str, np.ndarray] = {}
        pos = 0
        self._slices = []
        for t in pack.tensors:
            self.views[t.name] = self.staging[pos:pos + t.numel].reshape(tuple(t.shape))
            self._slices.append((t, pos))
            pos += t.numel
        fmts = {t.format for t in pack.tensors}
        self.fmt: QFormat | None = fmts.pop() if len(fmts) == 1 else None
        contiguous = all(t.offset == sum(u.length for u in pack.tensors[:i]) for i, t in enumerate(pack.tensors))
        self._fast = (self.fmt is not None and contiguous and
                      ((self.fmt.kind == "fixed" and self.fmt.bits in _NATIVE_CODES) or self.fmt.kind == "float"))

    def load(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Dequantize ``raw`` (the pack's bytes, e.g. a view of its SRAM region) into the staging buffer."""
        n = self.staging.size
        if self._fast:
            fmt = self.fmt
            assert fmt is not None
            if fmt.kind == "fixed":
                codes = np.frombuffer(raw, dtype=_NATIVE_CODES[fmt.bits], count=n)
                np.multiply(codes, np.float32(fmt.scale), out=self.staging, casting="unsafe")
            else:
                np.copyto(self.staging, np.frombuffer(raw, dtype=fmt.float_dtype, count=n), casting="unsafe")
            return self.views
        for t, pos in self._slices:
            codes = codes_from_bytes(raw[t.offset:t.offset + t.length], t.numel, t.format)
            self.staging[pos:pos + t.numel] = dequantize(codes, t.format).reshape(-1)
        return self.views


def pack_arrays(pack: PackEntry, raw: np.ndarray, loader: PackLoader | None = None) -> dict[str, np.ndarray]:
    """The pack's tensors as float32 arrays decoded from ``raw`` (its bytes); reuses ``loader``'s buffers."""
    return (loader or PackLoader(pack)).load(raw)


def decode_faulty(t: TensorEntry, values: bytes, mask: bytes) -> np.ndarray:
    """Decode as the accelerator's bitmask decoder would from faulty cells: walk the mask, take values in order.

    A flipped mask bit misaligns every later value of the tensor (the paper's reason to keep masks in SLC):
    extra ones consume values meant for later positions (and zeros once the tensor's values run out); missing
    ones leave the tail values unused. Padding bits of the last mask byte are never read.
    """
    fmt: QFormat = t.format
    if len(values) != packed_nbytes(t.nnz, fmt):
        raise FormatError(f"tensor {t.name}: {len(values)} value bytes for nnz {t.nnz}")
    pad = (-t.numel) % 8
    raw = np.frombuffer(mask, dtype=np.uint8)
    if pad:
        raw = raw.copy()
        raw[-1] &= np.uint8((1 << (8 - pad)) - 1)
    bits = mask_bits(raw.tobytes(), t.numel)
    vals = dequantize(codes_from_bytes(values, t.nnz, fmt), fmt)
    pos = np.flatnonzero(bits)
    k = min(pos.size, vals.size)
    out = np.zeros(t.numel, dtype=np.float32)
    out[pos[:k]] = vals[:k]
    return out.reshape(t.shape)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def build_spec(b: Any, spec_path: str | Path | None = None, fit: bool = False) -> tuple[Any, list[str]]:
    """The one rule by which every command that prices a build (serve, report, faults, demo) gets its spec.

    ``b`` is an opened build (:func:`edgemti.formats.build.open_build`); the spec is ``spec_path`` (default: the
    shipped spec of the build's design). With ``fit``, any on-chip level too small for this build is raised to the
    next power of two that holds it: a chip sized for the build's backbone (MiniLM's 30 k-word embeddings outgrow
    the shipped specs, sized for ALBERT). Without it, a build that outgrows the spec is the hardware model's
    :class:`CapacityError`. Returns (spec, one line per change)."""
    from edgemti.formats.graph import load_graph
    from edgemti.hwmodel.spec import LEVELS, load_spec
    from edgemti.runtime.workload import hw_model

    m = b.manifest
    spec = load_spec(spec_path, design=m.design)
    if not fit:
        return spec, []
    roomy = spec.with_overrides({f"{lv}.capacity_bytes": max(spec.memory(lv).capacity_bytes,
                                                             4 * m.images[lv].size_bytes + (1 << 20))
                                 for lv in ("rram_mlc", "rram_slc")} | {"sram.capacity_bytes": 1 << 34})
    req = hw_model(m, load_graph(b.graph_bytes()), roomy).requirements()
    overrides, changes = {}, []
    for lv, need in req.items():
        if lv not in LEVELS:  # the PE array's buffers are sized from their need, not from a capacity to raise
            continue
        cap = spec.memory(lv).capacity_bytes
        if need > cap:
            overrides[f"{lv}.capacity_bytes"] = _pow2_at_least(need)
            changes.append(f"{lv} {cap / 2**20:.2f} MiB -> {_pow2_at_least(need) / 2**20:.2f} MiB "
                           f"(this build needs {need / 2**20:.2f} MiB)")
    return (spec.with_overrides(overrides) if overrides else spec), changes


def fit_spec(build: str | Path, spec_path: str | Path | None = None) -> tuple[Any, list[str]]:
    """:func:`build_spec` of the build folder ``build`` with ``fit``: the spec sized to the build."""
    from edgemti.formats.build import open_build

    return build_spec(open_build(build, verify=False), spec_path, fit=True)
