"""The Open Inference Protocol (KServe v2) surface, driven by the real ``tritonclient.http`` client and raw HTTP."""

import http.client
import json
import struct

import numpy as np
import pytest
from test_runtime_engine import tiny_build

from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.scheduler import SchedulerConfig

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    build = tiny_build(tmp_path_factory.getbasetemp())
    engine = Engine.open(build)
    log = tmp_path_factory.mktemp("oip") / "oip.jsonl"
    srv = HttpServer(engine, "127.0.0.1:0", SchedulerConfig("swap-aware"), log_path=log,
                     batching=BatchingConfig(max_batch_size=4, max_queue_delay_s=0.002)).start()
    yield srv, log
    srv.stop()


@pytest.fixture()
def client(server):
    host, port = server[0].address
    c = tritonhttp.InferenceServerClient(f"{host}:{port}")
    yield c
    c.close()


def _texts(name, texts, binary):
    x = tritonhttp.InferInput(name, [len(texts)], "BYTES")
    x.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_), binary_data=binary)
    return x


def test_health_and_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "edgemti" and "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("sst2") and not client.is_model_ready("qqp")
    m = client.get_model_metadata("mrpc")
    assert [i["name"] for i in m["inputs"]] == ["text", "text_pair"]
    assert {i["datatype"] for i in m["inputs"]} == {"BYTES"}
    assert [(o["name"], o["datatype"]) for o in m["outputs"]] == [("label", "BYTES"), ("scores", "FP32")]
    pack = server[0].engine.manifest.pack("mrpc")
    assert m["parameters"]["labels"] == list(pack.labels) and m["outputs"][1]["shape"] == [-1, len(pack.labels)]
    assert [i["name"] for i in client.get_model_metadata("sst2")["inputs"]] == ["text"]
    with pytest.raises(InferenceServerException) as ei:
        client.get_model_metadata("qqp")
    assert ei.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False])
def test_infer_batch_dimension_matches_compact_answers(client, server, binary):
    texts = ["a gripping , beautifully made film .", "the worst movie of the year .", "fine , i guess ."]
    outputs = [tritonhttp.InferRequestedOutput("label", binary_data=binary),
               tritonhttp.InferRequestedOutput("scores", binary_data=binary)]
    res = client.infer("sst2", [_texts("text", texts, binary)], outputs=outputs, request_id=f"b{binary}")
    labels = [x.decode() if isinstance(x, bytes) else x for x in res.as_numpy("label").reshape(-1)]
    scores = res.as_numpy("scores")
    assert scores.shape == (3, 2) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    engine = server[0].engine
    for t, lab, sc in zip(texts, labels, scores, strict=True):
        ref = engine.infer("sst2", t)
        assert lab == ref.label
        np.testing.assert_allclose(sc, ref.scores, atol=1e-5)
    p = res.get_response()["parameters"]
    assert p["sim_energy_j"] > 0 and p["sim_latency_s"] > 0
    comps = {k: v for k, v in p.items() if k.startswith("sim_energy_j.")}
    assert comps and abs(sum(comps.values()) - p["sim_energy_j"]) <= 1e-9 * p["sim_energy_j"] + 1e-15
    assert res.get_response()["id"] == f"b{binary}"


def test_infer_pair_task_default_binary_outputs_and_swap_reported(client):
    res = client.infer("mrpc", [_texts("text", ["he left early ."], True), _texts("text_pair", ["he went ."], True)])
    assert res.as_numpy("label").shape == (1,) and res.as_numpy("scores").shape == (1, 2)
    res2 = client.infer("stsb", [_texts("text", ["a cat"], False), _texts("text_pair", ["a dog"], False)])
    p = res2.get_response()["parameters"]
    assert p["swaps"] == 1 and p["evicted"] == "mrpc"  # one SRAM slot: stsb's pack replaced mrpc's
    assert res2.as_numpy("scores").shape == (1, 1)  # regression: the value itself


def test_infer_errors_as_the_protocol_says(client, server):
    with pytest.raises(InferenceServerException) as ei:
        client.infer("qqp", [_texts("text", ["x"], False)])
    assert ei.value.status() == "404"
    with pytest.raises(InferenceServerException) as ei:
        client.infer("mrpc", [_texts("text", ["x"], False)])
    assert ei.value.status() == "400" and "text_pair" in ei.value.message()
    with pytest.raises(InferenceServerException) as ei:
        client.infer("sst2", [_texts("text", ["   "], False)])
    assert ei.value.status() == "400" and "empty" in ei.value.message()
    bad = tritonhttp.InferInput("text", [1], "FP32")
    bad.set_data_from_numpy(np.zeros(1, np.float32), binary_data=False)
    with pytest.raises(InferenceServerException) as ei:
        client.infer("sst2", [bad])
    assert ei.value.status() == "400" and "BYTES" in ei.value.message()


def _raw(server, method, path, body=b"", headers=None):
    host, port = server[0].address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    conn.close()
    return out


def test_raw_binary_request_and_bad_binary(server):
    texts = [b"a fine film", b"dull"]
    raw = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    head = json.dumps({"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    status, hdrs, body = _raw(server, "POST", "/v2/models/sst2/versions/1/infer", head + raw,
                              {"Inference-Header-Content-Length": str(len(head))})
    assert status == 200 and "Inference-Header-Content-Length" not in hdrs
    out = json.loads(body)
    assert out["outputs"][0]["shape"] == [2] and len(out["outputs"][1]["data"]) == 4
    status, _, body = _raw(server, "POST", "/v2/models/sst2/infer", head + raw[:-2],
                           {"Inference-Header-Content-Length": str(len(head))})
    assert status == 400 and "does not fit" in json.loads(body)["error"]
    liar = struct.pack("<I", 99) + raw[4:]  # the first element claims more bytes than there are
    status, _, body = _raw(server, "POST", "/v2/models/sst2/infer", head + liar,
                           {"Inference-Header-Content-Length": str(len(head))})
    assert status == 400 and "overruns" in json.loads(body)["error"]
    status, _, body = _raw(server, "POST", "/v2/models/sst2/infer", b"[" * 100_000)
    assert status == 400 and json.loads(body)["error"]


def test_every_row_is_logged(server, client):
    client.infer("sst2", [_texts("text", ["one", "two"], False)], request_id="logged")
    ids = [r.get("id") for r in read_log(server[1]).requests]
    assert "logged/0" in ids and "logged/1" in ids
