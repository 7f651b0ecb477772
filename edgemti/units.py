"""Numbers for people: engineering units (``341.6 uJ``, ``2.79 mJ``, ``172.7 KiB``, ``20.3 MiB``), never
``2.08e+04 KiB``. Values come in SI base units (joules, seconds, bytes); only these functions scale them."""

from __future__ import annotations

import math

_SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def si(x: float, unit: str, digits: int = 4) -> str:
    """``x`` (in ``unit``, e.g. J or s) with the SI prefix that puts it in [1, 1000): ``si(3.4164e-4, "J")`` ->
    ``341.6 uJ``; ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g} {unit}"
    for scale, prefix in _SI:
        if abs(x) >= scale * (1 - 0.5 * 10 ** -digits):
            return f"{x / scale:#.{digits}g} {prefix}{unit}"
    scale, prefix = _SI[-1]
    return f"{x / scale:#.{digits}g} {prefix}{unit}"


def size(n_bytes: float, digits: int = 4) -> str:
    """A size in bytes with the binary prefix that puts it in [1, 1024): ``size(21_300_000)`` -> ``20.31 MiB``."""
    for scale, unit in _BINARY:
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:#.{digits}g} {unit}"
    return f"{n_bytes:.0f} B"


def quantity(x: float, unit: str, digits: int = 4) -> str:
    """``x`` in ``unit``: bytes (``B``) get binary prefixes, J/s/W/Hz SI prefixes, anything else (mm2, x) as is."""
    if unit == "B":
        return size(x, digits)
    if unit in ("J", "s", "W", "Hz"):
        return si(x, unit, digits)
    return f"{x:.{digits}g} {unit}"
