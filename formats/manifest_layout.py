"""Checks across a manifest's entries: the formats the compile settings give, the regions laid out back to back,
no two regions sharing bytes. :mod:`edgemti.formats.manifest_schema` runs them once every entry parsed."""

from __future__ import annotations

from edgemti.formats.manifest import IMAGE_NAMES, CompileSection, ImageEntry, PackEntry, Span, TensorEntry


def format_problems(c: CompileSection, tensors: tuple[TensorEntry, ...], packs: tuple[PackEntry, ...]) -> list[str]:
    """Every tensor's declared format is the one the compile settings give (backbone: value_format, packs:
    pack_format): the compiler quantizes every tensor of a kind with one format."""
    out = [f"tensor {t.name}: format {t.format.name} is not the build's value_format {c.value_format.name}"
           for t in tensors if t.format != c.value_format]
    out += [f"pack {p.task} tensor {t.name}: format {t.format.name} is not the build's pack_format "
            f"{c.pack_format.name}" for p in packs for t in p.tensors if t.format != c.pack_format]
    return out[:10]


def layout_problems(images: dict[str, ImageEntry], tensors: tuple[TensorEntry, ...],
                     packs: tuple[PackEntry, ...]) -> list[str]:
    """The compiler lays regions out back to back in manifest order from offset 0 and each image ends with its last
    region: a span that moved (two tensors' spans swapped, a pack pointed at another's bytes) shows here."""
    out = []
    regions: list[tuple[str, str, list[tuple[str, Span]]]] = [
        ("rram_mlc", "values", [(f"tensor {t.name} values", t.values) for t in tensors]),
        ("rram_slc", "masks", [(f"tensor {t.name} mask", t.mask) for t in tensors]),
        ("dram", "packs", [(f"pack {p.task}", Span(p.image, p.offset, p.length)) for p in packs])]
    for image, kind, spans in regions:
        end = 0
        for name, s in spans:
            if s.offset != end:
                out.append(f"{name} starts at {image}[{s.offset}], the previous region ends at {end}: {kind} are "
                           "laid out back to back in manifest order")
                break
            end = s.end
        else:
            if image in images and images[image].size_bytes != end:
                out.append(f"image {image} is {images[image].size_bytes} bytes, its {kind} end at {end}")
    for p in packs:
        end = 0
        for t in p.tensors:
            if t.offset != end:
                out.append(f"pack {p.task} tensor {t.name} starts at {t.offset}, the previous one ends at {end}")
                break
            end = t.offset + t.length
        else:
            if end != p.length:
                out.append(f"pack {p.task}: its tensors end at {end}, the pack is {p.length} bytes")
    return out[:10]


def overlaps(spans: list[tuple[str, Span]]) -> list[str]:
    """Regions of one image that share bytes (each region of a build owns its bytes)."""
    out = []
    for image in IMAGE_NAMES:
        mine = sorted((s.offset, s.end, name) for name, s in spans if s.image == image and s.length)
        for (a0, a1, an), (b0, b1, bn) in zip(mine, mine[1:], strict=False):
            if b0 < a1:
                out.append(f"{an} [{a0}:{a1}] and {bn} [{b0}:{b1}] overlap in {image}")
    return out[:10]
