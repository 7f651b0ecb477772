"""Task-pack commands: ``params`` (Table II), ``train``, ``calibrate-exit``, ``eval`` (a pack in PyTorch, or a
build as served), ``import-pack`` and ``export-pack``."""

from __future__ import annotations

import sys

import click

from edgemti.cli.group import echo_json, main


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
    from edgemti.studies.training import TrainPlan, train_pack
    from edgemti.tasks.train_config import TrainConfig

    settings = {k: v for k, v in (("sparsity_embedding", sparsity_embedding),
                                  ("sparsity_transformer", sparsity_transformer), ("quant", quant),
                                  ("pack_quant", pack_quant)) if v is not None}
    ramp_cfg = None
    if off_ramps:
        from edgemti.tasks.offramp import OffRampConfig

        ramp_cfg = OffRampConfig(epochs=off_ramp_epochs, lr=off_ramp_lr, max_train_examples=off_ramp_examples,
                                 holdout_examples=holdout_examples, seed=opts["seed"])
    plan = TrainPlan(on_build=on_build, compression=settings, fault_mlc_rate=fault_mlc_rate, fault_seed=fault_seed,
                     off_ramps=ramp_cfg, from_pack=from_pack)  # the combination checked before anything loads
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
    result = train_pack(cfg, out_dir, plan, data_dir=opts["data_dir"], progress=not no_progress)
    if off_ramps:
        p = result.pack
        assert p.off_ramps is not None
        last = p.off_ramps["train"]["history"][-1]
        click.echo(f"wrote {p.path} ({p.task}) with {p.off_ramps['num_layers'] - 1} off-ramps; their train accuracy "
                   f"by layer {last['train_accuracy_by_layer']}; next: edgemti calibrate-exit --pack {p.path}")
        return
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
