"""The paper profile (hwmodel/specs/paper/): every value tagged, Table III as in the targets file, and the paper's
area and energy ratios reproduced within 10 % (these are the paper's ASSUMPTIONS reproduced, not our results)."""

from __future__ import annotations

import json
import re

import pytest

from edgemti.errors import CapacityError, SpecError
from edgemti.hwmodel import load_macro_table, load_spec, provision
from edgemti.hwmodel.spec import ON_CHIP_LEVELS, SPECS_DIR
from edgemti.hwmodel.targets import paper_targets
from edgemti.studies.paper import dram_fit_pj_per_bit, paper_spec_path

PREC = {"fp32": "float32", "q3.13": "fixed16", "q3.5": "fixed8"}
TAG = re.compile(r"\[(paper [^\]]+|abstract|inferred: [^\]]+|fit)\]")
HEADER_KEYS = {"format", "format_version", "name", "design", "description"}


@pytest.mark.parametrize("design", ["adapter", "vanilla"])
def test_every_profile_value_carries_a_source_tag(design):
    """A value is tagged on its own line, by its section's header comment, or by its section's source."""
    lines = paper_spec_path(design).read_text().splitlines()
    sections: dict[str, dict] = {}
    section = ""
    for ln in lines:
        if ln.startswith("["):
            section = ln.split("]")[0][1:]
            sections[section] = {"tagged": bool(TAG.search(ln)), "values": [], "source_tagged": False}
            continue
        m = re.match(r"^(\w+)\s*=", ln)
        if not m or (not section and m.group(1) in HEADER_KEYS):
            continue
        if m.group(1) == "source":
            sections[section]["source_tagged"] = bool(TAG.search(ln))
        else:
            sections[section]["values"].append((m.group(1), bool(TAG.search(ln))))
    untagged = [f"{s}.{k}" for s, v in sections.items() for k, ok in v["values"]
                if not (ok or v["tagged"] or v["source_tagged"]
                        or sections.get(s.split(".")[0], {}).get("source_tagged"))]
    assert not untagged, untagged


@pytest.mark.parametrize("design", ["adapter", "vanilla"])
def test_profile_table3_is_the_targets_table3(design):
    """The profile restates Table III as requirement overrides; the targets file is the one source of truth."""
    spec = load_spec(paper_spec_path(design))
    t3 = paper_targets().table3_mib
    for q, prec in PREC.items():
        mlc, slc, sram = t3[f"{design}_{q}"]
        assert spec.rram_mlc.required_mib[prec] == mlc and spec.rram_slc.required_mib[prec] == slc
        assert spec.sram.required_mib[prec] == sram
    assert spec.rram_mlc.required_unit == "nvsim_cells" and spec.sram.required_unit == "data"
    assert spec.execution.area_scope == "memory"
    assert not spec.execution.include_compute_energy and not spec.execution.include_leakage


def _memory_area(design: str, quant: str) -> tuple[float, dict]:
    spec = load_spec(paper_spec_path(design))
    table = load_macro_table(spec.macro_library_path())
    levels = {lv: provision(lv, spec.on_chip_memory(lv), spec.technology.node_nm, table, 0, precision=PREC[quant])
              for lv in ON_CHIP_LEVELS}
    return sum(p.area_mm2 for p in levels.values()), levels


def test_paper_profile_area_ratios_within_10_percent_of_the_paper():
    """Memory-only area, closest capacity above Table III, at most 2 macros per level: Fig. 6's 2.04x / 5.9x and
    the abstract's 1.7x (vanilla Q3.5 / adapter Q3.5) within 10 %; the abstract's capacities exactly."""
    t = paper_targets()
    base, _ = _memory_area("vanilla", "fp32")
    for q in ("fp32", "q3.5"):
        a, _ = _memory_area("adapter", q)
        assert base / a == pytest.approx(t.reduction[q]["area"], rel=0.10), q
    a8, lv_a = _memory_area("adapter", "q3.5")
    v8, lv_v = _memory_area("vanilla", "q3.5")
    assert v8 / a8 == pytest.approx(t.abstract_reduction_same_quant["q3.5"]["area"], rel=0.10)
    for key, levels in (("adapter_q3.5", lv_a), ("vanilla_q3.5", lv_v)):
        rram = (levels["rram_mlc"].capacity_bytes / 2 + levels["rram_slc"].capacity_bytes) / 2**20  # NVSim cells
        assert rram == t.abstract_footprint_mb[key]["rram"]
        assert levels["sram"].capacity_bytes / 2**20 == t.abstract_footprint_mb[key]["sram"]
        assert all(n <= 2 for p in levels.values() for _, n in p.macros) and all(p.overridden for p in levels.values())


def test_requirement_override_units_and_missing_precision():
    spec = load_spec(paper_spec_path("adapter"))
    assert spec.rram_mlc.required_override_bytes("float32") == round(11.13 * 2**20 * 2)  # cells -> data bytes
    assert spec.sram.required_override_bytes("fixed8") == round(0.11 * 2**20)
    with pytest.raises(SpecError, match="no entry for precision 'float16'"):
        spec.sram.required_override_bytes("float16")
    with pytest.raises(CapacityError, match="give the build's value precision"):
        provision("sram", spec.sram, 22, load_macro_table(spec.macro_library_path()), 0)
    with pytest.raises(SpecError, match="unknown precisions"):
        spec.with_overrides({"sram.required_mib": {"int4": 2.0}})
    with pytest.raises(SpecError, match="must map to numbers > 0"):
        spec.with_overrides({"sram.required_mib": {"float32": 0}})


def test_dram_fit_closed_form_solves_the_ratio():
    """E = N + p D per design: the fitted p puts vanilla-FP32 / adapter exactly on the target."""
    res = {"_dram_pj_per_bit": 40.0,
           "vanilla/fp32": {"energy_per_inference_j": 3e-3 + 40 * 1e-3, "energy_by_component_j": {"dram": 40 * 1e-3}},
           "adapter/fp32": {"energy_per_inference_j": 1e-4 + 40 * 3e-6, "energy_by_component_j": {"dram": 40 * 3e-6}}}
    p = dram_fit_pj_per_bit(res, "fp32", 150.0)
    ratio = (3e-3 + p * 1e-3) / (1e-4 + p * 3e-6)
    assert ratio == pytest.approx(150.0)
    assert dram_fit_pj_per_bit(res, "fp32", 1e6) is None  # beyond the ratio's asymptote D_v / D_a


@pytest.fixture(scope="module")
def paper_doc(tmp_path_factory):
    from edgemti.studies.paper import paper_report

    return paper_report(tmp_path_factory.mktemp("paper"))


@pytest.mark.slow
def test_paper_profile_energy_ratios_within_10_percent_and_report_shape(paper_doc, tmp_path):
    """albert-base, analytic builds priced on both profiles: Fig. 6's energy 146.78x / 682x within 10 % on the
    paper profile (dynamic only, compute excluded, vanilla re-fetching its SRAM set per layer pass, LPDDR
    40 pJ/bit); latency reported as not reproducible with its bound; every figure has the three columns."""
    figs = {f["id"]: f for f in paper_doc["figures"]}
    t = paper_targets()
    for q in ("fp32", "q3.5"):
        for m in ("area", "energy_per_inference"):
            f = figs[f"fig6.{m}.adapter_{q}"]
            assert f["paper"] == t.reduction[q][m]
            assert f["paper_profile"] == pytest.approx(f["paper"], rel=0.10), (m, q)
        lat = figs[f"fig6.latency_per_inference.adapter_{q}"]
        assert lat["reproducible"] is False and "not reproducible" in lat["bound"]
    b = paper_doc["latency_bound"]
    assert b["implied_fp32_over_q3.5"] == pytest.approx(62 / 2.46) and b["bound"] < 8 < b["implied_fp32_over_q3.5"]
    assert all({"paper", "paper_profile", "default"} <= set(f) for f in paper_doc["figures"])
    doc = json.loads(open(paper_doc["files"][0]).read())
    assert doc["format"] == "edgemti-paper-results" and "ASSUMPTIONS" in doc["note"]
    assert [r["mlc_mib"] for r in doc["table3"]["rows"]][:2] == pytest.approx([3.73, 1.86], abs=0.01)
    assert open(paper_doc["files"][2], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_paper_specs_live_beside_the_shipped_ones():
    assert paper_spec_path("adapter").parent == SPECS_DIR / "paper"


def test_shipped_specs_are_named_inside_the_package_not_by_install_path(tmp_path):
    from edgemti.hwmodel.spec import SPECS_DIR
    from edgemti.studies.paper import _spec_label

    assert _spec_label(str(SPECS_DIR / "paper" / "adapter.toml")) == "edgemti.hwmodel/specs/paper/adapter.toml"
    own = str(tmp_path / "my_spec.toml")
    assert _spec_label(own) == own  # a user's own file keeps the path it was given
    assert _spec_label("") == ""  # a spec built in code has no file
