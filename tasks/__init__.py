"""edgemti.tasks: GLUE task registry, loaders, metrics, the adapter model, training and task packs."""

from pathlib import Path


def packs_dir() -> Path:
    """The folder of the task packs shipped with edgemti (MiniLM adapters for sst2, mrpc, rte)."""
    return Path(__file__).resolve().parent / "packs"
