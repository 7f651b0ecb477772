"""Does the manifest fit its graph? The checks a build must pass to be served, run by every reader of a build.

``graph.onnx`` is weightless: every parameter is a named graph input, filled at serve time by the backbone (baked
in once) and the active task's pack (bound per request). :func:`graph_problems` checks the manifest's tensor table
against those inputs -- names, ranks, static dims, symbolic dims consistent within a pack, layout order -- so a
build that :func:`edgemti.formats.build.open_build` accepts (``serve``, ``serve --trust``, ``inspect --verify``
alike) can have its backbone bound and every pack bound and run; nothing is found only at the first request.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgemti.formats.manifest import GRAPH_DATA_INPUTS, Manifest

Dims = tuple[int | str | None, ...]  # an int: a static size; a str: a symbolic axis (dim_param); None: unnamed


def graph_inputs(model) -> dict[str, Dims]:
    """``{input name: dims}`` of an ONNX ``ModelProto``'s graph inputs, in graph order."""
    out: dict[str, Dims] = {}
    for i in model.graph.input:
        dims = i.type.tensor_type.shape.dim
        out[i.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)
    return out


def _shape_problem(what: str, shape: Sequence[int], dims: Dims, symbols: dict[str, int]) -> str | None:
    """Why a tensor of ``shape`` cannot fill an input of ``dims`` (``symbols``: sizes bound so far), or None."""
    if len(shape) != len(dims):
        return f"{what} has shape {list(shape)}, the graph input takes rank {len(dims)} {_dims(dims)}"
    for axis, (s, d) in enumerate(zip(shape, dims, strict=True)):
        if isinstance(d, int) and d != s:
            return f"{what} has shape {list(shape)}, the graph input takes {_dims(dims)} (axis {axis})"
        if isinstance(d, str):
            if symbols.setdefault(d, s) != s:
                return (f"{what} has {s} on axis {axis} ({d!r}), another tensor of the same pack has "
                        f"{symbols[d]}")
    return None


def _dims(dims: Dims) -> list:
    return [d if d is not None else "?" for d in dims]


def graph_problems(m: Manifest, model) -> list[str]:
    """Every way the manifest ``m`` does not fit the graph ``model`` (an ONNX ``ModelProto``); [] when it fits."""
    inputs = graph_inputs(model)
    problems = []
    data = [n for n in inputs if n in GRAPH_DATA_INPUTS]
    if set(data) != set(m.graph.get("data_inputs") or ()):
        problems.append(f"graph data inputs are {data}, the manifest lists {m.graph.get('data_inputs')}")
    outputs = [o.name for o in model.graph.output]
    if m.graph.get("output") not in outputs:
        problems.append(f"the graph has no output {m.graph.get('output')!r} (outputs: {outputs})")
    params = {n: d for n, d in inputs.items() if n not in GRAPH_DATA_INPUTS}
    backbone = {t.name: t for t in m.tensors}
    unknown = [n for n in backbone if n not in params]
    if unknown:
        problems.append(f"backbone tensor(s) {unknown[:3]} are not inputs of the graph")
    for t in m.tensors:
        if t.name in params:
            why = _shape_problem(f"backbone tensor {t.name}", t.shape, params[t.name], {})
            if why:
                problems.append(why)
    order = [n for n in params if n in backbone]
    if not unknown and order != [t.name for t in m.tensors]:
        problems.append("the backbone tensors are not listed in the graph's input order (the order the compiler "
                        "lays them out in)")
    pack_inputs = {n: d for n, d in params.items() if n not in backbone}
    in_packs = {t.name for p in m.packs for t in p.tensors}
    orphans = [n for n in pack_inputs if n not in in_packs]
    if orphans:
        problems.append(f"graph input(s) {orphans[:3]} are filled by no backbone tensor and no pack: a tensor is "
                        "missing from the manifest")
    for p in m.packs:
        have = [t.name for t in p.tensors]
        missing = [n for n in pack_inputs if n not in have and n not in orphans]
        extra = [n for n in have if n not in pack_inputs]
        if missing:
            problems.append(f"pack {p.task} lacks graph input(s) {missing[:3]}")
        if extra:
            problems.append(f"pack {p.task} tensor(s) {extra[:3]} are not inputs of the graph")
        symbols: dict[str, int] = {}
        for pt in p.tensors:
            if pt.name in pack_inputs:
                why = _shape_problem(f"pack {p.task} tensor {pt.name}", pt.shape, pack_inputs[pt.name], symbols)
                if why:
                    problems.append(why)
    return problems[:20]
