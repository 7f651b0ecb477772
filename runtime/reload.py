"""May a running engine adopt the build now on disk? Only when it is the served build, or that build plus packs.

A task is loaded at run time (``POST /v2/repository/models/<task>/load``, after ``edgemti compile --add-pack``) by
re-reading the build folder. What is there may be something else entirely: a build recompiled into the served
folder with ``--force`` has other packs, formats or tokenizer behind possibly the same backbone. Adopting its
manifest would price energy from one build while answering from another and logging a third id, so
:func:`extension_problems` accepts a manifest only when everything the engine already serves from is unchanged --
backbone images, graph, compile settings, tokenizer files, backbone tensor table, and every pack entry it holds,
byte for byte -- and the only difference is packs appended after them (what ``add_pack`` writes). Anything else
is another build: the engine refuses it and a restart serves it.
"""

from __future__ import annotations

from edgemti.formats.manifest import Manifest


def extension_problems(served: Manifest, new: Manifest) -> list[str]:
    """Why ``new`` is not ``served`` or ``served`` with packs added ([] when it is; then adopting it changes
    nothing the engine already answers)."""
    if new.build_id == served.build_id:
        return []
    problems = []
    for name in ("rram_mlc", "rram_slc"):
        if new.images[name].sha256 != served.images[name].sha256:
            problems.append(f"backbone image {name}")
    same = (("graph", new.graph["sha256"] == served.graph["sha256"]),
            ("compile settings", new.compile == served.compile), ("design", new.design == served.design),
            ("backbone", new.backbone == served.backbone), ("tokenizer files", new.files == served.files),
            ("backbone tensor table", new.tensors == served.tensors))
    problems += [what for what, ok in same if not ok]
    old = {p.task: p for p in served.packs}
    for p in new.packs[:len(served.packs)]:
        if old.get(p.task) != p:
            problems.append(f"pack {p.task}" if p.task in old else f"pack {p.task} in the place of another")
    gone = [t for t in old if t not in new.tasks]
    if gone:
        problems.append(f"packs {gone} removed")
    return problems
