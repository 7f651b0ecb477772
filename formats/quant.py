"""Value formats of the images: fixed point Q(i,f) and float pass-through, and their byte encoding.

``Q(i,f)``: two's complement with ``i`` integer bits (sign included) and ``f`` fractional bits, ``bits = i + f``;
a code ``c`` means the value ``c / 2**f``. Quantization is symmetric (no zero point), rounds to nearest (ties to
even, numpy's ``rint``) and saturates to ``[-2**(bits-1), 2**(bits-1) - 1]``. The paper's presets are Q3.13
(16 bits) and Q3.5 (8 bits). ``fp32`` / ``fp16`` pass values through unchanged (fp16 rounds to half precision).

Codes are stored little-endian, ``bits`` each, packed back to back (LSB first) with no padding between values;
8-, 16- and 32-bit codes therefore are plain int8/int16/int32 arrays. Everything here is vectorised numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgemti.errors import ConfigError, FormatError

MAX_FIXED_BITS = 32


@dataclass(frozen=True)
class QFormat:
    """A value format: ``kind="fixed"`` (Q(int_bits, frac_bits)) or ``kind="float"`` (16 or 32 bits)."""

    kind: str  # "fixed" | "float", checked in __post_init__
    bits: int
    int_bits: int = 0
    frac_bits: int = 0

    def __post_init__(self) -> None:
        if self.kind == "float":
            if self.bits not in (16, 32) or self.int_bits or self.frac_bits:
                raise ConfigError(f"QFormat: a float format has bits 16 or 32 and no int/frac bits, got {self}")
        elif self.kind == "fixed":
            if not (isinstance(self.int_bits, int) and isinstance(self.frac_bits, int)):
                raise ConfigError(f"QFormat: int_bits/frac_bits must be ints, got {self.int_bits!r}, {self.frac_bits!r}")
            if self.int_bits < 1:
                raise ConfigError(f"QFormat: int_bits must be >= 1 (it holds the sign), got {self.int_bits}")
            if self.frac_bits < 0:
                raise ConfigError(f"QFormat: frac_bits must be >= 0, got {self.frac_bits}")
            if self.bits != self.int_bits + self.frac_bits or not 2 <= self.bits <= MAX_FIXED_BITS:
                raise ConfigError(f"QFormat: fixed bits must equal int_bits + frac_bits and lie in "
                                  f"[2, {MAX_FIXED_BITS}], got bits={self.bits}, Q{self.int_bits}.{self.frac_bits}")
        else:
            raise ConfigError(f"QFormat: kind must be 'fixed' or 'float', got {self.kind!r}")

    # -- names and JSON ----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"fp{self.bits}" if self.kind == "float" else f"q{self.int_bits}.{self.frac_bits}"

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def scale(self) -> float:
        """Value of one code step (``2**-frac_bits``); 0.0 for floats (no grid)."""
        return 2.0 ** -self.frac_bits if self.is_fixed else 0.0

    @property
    def code_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def max_value(self) -> float:
        return self.code_max * self.scale if self.is_fixed else float(np.finfo(self.float_dtype).max)

    @property
    def float_dtype(self) -> np.dtype:
        return np.dtype("<f2") if self.bits == 16 else np.dtype("<f4")

    def to_dict(self) -> dict:
        if self.is_fixed:
            return {"kind": "fixed", "int_bits": self.int_bits, "frac_bits": self.frac_bits, "bits": self.bits}
        return {"kind": "float", "bits": self.bits}

    @classmethod
    def from_dict(cls, d: dict) -> QFormat:
        try:
            if d["kind"] == "fixed":
                return cls("fixed", int(d["bits"]), int(d["int_bits"]), int(d["frac_bits"]))
            return cls(str(d["kind"]), int(d["bits"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"bad value format {d!r} ({type(exc).__name__}: {exc})") from None
        except ConfigError as exc:
            raise FormatError(f"bad value format {d!r}: {exc}") from None


_Q_RE = re.compile(r"^q(\d+)[.,_](\d+)$")


# the value formats parse_format reads, in words (the one list an error about a format shows)
FORMATS_HELP = (f"use qI.F with I >= 1 and I + F in [2, {MAX_FIXED_BITS}] bits (e.g. q3.13 = 16 bits, q3.5 = 8 bits, "
                "q4.12), fp32 or fp16")


def parse_format(text: str) -> QFormat:
    """``"q3.5"`` / ``"Q3,13"`` / ``"q4_12"`` -> fixed; ``"fp32"`` / ``"float32"`` / ``"fp16"`` -> float."""
    t = str(text).strip().lower()
    if t in ("fp32", "float32", "f32"):
        return QFormat("float", 32)
    if t in ("fp16", "float16", "f16"):
        return QFormat("float", 16)
    m = _Q_RE.match(t)
    if not m:
        raise ConfigError(f"unknown value format {text!r}: {FORMATS_HELP}")
    i, f = int(m.group(1)), int(m.group(2))
    try:
        return QFormat("fixed", i + f, i, f)
    except ConfigError:  # a qI.F spelling of a format that cannot be: say which formats can
        raise ConfigError(f"value format {text!r} ({i} integer + {f} fraction bits) is not valid: {FORMATS_HELP}"
                          ) from None


# -- quantization -------------------------------------------------------------------------------------------------


def quantize(x: np.ndarray, fmt: QFormat) -> np.ndarray:
    """Float array -> codes: int32 for fixed formats, float16/float32 for float formats (same shape)."""
    x = np.asarray(x, dtype=np.float32)
    if not fmt.is_fixed:
        with np.errstate(over="ignore"):  # fp16 overflow -> inf, counted by saturation_count
            return x.astype(fmt.float_dtype)
    scaled = np.rint(x.astype(np.float64) * (1 << fmt.frac_bits))
    return np.clip(scaled, fmt.code_min, fmt.code_max).astype(np.int64 if fmt.bits > 31 else np.int32)


def dequantize(codes: np.ndarray, fmt: QFormat) -> np.ndarray:
    """Codes -> float32 values (``code * 2**-frac_bits`` for fixed formats)."""
    codes = np.asarray(codes)
    if not fmt.is_fixed:
        return codes.astype(np.float32)
    return (codes.astype(np.float64) * fmt.scale).astype(np.float32)


def saturation_count(x: np.ndarray, fmt: QFormat) -> int:
    """How many values of ``x`` lie outside the representable range (clipped by :func:`quantize`)."""
    if not fmt.is_fixed:
        with np.errstate(over="ignore"):
            return int(np.count_nonzero(~np.isfinite(np.asarray(x, dtype=np.float32).astype(fmt.float_dtype))))
    scaled = np.rint(np.asarray(x, dtype=np.float64) * (1 << fmt.frac_bits))
    return int(np.count_nonzero((scaled < fmt.code_min) | (scaled > fmt.code_max)))


def fake_quantize(x: np.ndarray, fmt: QFormat) -> np.ndarray:
    """``dequantize(quantize(x))``: the float32 values a format can hold nearest to ``x``."""
    return dequantize(quantize(x, fmt), fmt)


# -- byte encoding ------------------------------------------------------------------------------------------------

_NATIVE = {8: "<i1", 16: "<i2", 32: "<i4"}


def packed_nbytes(count: int, fmt: QFormat) -> int:
    """Bytes taken by ``count`` codes packed at ``fmt.bits`` each."""
    return (count * fmt.bits + 7) // 8


def codes_to_bytes(codes: np.ndarray, fmt: QFormat) -> bytes:
    """Flat codes -> little-endian bytes, ``fmt.bits`` per code, LSB-first bit packing for odd widths."""
    flat = np.asarray(codes).reshape(-1)
    if not fmt.is_fixed:
        return flat.astype(fmt.float_dtype).tobytes()
    if fmt.bits in _NATIVE:
        return flat.astype(_NATIVE[fmt.bits]).tobytes()
    u = (flat.astype(np.int64) & ((1 << fmt.bits) - 1)).astype("<u4")
    bits = np.unpackbits(u.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")[:, : fmt.bits]
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def codes_from_bytes(buf: bytes | memoryview | np.ndarray, count: int, fmt: QFormat) -> np.ndarray:
    """Inverse of :func:`codes_to_bytes`: ``count`` codes (int32/int64 or float) from exactly the right bytes."""
    need = packed_nbytes(count, fmt)
    if len(buf) != need:
        raise FormatError(f"{count} {fmt.name} values need {need} bytes, got {len(buf)}")
    if not fmt.is_fixed:
        return np.frombuffer(buf, dtype=fmt.float_dtype, count=count)
    if fmt.bits in _NATIVE:
        out = np.frombuffer(buf, dtype=_NATIVE[fmt.bits], count=count)
        return out.astype(np.int64 if fmt.bits > 31 else np.int32)
    flat = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little", count=count * fmt.bits)
    bits = flat.reshape(count, fmt.bits)
    full = np.zeros((count, 32), dtype=np.uint8)
    full[:, : fmt.bits] = bits
    full[:, fmt.bits:] = bits[:, -1:]  # sign extension
    return np.packbits(full, axis=1, bitorder="little").view("<i4").reshape(-1).astype(np.int32)
