"""Where an imported adapter comes from: a local folder, or a Hugging Face hub repository fetched into the cache.

``parse_source(text)`` is the one place the import's SRC is read:

* an existing folder is a :class:`pathlib.Path`, used as it is;
* otherwise ``owner/name`` or ``owner/name@revision`` (a branch, tag or commit) is a :class:`HubSource`;
* anything else is a :class:`ConfigError` naming both readings.

``fetch(source, allow_pickle, cache_dir)`` turns a :class:`HubSource` into the folder of its snapshot with
``huggingface_hub.snapshot_download``, asking only for the files an import reads (the configs and the safetensors
weights; the pickled ``*.bin`` files only when pickles are allowed, so a refused pickle is never even downloaded).
Without a network the hub library answers from its cache (``HF_HUB_CACHE``, or ``cache_dir``) when the snapshot is
there, which is how an air-gapped machine imports an adapter fetched elsewhere; when it is not, the error says
which repository and revision could not be found and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgemti.compiler import import_adapterhub as hub
from edgemti.compiler import import_peft as peft
from edgemti.errors import ConfigError, FormatError

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")

CONFIGS = (peft.PEFT_CONFIG, hub.HEAD_CONFIG)
SAFETENSORS = peft.PEFT_SAFETENSORS + hub.HUB_SAFETENSORS + hub.HEAD_SAFETENSORS
PICKLES = peft.PEFT_PICKLES + hub.HUB_PICKLES + hub.HEAD_PICKLES


@dataclass(frozen=True)
class HubSource:
    """A hub repository holding one adapter at its root: ``repo_id`` (``owner/name``) at ``revision`` (None: main)."""

    repo_id: str
    revision: str | None = None

    def __post_init__(self) -> None:
        if not _REPO.match(self.repo_id) or ".." in self.repo_id:
            raise ConfigError(f"HubSource: repo_id must be owner/name, got {self.repo_id!r}")
        if self.revision is not None and (not _REVISION.match(self.revision) or ".." in self.revision):
            raise ConfigError(f"HubSource: revision must be a branch, tag or commit, got {self.revision!r}")

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_source(text: str) -> Path | HubSource:
    """An existing folder, else a hub name ``owner/name[@revision]``; :class:`ConfigError` when it is neither."""
    path = Path(text)
    if path.is_dir():
        return path
    if path.exists():
        raise ConfigError(f"{text}: a file, not an adapter folder: give the folder holding adapter_config.json")
    repo, at, revision = text.partition("@")
    if _REPO.match(repo) and ".." not in repo and (not at or (_REVISION.match(revision) and ".." not in revision)):
        return HubSource(repo, revision or None)
    raise ConfigError(f"{text}: no such folder, and not a hub name (owner/name or owner/name@revision)")


def fetch(source: HubSource, allow_pickle: bool = False, cache_dir: Path | None = None) -> Path:
    """The local folder of ``source``'s snapshot (downloaded, or found in the hub cache when offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = list(CONFIGS + SAFETENSORS + (PICKLES if allow_pickle else ()))
    try:
        folder = snapshot_download(repo_id=source.repo_id, revision=source.revision, allow_patterns=patterns,
                                   cache_dir=str(cache_dir) if cache_dir else None)
    except LocalEntryNotFoundError as exc:
        raise FormatError(f"hub adapter {source}: not reachable and not in the hub cache"
                          f"{f' {cache_dir}' if cache_dir else ''}: {exc}") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise FormatError(f"hub adapter {source}: could not be fetched: {exc}") from exc
    return Path(folder)
