"""Architecture spec: shipped specs load, bad files are rejected with one error listing every problem."""

from __future__ import annotations

import dataclasses

import pytest

from edgemti.errors import SpecError
from edgemti.hwmodel import LEVELS, load_spec
from edgemti.hwmodel.spec import SPECS_DIR, ClockSpec


@pytest.mark.parametrize("design", ["adapter", "vanilla"])
def test_shipped_specs_load(design):
    spec = load_spec(design=design)
    assert spec.design == design
    for level in LEVELS:
        assert spec.memory(level).capacity_bytes > 0
    assert spec.pe_array.macs == 256 and spec.clock.freq_hz == 1e9
    assert spec.macro_library_path().is_file()


def test_vanilla_and_adapter_share_the_accelerator():
    a, v = load_spec(design="adapter"), load_spec(design="vanilla")
    assert a.pe_array == v.pe_array and a.sfu == v.sfu and a.dram == v.dram
    assert v.sram.capacity_bytes > a.sram.capacity_bytes


def _edited(tmp_path, replace: dict[str, str], drop: tuple[str, ...] = ()):
    text = (SPECS_DIR / "adapter.toml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new, 1)
    lines = [ln for ln in text.splitlines() if not any(ln.startswith(d) for d in drop)]
    p = tmp_path / "bad.toml"
    p.write_text("\n".join(lines))
    return p


def test_missing_and_negative_fields_are_listed_in_one_error(tmp_path):
    p = _edited(tmp_path, {"macs = 256": "macs = -4", "read_pj_per_bit = 8.0": "read_pj_per_bit = -1.0"},
                drop=("latency_s",))
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    msg = str(exc.value)
    assert "pe_array.macs must be > 0, got -4" in msg
    assert "dram.latency_s is missing" in msg
    assert "dram.read_pj_per_bit must be >= 0, got -1.0" in msg
    assert "3 problem(s)" in msg and str(p) in msg


def test_unknown_key_wrong_type_and_version(tmp_path):
    p = _edited(tmp_path, {"format_version = 2": "format_version = 9", "vector = 16": "vector = 16\nvectr = 3",
                           "utilization = 1.0": 'utilization = "high"'})
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    msg = str(exc.value)
    assert "format_version 9 is not supported" in msg
    assert "pe_array.vectr is not a known field" in msg
    assert "pe_array.utilization must be float" in msg


def test_bad_toml_and_missing_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[clock\nfreq_hz = 1")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(p)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_specs_are_frozen_and_validate_in_code():
    spec = load_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.clock.freq_hz = 2e9  # type: ignore[misc]
    with pytest.raises(SpecError, match="ClockSpec: freq_hz must be > 0, got 0"):
        ClockSpec(freq_hz=0)


def test_overrides_are_validated_and_change_the_hash():
    spec = load_spec()
    other = spec.with_overrides({"dram.read_pj_per_bit": 15.0})
    assert other.dram.read_pj_per_bit == 15.0 and other.spec_hash() != spec.spec_hash()
    with pytest.raises(SpecError, match="pe_array.utilization must be in"):
        spec.with_overrides({"pe_array.utilization": 1.5})
    with pytest.raises(SpecError, match="no field"):
        spec.with_overrides({"dram.nope": 1})
    with pytest.raises(SpecError, match="unknown memory level"):
        spec.memory("l2")
