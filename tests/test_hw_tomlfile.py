"""hwmodel/tomlfile.py: every versioned TOML loader parses and checks its header one way."""

import pytest

from edgemti.errors import ConfigError, FormatError, SpecError
from edgemti.hwmodel.spec import SPEC_FORMAT, spec_from_dict
from edgemti.hwmodel.tomlfile import header_problems, read_toml


def test_read_toml_raises_the_loaders_error_naming_file_and_contents(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('format = "x"\nformat_version = 1\n[a]\nb = 2\n')
    assert read_toml(good, ConfigError, "the grid file") == {"format": "x", "format_version": 1, "a": {"b": 2}}
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [1,\n")
    with pytest.raises(SpecError, match=r"bad\.toml: the architecture spec is not valid TOML .*fix the syntax"):
        read_toml(bad, SpecError, "the architecture spec")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"a = '\xff\xfe'\n")
    with pytest.raises(FormatError, match="is not valid TOML"):
        read_toml(binary, FormatError, "the paper targets file")
    with pytest.raises(FormatError, match=r"missing\.toml: cannot read the paper targets file"):
        read_toml(tmp_path / "missing.toml", FormatError, "the paper targets file")


def test_header_problems_lists_both_and_notes_an_old_version():
    assert header_problems({"format": "f", "format_version": 2}, "f", 2) == []
    assert header_problems({}, "f", 2) == ["format must be 'f', got None",
                                           "format_version None is not supported (this edgemti reads 2)"]
    got = header_problems({"format": "f", "format_version": 1}, "f", 2, {1: ": version 1 lacks x"})
    assert got == ["format_version 1 is not supported (this edgemti reads 2): version 1 lacks x"]
    assert header_problems({"format": "f", "format_version": [1]}, "f", 2, {1: ": note"}) == [
        "format_version [1] is not supported (this edgemti reads 2)"]


def test_a_version_1_spec_is_refused_with_what_version_2_added():
    with pytest.raises(SpecError, match=r"format_version 1 is not supported \(this edgemti reads 2\): version 1 has "
                                        r"no PE-array buffer levels"):
        spec_from_dict({"format": SPEC_FORMAT, "format_version": 1, "name": "old"})
