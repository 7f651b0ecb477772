"""Accelergy interop: our counts x our ERT close on the hwmodel's energy; an Accelergy ERT re-prices them."""

from __future__ import annotations

import pytest
import yaml
from hw_support import FP32, tiny_hw

from edgemti.errors import FormatError
from edgemti.hwmodel import load_spec
from edgemti.hwmodel.accelergy import ert_entries, export, read_ert, reprice


@pytest.fixture(scope="module")
def hw():
    return tiny_hw("adapter", FP32)


def test_export_writes_accelergy_files_that_close_on_our_energy(hw, tmp_path):
    r = export(hw, 16, tmp_path)
    ac = yaml.safe_load((tmp_path / "action_counts.yaml").read_text())["action_counts"]
    ert = yaml.safe_load((tmp_path / "ERT.yaml").read_text())["ERT"]
    art = yaml.safe_load((tmp_path / "ART.yaml").read_text())["ART"]
    assert ac["version"] == ert["version"] == art["version"] == "0.4"
    names = {c["name"] for c in ac["local"]}
    assert {"edgemti_hma.sram", "edgemti_hma.rram_mlc", "edgemti_hma.pe_array"} <= names
    assert all(a["counts"] > 0 for c in ac["local"] for a in c["action_counts"])
    assert all(a["energy"] >= 0 for t in ert["tables"] for a in t["actions"])
    area = {t["name"].split(".")[-1]: t["area"] for t in art["tables"]}
    assert sum(area.values()) * 1e-6 == pytest.approx(hw.area().total_mm2)
    for run in ("inference", "switch"):
        c = r["checks"][run]
        assert c["closes"] and c["counts_x_ert_energy_j"] == pytest.approx(c["hwmodel_energy_j"], rel=1e-9)
    sw = yaml.safe_load((tmp_path / "action_counts_switch.yaml").read_text())["action_counts"]["local"]
    dram = {a["name"]: a["counts"] for c in sw if c["name"].endswith(".dram") for a in c["action_counts"]}
    assert dram["read"] * 64 == pytest.approx(8 * hw.sram_set_bytes(r["task"]))  # a swap moves the SRAM set


def test_ert_overrides_reprice_exactly(hw, tmp_path):
    ours = {(e.component, e.action): e.energy_pj for e in ert_entries(hw) if not e.arguments}
    f = tmp_path / "ERT.yaml"
    f.write_text(yaml.safe_dump({"ERT": {"version": "0.4", "tables": [
        {"name": "system_top_level.DRAM[1..1]", "actions": [
            {"name": "read", "arguments": {"global_cycle_seconds": 1e-9}, "energy": 2 * ours[("dram", "read")]},
            {"name": "leak", "arguments": {"global_cycle_seconds": 1e-9}, "energy": 0.0}]},  # Timeloop's: ignored
        {"name": "system.pe_array", "actions": [{"name": "mac_random", "arguments": {"precision": "float32"},
                                                  "energy": 0.0}]}]}}))
    r = reprice(hw, 16, f)
    sw = r["switch"]["by_component_j"]
    assert sw["dram"]["ert"] == pytest.approx(2 * sw["dram"]["spec"])
    assert sw["sram"]["ert"] == sw["sram"]["spec"]
    inf = r["inference"]["by_component_j"]
    assert inf["pe_array"]["ert"] < inf["pe_array"]["spec"] and r["overridden"] == 2


def test_bad_ert_lists_every_problem(hw, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"ERT": {"version": "0.4", "tables": [
        {"name": "x.DRAM", "actions": [{"name": "read", "energy": -1}, {"name": "fetch", "energy": 1.0}]},
        {"name": "x.l2_cache", "actions": []}]}}))
    with pytest.raises(FormatError, match=r"3 problem\(s\).*energy must be a number >= 0.*no action 'fetch'.*"
                                          r"no component 'l2_cache'"):
        read_ert(f, ert_entries(hw))
    f.write_text("tables: [1, 2")
    with pytest.raises(FormatError, match="cannot read it as YAML"):
        read_ert(f, ert_entries(hw))
    f.write_text("ART: {}")
    with pytest.raises(FormatError, match="not an Accelergy ERT"):
        read_ert(f, ert_entries(hw))


def test_excluded_conventions_carry_no_counts(tmp_path):
    spec = load_spec(design="adapter").with_overrides({"execution.include_compute_energy": False,
                                                       "execution.include_leakage": False})
    h = tiny_hw("adapter", FP32, spec=spec)
    r = export(h, 16, tmp_path)
    ac = yaml.safe_load((tmp_path / "action_counts.yaml").read_text())["action_counts"]["local"]
    assert not any(c["name"].endswith(("pe_array", "sfu", "bitmask_codec")) for c in ac)
    assert not any(a["name"] == "leak" for c in ac for a in c["action_counts"])
    c = r["checks"]["inference"]
    assert c["counts_x_ert_energy_j"] == pytest.approx(c["hwmodel_energy_j"], rel=1e-9)

