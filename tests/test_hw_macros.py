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


# -- technology nodes and the NVSim converter ----------------------------------------------------------------


def _nvsim_rows(table):
    return tuple(m for m in table if not m.source.startswith("[D]"))


def test_every_node_has_every_22nm_capacity_by_the_documented_rule():
    """28/40 nm: the CSV's [D] rows are exactly derive_node_rows of its NVSim rows (anchor: the 2 MiB macro)."""
    from edgemti.hwmodel.macros import derive_node_rows

    nvsim = _nvsim_rows(TABLE)
    derived = [m for m in TABLE if m.source.startswith("[D]")]
    want = [m for n in (28, 40) for m in derive_node_rows(nvsim, n)]
    key = lambda m: (m.tech, m.node_nm, m.word_cells, m.data_cap_bytes)  # noqa: E731
    assert sorted(map(key, derived)) == sorted(map(key, want))
    got = {key(m): m for m in derived}
    for w in want:
        g = got[key(w)]
        assert g.area_mm2 == pytest.approx(w.area_mm2, rel=1e-5) and g.leak_w == pytest.approx(w.leak_w, rel=1e-5)
    for tech in ("SRAM", "RRAM_SLC", "RRAM_MLC2"):
        caps22 = {m.data_cap_bytes for m in TABLE if (m.tech, m.node_nm, m.word_cells) == (tech, 22, 64)}
        for node in (28, 40):
            assert caps22 == {m.data_cap_bytes for m in TABLE if (m.tech, m.node_nm, m.word_cells) == (tech, node, 64)}
    sram = {(m.node_nm, m.data_cap_bytes): m for m in TABLE if m.tech == "SRAM" and m.word_cells == 64}
    ratio = sram[(28, 2048 * KIB)].area_mm2 / sram[(22, 2048 * KIB)].area_mm2
    assert sram[(28, 1024 * KIB)].area_mm2 == pytest.approx(sram[(22, 1024 * KIB)].area_mm2 * ratio, rel=1e-5)


@pytest.mark.parametrize("node", [28, 40])
def test_older_nodes_provision_above_2mib(node):
    for level in ("sram", "rram_mlc"):
        spec = SPEC.on_chip_memory(level)
        need = min(spec.capacity_bytes, 6 * 1024 * KIB)
        p = provision(level, spec, node, TABLE, need)
        assert p.capacity_bytes >= need and p.area_mm2 > provision(level, spec, 22, TABLE, need).area_mm2


def test_unknown_node_is_refused_with_the_nodes_the_library_has():
    with pytest.raises(CapacityError, match=r"at 7 nm.*\(22, 64\), \(22, 128\), \(28, 64\), \(40, 64\)"):
        provision("sram", SPEC.sram, 7, TABLE, KIB)


NVSIM_CFG = """-DesignTarget: RAM
-ProcessNode: 22
-Capacity (KB): 256
-WordWidth (bit): 64
-DeviceRoadmap: LOP
"""
NVSIM_OUT = """=============
   RESULT
=============
Area:
 - Total Area = 312.514um x 263.116um = 82927.5um^2
 |--- Mat Area      = 312.514um x 263.116um = 82927.5um^2   (86.9%)
Timing:
 -  Read Latency = 730.968ps
 |--- H-Tree Latency = 12.3ps
 - RESET Latency = 100.012ns
 - SET Latency   = 10.609ns
Bandwidth:
 - Read Bandwidth  = 16.201GB/s
 - Write Bandwidth = 746.49MB/s
Power:
 -  Read Dynamic Energy = 2.145pJ
 - RESET Dynamic Energy = 60.1pJ
 - SET Dynamic Energy = 51.329pJ
 - Leakage Power = 857.669uW
"""


def test_nvsim_report_converts_to_a_macro_row(tmp_path):
    """The converter reads NVSim's report (units, SET as write, cells -> data) into a loadable macro CSV."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import nvsim_to_macros as conv

    (tmp_path / "r.cfg").write_text(NVSIM_CFG)
    (tmp_path / "r.nvout").write_text(NVSIM_OUT)
    out = tmp_path / "m.csv"
    assert conv.main(["convert", "--tech", "RRAM_MLC2", "--bits-per-cell", "2", "--source", "test run", "--out",
                      str(out), str(tmp_path / "r.cfg"), str(tmp_path / "r.nvout")]) == 0
    (m,) = load_macro_table(out)
    ref = [r for r in TABLE if r.tech == "RRAM_MLC2" and r.node_nm == 22 and r.word_cells == 64
           and r.data_cap_bytes == 512 * KIB][0]  # the same macro, transcribed by hand
    assert m.data_cap_bytes == 512 * KIB and m.word_bits == 128 and m.source == "test run"
    assert m.area_mm2 == pytest.approx(ref.area_mm2, rel=1e-5)
    assert m.read_s == pytest.approx(ref.read_s, rel=1e-3) and m.write_s == pytest.approx(10.609e-9)
    assert m.read_pj_per_access == pytest.approx(ref.read_pj_per_access) and m.write_pj_per_access == 51.329
    assert m.leak_w == pytest.approx(857.669e-6) and m.read_bytes_per_s == pytest.approx(ref.read_bytes_per_s)
    assert m.write_bytes_per_s == pytest.approx(ref.write_bytes_per_s, rel=1e-5)
    (tmp_path / "bad.nvout").write_text(NVSIM_OUT.replace(" - Leakage Power = 857.669uW\n", ""))
    with pytest.raises(FormatError, match=r"missing \['leak_w'\]"):
        conv.macro_from_run(NVSIM_CFG, (tmp_path / "bad.nvout").read_text(), "RRAM_MLC2", 2, "x")
    with pytest.raises(FormatError, match="lacks"):
        conv.parse_nvsim_config("-Capacity (KB): 512\n")
