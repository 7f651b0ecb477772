"""Library errors speak the library's language; the CLI adds its flag spellings in one place (issue 19).

Every error string raised under the library's folders is scanned for ``--flag`` spellings, and every parameter
an error names in ``options=`` must have a CLI spelling in ``edgemti.cli.flags.FLAG_OF``, and every spelling
there must be a real option of some command.
"""

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemti import cli
from edgemti.cli import flags
from edgemti.errors import CapacityError, ConfigError

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("runtime", "compiler", "tasks", "formats", "hwmodel", "edgemti")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _library_files():
    for folder in LIBRARY:
        for py in sorted((ROOT / folder).rglob("*.py")):
            if ROOT / "edgemti" / "cli" not in py.parents:  # the CLI is where flags belong
                yield py


def _raises(py: Path):
    for node in ast.walk(ast.parse(py.read_text(), filename=str(py))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            yield node.exc
        # messages collected into a problems list and raised together (STYLE rule 4)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                and isinstance(node.func.value, ast.Name) and "problem" in node.func.value.id):
            yield node


def test_no_cli_flags_in_library_error_strings():
    bad = []
    for py in _library_files():
        for exc in _raises(py):
            for sub in ast.walk(exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and FLAG.search(sub.value):
                    bad.append(f"{py.relative_to(ROOT)}:{sub.lineno}: {sub.value!r}")
    assert not bad, "library errors name CLI flags (name the parameter in options= instead):\n" + "\n".join(bad)


def test_every_option_an_error_names_has_a_cli_spelling():
    unknown = []
    for py in _library_files():
        for exc in _raises(py):
            for sub in ast.walk(exc):
                if isinstance(sub, ast.keyword) and sub.arg == "options" and isinstance(sub.value, ast.Tuple):
                    for elt in sub.value.elts:
                        assert isinstance(elt, ast.Constant), f"{py}: options= holds a non-literal"
                        if elt.value not in flags.FLAG_OF:
                            unknown.append(f"{py.relative_to(ROOT)}:{elt.lineno}: {elt.value!r}")
    assert not unknown, "add these to edgemti.cli.flags.FLAG_OF:\n" + "\n".join(unknown)


def _options(cmd) -> set[str]:
    out = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for sub in getattr(cmd, "commands", {}).values():
        out |= _options(sub)
    return out


def test_every_flag_the_hints_name_is_a_real_option():
    real = _options(cli.main)
    assert {"--fit-spec", "--force", "--out", "--pin"} <= real  # the walk sees the commands of every module
    missing = {name: flag for name, flag in flags.FLAG_OF.items() if flag not in real}
    assert not missing, f"FLAG_OF spells options no command has: {missing}"


def test_the_scan_sees_a_flag():
    tree = ast.parse('raise ConfigError("pass --force to replace it")')
    consts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert any(FLAG.search(c) for c in consts)
    assert not FLAG.search("a 2--3 range") and not FLAG.search("x--y")


def test_cli_renders_the_flags_of_an_error():
    msg = flags.error_message(ConfigError("output folder b exists", options=("out", "force")))
    assert msg == "ConfigError: output folder b exists [see --out, --force]"
    assert flags.error_message(ConfigError("plain")) == "ConfigError: plain"
    # a build that outgrows the spec: the commands that can size it say how, once
    assert flags.error_message(CapacityError("too big"), "report").endswith("; or add --fit-spec to size the spec's "
                                                                            "on-chip memories to this build")
    assert flags.error_message(CapacityError("too big", options=("fit",)), "serve") == \
        "CapacityError: too big [see --fit-spec]"
    assert flags.error_message(CapacityError("too big"), "inspect") == "CapacityError: too big"


@pytest.mark.parametrize("args, flag", [
    (["serve", "{build}", "--requests", "{missing}"], "--requests"),
])
def test_console_error_names_the_flag(tmp_path, args, flag):
    build = tmp_path / "b"
    build.mkdir()
    argv = [a.format(build=build, missing=tmp_path / "nope.jsonl") for a in args]
    result = CliRunner().invoke(cli.main, argv)
    assert result.exit_code != 0
    assert flag in result.output and "Traceback" not in result.output


def test_train_plan_names_every_bad_combination_once():
    """``edgemti train``'s option combinations are the library's (studies/training.py), checked before anything loads."""
    from edgemti.studies.training import TrainPlan

    with pytest.raises(ConfigError) as e:
        TrainPlan(on_build="b", compression={"quant": "q3.5"}, from_pack="p")
    msg = flags.error_message(e.value)
    assert "compression settings, not both" in msg and "only gets off-ramps added" in msg
    assert msg.endswith("[see --on-build, --quant, --from-pack, --off-ramps]")
    with pytest.raises(ConfigError, match="fault-aware training trains on a served backbone"):
        TrainPlan(fault_mlc_rate=1e-4)
    assert TrainPlan(fault_mlc_rate=1e-4, on_build="b").on_build == "b"
