"""Build commands: ``compile`` (or add a pack to a build), ``keygen`` (signing keys) and ``inspect``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgemti.cli.group import echo_json, main


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
