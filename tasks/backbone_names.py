"""What can name a backbone, checked without loading one (or importing torch): a preset, a ``config.json``, a
checkpoint folder, or a Hugging Face hub name (``owner/name``). :mod:`edgemti.tasks.backbones` loads them."""

from __future__ import annotations

from pathlib import Path

from edgemti.errors import ConfigError

PRESETS = ("albert-base", "minilm", "albert-tiny", "bert-tiny")


def unknown_backbone(name: str) -> ConfigError:
    """The error for a name that is none of those (also raised when a hub name cannot be fetched)."""
    return ConfigError(f"unknown backbone {name!r}: use a preset ({', '.join(PRESETS)}), a Hugging Face hub name "
                       "(e.g. albert/albert-base-v2, needs internet), a checkpoint folder, or a config.json",
                       options=("backbone",))


def check_backbone_name(name: str) -> None:
    """Raise :func:`unknown_backbone` unless ``name`` can name a backbone (a hub name is only checked in form)."""
    path = Path(name)
    if name in PRESETS or path.is_dir() or (path.is_file() and path.suffix == ".json") or (
            "/" in name and not path.exists()):
        return
    raise unknown_backbone(name)
