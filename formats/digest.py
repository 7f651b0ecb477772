"""The manifest's own digest (``manifest_sha256``): the canonical JSON encoding it is taken over, and the digest.

A manifest is sealed with the sha256 of its JSON object less the ``manifest_sha256`` key; a reader recomputes it
(:mod:`edgemti.formats.manifest_schema`) and refuses an edited or corrupted ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DIGEST_KEY = "manifest_sha256"


def canonical_json(obj: Any) -> bytes:
    """The canonical encoding a digest is taken over: sorted keys, no spaces, ASCII, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode()


def manifest_digest(d: dict) -> str:
    """sha256 of a manifest's JSON object without its ``manifest_sha256`` key (canonical encoding)."""
    return hashlib.sha256(canonical_json({k: v for k, v in d.items() if k != DIGEST_KEY})).hexdigest()
