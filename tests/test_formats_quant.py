import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemti.errors import ConfigError, FormatError
from edgemti.formats.quant import (
    QFormat,
    codes_from_bytes,
    codes_to_bytes,
    dequantize,
    fake_quantize,
    packed_nbytes,
    parse_format,
    quantize,
    saturation_count,
)


def test_presets_and_names():
    assert parse_format("q3.13") == QFormat("fixed", 16, 3, 13)
    assert parse_format("Q3,5") == QFormat("fixed", 8, 3, 5)
    assert parse_format("q4_12").bits == 16
    assert parse_format("fp32") == QFormat("float", 32)
    assert parse_format("float16").name == "fp16"
    for name in ("q3.13", "q3.5", "q4.12", "fp32", "fp16"):
        fmt = parse_format(name)
        assert fmt.name == name
        assert QFormat.from_dict(fmt.to_dict()) == fmt


@pytest.mark.parametrize("bad", ["q3", "int8", "q0.8", "q20.20", "", "fp8", "q-1.5"])
def test_unknown_formats_are_clear_errors(bad):
    with pytest.raises(ConfigError, match="format|QFormat"):
        parse_format(bad)


def test_q35_grid_rounding_and_saturation():
    fmt = parse_format("q3.5")  # codes -128..127, step 1/32, range [-4, 3.96875]
    x = np.array([0.0, 1 / 64, 3 / 64, 0.1, -0.1, 3.99, 4.5, -4.0, -4.2, 100.0], dtype=np.float32)
    codes = quantize(x, fmt)
    assert codes.tolist() == [0, 0, 2, 3, -3, 127, 127, -128, -128, 127]  # 1/64 ties to even (0), 3/64 -> 2
    assert saturation_count(x, fmt) == 4  # 3.99 rounds to code 128 (over), 4.5, -4.2, 100
    np.testing.assert_array_equal(dequantize(codes, fmt), codes.astype(np.float32) / 32)
    assert np.max(np.abs(fake_quantize(x[:5], fmt) - x[:5])) <= fmt.scale / 2


def test_float_passthrough():
    x = np.array([1e-3, -2.5, 65504.0, 1e5], dtype=np.float32)
    np.testing.assert_array_equal(fake_quantize(x, parse_format("fp32")), x)
    assert saturation_count(x, parse_format("fp16")) == 1  # 1e5 overflows half precision
    assert fake_quantize(x[:2], parse_format("fp16")).dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(int_bits=st.integers(1, 12), frac_bits=st.integers(0, 16), n=st.integers(0, 70), seed=st.integers(0, 2**16))
def test_codes_bytes_round_trip_any_width(int_bits, frac_bits, n, seed):
    if not 2 <= int_bits + frac_bits <= 32:
        return
    fmt = QFormat("fixed", int_bits + frac_bits, int_bits, frac_bits)
    g = np.random.default_rng(seed)
    codes = g.integers(fmt.code_min, fmt.code_max + 1, n)
    buf = codes_to_bytes(codes, fmt)
    assert len(buf) == packed_nbytes(n, fmt)
    np.testing.assert_array_equal(codes_from_bytes(buf, n, fmt), codes)


def test_wrong_length_is_format_error():
    fmt = parse_format("q3.13")
    with pytest.raises(FormatError, match="need 6 bytes"):
        codes_from_bytes(b"\0" * 5, 3, fmt)
