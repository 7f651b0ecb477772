"""The ``edgemti`` command line: thin wrappers that parse options, call one library function, format the result.

Errors raised by the library (:class:`edgemti.errors.EdgemtiError`) become one-line messages and exit code 2
here, in one place; nothing else in edgemti prints or exits.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from edgemti import __version__
from edgemti.errors import CapacityError, EdgemtiError
from edgemti.logsetup import setup_logging

# commands that price a build on a spec: a build that outgrows it is priced on a fitted one with --fit-spec
# (edgemti.runtime.hma.build_spec, the one rule); the hint is added here, the library names no flag
_FIT_SPEC_COMMANDS = ("report", "serve")

# The library's parameter names (EdgemtiError.options) as this CLI spells them: the one place flags meet errors.
_FLAG_OF = {
    "backbone": "--backbone", "capacity_check": "--no-capacity-check", "checkpoint": "--checkpoint",
    "data_dir": "--data-dir", "design": "--design", "dev_file": "--dev-file", "fit": "--fit-spec",
    "force": "--force", "http": "--http", "label_column": "--label-column", "out": "--out",
    "overlong": "--overlong", "packs": "--pack", "quant": "--quant", "regression": "--regression",
    "requests": "--requests", "seq_len": "--seq-len", "sparsity_embedding": "--sparsity-embedding",
    "sparsity_transformer": "--sparsity-transformer", "spec": "--spec", "text_column": "--text-column",
    "sign_key": "--sign-key", "verify_key": "--verify-key",
    "text_pair_column": "--text-pair-column", "train_file": "--train-file", "tasks": "--task",
    "latency_target_s": "--latency-target-ms", "early_exit": "--early-exit",
    "max_accuracy_drop": "--max-accuracy-drop", "off_ramps": "--off-ramps",
    "lora_rank": "--lora-rank", "lora_targets": "--lora-targets", "allow_pickle": "--allow-pickle",
    "fault_mlc_rate": "--fault-mlc-rate", "accuracy_tasks": "--accuracy-tasks",
    "dram_packs": "--dram-packs", "slots": "--slots", "pinned": "--pin",
}


def error_message(exc: EdgemtiError) -> str:
    """``exc`` as the CLI prints it: its class, its message, and the flags that change what it names."""
    flags = [_FLAG_OF.get(o, o) for o in exc.options]
    hint = f" [see {', '.join(flags)}]" if flags else ""
    return f"{type(exc).__name__}: {exc}{hint}"


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgemtiError as exc:
            msg = error_message(exc)
            if (isinstance(exc, CapacityError) and ctx.invoked_subcommand in _FIT_SPEC_COMMANDS
                    and "fit" not in exc.options):
                msg += "; or add --fit-spec to size the spec's on-chip memories to this build"
            raise click.ClickException(msg) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="edgemti")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """edgemti: multi-task NLP inference on a simulated heterogeneous-memory edge accelerator.

    \b
    Typical flow:
      edgemti params                         parameter budget of adapter vs vanilla models (paper Table II)
      edgemti train --task sst2 ...          train a task pack (adapters) on a GLUE task
      edgemti eval  --pack packs/sst2 ...    official GLUE metric of a pack
      edgemti compile --pack ... --out build/  prune, quantize, bitmask-encode into RRAM/SRAM/DRAM images
      edgemti inspect build/                 memory map and footprint of a build
      edgemti report build/                  area, energy and latency on the simulated accelerator
      edgemti serve build/                   serve multi-task requests, logging energy/latency per request
      edgemti demo                           all of the above, offline, in a few minutes
    """
    setup_logging(verbose)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@main.command()
@click.argument("build", type=click.Path(exists=True, file_okay=False))
@click.option("--requests", "requests", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="JSON-lines file of requests; '-' or no --requests/--http: read JSON lines from stdin.")
@click.option("--http", "http", default=None, metavar="HOST:PORT",
              help="Serve POST /infer on a loopback address, e.g. 127.0.0.1:8080.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Write the serve log to this JSONL file, replacing it: a header, one record per request as it is "
                   "answered, the summary at the end (docs/LOGS.md).")
@click.option("--max-batch-size", type=int, default=1, show_default=True,
              help="Dynamic batching: up to this many queued requests of one task run together (1: off).")
@click.option("--max-queue-delay-ms", type=float, default=0.0, show_default=True,
              help="Dynamic batching over HTTP: how long a partial batch waits for more requests of its task.")
@click.option("--http-max-connections", type=int, default=512, show_default=True,
              help="--http: open connections at most (half of them from one address); over it, the longest-idle "
                   "one is closed, or the new one gets 503.")
@click.option("--http-read-timeout", "http_read_timeout_s", type=float, default=10.0, show_default=True,
              help="--http: seconds a connection has to deliver its next request before it is closed.")
@click.option("--json-summary", is_flag=True, help="Print the end-of-run summary as one JSON object (stderr).")
@click.option("--policy", type=click.Choice(["fifo", "swap-aware"]), default="fifo", show_default=True)
@click.option("--window", type=int, default=8, show_default=True, help="swap-aware: pending requests looked at.")
@click.option("--max-bypass", type=int, default=8, show_default=True,
              help="swap-aware: times a request may be overtaken (bounds its extra wait).")
@click.option("--slots", type=int, default=1, show_default=True, help="Task packs resident in SRAM at once (LRU).")
@click.option("--pin", "pinned", multiple=True,
              help="Keep this task's pack resident once loaded, in SRAM and in DRAM (repeatable).")
@click.option("--dram-packs", type=int, default=None,
              help="At most this many packs in DRAM, read from the build's pack images on disk on demand (LRU; "
                   "default: every pack, placed at start).")
@click.option("--overlong", type=click.Choice(["truncate", "reject"]), default="truncate", show_default=True,
              help="Texts longer than the build's max_seq_len tokens.")
@click.option("--spec", type=click.Path(dir_okay=False), default=None, help="Architecture spec TOML (default: the build's design).")
@click.option("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
@click.option("--duration", "duration_s", type=float, default=None, help="--http: stop after this many seconds.")
@click.option("--seq-bucket", type=int, default=16, show_default=True,
              help="Price requests at a multiple of this many tokens, the accelerator's tiles (0: exact length); "
                   "the host always runs the exact length.")
@click.option("--warm", is_flag=True, help="Price every (task, length bucket, batch size up to --max-batch-size) at start, so no request pays it.")
@click.option("--fit-spec", "fit", is_flag=True,
              help="Raise any on-chip memory of the spec too small for this build to the next power of two.")
@click.option("--fault-mlc-rate", type=float, default=0.0, help="Serve from faulty RRAM: MLC cell error rate.")
@click.option("--fault-slc-rate", type=float, default=0.0, help="Serve from faulty RRAM: SLC cell error rate.")
@click.option("--fault-seed", type=int, default=0, help="Seed of the RRAM fault pattern.")
@click.option("--trust", is_flag=True,
              help="Skip the image and graph sha256 checks at start (the manifest's own digest is always checked).")
@click.option("--debug", is_flag=True, help="Log a traceback for every request that fails unexpectedly.")
@click.option("--verify-key", "verify_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 public key (PEM): serve only a build signed with it (compile --sign-key); all hashes "
                   "are checked.")
@click.option("--early-exit", is_flag=True,
              help="Run layer by layer and exit at the first off-ramp under the task's entropy threshold "
                   "(packs trained with --off-ramps and calibrated; docs/EARLY_EXIT.md).")
@click.option("--latency-target-ms", type=float, default=None,
              help="--early-exit: per-request simulated latency target; DVFS picks the lowest V/F that meets it.")
def serve(build, requests, http, log_path, max_batch_size, max_queue_delay_ms, http_max_connections, http_read_timeout_s,
          json_summary, policy, window,
          max_bypass, slots, pinned, dram_packs, overlong, spec, threads, duration_s, seq_bucket, warm, fit, fault_mlc_rate,
          fault_slc_rate, fault_seed, trust, debug, verify_key, early_exit,
          latency_target_ms) -> None:
    """Serve multi-task requests on the simulated HMA; one JSON answer per request on stdout.

    \b
    Each request: {"id": 1, "task": "sst2", "text": "...", "text_pair": "..."}
    Each answer : label, scores, simulated energy/latency (inference + swap, by component), host time, swapped.
    The summary (swaps, energy per inference, latency p50/p99, savings vs fifo) goes to stderr at the end.
    """
    from edgemti.runtime.batcher import BatchingConfig
    from edgemti.runtime.faults import FaultModel
    from edgemti.runtime.http import HttpConfig
    from edgemti.runtime.request import response_json
    from edgemti.runtime.scheduler import SchedulerConfig
    from edgemti.runtime.serving import serve as run_serve
    from edgemti.runtime.summary import format_summary

    if debug:
        logging.getLogger("edgemti.runtime").setLevel(logging.DEBUG)

    def emit(resp: dict) -> None:
        click.echo(response_json(resp))

    def ready(addr) -> None:
        click.echo(f"serving http://{addr[0]}:{addr[1]}/infer (Ctrl-C to stop)", err=True)

    requests = None if requests == "-" else requests  # '-': stdin, like no --requests
    if latency_target_ms is not None and not early_exit:
        raise click.UsageError("--latency-target-ms needs --early-exit")
    from edgemti.runtime.early_exit import ExitConfig

    exit_cfg = ExitConfig(latency_target_ms / 1e3 if latency_target_ms is not None else None) if early_exit else None
    result = run_serve(build, requests=requests, http=http, log_path=log_path,
                       scheduler=SchedulerConfig(policy, window, max_bypass), slots=slots, pinned=tuple(pinned),
                       overlong=overlong, spec=spec, threads=threads, duration_s=duration_s, emit=emit,
                       stdin=None if (requests or http) else sys.stdin.buffer, ready=ready,
                       batching=BatchingConfig(max_batch_size, max_queue_delay_ms / 1e3),
                       http_config=HttpConfig(max_connections=http_max_connections,
                                              max_connections_per_address=max(1, http_max_connections // 2),
                                              read_timeout_s=http_read_timeout_s),
                       seq_bucket=seq_bucket, warm=warm, fit=fit, trust=trust, verify_key=verify_key,
                       fault=FaultModel(fault_slc_rate, fault_mlc_rate, fault_seed)
                       if (fault_mlc_rate or fault_slc_rate) else None, early_exit=exit_cfg, dram_packs=dram_packs)
    click.echo(response_json(result.summary) if json_summary else format_summary(result.summary), err=True)


# -- tasks: params / train / eval ---------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def params(as_json: bool) -> None:
    """Parameter budget (paper Table II): total, task-specific, overhead, for vanilla and adapter models."""
    from edgemti.tasks.params import format_param_table, param_table

    rows = param_table()
    if as_json:
        echo_json([r.to_dict() for r in rows])
    else:
        click.echo(format_param_table(rows))


@main.command()
@click.option("--task", default=None, help="GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, mnli-mm, qnli, rte, wnli) "
              "or a name for a custom task given by --train-file/--dev-file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Task pack folder to write.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="JSON/YAML file of TrainConfig fields; options given on the command line override it.")
@click.option("--backbone", default="minilm", show_default=True,
              help="minilm | albert-base | albert-tiny | bert-tiny | <hub name> | <checkpoint folder>.")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
@click.option("--full-finetune", is_flag=True, help="Vanilla baseline: train all transformer weights + head "
              "(embeddings frozen) instead of adapters.")
@click.option("--adapter-size", default="64", show_default=True, help="N, or ATTN,FFN bottlenecks (VASE), e.g. 32,128.")
@click.option("--lora-rank", type=int, default=None, help="Train a LoRA pack of this rank instead of Houlsby adapters.")
@click.option("--lora-alpha", type=float, default=None, help="LoRA alpha (scaling alpha/rank) [default: the rank].")
@click.option("--lora-targets", default=None, help="LoRA target modules, comma-separated [default: PEFT's for the "
              "family: query,value for BERT/MiniLM; ALBERT has none: required].")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate [default: 1e-3 adapters, 3e-5 full fine-tune].")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-seq-len", type=int, default=128, show_default=True)
@click.option("--max-train-examples", type=int, default=None, help="Seeded random subset of the train set.")
@click.option("--max-eval-examples", type=int, default=None, help="Seeded random subset of the dev set.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--data-dir", default=None, help="GLUE folder holding CoLA/, SST-2/, ... [default: $EDGEMTI_DATA/glue].")
@click.option("--hf", "use_hf", is_flag=True, help="Load the GLUE task from Hugging Face `datasets` instead.")
@click.option("--train-file", default=None, help="Custom task: train CSV/TSV/JSONL.")
@click.option("--dev-file", default=None, help="Custom task: dev CSV/TSV/JSONL.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", default=None)
@click.option("--label-column", default="label", show_default=True)
@click.option("--regression", is_flag=True, help="Custom task: the label is a number.")
@click.option("--on-build", "on_build", default=None, type=click.Path(exists=True, file_okay=False),
              help="Train on the backbone this build serves (decoded from its RRAM images), the pack quantized at "
                   "its pack format in the forward pass; the pack then fits only this build's backbone image.")
@click.option("--sparsity-embedding", type=float, default=None,
              help="Train on the backbone compressed as compile would: embedding sparsity [default 0].")
@click.option("--sparsity-transformer", type=float, default=None, help="... transformer sparsity [default 0].")
@click.option("--quant", default=None, help="... backbone value format, as compile's --quant [default q3.13].")
@click.option("--pack-quant", default=None, help="... pack value format, as compile's --pack-quant [default --quant].")
@click.option("--fault-mlc-rate", type=float, default=None,
              help="With --on-build/--sparsity-*: fault-aware pack, MLC cell errors at this rate injected in the "
                   "backbone, a fresh pattern every step.")
@click.option("--fault-seed", type=int, default=0, show_default=True, help="Seed of the fault patterns.")
@click.option("--no-progress", is_flag=True)
@click.option("--off-ramps", "off_ramps", is_flag=True,
              help="Then train EdgeBERT off-ramps (stage 2: only they learn) for early exit (docs/EARLY_EXIT.md).")
@click.option("--from-pack", "from_pack", default=None, type=click.Path(exists=True, file_okay=False),
              help="--off-ramps: skip stage 1, add off-ramps to this trained pack (written to --out).")
@click.option("--off-ramp-epochs", type=int, default=3, show_default=True)
@click.option("--off-ramp-lr", type=float, default=1e-3, show_default=True)
@click.option("--off-ramp-examples", type=int, default=None, help="Seeded subset of the train split for stage 2.")
@click.option("--holdout-examples", type=int, default=1000, show_default=True,
              help="Train sentences kept out of stage 2 for calibrate-exit.")
def train(out_dir, config_file, no_progress, on_build, sparsity_embedding, sparsity_transformer, quant, pack_quant,
          off_ramps, from_pack, off_ramp_epochs, off_ramp_lr, off_ramp_examples, holdout_examples, fault_mlc_rate,
          fault_seed, **opts) -> None:
    """Train a task pack: adapters on the frozen backbone (proven unchanged), or --full-finetune.

    With --on-build BUILD, or any of --sparsity-embedding/--sparsity-transformer/--quant/--pack-quant, the frozen
    backbone is the compressed one a build serves (bit for bit) and the pack records that backbone image.
    With --off-ramps, a second stage then trains one off-ramp per layer (only they learn) for --early-exit."""
    from click.core import ParameterSource

    from edgemti.tasks.backbone_names import check_backbone_name

    check_backbone_name(opts["backbone"])  # typos answer now, not after loading torch and the backbone
    if opts["task"] is not None and opts["train_file"] is None and opts["dev_file"] is None:
        from edgemti.tasks.glue import get_task

        get_task(opts["task"])
    from edgemti.tasks.train import TrainConfig, train_task

    settings = {k: v for k, v in (("sparsity_embedding", sparsity_embedding),
                                  ("sparsity_transformer", sparsity_transformer), ("quant", quant),
                                  ("pack_quant", pack_quant)) if v is not None}
    if on_build is not None and settings:
        raise click.UsageError("--on-build takes the build's compression; drop --sparsity-*/--quant/--pack-quant")
    if from_pack is not None and not off_ramps:
        raise click.UsageError("--from-pack needs --off-ramps")
    if off_ramps and (on_build is not None or settings):
        raise click.UsageError("train the pack with --on-build/--sparsity-*/--quant first, then add its off-ramps "
                               "with --off-ramps --from-pack PACK")
    if off_ramps:
        from edgemti.tasks.offramp import OffRampConfig, train_with_off_ramps

        ramp_cfg = OffRampConfig(epochs=off_ramp_epochs, lr=off_ramp_lr, max_train_examples=off_ramp_examples,
                                 holdout_examples=holdout_examples, seed=opts["seed"])
    ctx = click.get_current_context()
    given = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    full, use_hf = opts.pop("full_finetune"), opts.pop("use_hf")
    values = {**opts, "design": "vanilla" if full else "adapter", "source": "hf" if use_hf else "tsv"}
    given = (given - {"full_finetune", "use_hf"}) | ({"design"} if full else set()) | ({"source"} if use_hf else set())
    cfg: TrainConfig | None
    if config_file:
        cfg = TrainConfig.from_file(config_file, **{k: values[k] for k in given})
    else:
        if values["task"] is None and from_pack is None:
            raise click.UsageError("give --task (or --config FILE naming one)")
        cfg = None if from_pack is not None else TrainConfig.from_dict(values)
    if off_ramps:
        p = train_with_off_ramps(cfg, out_dir, ramp_cfg, from_pack=from_pack, data_dir=opts["data_dir"],
                                 progress=not no_progress)
        assert p.off_ramps is not None
        last = p.off_ramps["train"]["history"][-1]
        click.echo(f"wrote {p.path} ({p.task}) with {p.off_ramps['num_layers'] - 1} off-ramps; their train accuracy "
                   f"by layer {last['train_accuracy_by_layer']}; next: edgemti calibrate-exit --pack {p.path}")
        return
    assert cfg is not None  # from_pack needs off_ramps
    if fault_mlc_rate is not None and on_build is None and not settings:
        raise click.UsageError("--fault-mlc-rate trains on a served backbone: add --on-build BUILD or --sparsity-*")
    if fault_mlc_rate is not None:
        from edgemti.compiler.served import Compression
        from edgemti.studies.fault_train import train_fault_aware

        result = train_fault_aware(cfg, out_dir, fault_mlc_rate, compression=Compression(**settings) if settings
                                   else None, build=on_build, seed=fault_seed, progress=not no_progress)
    elif on_build is not None or settings:
        from edgemti.compiler.retrain import train_on_served
        from edgemti.compiler.served import Compression

        result = train_on_served(cfg, out_dir, compression=Compression(**settings) if settings else None,
                                 build=on_build, progress=not no_progress)
    else:
        result = train_task(cfg, out_dir, progress=not no_progress)
    pack = result.pack
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in pack.metrics.items() if k.startswith("dev_"))
    click.echo(f"wrote {result.path} ({pack.task}, {pack.design}, {pack.num_params:,} task-specific params, "
               f"{pack.size_bytes / 1024:.1f} KiB): {metrics}; train {pack.train_time_s:.0f}s; "
               f"backbone {pack.backbone['hash'][:8]} unchanged")
    if pack.trained_on is not None:
        click.echo(f"trained on the served backbone: {pack.trained_on.describe()}")
    if not pack.backbone["pretrained"]:
        click.echo(f"WARNING: backbone '{pack.backbone['name']}' is RANDOMLY INITIALISED: accuracy is meaningless",
                   err=True)


@main.command(name="calibrate-exit")
@click.option("--pack", "pack_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="Largest accuracy loss vs full depth allowed on the held-out sentences (a fraction).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Write the calibrated pack here [default: in place].")
@click.option("--data-dir", default=None, help="GLUE folder [default: the pack's, else $EDGEMTI_DATA/glue].")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
def calibrate_exit_cmd(pack_dir, max_accuracy_drop, out_dir, data_dir, checkpoint) -> None:
    """Entropy threshold + exit-layer predictor of a pack with off-ramps (EdgeBERT), stored in the pack."""
    from edgemti.tasks.offramp_calibrate import calibrate_exit

    p = calibrate_exit(pack_dir, max_accuracy_drop, out_dir=out_dir, data_dir=data_dir, checkpoint=checkpoint)
    assert p.exit is not None
    c = p.exit.calibration
    click.echo(f"{p.task}: threshold {p.exit.threshold:.4f} nats on {c['num_examples']} held-out sentences: "
               f"accuracy {100 * c['accuracy']:.2f} vs full depth {100 * c['full_depth_accuracy']:.2f}, agreement "
               f"{100 * c['agreement_with_full_depth']:.2f}%, mean exit layer {c['mean_exit_layer']:.2f} of "
               f"{p.exit.num_layers}; predictor table {len(p.exit.lut_entropy)} rows -> {p.path}")


@main.command(name="eval")
@click.option("--pack", "pack_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Score a task pack in PyTorch (float backbone).")
@click.option("--build", "build", default=None, type=click.Path(exists=True, file_okay=False),
              help="Score each task of a build as served: through the runtime engine (decoded RRAM images, the "
                   "build's graph), beside the pack's own score and the paper's Table I.")
@click.option("--task", "tasks", multiple=True, help="--build: score only this task (repeatable).")
@click.option("--fault-mlc-rate", type=float, default=0.0, help="--build: MLC RRAM cell error rate.")
@click.option("--fault-slc-rate", type=float, default=0.0, help="--build: SLC RRAM cell error rate.")
@click.option("--fault-seed", type=int, default=0, help="--build: seed of the RRAM fault pattern.")
@click.option("--split", type=click.Choice(["dev", "train"]), default="dev", show_default=True)
@click.option("--data-dir", default=None, help="GLUE folder [default: the pack's, else $EDGEMTI_DATA/glue].")
@click.option("--dev-file", default=None, help="Custom task: the file to score.")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
@click.option("--max-examples", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(pack_dir, build, tasks, fault_mlc_rate, fault_slc_rate, fault_seed, split, data_dir, dev_file,
             checkpoint, max_examples, as_json) -> None:
    """The task's official GLUE metric(s) of a pack (--pack) or of every task of a build as served (--build),
    beside the paper's Table I."""
    from dataclasses import asdict

    from edgemti.tasks.train import evaluate_pack

    if (pack_dir is None) == (build is None):
        raise click.UsageError("give --pack PACK or --build BUILD (one of them)")
    if build is not None:
        if split != "dev" or dev_file or checkpoint:
            raise click.UsageError("--build scores the GLUE dev sets: drop --split/--dev-file/--checkpoint")
        from edgemti.studies.accuracy import BuildEvalConfig, evaluate_build, format_build_eval

        bcfg = BuildEvalConfig(tasks=tuple(tasks), max_examples=max_examples, data_dir=data_dir,
                               fault_mlc_rate=fault_mlc_rate, fault_slc_rate=fault_slc_rate, fault_seed=fault_seed)
        if as_json:
            res = evaluate_build(build, bcfg)
        else:
            with click.progressbar(length=1, label="eval --build", file=sys.stderr) as bar:
                def progress(done: int, total: int) -> None:
                    bar.length = total
                    bar.update(done - bar.pos)

                res = evaluate_build(build, bcfg, progress=progress)
        if as_json:
            echo_json(res.to_dict())
            return
        for w in res.warnings:
            click.echo(f"WARNING: {w}", err=True)
        click.echo(format_build_eval(res))
        return
    if tasks or fault_mlc_rate or fault_slc_rate:
        raise click.UsageError("--task and --fault-* go with --build")

    r = evaluate_pack(pack_dir, split=split, data_dir=data_dir, dev_file=dev_file, checkpoint=checkpoint,
                      max_examples=max_examples, progress=not as_json)
    if as_json:
        echo_json(asdict(r))
        return
    click.echo(f"{r.task} [{r.split}, {r.num_examples} examples] backbone {r.backbone}, design {r.design}")
    for name in r.metric_names:
        click.echo(f"  {name:<10} {100 * r.metrics[name]:6.2f}")
    for model, value in r.paper.items():
        click.echo(f"  paper {model}: {value}  (headline metric, ALBERT-base)")


@main.command(name="compile")
@click.option("--backbone", default="albert-base", show_default=True,
              help="Preset (albert-base, minilm, albert-tiny, bert-tiny), hub name, checkpoint folder or config.json.")
@click.option("--pack", "packs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A task-pack folder (repeat for each task).")
@click.option("--synthetic-tasks", default=None, metavar="T1,T2,...",
              help="Untrained packs of the right shapes for these GLUE tasks (hardware-only studies).")
@click.option("--design", type=click.Choice(["adapter", "vanilla"]), default="adapter", show_default=True)
@click.option("--quant", default="q3.13", show_default=True, help="Backbone value format: qI.F (q3.13, q3.5, q4.12), fp32, fp16.")
@click.option("--pack-quant", default=None, help="Pack value format [default: same as --quant].")
@click.option("--activation-bits", type=int, default=None, help="Activation precision [default: --quant's width].")
@click.option("--sparsity-embedding", type=float, default=0.0, show_default=True)
@click.option("--sparsity-transformer", type=float, default=0.0, show_default=True)
@click.option("--max-seq-len", type=int, default=128, show_default=True)
@click.option("--adapter-size", default="64", show_default=True, help="Synthetic packs: N or ATTN,FFN.")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Architecture spec TOML for the capacity check [default: the shipped spec of --design].")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="Build folder to create.")
@click.option("--add-pack", "add_pack_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Instead of compiling: add this task pack to the existing build --into (its backbone and RRAM "
                   "images untouched; a running server loads it without a restart).")
@click.option("--into", "into", default=None, type=click.Path(exists=True, file_okay=False),
              help="With --add-pack: the build folder to add the pack to.")
@click.option("--force", is_flag=True, help="Replace an existing build folder.")
@click.option("--no-capacity-check", is_flag=True, help="Do not fail when the build exceeds the spec's memories.")
@click.option("--check-logits", is_flag=True,
              help="Also compare the decoded build's logits with the pruned+quantized and the float PyTorch models.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 private key (PEM, from `edgemti keygen` or openssl): sign the build's manifest "
                   "(manifest.sig; the key is never copied into the build).")
def compile_cmd(backbone, packs, synthetic_tasks, design, quant, pack_quant, activation_bits, sparsity_embedding,
                sparsity_transformer, max_seq_len, adapter_size, spec, checkpoint, out, add_pack_dir, into, force,
                no_capacity_check, check_logits, as_json, sign_key) -> None:
    """Prune, quantize and bitmask-encode a backbone + task packs into RRAM/DRAM images and a graph.

    With --add-pack P --into BUILD: quantize pack P against BUILD's backbone and append it to BUILD's DRAM image
    (a new manifest version; the RRAM images are not rewritten)."""
    if add_pack_dir is not None or into is not None:
        if add_pack_dir is None or into is None or out is not None or packs or synthetic_tasks:
            raise click.UsageError("--add-pack PACK --into BUILD go together, without --out/--pack/--synthetic-tasks")
        from edgemti.compiler.addpack import add_pack

        res = add_pack(add_pack_dir, into, sign_key=sign_key)
        if as_json:
            echo_json(res.to_dict())
        else:
            click.echo(f"added task {res.task} ({res.pack_bytes} B) to {res.build}: DRAM image {res.dram_bytes} B, "
                       f"manifest version {res.manifest_version}, build {res.old_build_id[:12]} -> "
                       f"{res.new_build_id[:12]}; RRAM images unchanged")
        return
    if out is None:
        raise click.UsageError("give --out BUILD (or --add-pack PACK --into BUILD)")
    if Path(out).exists() and not force:
        raise click.UsageError(f"--out {out} exists: choose another folder, or pass --force to replace that build")
    from edgemti.compiler.config import CompileConfig

    cfg = CompileConfig(backbone=backbone, packs=tuple(packs),
                        synthetic_tasks=tuple(t for t in (synthetic_tasks or "").split(",") if t.strip()),
                        design=design, quant=quant, pack_quant=pack_quant, activation_bits=activation_bits,
                        sparsity_embedding=sparsity_embedding, sparsity_transformer=sparsity_transformer,
                        max_seq_len=max_seq_len, spec=spec, checkpoint=checkpoint, synthetic_adapter=adapter_size,
                        check_capacity=not no_capacity_check)  # checks every option before torch is imported
    from edgemti.compiler import STEPS, compile_build
    from edgemti.compiler.inspect import format_report, inspect_build

    with click.progressbar(length=len(STEPS), label="compile", file=sys.stderr) as bar:
        def step(name: str) -> None:
            bar.label = f"compile: {name}"
            bar.update(1)
        path = compile_build(cfg, out, force=force, progress=step, sign_key=sign_key)
    report = inspect_build(path, check_logits=check_logits)
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))


@main.command()
@click.argument("key", type=click.Path(dir_okay=False))
def keygen(key) -> None:
    """Make an Ed25519 key pair for signed builds: KEY (private, mode 0600: keep it off serving machines and out
    of builds) and KEY.pub (public: what serve --verify-key takes)."""
    from edgemti.formats.signature import generate_keypair

    priv, pub, kid = generate_keypair(key)
    click.echo(f"wrote {priv} (private) and {pub} (public), key id {kid}")


@main.command(name="inspect")
@click.argument("build", type=click.Path(exists=True, file_okay=False))
@click.option("--verify", is_flag=True, help="Check every checksum and the manifest against the images.")
@click.option("--table3", is_flag=True, help="Add the paper's Table III layout (6 in-memory compiles, ~1 min).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="With --table3: write ours-vs-paper bars to this PNG.")
@click.option("--map", "show_map", is_flag=True, help="Print the memory map (every region of every image).")
@click.option("--tensors", "show_tensors", is_flag=True,
              help="One line per backbone tensor: group, shape, sparsity, saturated values, quantization error.")
@click.option("--check-logits", is_flag=True,
              help="Compare the decoded build's logits with the pruned+quantized and the float PyTorch models.")
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(build, verify, table3, plot, show_map, show_tensors, check_logits, as_json) -> None:
    """Memory map and footprint of a build (and its verification / Table III / logits check)."""
    from edgemti.compiler.inspect import format_report, inspect_build

    if plot and not table3:
        raise click.UsageError("--plot draws the Table III comparison: add --table3")
    report = inspect_build(build, verify=verify, table3=table3, check_logits=check_logits, plot=plot,
                           progress=(lambda s: click.echo(f"table3: {s}", err=True)) if table3 else None)
    if as_json:
        echo_json(report)
        return
    click.echo(format_report(report, tensors=show_tensors))
    if show_map:
        click.echo("\nmemory map:")
        for row in report["memory_map"]:
            click.echo(f"  {row['image']:9} {row['offset']:>12,} {row['length']:>11,}  {row['what']}")


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



@main.command(name="import-pack")
@click.argument("src")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Task pack folder to write.")
@click.option("--backbone", default=None, help="Backbone to import onto [default: the base model the adapter names].")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
@click.option("--task", default=None, help="Task name (a GLUE task gives labels and text fields) [default: SRC's name].")
@click.option("--labels", default=None, help="Comma-separated label names in output order (non-GLUE tasks).")
@click.option("--allow-pickle", is_flag=True, help="Load a pickled *.bin weight file with torch.load(weights_only=True) "
              "(tensors only); without it only safetensors are read.")
@click.option("--hub-cache", default=None, type=click.Path(file_okay=False),
              help="Hugging Face hub cache for a hub SRC [default: HF_HUB_CACHE]; offline, a snapshot already there "
              "is used.")
def import_pack_cmd(src, out_dir, backbone, checkpoint, task, labels, allow_pickle, hub_cache) -> None:
    """Import a PEFT LoRA or AdapterHub Houlsby adapter (a folder, or a hub name owner/name[@revision]) as a task
    pack (checked against the backbone)."""
    from pathlib import Path

    from edgemti.compiler.import_pack import ImportConfig, import_pack
    from edgemti.compiler.import_source import parse_source

    cfg = ImportConfig(source=parse_source(src), backbone=backbone, checkpoint=checkpoint, task=task,
                       labels=tuple(x.strip() for x in labels.split(",")) if labels else (), allow_pickle=allow_pickle,
                       hub_cache=Path(hub_cache) if hub_cache else None)
    res = import_pack(cfg, out_dir)
    p = res.pack
    click.echo(f"wrote {out_dir} ({p.task}, {res.library} {type(p.adapter).__name__} from {res.weights_file}, "
               f"{p.num_params:,} task-specific params, {p.size_bytes / 1024:.1f} KiB) on backbone "
               f"{p.backbone['hash'][:8]}")


@main.command(name="export-pack")
@click.argument("pack_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--onnx-adapter", "adapter_out", required=True, type=click.Path(dir_okay=False),
              help="ONNX Runtime adapter file to write (.onnx_adapter; activate with RunOptions.add_active_adapter).")
@click.option("--onnx-model", "graph_out", default=None, type=click.Path(dir_okay=False),
              help="Also write the base graph the adapter activates on (backbone + overridable task inputs).")
@click.option("--checkpoint", default=None, help="Pretrained weights folder for albert-base.")
def export_pack_cmd(pack_dir, adapter_out, graph_out, checkpoint) -> None:
    """Export a task pack as an ONNX Runtime adapter (onnxruntime.AdapterFormat) [and its base graph]."""
    from edgemti.compiler.export_adapter import export_pack

    r = export_pack(pack_dir, adapter_out, graph_out, checkpoint=checkpoint)
    click.echo(f"wrote {r.adapter} ({r.parameters} parameters, model_version {r.model_version})"
               + (f" and {r.graph}" if r.graph else ""))

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
