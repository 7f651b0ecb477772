import numpy as np
import pytest

from edgemti.errors import ConfigError
from edgemti.runtime.faults import FaultModel, count_cell_differences, flip_slc_bits, shift_mlc_levels


def test_rates_validated():
    with pytest.raises(ConfigError, match="slc_error_rate"):
        FaultModel(slc_error_rate=1.5)
    with pytest.raises(ConfigError, match="masks_in"):
        FaultModel(masks_in="dram")


@pytest.mark.parametrize("rate", [1e-3, 0.2])
def test_slc_flip_rate(rate):
    data = bytes(20000)
    out = flip_slc_bits(data, rate, np.random.default_rng(0))
    n = count_cell_differences(data, out, 1)
    assert abs(n / (20000 * 8) - rate) < 4 * np.sqrt(rate / (20000 * 8)) + 1e-4


def test_mlc_moves_to_adjacent_level_only():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    out = shift_mlc_levels(data, 0.05, rng)
    a = np.frombuffer(data, np.uint8)
    b = np.frombuffer(out, np.uint8)
    la = np.stack([(a >> (2 * s)) & 3 for s in range(4)]).astype(int)
    lb = np.stack([(b >> (2 * s)) & 3 for s in range(4)]).astype(int)
    d = np.abs(la - lb)
    assert set(np.unique(d).tolist()) == {0, 1}
    assert abs(d.sum() / d.size - 0.05) < 0.01


def test_fault_model_seeded_and_routes_masks():
    data = bytes(1000)
    f = FaultModel(slc_error_rate=0.0, mlc_error_rate=0.1, seed=7)
    assert f("RRAM_SLC", 0, data) == data  # masks in SLC see the SLC rate (0)
    assert f("RRAM_MLC2", 0, data) == f("RRAM_MLC2", 0, data)
    assert f("RRAM_MLC2", 0, data) != FaultModel(mlc_error_rate=0.1, seed=8)("RRAM_MLC2", 0, data)
    g = FaultModel(slc_error_rate=0.0, mlc_error_rate=0.1, seed=7, masks_in="mlc")
    assert g("RRAM_SLC", 0, data) != data  # masks in MLC see MLC errors
    assert f("DRAM", 0, data) == data
