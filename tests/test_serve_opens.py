"""The flow of ``serve`` opens its build once, resolves its spec once and builds one hardware model for it
(issue 19 item 1): every later step is handed the typed objects, nothing re-reads the folder. The other commands
that serve or price a build (``eval --build``, ``faults``, ``demo``, ``inspect --check-logits``) are counted the
same way; the early-exit study is counted in test_early_exit.py (its build needs off-ramps)."""

import json
from collections import Counter
from pathlib import Path

import pytest

import edgemti.formats.build as build_mod
import edgemti.hwmodel.model as model_mod
import edgemti.hwmodel.spec as spec_mod
import edgemti.runtime.engine as engine_mod
from edgemti.runtime.serving import serve
from edgemti.tasks.backbones import default_data_dir


@pytest.fixture
def counts(monkeypatch):
    return count_opens(monkeypatch)


def count_opens(monkeypatch) -> dict:
    """Counters of build opens (``opens``; ``folders``: opens per build folder), spec loads and hardware models,
    patched where they are looked up at call time; shared with test_early_exit.py."""
    n: dict = {"opens": 0, "specs": 0, "hw_models": 0, "folders": Counter()}

    def counted(key, fn):
        def wrapper(*a, **k):
            n[key] += 1
            return fn(*a, **k)
        return wrapper

    opener = build_mod.symlinks_in

    def opened(folder):  # open_build lists the folder's symlinks first, once per open
        n["opens"] += 1
        n["folders"][Path(folder).name] += 1
        return opener(folder)

    monkeypatch.setattr(build_mod, "symlinks_in", opened)
    load = counted("specs", spec_mod.load_spec)
    monkeypatch.setattr(spec_mod, "load_spec", load)
    monkeypatch.setattr(engine_mod, "load_spec", load)
    init = model_mod.HwModel.__init__

    def hw_init(self, *a, **k):
        n["hw_models"] += 1
        init(self, *a, **k)

    monkeypatch.setattr(model_mod.HwModel, "__init__", hw_init)
    return n


def _requests(tmp_path):
    f = tmp_path / "reqs.jsonl"
    f.write_text("\n".join(json.dumps({"id": i, "task": "sst2", "text": f"sentence {i}"}) for i in range(3)) + "\n")
    return f


def test_serve_opens_the_build_once_and_prices_with_one_model(build, tmp_path, counts):
    res = serve(build, requests=_requests(tmp_path), log_path=tmp_path / "log.jsonl")
    assert res.summary["ok"] == 3
    assert (counts["opens"], counts["specs"], counts["hw_models"]) == (1, 1, 1)


def test_serve_fit_sizes_the_spec_on_the_same_open(build, tmp_path, counts):
    res = serve(build, requests=_requests(tmp_path), log_path=tmp_path / "log.jsonl", fit=True)
    assert res.summary["ok"] == 3
    # fitting prices the build once on a roomy copy of the spec to learn its needs: a second spec, not a re-open
    assert counts["opens"] == 1 and counts["specs"] == 1 and counts["hw_models"] == 2


GLUE = default_data_dir() / "glue"
needs_glue = pytest.mark.skipif(not (GLUE / "SST-2" / "dev.tsv").is_file(), reason="needs shared/data/glue")


@needs_glue
def test_eval_build_opens_once(build, counts):
    from edgemti.studies.accuracy import BuildEvalConfig, evaluate_build

    r = evaluate_build(build, BuildEvalConfig(tasks=("sst2",), data_dir=str(GLUE), max_examples=4))
    assert r.tasks[0].num_examples == 4
    # sized to the build (accuracy does not depend on capacities): the roomy model that learns its needs + the engine's
    assert (counts["opens"], counts["specs"], counts["hw_models"]) == (1, 1, 2)


@needs_glue
def test_fault_sweep_opens_once(build, counts):
    from edgemti.studies.faults import FaultSweepConfig, sweep_faults

    r = sweep_faults(build, data_dir=GLUE, config=FaultSweepConfig(rates=(1e-3,), tasks=("sst2",), max_examples=4,
                                                                     seeds=(0,)))
    assert len(r.points) == 2  # slc and mlc at one rate: the engine re-reads its RRAM, nothing re-opens the build
    assert (counts["opens"], counts["specs"], counts["hw_models"]) == (1, 1, 2)


def test_demo_opens_each_build_once_after_compiling_it(tmp_path, counts):
    from edgemti.studies.demo import run_demo

    r = run_demo(out_dir=tmp_path, backbone="bert-tiny", tasks=("sst2", "mrpc"), n_requests=4)
    assert r.adapter_summary["ok"] == 4 and r.vanilla_summary["ok"] == 4
    assert counts["folders"] == {"adapter": 1, "vanilla": 1}
    # per build: compile records its spec's hash in the provenance (1), the demo resolves it once on its open (1);
    # the paper-gap lines read the paper-profile and default specs (2, no build involved)
    assert counts["specs"] == 2 * 2 + 2
    # per build: the roomy model of the sizing + the engine's; compiling (no capacity check) prices nothing
    assert counts["hw_models"] == 2 * 2


def test_inspect_check_logits_opens_once(build, counts):
    from edgemti.compiler.inspect import inspect_build

    r = inspect_build(build, check_logits=True)
    assert r["logits_check"]["sst2"]["max_abs_diff_vs_compiled_torch"] < 1e-4
    assert counts["opens"] == 1 and counts["specs"] == 0
