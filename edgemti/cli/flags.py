"""The one place the library's parameter names meet the CLI's flags: error hints.

Library errors (:class:`edgemti.errors.EdgemtiError`) never name a flag; they list the parameters whose change
fixes them (``options=("out", "force")``). :data:`FLAG_OF` spells each as this CLI does and
:func:`error_message` renders an error with them; tests/test_errors_flags.py checks every parameter an error names
is here and every flag here is a real option of some command.
"""

from __future__ import annotations

from edgemti.errors import CapacityError, EdgemtiError

# commands that price a build on a spec: a build that outgrows it is priced on a fitted one with --fit-spec
# (edgemti.runtime.hma.build_spec, the one rule); the hint is added here, the library names no flag
FIT_SPEC_COMMANDS = ("report", "serve")

# The library's parameter names (EdgemtiError.options) as this CLI spells them: the one place flags meet errors.
FLAG_OF = {
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
    "on_build": "--on-build", "from_pack": "--from-pack", "pack_quant": "--pack-quant",
}


def error_message(exc: EdgemtiError, command: str | None = None) -> str:
    """``exc`` as the CLI prints it: its class, its message, and the flags that change what it names; a
    :class:`CapacityError` of a command that can size the spec to the build (``command`` in
    :data:`FIT_SPEC_COMMANDS`) also points to ``--fit-spec``."""
    flags = [FLAG_OF.get(o, o) for o in exc.options]
    hint = f" [see {', '.join(flags)}]" if flags else ""
    msg = f"{type(exc).__name__}: {exc}{hint}"
    if isinstance(exc, CapacityError) and command in FIT_SPEC_COMMANDS and "fit" not in exc.options:
        msg += "; or add --fit-spec to size the spec's on-chip memories to this build"
    return msg
