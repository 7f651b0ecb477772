"""Recompute the ``# body_sha256`` header of a hwmodel macro table after a deliberate edit.

Usage: python tools/hw_rehash.py hwmodel/data/nvsim_macros_v1.csv
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def rehash(path: Path) -> str:
    lines = path.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    digest = hashlib.sha256("".join(lines[i:]).encode()).hexdigest()
    head = [f"# body_sha256: {digest}\n" if ln.startswith("# body_sha256:") else ln for ln in lines[:i]]
    path.write_text("".join(head + lines[i:]))
    return digest


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg, rehash(Path(arg)))
