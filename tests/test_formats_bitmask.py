import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemti.errors import FormatError
from edgemti.formats import bitmask
from edgemti.formats.quant import QFormat, fake_quantize, parse_format, quantize

FORMATS = ["q3.13", "q3.5", "q4.12", "q2.3", "q5.6", "q8.15", "fp32", "fp16"]


@st.composite
def formats(draw):
    """Presets, floats, and any Q(i,f) with 2 <= i + f <= 32."""
    if draw(st.booleans()):
        return parse_format(draw(st.sampled_from(FORMATS)))
    i = draw(st.integers(1, 12))
    f = draw(st.integers(max(0, 2 - i), min(20, 32 - i)))
    return QFormat("fixed", i + f, i, f)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 13), min_size=1, max_size=3), sparsity=st.sampled_from([0.0, 0.3, 0.77, 1.0]),
       fmt=formats(), seed=st.integers(0, 2**16), scale=st.sampled_from([0.05, 1.0, 9.0]))
def test_round_trip_is_exact(shape, sparsity, fmt, seed, scale):
    g = np.random.default_rng(seed)
    x = (g.standard_normal(shape) * scale).astype(np.float32)
    x[g.random(shape) < sparsity] = 0.0  # sparsity 0 = fully dense, 1 = all zero
    enc = bitmask.encode(quantize(x, fmt), fmt)
    out = bitmask.decode(enc.values, enc.mask, x.shape, fmt)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out, fake_quantize(x, fmt))
    assert len(enc.mask) == (x.size + 7) // 8
    assert enc.nnz == np.count_nonzero(out)


def test_all_zero_and_dense_extremes():
    fmt = parse_format("q3.5")
    z = np.zeros((3, 7), dtype=np.float32)
    enc = bitmask.encode(quantize(z, fmt), fmt)
    assert enc.values == b"" and enc.nnz == 0 and enc.mask == b"\0\0\0"
    d = np.full((9,), 0.5, dtype=np.float32)
    enc = bitmask.encode(quantize(d, fmt), fmt)
    assert enc.nnz == 9 and enc.mask == b"\xff\x01" and len(enc.values) == 9  # LSB-first, 9 bits -> 2 bytes


def test_mask_bit_order_lsb_first():
    fmt = QFormat("float", 32)
    x = np.zeros(10, dtype=np.float32)
    x[[1, 8]] = 2.0
    enc = bitmask.encode(x, fmt)
    assert enc.mask == bytes([0b00000010, 0b00000001])


def test_corruption_is_detected():
    fmt = parse_format("q3.13")
    x = np.arange(1, 21, dtype=np.float32).reshape(4, 5) / 10
    enc = bitmask.encode(quantize(x, fmt), fmt)
    with pytest.raises(FormatError, match="needs 3 bytes"):
        bitmask.decode(enc.values, enc.mask[:-1], x.shape, fmt)
    with pytest.raises(FormatError, match="do not belong together"):
        bitmask.decode(enc.values[:-2], enc.mask, x.shape, fmt)
    bad = enc.mask[:-1] + bytes([enc.mask[-1] | 0x80])  # a padding bit set
    with pytest.raises(FormatError, match="padding"):
        bitmask.decode(enc.values, bad, x.shape, fmt)
