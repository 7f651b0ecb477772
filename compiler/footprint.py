"""Memory footprint of a build (per memory), the capacity check against an architecture spec, and Table III.

Footprint rules (docs/FOOTPRINT.md): MLC RRAM holds the backbone's non-zero values, SLC RRAM its bitmasks, SRAM
the largest task pack (the worst-case task the chip must hold, paper IV-C; activations are not counted here), DRAM
every pack. ``paper_mib`` reproduces the paper's Table III conventions (``TABLE3_CONVENTIONS``): MiB throughout,
MLC in NVSim's cell capacity (data bytes / 2 bits per cell), SLC and SRAM in data bytes (1 bit per cell).
The paper's figures are targets read from ``hwmodel/data/paper_fu2023.toml`` (``edgemti.hwmodel.targets``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from edgemti.errors import CapacityError
from edgemti.formats.manifest import Manifest

MIB = 1 << 20

TABLE3_CONVENTIONS = (
    "MiB (2**20 B) throughout: the paper's 'MB'",
    "MLC RRAM in NVSim's capacity convention: MiB of 2-bit cells = value bytes / 2 (3,906,048 embedding elements "
    "x 50 % x 4 B / 2 = 3.725 -> '3.73'); NVSim sizes MLC arrays by cells, so this is its convention, not an error",
    "SLC RRAM: one mask bit per backbone element, in bytes (1 bit per cell)",
    "SRAM: the largest task pack in bytes (1 bit per cell; activations not included)",
    "the paper's Q3.13 / Q3.5 rows are halvings of its rounded FP32 figure (Q3.5 zeros not removed)",
)


def paper_table3() -> dict[tuple[str, str], tuple[float, float, float]]:
    """The paper's Table III (targets, never results): (design, quant) -> (MLC, SLC, SRAM) in its units."""
    from edgemti.hwmodel.targets import paper_targets

    return {tuple(k.split("_", 1)): v for k, v in paper_targets().table3_mib.items()}  # type: ignore[misc]


@dataclass(frozen=True)
class Footprint:
    """Bytes each memory must hold for one build."""

    design: str
    quant: str
    tasks: tuple[str, ...]
    mlc_bytes: int
    slc_bytes: int
    sram_bytes: int
    sram_task: str
    dram_bytes: int
    backbone_numel: int
    backbone_nnz: int
    mlc_bits_per_cell: int = 2

    @property
    def mlc_cells(self) -> int:
        return self.mlc_bytes * 8 // self.mlc_bits_per_cell

    def paper_mib(self) -> tuple[float, float, float]:
        """(MLC, SLC, SRAM) in the paper's Table III conventions (``TABLE3_CONVENTIONS``): MLC in NVSim cells."""
        return (self.mlc_bytes / self.mlc_bits_per_cell / MIB, self.slc_bytes / MIB, self.sram_bytes / MIB)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(mlc_cells=self.mlc_cells, mlc_mib=self.mlc_bytes / MIB, slc_mib=self.slc_bytes / MIB,
                 sram_mib=self.sram_bytes / MIB, dram_mib=self.dram_bytes / MIB,
                 paper_convention_mib=dict(zip(("mlc", "slc", "sram"), self.paper_mib(), strict=True)))
        return d


def footprint(manifest: Manifest) -> Footprint:
    packs = manifest.packs
    largest = max(packs, key=lambda p: p.length) if packs else None
    return Footprint(
        design=manifest.design, quant=manifest.compile.quant, tasks=tuple(manifest.tasks),
        mlc_bytes=sum(t.values.length for t in manifest.tensors), slc_bytes=sum(t.mask.length for t in manifest.tensors),
        sram_bytes=largest.length if largest else 0, sram_task=largest.task if largest else "",
        dram_bytes=sum(p.length for p in packs), backbone_numel=sum(t.numel for t in manifest.tensors),
        backbone_nnz=sum(t.nnz for t in manifest.tensors),
        mlc_bits_per_cell=manifest.images["rram_mlc"].bits_per_cell)


def check_capacity(fp: Footprint, capacities: dict[str, int], origin: str = "architecture spec") -> None:
    """Raise :class:`CapacityError` naming every memory that overflows and by how much (bytes)."""
    need = {"rram_mlc": fp.mlc_bytes, "rram_slc": fp.slc_bytes, "sram": fp.sram_bytes, "dram": fp.dram_bytes}
    over = []
    for level, n in need.items():
        cap = capacities.get(level)
        if cap is not None and n > cap:
            what = f" (largest pack '{fp.sram_task}')" if level == "sram" else ""
            over.append(f"{level} needs {n / MIB:.3f} MiB{what}, has {cap / MIB:.3f} MiB: over by "
                        f"{(n - cap) / MIB:.3f} MiB ({n - cap} bytes)")
    if over:
        raise CapacityError(f"the {fp.design} build ({fp.quant}) does not fit the memories of {origin}: "
                            + "; ".join(over) + ". Raise the sparsity, use a narrower value format, give a larger spec, "
                            "or compile without the capacity check",
                            options=("sparsity_embedding", "sparsity_transformer", "quant", "spec", "capacity_check"))


def table3_rows(footprints: Iterable[Footprint]) -> list[dict]:
    """Table III layout: one row per (design, quant) with ours (paper convention and plain MiB) beside the paper."""
    rows = []
    for fp in footprints:
        mlc, slc, sram = fp.paper_mib()
        paper = paper_table3().get((fp.design, fp.quant))
        rows.append({
            "design": fp.design, "quant": fp.quant, "tasks": list(fp.tasks),
            "mlc_mib": round(mlc, 3), "slc_mib": round(slc, 3), "sram_mib": round(sram, 3),
            "mlc_data_mib": round(fp.mlc_bytes / MIB, 3), "mlc_cells": fp.mlc_cells,
            "paper_mlc": paper[0] if paper else None, "paper_slc": paper[1] if paper else None,
            "paper_sram": paper[2] if paper else None,
            "backbone_sparsity": round(1 - fp.backbone_nnz / fp.backbone_numel, 4) if fp.backbone_numel else 0.0,
        })
    return rows


def format_table3(rows: list[dict]) -> str:
    head = (f"{'design':8} {'quant':6} | {'MLC RRAM':>17} | {'SLC RRAM':>15} | {'SRAM':>15} | sparsity\n"
            f"{'':15} | {'ours':>8} {'paper':>8} | {'ours':>7} {'paper':>7} | {'ours':>7} {'paper':>7} |")
    lines = [head, "-" * len(head.splitlines()[0])]
    for r in rows:
        def p(v):
            return f"{v:>7.2f}" if v is not None else f"{'-':>7}"
        lines.append(f"{r['design']:8} {r['quant']:6} | {r['mlc_mib']:>8.2f} {p(r['paper_mlc']):>8} | "
                     f"{r['slc_mib']:>7.2f} {p(r['paper_slc'])} | {r['sram_mib']:>7.2f} {p(r['paper_sram'])} | "
                     f"{r['backbone_sparsity']:.3f}")
    lines.append("units: MiB; MLC in NVSim's cell capacity (value bytes / 2 bits per cell), SLC = mask bytes, "
                 "SRAM = largest task pack")
    return "\n".join(lines)


def plot_table3(rows: list[dict], path: str) -> str:
    """Grouped bars of MLC / SLC / SRAM, ours beside the paper's, one panel per memory (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['design']}\n{r['quant']}" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, title) in zip(axes, (("mlc", "MLC RRAM (NVSim cells)"), ("slc", "SLC RRAM"),
                                       ("sram", "SRAM (largest pack)")), strict=True):
        xs = range(len(rows))
        ours = [r[f"{key}_mib"] for r in rows]
        paper = [r[f"paper_{key}"] or 0.0 for r in rows]
        ax.bar([x - 0.2 for x in xs], ours, width=0.4, label="edgemti")
        ax.bar([x + 0.2 for x in xs], paper, width=0.4, label="paper Table III")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("MiB")
        if key == "sram":
            ax.set_yscale("log")
    axes[0].legend()
    fig.suptitle(f"Memory footprint, {', '.join(rows[0]['tasks'])}" if rows else "Memory footprint")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
