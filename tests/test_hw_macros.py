"""Macro library and provisioning: checksummed table, exact choice vs brute force, monotonicity properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemti.errors import CapacityError, FormatError
from edgemti.hwmodel import load_macro_table, load_spec, provision
from edgemti.hwmodel.macros import menu

SPEC = load_spec()
TABLE = load_macro_table(SPEC.macro_library_path())
KIB = 1024


def test_table_has_sources_and_the_reference_rows():
    assert all(m.source for m in TABLE)
    sram2m = [m for m in TABLE if m.tech == "SRAM" and m.node_nm == 22 and m.word_cells == 64
              and m.data_cap_bytes == 2048 * KIB][0]
    assert sram2m.area_mm2 == pytest.approx(1.309)
    assert sram2m.read_pj_per_bit == pytest.approx(1.128 / 64)
    mlc = [m for m in TABLE if m.tech == "RRAM_MLC2" and m.word_cells == 64 and m.data_cap_bytes == 2048 * KIB][0]
    assert mlc.word_bits == 128 and mlc.read_pj_per_bit == pytest.approx(4.607 / 128)


def test_corrupt_or_unknown_table_is_rejected(tmp_path):
    text = SPEC.macro_library_path().read_text()
    bad = tmp_path / "m.csv"
    bad.write_text(text.replace("0.0489101", "0.0489102"))
    with pytest.raises(FormatError, match="body_sha256 mismatch"):
        load_macro_table(bad)
    bad.write_text(text.replace("# format_version: 1", "# format_version: 7"))
    with pytest.raises(FormatError, match="format_version '7' is not supported"):
        load_macro_table(bad)


def _brute(level: str, need: int, max_macros: int):
    macros = menu(TABLE, SPEC.memory(level), 22)
    best = None
    for k in range(1, max_macros + 1):
        for combo in itertools.combinations_with_replacement(macros, k):
            cap = sum(m.data_cap_bytes for m in combo)
            if cap < need:
                continue
            key = (cap, sum(m.data_cap_bytes * m.read_pj_per_bit for m in combo))
            if best is None or key < best[0]:
                best = (key, combo)
    return best[0]


@pytest.mark.parametrize("level,need", [("sram", 100 * KIB), ("sram", 1900 * KIB), ("rram_mlc", 5 * 1024 * KIB),
                                        ("rram_slc", 1500 * KIB), ("sram", 64 * KIB)])
def test_closest_cover_matches_brute_force(level, need):
    spec = SPEC.with_overrides({f"{level}.max_macros": 3})
    p = provision(level, spec.memory(level), 22, TABLE, need)
    cap, energy = _brute(level, need, 3)
    assert p.capacity_bytes == cap
    assert p.read_j_per_bit * p.capacity_bytes == pytest.approx(energy * 1e-12)


def test_exact_macro_and_weighted_figures():
    p = provision("rram_slc", SPEC.rram_slc, 22, TABLE, 2048 * KIB)
    assert p.capacity_bytes == 2048 * KIB
    # capacity-weighted read energy per bit of the chosen macros (REFERENCE s9.2)
    macros = {m.data_cap_bytes: m for m in menu(TABLE, SPEC.rram_slc, 22)}
    e = sum(n * c * macros[c].read_pj_per_bit for c, n in p.macros) / p.capacity_bytes
    assert p.read_j_per_bit == pytest.approx(e * 1e-12)
    assert p.area_mm2 == pytest.approx(sum(n * macros[c].area_mm2 for c, n in p.macros))


def test_parallel_bandwidth_sums_macros():
    spec = SPEC.with_overrides({"sram.bw_mode": "parallel"})
    w = provision("sram", SPEC.sram, 22, TABLE, 3 * 1024 * KIB)
    p = provision("sram", spec.sram, 22, TABLE, 3 * 1024 * KIB)
    assert p.read_bytes_per_s > w.read_bytes_per_s and p.macros == w.macros


def test_capacity_errors_name_the_numbers():
    with pytest.raises(CapacityError, match="sram needs .* MiB, the spec offers 8.00 MiB"):
        provision("sram", SPEC.sram, 22, TABLE, 9 * 2**20)
    spec = SPEC.with_overrides({"rram_mlc.max_macros": 1, "rram_mlc.capacity_bytes": 2**30})
    with pytest.raises(CapacityError, match="raise max_macros"):
        provision("rram_mlc", spec.rram_mlc, 22, TABLE, 20 * 2**20)


def test_zero_requirement_provisions_nothing():
    p = provision("rram_slc", SPEC.rram_slc, 22, TABLE, 0)
    assert p.capacity_bytes == 0 and p.area_mm2 == 0 and p.leak_w == 0


@settings(max_examples=40, deadline=None)
@given(a=st.integers(0, 30 * 2**20), b=st.integers(0, 30 * 2**20))
def test_bigger_requirement_never_shrinks_capacity_or_min_area(a, b):
    lo, hi = sorted((a, b))
    for objective in ("closest", "min_area"):
        spec = SPEC.with_overrides({"rram_mlc.objective": objective})
        p_lo = provision("rram_mlc", spec.rram_mlc, 22, TABLE, lo)
        p_hi = provision("rram_mlc", spec.rram_mlc, 22, TABLE, hi)
        assert p_hi.capacity_bytes >= p_lo.capacity_bytes >= lo
        if objective == "min_area":
            assert p_hi.area_mm2 >= p_lo.area_mm2 - 1e-12
