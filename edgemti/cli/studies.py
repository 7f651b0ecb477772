"""Study commands over builds and the hardware model: ``faults``, ``sweep``, ``study compression``, ``demo`` and
``report`` (a build's costs, Accelergy, the paper's comparison, the early-exit study)."""

from __future__ import annotations

import sys

import click

from edgemti.cli.group import echo_json, main


@main.command(name="faults")
@click.argument("build", type=click.Path(exists=True, file_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="GLUE folder (holding SST-2/, MRPC/, ...); default $EDGEMTI_DATA/glue.")
@click.option("--rates", default="1e-6,1e-5,1e-4,1e-3,1e-2", show_default=True,
              help="MLC cell error rates to sweep (comma list).")
@click.option("--slc-rate", type=float, default=0.0, show_default=True,
              help="SLC cell error rate when the masks are in SLC.")
@click.option("--task", "tasks", multiple=True, help="Tasks to score (default: every task of the build).")
@click.option("--max-examples", type=int, default=200, show_default=True, help="Dev examples per task.")
@click.option("--seeds", default="0", show_default=True, help="Fault seeds (comma list); scores are averaged.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="faults.png", show_default=True)
@click.option("--spec", type=click.Path(dir_okay=False), default=None, help="Architecture spec TOML.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def faults_cmd(build, data_dir, rates, slc_rate, tasks, max_examples, seeds, plot_path, spec, as_json) -> None:
    """Task accuracy under RRAM bit errors: bitmask in SLC (the paper) vs in MLC, against the fault-free build."""
    from edgemti.studies.faults import FaultSweepConfig, sweep_faults

    try:
        cfg = FaultSweepConfig(rates=tuple(float(r) for r in rates.split(",")), slc_rate=slc_rate, tasks=tuple(tasks),
                               max_examples=max_examples, seeds=tuple(int(x) for x in seeds.split(",")))
    except ValueError:
        raise click.BadParameter("--rates and --seeds take comma-separated numbers") from None
    with click.progressbar(length=1, label="fault sweep", file=sys.stderr) as bar:
        def progress(done: int, total: int, what: str) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        result = sweep_faults(build, data_dir=data_dir, config=cfg, plot_path=plot_path, spec=spec, progress=progress)
    if as_json:
        echo_json(result.to_dict())
        return
    for w in result.warnings:
        click.echo(f"WARNING: {w}", err=True)
    for c in result.spec_fitted:
        click.echo(f"spec sized for this build (capacities do not change accuracy): {c}", err=True)
    click.echo(f"{'task':6s} {'metric':9s} {'n':>4s} {'MLC rate':>9s} {'masks SLC':>10s} {'masks MLC':>10s} "
               f"{'fault-free':>10s} {'95% CI':>15s}")
    for row in result.table():
        lo, hi = row["fault_free_ci"]
        click.echo(f"{row['task']:6s} {row['metric']:9s} {row['n']:4d} {row['rate']:9.0e} {row['masks_in_slc']:10.2f} "
                   f"{row['masks_in_mlc']:10.2f} {row['fault_free']:10.2f} {f'[{lo:.1f}, {hi:.1f}]':>15s}")
    click.echo("scores in % on n dev examples per task; 95% CI: bootstrap interval of the fault-free score over those "
               "examples: a faulty score inside it (even above the fault-free one) is sampling noise, not a fault "
               "effect")
    click.echo(f"plot: {result.plot}")


@main.command(name="sweep")
@click.argument("target", type=click.Path(exists=True))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None, help="Results folder (resumable).")
@click.option("--plot", "plot_only", is_flag=True, help="TARGET is a results folder: redraw its Pareto plot.")
@click.option("--ray", "ray_address", default=None, metavar="auto|HOST:PORT|local",
              help="Run on a Ray cluster (auto: the one this machine belongs to; local: start one here).")
@click.option("--workers", type=int, default=None, help="Local process pool size [default: CPU count].")
@click.option("--accuracy", "accuracy", type=click.Path(exists=True, file_okay=False), default=None,
              help="A results folder of `edgemti study compression`: also draw accuracy-vs-energy/area fronts.")
@click.option("--accuracy-tasks", default=None, metavar="T1,T2",
              help="--accuracy: average these tasks of the study [default: all of them].")
@click.option("--no-progress", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def sweep_cmd(target, out, plot_only, ray_address, workers, accuracy, accuracy_tasks, no_progress, as_json) -> None:
    """Design-space sweep: evaluate every point of the grid file TARGET into --out, then plot (docs/SWEEP.md)."""
    from edgemti.studies.sweep import plot_sweep, run_sweep

    if plot_only:
        acc_tasks = tuple(t.strip() for t in accuracy_tasks.split(",")) if accuracy_tasks else ()
        res = plot_sweep(target, accuracy=accuracy, accuracy_tasks=acc_tasks)
        res.pop("pareto_ids")
        if "accuracy" in res:
            res["accuracy"].pop("pareto_ids")
        echo_json(res) if as_json else click.echo(f"{res['ok']} points ({res['fits']} fit), {res['pareto']} on "
                                                  f"the Pareto front: {res['png']}")
        if "accuracy" in res and not as_json:
            a = res["accuracy"]
            click.echo(f"accuracy: {a['measured']} points measured, {a['not_measured']} without a measurement "
                       f"(not drawn): {a['png']}, {a['json']}")
        return
    if out is None:
        raise click.UsageError("give --out RESULTS (or --plot RESULTS)")
    res = run_sweep(target, out, ray_address=ray_address, workers=workers, progress=not no_progress,
                    step=lambda s: click.echo(f"prepare: {s}", err=True), accuracy=accuracy).to_dict()
    if as_json:
        echo_json(res)
        return
    click.echo(f"{res['evaluated']} points evaluated ({res['skipped']} already done, {res['errors']} errors) on "
               f"{res['executor']} x{res['workers']}: {res['points_per_min']:.0f} points/min; results in {out}, "
               f"plot {res['plot']}")


@main.group(name="study")
def study_group() -> None:
    """Accuracy studies of the paper (docs/RESULTS.md)."""


@study_group.command(name="compression")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Results folder (resumable).")
@click.option("--grid", "grid", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Study file [default: the shipped edgemti/sweeps/compression_minilm.toml].")
@click.option("--limit", type=int, default=None, help="Score at most this many new points (a re-run goes on).")
@click.option("--plot", "plot_only", is_flag=True, help="Only redraw the figures and the table of --out.")
@click.option("--keep-builds", is_flag=True, help="Keep each point's compiled build under OUT/builds/.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes training packs and scoring points side by side.")
@click.option("--no-progress", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def study_compression_cmd(out, grid, limit, plot_only, keep_builds, workers, no_progress, as_json) -> None:
    """The paper's s III (Figs. 3-5): packs trained on the float vs the compressed backbone, builds scored as
    served on GLUE dev; figures and a table beside the paper's numbers in --out."""
    from edgemti.studies.compression import DEFAULT_STUDY, draw_study, run_study

    if plot_only:
        files = draw_study(out)
        echo_json({"files": files}) if as_json else click.echo("wrote " + ", ".join(files))
        return
    res = run_study(grid or DEFAULT_STUDY, out, progress=not no_progress, keep_builds=keep_builds, limit=limit,
                    workers=workers,
                    step=lambda s: click.echo(f"study: {s}", err=True)).to_dict()
    if as_json:
        echo_json(res)
        return
    click.echo(f"{res['evaluated']} points scored ({res['skipped']} already done, {res['errors']} errors) in "
               f"{res['elapsed_s']:.0f} s; budget: {res['budget']}; wrote {', '.join(res['files'])}")


@main.command(name="demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where the builds and serve logs go (default: a temporary folder).")
@click.option("--requests", "n_requests", type=int, default=36, show_default=True, help="Requests in the stream.")
@click.option("--policy", type=click.Choice(["fifo", "swap-aware"]), default="swap-aware", show_default=True)
@click.option("--quant", default="q3.13", show_default=True, help="Value format of both builds.")
@click.option("--backbone", default="minilm", show_default=True,
              help="Backbone preset (the shipped packs are MiniLM's; others get synthetic packs).")
def demo_cmd(out_dir, n_requests, policy, quant, backbone) -> None:
    """Offline demo: compile MiniLM + shipped packs, serve a mixed stream, compare with vanilla."""
    from edgemti.studies.demo import run_demo

    run_demo(out_dir=out_dir, n_requests=n_requests, policy=policy, quant=quant, backbone=backbone, emit=click.echo)


@main.command(name="report")
@click.argument("build", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--seq-len", type=int, default=None, help="Tokens per request (default: the build's max_seq_len; 128 with --paper).")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), help="Architecture spec TOML (default: the build's design).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), help="Write a Chrome-trace JSON of one inference.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the per-op records of one inference as CSV.")
@click.option("--paper", is_flag=True, help="The paper's Fig. 6 / abstract / Table III: paper | paper profile | default.")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True, help="--paper output folder.")
@click.option("--accelergy", "accelergy_dir", type=click.Path(file_okay=False),
              help="Write one inference's and one switch's action counts, ERT.yaml and ART.yaml (Accelergy) here.")
@click.option("--ert", "ert_path", type=click.Path(exists=True, dir_okay=False),
              help="Re-price one inference and one switch with this Accelergy ERT's per-action energies.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write a PNG of the energy by component (each task's inference, an MTI request).")
@click.option("--fit-spec", "fit", is_flag=True,
              help="Raise any on-chip memory of the spec too small for this build to the next power of two "
                   "(as serve --fit-spec does; a MiniLM build needs it on the albert-sized shipped specs).")
@click.option("--early-exit", "early_exit", is_flag=True,
              help="The early-exit study of BUILD on its tasks' dev sets: accuracy vs energy per sentence, no exit / "
                   "exit / exit + DVFS (docs/EARLY_EXIT.md); writes early_exit.json and .png into --out.")
@click.option("--task", "tasks", multiple=True, help="--early-exit: only this task (repeatable).")
@click.option("--latency-target-ms", "targets_ms", type=float, multiple=True,
              help="--early-exit: an absolute latency target (repeatable) [default: 1.0x, 0.75x, 0.5x of each sentence's full-depth latency].")
@click.option("--max-examples", type=int, default=None, help="--early-exit: seeded subset of each dev set.")
@click.option("--albert-build", type=click.Path(exists=True, file_okay=False), default=None,
              help="--early-exit: an albert-base build with off-ramps: the ratios on its shapes, exits synthetic.")
@click.option("--data-dir", default=None, help="--early-exit: GLUE folder [default: $EDGEMTI_DATA/glue].")
@click.option("--with-build", "more_builds", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="--early-exit: another build whose tasks join the study (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def report_cmd(build, seq_len, spec, trace_path, csv_path, paper, out, accelergy_dir, ert_path, plot_path, fit,
               early_exit, tasks, targets_ms, max_examples, albert_build, data_dir, more_builds, as_json) -> None:
    """Area, energy and latency of a build on the simulated accelerator (or --paper: the paper's comparison)."""
    if early_exit:
        if build is None:
            raise click.UsageError("--early-exit needs a BUILD compiled from packs with off-ramps")
        from edgemti.studies.early_exit import early_exit_study, format_study

        doc = early_exit_study(build, out, tasks=tuple(tasks), data_dir=data_dir, targets_ms=tuple(targets_ms),
                               max_examples=max_examples, albert_build=albert_build,
                               more_builds=tuple(more_builds), progress=not as_json)
        echo_json(doc) if as_json else click.echo(format_study(doc))
        return
    if paper:
        if build is not None:
            raise click.UsageError(f"--paper prices the paper's own designs, not a build: drop {build}, or run "
                                   f"`edgemti report {build}` without --paper")
        from edgemti.studies.paper import format_paper, paper_report

        doc = paper_report(out, seq_len=seq_len or 128, progress=lambda s: click.echo(f"paper: {s}", err=True))
        echo_json(doc) if as_json else click.echo(format_paper(doc) + "\n\nwrote " + ", ".join(doc["files"]))
        return
    if build is None:
        raise click.UsageError("give a BUILD folder (from edgemti compile), or --paper")
    if accelergy_dir or ert_path:
        from edgemti.studies.report import accelergy_report, format_accelergy

        a = accelergy_report(build, out_dir=accelergy_dir, ert=ert_path, seq_len=seq_len, spec=spec, fit=fit)
        echo_json(a) if as_json else click.echo(format_accelergy(a))
        return
    from edgemti.studies.report import build_report, format_report

    r = build_report(build, seq_len=seq_len, spec=spec, trace_json=trace_path, csv_path=csv_path, plot=plot_path,
                     fit=fit)
    echo_json(r) if as_json else click.echo(format_report(r))
