#!/usr/bin/env bash
# Type-check the library with mypy (house style rule 15).
# The package maps folders with setuptools package-dir (edgemti.compiler = compiler/, ...), which mypy
# cannot follow, so we build a temporary tree of symlinks shaped like the installed package and check it
# there with the [tool.mypy] config from pyproject.toml.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/edgemti"
for f in "$root"/edgemti/*.py; do
  ln -s "$f" "$tmp/edgemti/"
done
ln -s "$root/edgemti/studies" "$tmp/edgemti/studies"
ln -s "$root/edgemti/cli" "$tmp/edgemti/cli"
for d in compiler runtime hwmodel tasks formats; do
  ln -s "$root/$d" "$tmp/edgemti/$d"
done
cd "$tmp"
python3 -m mypy --config-file "$root/pyproject.toml" --cache-dir "$tmp/.mypy_cache" -p edgemti
