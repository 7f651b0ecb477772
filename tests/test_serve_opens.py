"""The flow of ``serve`` opens its build once, resolves its spec once and builds one hardware model for it
(issue 19 item 1): every later step is handed the typed objects, nothing re-reads the folder."""

import json

import pytest
from test_runtime_engine import tiny_build

import edgemti.formats.build as build_mod
import edgemti.hwmodel.model as model_mod
import edgemti.hwmodel.spec as spec_mod
import edgemti.runtime.engine as engine_mod
from edgemti.runtime.serving import serve


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tiny_build(tmp_path_factory.getbasetemp())


@pytest.fixture
def counts(monkeypatch):
    n = {"opens": 0, "specs": 0, "hw_models": 0}

    def counted(key, fn):
        def wrapper(*a, **k):
            n[key] += 1
            return fn(*a, **k)
        return wrapper

    # open_build lists the folder's symlinks first, once per open, looked up at call time
    monkeypatch.setattr(build_mod, "symlinks_in", counted("opens", build_mod.symlinks_in))
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
    assert counts == {"opens": 1, "specs": 1, "hw_models": 1}


def test_serve_fit_sizes_the_spec_on_the_same_open(build, tmp_path, counts):
    res = serve(build, requests=_requests(tmp_path), log_path=tmp_path / "log.jsonl", fit=True)
    assert res.summary["ok"] == 3
    # fitting prices the build once on a roomy copy of the spec to learn its needs: a second spec, not a re-open
    assert counts["opens"] == 1 and counts["specs"] == 1 and counts["hw_models"] == 2
