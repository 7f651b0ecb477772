"""What a new user trips over (issue 20), each through the installed ``edgemti`` console script: one spec rule for
every command that prices a build, one-line errors instead of tracebacks, argument checks that answer before torch
is imported, explained numbers (logits check, demo, faults), engineering units and the README's outputs ignored."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgemti.cli import main
from edgemti.hwmodel.spec import SPECS_DIR
from edgemti.logsetup import setup_logging
from edgemti.tasks.backbones import default_data_dir

ROOT = Path(__file__).resolve().parent.parent
_EXE = Path(sys.executable).parent / "edgemti"
EXE = str(_EXE) if _EXE.is_file() else (shutil.which("edgemti") or "edgemti")
GLUE = default_data_dir() / "glue"


def cli(*args: str, stdin: str | None = None, timeout: float = 300, importtime: bool = False,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the console script; ``importtime``: under ``python -X importtime`` (stderr then lists every import)."""
    cmd = ([sys.executable, "-X", "importtime", EXE] if importtime else [EXE]) + list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The same command line in this process (``edgemti.cli.main``: no interpreter start, the models stay cached);
    for the commands whose work, not their start, is under test. An exception that is not an exit is raised."""
    res = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, res.stderr)


def imported_torch(p: subprocess.CompletedProcess) -> bool:
    return bool(re.search(r"\|\s+torch$", p.stderr, re.M))


def error_line(p: subprocess.CompletedProcess) -> str:
    """The one error line; fails on a traceback."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.startswith("Error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_spec(tmp_path_factory) -> Path:
    """The shipped adapter spec with a 1 KiB SLC RRAM: every build outgrows it (as MiniLM outgrows the shipped one)."""
    text = (SPECS_DIR / "adapter.toml").read_text()
    head, sep, tail = text.partition("[rram_slc]")
    tail = re.sub(r"capacity_bytes = \d+", "capacity_bytes = 1024", tail, count=1)
    path = tmp_path_factory.mktemp("spec") / "small.toml"
    path.write_text(head + sep + tail)
    return path


# -- 1. one spec rule for every command that prices a build -------------------------------------------------------
def test_report_prices_an_outgrown_build_with_fit_spec_like_serve(build, small_spec, tmp_path):
    p = run("report", str(build), "--spec", str(small_spec))
    assert p.returncode != 0 and "CapacityError" in error_line(p) and "--fit-spec" in error_line(p)
    trace, csv = tmp_path / "t.json", tmp_path / "ops.csv"
    p = run("report", str(build), "--spec", str(small_spec), "--fit-spec", "--trace", str(trace), "--csv", str(csv))
    assert p.returncode == 0, p.stderr
    assert "spec sized for this build: rram_slc 0.00 MiB ->" in p.stdout
    assert json.loads(trace.read_text())["traceEvents"] and csv.read_text().count("\n") > 10
    p = run("report", str(build), "--spec", str(small_spec), "--fit-spec", "--json")
    assert json.loads(p.stdout)["spec_fitted"][0].startswith("rram_slc")
    # serve sizes by the same rule, and logs what it was asked for at INFO, not as a warning
    req = json.dumps({"id": 1, "task": "sst2", "text": "a fine film"}) + "\n"
    p = run("serve", str(build), "--spec", str(small_spec), stdin=req)
    assert "CapacityError" in error_line(p) and "--fit-spec" in error_line(p)
    p = run("serve", str(build), "--spec", str(small_spec), "--fit-spec", stdin=req)
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[0])["ok"], p.stderr
    assert "spec sized" not in p.stderr and "WARNING" not in p.stderr
    p = run("-v", "serve", str(build), "--spec", str(small_spec), "--fit-spec", stdin=req)
    assert re.search(r"^INFO edgemti\.runtime\.serving: spec sized for this build: rram_slc", p.stderr, re.M)


def test_report_paper_refuses_a_build_argument(build):
    p = cli("report", "--paper", str(build))
    assert p.returncode == 2 and "--paper prices the paper's own designs, not a build" in error_line(p)


# -- 2. no tracebacks ---------------------------------------------------------------------------------------------
def test_demo_with_no_requests_is_one_line_before_any_compile():
    p = cli("demo", "--requests", "0", importtime=True)
    assert p.returncode == 1 and "requests must be >= 1, got 0" in error_line(p)
    assert not imported_torch(p)


def test_serve_http_port_in_use_and_localhost(build):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = cli("serve", str(build), "--http", f"127.0.0.1:{port}")
        assert "cannot listen on 127.0.0.1:" in error_line(p) and "Address already in use" in error_line(p)
        p = cli("serve", str(build), "--http", f"localhost:{port}")  # localhost is loopback: same check, no refusal
        assert "cannot listen on 127.0.0.1:" in error_line(p)
    p = cli("serve", str(build), "--http", "localhost:0", "--duration", "0.5")
    assert p.returncode == 0, p.stderr
    assert re.search(r"serving http://127\.0\.0\.1:\d+/infer", p.stderr)
    p = cli("serve", str(build), "--http", "example.com:80")
    assert "loopback" in error_line(p)


def test_malformed_request_answer_has_no_stdin_only_hint(build):
    p = run("serve", str(build), stdin="{not json\n")
    answer = json.loads(p.stdout.splitlines()[0])
    assert not answer["ok"] and "malformed JSON" in answer["error"]["message"]
    assert "per line" not in answer["error"]["message"]  # the same text answers an HTTP body


# -- 3. the logits check explains itself --------------------------------------------------------------------------
def test_inspect_check_logits_says_what_agreement_means(build):
    p = run("inspect", str(build), "--check-logits")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "seeded random-token sequences" in out and "smoke test, not an accuracy" in out
    assert "the decoded build equals the pruned+quantized model" in out
    assert f"edgemti eval --build {build}" in out


# -- 5. arguments are checked before torch is imported ------------------------------------------------------------
@pytest.mark.parametrize("args, expect", [
    (["compile", "--backbone", "minilm", "--synthetic-tasks", "sst2"], "give --out BUILD"),
    (["compile", "--synthetic-tasks", "sst3", "--out", "{tmp}/b"], "unknown task 'sst3'"),
    (["compile", "--synthetic-tasks", "sst2", "--quant", "q3.55", "--out", "{tmp}/b"], "fp32 or fp16"),
    (["compile", "--synthetic-tasks", "sst2", "--out", "{tmp}"], "exists: choose another folder, or pass --force"),
    (["train", "--task", "sst3", "--out", "{tmp}/p"], "unknown task 'sst3'"),
    (["demo", "--quant", "q3.55"], "'q3.55' (3 integer + 55 fraction bits) is not valid: use qI.F"),
    (["compile", "--backbone", "minlm", "--synthetic-tasks", "sst2", "--out", "{tmp}/b"], "unknown backbone 'minlm'"),
    (["train", "--backbone", "minlm", "--task", "sst2", "--out", "{tmp}/p"], "unknown backbone 'minlm'"),
    (["demo", "--backbone", "minlm"], "unknown backbone 'minlm'"),
])
def test_bad_arguments_answer_without_importing_torch(args, expect, tmp_path):
    p = cli(*[a.format(tmp=tmp_path) for a in args], importtime=True)
    assert p.returncode != 0 and expect in error_line(p)
    assert not imported_torch(p)


def test_grid_value_typo_is_reported_once_and_leaves_no_folder(tmp_path):
    grid = ROOT / "edgemti" / "sweeps" / "paper_sensitivity.toml"
    typo = tmp_path / "typo.toml"
    typo.write_text(grid.read_text().replace('"q3.5"]', '"q3.55"]'))
    out = tmp_path / "results"
    p = cli("sweep", str(typo), "--out", str(out), importtime=True)
    line = error_line(p)
    assert line.count("'q3.55'") == 1 and "fp32 or fp16" in line
    assert not out.exists() and not imported_torch(p)


# -- 6: faults show their sample size (the demo's explanations: tests/test_serve_demo.py) --------------------------
@pytest.mark.skipif(not (GLUE / "SST-2" / "dev.tsv").is_file(), reason="needs shared/data/glue")
def test_faults_show_the_sample_size_and_interval(build, tmp_path):
    png = tmp_path / "f.png"
    p = run("faults", str(build), "--rates", "1e-3", "--task", "sst2", "--max-examples", "30", "--plot", str(png))
    assert p.returncode == 0, p.stderr
    head = next(x for x in p.stdout.splitlines() if x.startswith("task"))
    assert " n " in head and "95% CI" in head
    row = next(x for x in p.stdout.splitlines() if x.startswith("sst2"))
    assert re.search(r"sst2 +accuracy +30 .*\[\d+\.\d, \d+\.\d\]$", row)
    assert "sampling noise" in p.stdout and png.stat().st_size > 10_000
    p = run("faults", str(build), "--rates", "1e-3", "--task", "sst2", "--max-examples", "30", "--plot", str(png),
            "--json")
    d = json.loads(p.stdout)
    lo, hi = d["baseline_ci"]["sst2"]
    assert d["n_examples"]["sst2"] == 30 and lo <= d["baselines"]["sst2"] <= hi


def test_readme_outputs_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["log.jsonl", "faults.png", "out.json", "ops.csv", "build/", "results/", "packs/rte/", "runs/rte-full/"]
    p = subprocess.run(["git", "check-ignore", *written], cwd=ROOT, capture_output=True, text=True)
    assert sorted(p.stdout.split()) == sorted(written)
    shipped = subprocess.run(["git", "check-ignore", "tasks/packs/sst2/pack.json"], cwd=ROOT, capture_output=True)
    assert shipped.returncode == 1  # the shipped packs stay tracked


def test_log_lines_carry_one_level_prefix():
    """A message that starts with its level (the backbone's random-init warning is also shown by inspect) is not
    prefixed twice by the CLI's log format."""
    setup_logging(0)  # what main() runs first
    stream = io.StringIO()
    handler = logging.getLogger().handlers[-1]
    handler.setStream(stream)
    logging.getLogger("edgemti.tasks.backbones").warning("WARNING: backbone 'albert-base' is RANDOMLY INITIALISED")
    logging.getLogger("edgemti.runtime.serving").info("spec sized for this build")  # INFO: below the default level
    assert stream.getvalue() == "WARNING edgemti.tasks.backbones: backbone 'albert-base' is RANDOMLY INITIALISED\n"



def test_engineering_units():
    from edgemti.units import quantity, si, size

    assert (si(3.4164e-4, "J"), si(2.79156e-3, "J"), si(999.96e-6, "J"), si(5.2e-3, "s")) == (
        "341.6 uJ", "2.792 mJ", "1.000 mJ", "5.200 ms")
    assert (size(176_836), size(21_299_200), size(500)) == ("172.7 KiB", "20.31 MiB", "500 B")
    assert quantity(16.9, "mm2") == "16.9 mm2" and quantity(2048, "B") == "2.000 KiB"


def test_report_paper_bar_labels_are_short_lines():
    """The PNG's labels: at most ~20 characters a line, so neighbours never overlap (the figure is also saved with
    a tight bounding box); the terminal table sizes its label column to the longest label (format_paper)."""
    from edgemti.studies.paper import _bar_label

    for fig_id in ("fig6.area.adapter_fp32", "fig6.energy_per_inference.adapter_q3.5",
                   "abstract.latency_per_inference.vanilla_q3.5_over_adapter_q3.5"):
        lines = _bar_label(fig_id).splitlines()
        assert 2 <= len(lines) <= 3 and max(map(len, lines)) <= 20, lines
    assert _bar_label("abstract.energy_per_inference.vanilla_q3.5_over_adapter_q3.5") == (
        "abstract energy\nvanilla q3.5 /\nadapter q3.5")
