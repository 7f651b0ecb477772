"""``edgemti demo``: the whole flow offline in a few minutes.

1. compile the pretrained ``minilm`` backbone with the shipped task packs (adapter design);
2. compile the same backbone with ``--design vanilla`` and *synthetic* packs for the same tasks (hardware-only
   baseline: each pack holds the whole transformer; its answers are meaningless and labelled so);
3. serve one mixed request stream (sentences written for the demo, in the tasks the packs serve) on the adapter
   build, reporting every answer with its energy and latency as it goes, then the summary;
4. serve the same stream on the vanilla build and print the adapter-versus-vanilla comparison, with the paper's
   reported ratios beside ours (targets, not results).

The library never prints: lines go to ``emit``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgemti.errors import ConfigError
from edgemti.formats.quant import parse_format
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import serve_stream
from edgemti.runtime.summary import format_summary
from edgemti.studies.sized import open_sized
from edgemti.units import quantity, si

log = logging.getLogger(__name__)



# Requests written for the demo (not from GLUE): (task, text, text_pair).
DEMO_SENTENCES: dict[str, list[tuple[str, str | None]]] = {
    "sst2": [
        ("a warm , funny and beautifully acted film that stays with you .", None),
        ("the plot is a mess and the jokes fall flat every single time .", None),
        ("an utterly charming little movie with a big heart .", None),
        ("two hours of my life i will never get back .", None),
        ("the performances are superb , and the music is gorgeous .", None),
        ("dull , lifeless and far too long .", None),
    ],
    "mrpc": [
        ("The company said its profit rose 12 percent in the third quarter.",
         "Third-quarter profit at the company increased by 12 percent, it said."),
        ("The storm knocked out power to thousands of homes on Tuesday.",
         "The museum will open a new wing for modern art next spring."),
        ("He was arrested at his home in Boston early on Friday.",
         "Police arrested him at his Boston home on Friday morning."),
        ("Shares of the chipmaker fell 3 percent in early trading.",
         "The chipmaker reported record revenue for the year."),
        ("The senator announced she would not seek re-election.",
         "The senator said she will not run for another term."),
        ("The new bridge cost more than $2 billion to build.",
         "Critics say the bridge was poorly designed."),
    ],
    "rte": [
        ("The Eiffel Tower, completed in 1889, is located in Paris.", "The Eiffel Tower is in France."),
        ("John bought a new car last week after selling his old bicycle.", "John owns a bicycle."),
        ("The vaccine was approved by regulators after large clinical trials.", "The vaccine was approved."),
        ("Maria has lived in Madrid for ten years and works as a teacher.", "Maria is a doctor in Rome."),
        ("More than 500 people attended the concert in the city park.", "A concert took place in a park."),
        ("The factory closed in 2010, leaving hundreds without work.", "The factory is still operating."),
    ],
}


@dataclass
class DemoResult:
    """What the demo produced: the two builds, both serve summaries and the comparison rows."""

    out_dir: str
    adapter_build: str
    vanilla_build: str
    adapter_summary: dict
    vanilla_summary: dict
    comparison: dict
    packs: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def demo_stream(tasks: list[str], n_requests: int = 36, seed: int = 0) -> list[str]:
    """A mixed JSON-lines stream over ``tasks``: task changes often, as on a shared edge device."""
    import random

    rng = random.Random(seed)
    pools = {t: list(DEMO_SENTENCES[t]) for t in tasks}
    lines = []
    for i in range(n_requests):
        t = rng.choice(tasks)
        text, pair = pools[t][i % len(pools[t])]
        req = {"id": f"demo-{i:03d}", "task": t, "text": text}
        if pair is not None:
            req["text_pair"] = pair
        lines.append(json.dumps(req))
    return lines


def _shipped_packs(tasks: tuple[str, ...]) -> dict[str, Path]:
    """Shipped pack folders for ``tasks`` (those that exist)."""
    from edgemti.tasks import packs_dir

    root = packs_dir()
    return {t: root / t for t in tasks if (root / t / "pack.json").is_file()}


def check_demo_args(n_requests: int, quant: str, tasks: tuple[str, ...], backbone: str) -> None:
    """The demo's arguments, checked before anything is loaded (each error in one line)."""
    from edgemti.tasks.backbone_names import check_backbone_name

    check_backbone_name(backbone)
    if n_requests < 1:
        raise ConfigError(f"the demo serves a stream of requests: requests must be >= 1, got {n_requests}")
    parse_format(quant)
    unknown = [t for t in tasks if t not in DEMO_SENTENCES]
    if unknown:
        raise ConfigError(f"the demo has sentences for {sorted(DEMO_SENTENCES)}, not for {unknown}")


def run_demo(
    out_dir: str | Path | None = None,
    backbone: str = "minilm",
    quant: str = "q3.13",
    tasks: tuple[str, ...] = ("sst2", "mrpc", "rte"),
    n_requests: int = 36,
    policy: str = "swap-aware",
    sparsity: float = 0.3,
    emit: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> DemoResult:
    """Run the demo (module doc); every line of its report goes to ``emit``.

    ``out_dir``: where the builds and serve logs are written and kept; None: a temporary folder, named in the
    report and removed at the end (on an error too)."""
    check_demo_args(n_requests, quant, tasks, backbone)
    say = emit or (lambda s: None)
    if out_dir is not None:
        return _run(Path(out_dir), backbone, quant, tasks, n_requests, policy, sparsity, say, threads)
    tmp = Path(tempfile.mkdtemp(prefix="edgemti-demo-"))
    say(f"builds and serve logs go to the temporary folder {tmp} (removed at the end; --out DIR keeps them)")
    try:
        return _run(tmp, backbone, quant, tasks, n_requests, policy, sparsity, say, threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"removed {tmp}")


def _run(out: Path, backbone: str, quant: str, tasks: tuple[str, ...], n_requests: int, policy: str,
         sparsity: float, say: Callable[[str], None], threads: int | None) -> DemoResult:
    from edgemti.compiler import CompileConfig, compile_build

    out.mkdir(parents=True, exist_ok=True)
    packs = _shipped_packs(tasks) if backbone == "minilm" else {}  # the shipped packs are MiniLM adapters
    warnings = []
    if packs:
        served = tuple(t for t in tasks if t in packs)
        if len(served) < len(tasks):
            warnings.append(f"no shipped pack for {sorted(set(tasks) - set(served))}; serving {list(served)}")
        how = f"shipped packs {list(served)}"
    else:
        served = tasks
        warnings.append(f"no shipped {backbone} task packs (edgemti.tasks.packs_dir()): the adapter build uses "
                        "SYNTHETIC packs too, so its answers are meaningless (energy/latency remain valid)")
        how = f"SYNTHETIC packs {list(served)} (no shipped packs for {backbone})"
    common = dict(backbone=backbone, quant=quant, sparsity_embedding=sparsity, sparsity_transformer=sparsity,
                  check_capacity=False)
    say(f"[1/4] compiling {backbone} + {how} (adapter design, {quant}, {sparsity:.0%} backbone sparsity) -> "
        f"{out / 'adapter'}")
    adapter_dir = out / "adapter"
    if packs:
        cfg = CompileConfig(packs=tuple(packs[t] for t in served), design="adapter", **common)
    else:
        cfg = CompileConfig(synthetic_tasks=served, design="adapter", **common)
    compile_build(cfg, adapter_dir, force=True)
    say(f"[2/4] compiling {backbone} with --design vanilla and SYNTHETIC packs for {list(served)} "
        f"(hardware baseline) -> {out / 'vanilla'}")
    vanilla_dir = out / "vanilla"
    compile_build(CompileConfig(synthetic_tasks=served, design="vanilla", **common), vanilla_dir, force=True)
    sized = {}  # each build opened once, its spec sized to it on that open, both handed to its engine
    for name, d in (("adapter", adapter_dir), ("vanilla", vanilla_dir)):
        sized[name] = open_sized(d)
        for c in sized[name].changes:
            say(f"      {name} chip sized for {backbone}: {c}")
    stream = demo_stream(list(served), n_requests)
    scheduler = SchedulerConfig(policy=policy)

    say(f"[3/4] serving {len(stream)} mixed requests on the adapter build (policy {policy}, 1 SRAM pack slot)")
    if policy == "swap-aware":
        say(f"      swap-aware answers out of arrival order (see the ids): it runs waiting requests of the resident "
            f"task first to save pack swaps, a request overtaken at most {scheduler.max_bypass} times; "
            "--policy fifo keeps the order")
    eng = sized["adapter"].engine(threads=threads)
    say(f"      pricing {eng.warm()} (task, length bucket) pairs once, so requests do not pay it")

    def show(resp: dict) -> None:
        if not resp.get("ok"):
            say(f"  {resp.get('id')}: ERROR {resp['error']['type']}: {resp['error']['message']}")
            return
        swap = "swap" if resp["swapped"] else "    "
        say(f"  {resp['id']} {resp['task']:5s} -> {str(resp['label']):14s} p={max(resp['scores']):.2f} "
            f"{swap} energy {si(resp['energy_j'], 'J'):>10s} latency {si(resp['latency_s'], 's'):>10s} "
            f"host {si(resp['host_s'], 's'):>10s}")

    a = serve_stream(eng, stream, scheduler, out / "adapter-serve.jsonl", emit=show).summary
    for line in format_summary(a).splitlines():
        say("  " + line)
    say("[4/4] serving the same stream on the vanilla build (synthetic packs: answers meaningless, costs valid)")
    van = sized["vanilla"].engine(threads=threads)
    van.warm()
    v = serve_stream(van, stream, scheduler, out / "vanilla-serve.jsonl").summary
    for line in format_summary(v).splitlines():
        say("  " + line)
    comparison = _compare(eng, van, a, v, quant)
    say("")
    say(f"adapter vs vanilla on the same stream, both {backbone} {quant} (ratio = vanilla / adapter):")
    for row in comparison["rows"]:
        tgt = "" if row["paper"] is None else f"   paper {row['paper']:g}x ({comparison['paper_source']})"
        say(f"  {row['what']:32s} adapter {quantity(row['adapter'], row['unit']):>11s}  vanilla "
            f"{quantity(row['vanilla'], row['unit']):>11s}  ratio {row['ratio']:7.2f}x{tgt}")
    for line in paper_gap_lines(quant, backbone):
        say(line)
    for w in warnings:
        say("WARNING: " + w)
    return DemoResult(str(out), str(adapter_dir), str(vanilla_dir), a, v, comparison,
                      {t: str(p) for t, p in packs.items()}, warnings)


def paper_gap_lines(quant: str, backbone: str) -> list[str]:
    """Why the paper's adapter-vs-vanilla ratios and the demo's differ, with the numbers from where the repository
    keeps them (the paper's targets file, the paper-profile and default specs): lines for the demo's report."""
    from edgemti.hwmodel.spec import load_spec
    from edgemti.hwmodel.targets import paper_targets
    from edgemti.studies.paper import paper_spec_path

    t = paper_targets()
    fig6 = "; ".join(f"vanilla fp32 / adapter {q}: energy {r['energy_per_inference']:g}x, area {r['area']:g}x, "
                     f"latency {r['latency_per_inference']:g}x" for q, r in t.reduction.items())
    def profile(spec) -> str:
        e = spec.execution
        passes = (f"vanilla's task weights re-read from DRAM {e.dram_pack_passes_per_inference}x per inference"
                  if e.dram_pack_passes_per_inference else "vanilla's task weights kept on chip between passes")
        return (f"DRAM {spec.dram.read_pj_per_bit:g} pJ/bit, {passes}, compute energy "
                f"{'counted' if e.include_compute_energy else 'not counted'}, leakage "
                f"{'counted' if e.include_leakage else 'not counted'}")

    return [f"paper (albert-base, {len(t.tasks)}-task MTI {'/'.join(t.tasks)}, Fig. 6): {fig6}.",
            f"why ours differ: the paper prices albert-base, vanilla in fp32, on its own accounting (our paper "
            f"profile: {profile(load_spec(paper_spec_path('vanilla')))}); the demo prices {backbone} with both "
            f"builds in {quant} on the default profile ({profile(load_spec(None, design='vanilla'))}). "
            "`edgemti report --paper` shows the paper's numbers beside ours on the paper's assumptions and names "
            "the assumption behind each gap (docs/PAPER_REPRO.md)."]


def _paper_same_quant(quant: str) -> tuple[dict[str, float], str | None]:
    """The paper's vanilla / adapter ratios at one value format for both designs, as the demo compares them:
    Fig. 6 for fp32 (normalised to vanilla fp32), the abstract for the formats it names; else none."""
    from edgemti.hwmodel.targets import paper_targets

    t = paper_targets()
    key = parse_format(quant).name
    if key == "fp32" and key in t.reduction:
        return t.reduction[key], "Fig. 6"
    if key in t.abstract_reduction_same_quant:
        return t.abstract_reduction_same_quant[key], "abstract"
    return {}, None


def _compare(eng, van, a: dict, v: dict, quant: str) -> dict:
    """Adapter vs vanilla rows in SI base units (J, s, bytes, mm2), with the paper's same-format ratio if any."""
    paper, source = _paper_same_quant(quant)
    rows = []

    def row(what: str, unit: str, x: float, y: float, target: float | None = None) -> None:
        rows.append({"what": what, "unit": unit, "adapter": x, "vanilla": y, "ratio": y / x if x else float("inf"),
                     "paper": target})

    row("energy per inference (w/ swaps)", "J", a["energy_per_inference_j"], v["energy_per_inference_j"],
        paper.get("energy_per_inference"))
    row("latency per inference (mean)", "s", a["sim_latency_s"]["mean"], v["sim_latency_s"]["mean"],
        paper.get("latency_per_inference"))
    row("swap energy, whole stream", "J", a["swap_energy_j_total"], v["swap_energy_j_total"])
    row("largest pack (SRAM need)", "B", max(p.length for p in eng.manifest.packs),
        max(p.length for p in van.manifest.packs))
    row("area", "mm2", eng.hw.area().total_mm2, van.hw.area().total_mm2, paper.get("area"))
    return {"rows": rows, "paper_quant": parse_format(quant).name if paper else None, "paper_source": source}
