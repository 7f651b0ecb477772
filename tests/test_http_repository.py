"""Tasks added to a running server over the Open Inference Protocol's model repository API (tritonclient)."""

import shutil

import numpy as np
import pytest
from test_addpack import RTE, _adapter, _pack
from test_runtime_engine import tiny_build

from edgemti.compiler.addpack import add_pack
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


def _texts(name, texts):
    x = tritonhttp.InferInput(name, [len(texts)], "BYTES")
    x.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    return x


def test_task_added_loaded_served_and_unloaded_without_rram_writes(tmp_path, tmp_path_factory):
    build = tmp_path / "build"
    shutil.copytree(tiny_build(tmp_path_factory.getbasetemp()), build)
    engine = Engine.open(build)
    srv = HttpServer(engine, "127.0.0.1:0", log_path=tmp_path / "r.jsonl").start()
    client = tritonhttp.InferenceServerClient(f"{srv.address[0]}:{srv.address[1]}")
    try:
        rram = {lv: engine.hma.mem[lv].counts() for lv in ("RRAM_SLC", "RRAM_MLC2")}
        assert not client.is_model_ready("rte")
        add_pack(_pack(tmp_path, "bert-tiny", _adapter(build)), build)  # `edgemti compile --add-pack P --into B`
        index = {m["name"]: m["state"] for m in client.get_model_repository_index()}
        assert index == {"sst2": "READY", "mrpc": "READY", "stsb": "READY", "rte": "UNAVAILABLE"}
        client.load_model("rte")
        assert client.is_model_ready("rte")
        assert [i["name"] for i in client.get_model_metadata("rte")["inputs"]] == ["text", "text_pair"]
        res = client.infer("rte", [_texts("text", ["the street is wet", "the sun shone"]),
                                   _texts("text_pair", ["it rained", "it rained"])])
        labels = [x.decode() for x in res.as_numpy("label")]
        assert all(lab in RTE for lab in labels) and res.get_response()["parameters"]["swaps"] == 1
        for lv, c in rram.items():  # the backbone is write-once: adding a task wrote no RRAM cell
            d = engine.hma.mem[lv].counts() - c
            assert (d.writes, d.bytes_written, d.cell_writes) == (0, 0, 0)
        client.unload_model("sst2")
        assert not client.is_model_ready("sst2")
        with pytest.raises(InferenceServerException) as ei:
            client.infer("sst2", [_texts("text", ["a fine film"])])
        assert ei.value.status() == "404"
        assert {m["name"]: m["state"] for m in client.get_model_repository_index()}["sst2"] == "UNAVAILABLE"
        with pytest.raises(InferenceServerException) as ei:
            client.load_model("qnli")  # not in the build
        assert ei.value.status() == "404"
        client.load_model("sst2")
        assert client.is_model_ready("sst2")
        assert 'edgemti_requests_total{status="200",task="rte"} 2.0' in srv.metrics.render().decode()
    finally:
        client.close()
        srv.stop()
    rte = [r for r in read_log(tmp_path / "r.jsonl").requests if r.get("task") == "rte"]
    assert len(rte) == 2 and all(r["ok"] for r in rte)
