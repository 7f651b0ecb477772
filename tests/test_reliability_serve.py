"""Issue 10, serving side: no request content stops the stdin server, signals end it cleanly, logs survive a
crash. Every case runs through the installed console script, where the failures were seen."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_runtime_engine import tiny_build

from edgemti.errors import FormatError
from edgemti.runtime.log import LogWriter, read_log
from edgemti.runtime.request import RequestParseError, RequestRules, parse_request, response_json, split_lines

RULES = RequestRules(tasks=("sst2", "mrpc"), pair_tasks=("mrpc",))


def _good(rid, task="sst2"):
    r = {"id": rid, "task": task, "text": f"a fine film number {rid}"}
    if task in ("mrpc", "stsb"):
        r["text_pair"] = "another sentence"
    return json.dumps(r).encode()


# every line here once stopped, crashed or silently ended the stdin server (issue 10, failures 1, 2, 8, 9)
HOSTILE = [
    b'{"id": ' + b"9" * 5000 + b', "task": "sst2", "text": "a"}',  # int() over 4,300 digits: ValueError
    b"[" * 100_000,  # RecursionError in the JSON parser
    b'{"id": "bad-byte", "task": "sst2", "text": "caf\xe9 au lait"}',  # latin-1 byte: not UTF-8
    b'{"id": "surrogate", "task": "sst2", "text": "a\\ud800b"}',  # lone surrogate: TypeError in the tokenizer
    b'{"id": "nul", "task": "sst2", "text": "\\u0000\\u0000\\u0000"}',  # only NUL: not text
    b'{"id": "' + b"x" * 100_000 + b'", "task": "sst2", "text": "a"}',  # 100 kB id
    b'{"id": "nan", "task": "sst2", "text": NaN}',
    b'{"id": "big", "task": "sst2", "text": "' + b"word " * 300_000 + b'"}',  # 1.5 MB line
    b"\xff\xfe\x00garbage",
    b'{"id": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]], "task": "sst2", "text": "a"}',
]


def _serve(build, stdin: bytes, *extra, timeout=240):
    return subprocess.run([sys.executable, "-m", "edgemti.cli", "serve", str(build), *extra], input=stdin,
                          capture_output=True, timeout=timeout)


def test_hostile_lines_each_get_one_answer_and_the_stream_goes_on(build, tmp_path):
    lines = []
    for i, bad in enumerate(HOSTILE):
        lines += [_good(f"g{i}"), bad]
    lines.append(_good("last", "mrpc"))
    log = tmp_path / "h.jsonl"
    p = _serve(build, b"\n".join(lines) + b"\n", "--log", str(log))
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "Traceback" not in err and "Fatal Python error" not in err
    answers = [json.loads(x) for x in p.stdout.decode().splitlines()]  # strict JSON, one per line
    assert len(answers) == len(lines)
    assert [a["id"] for a in answers if a["ok"]] == [f"g{i}" for i in range(len(HOSTILE))] + ["last"]
    bad = [a for a in answers if not a["ok"]]
    assert len(bad) == len(HOSTILE)
    msgs = [a["error"]["message"] for a in bad]
    assert "5000 digits" in msgs[0] and "nested 100000 levels" in msgs[1] and "invalid byte 0xe9" in msgs[2]
    assert "lone surrogate" in msgs[3] and "only spaces or control characters" in msgs[4]
    assert "100000 characters, over the limit" in msgs[5] and len(bad[5]["id"]) < 64
    assert "NaN is not JSON" in msgs[6] and "over the limit of 1048576 bytes" in msgs[7]
    assert "not UTF-8" in msgs[8] and "nested" in msgs[9]
    assert {a["id"] for a in bad[2:5]} == {"bad-byte", "surrogate", "nul"}  # the id is kept where readable
    got = read_log(log)
    assert got.summary["requests"] == len(lines) and got.summary["errors"] == len(HOSTILE)
    assert len(got.requests) == len(lines)


def test_non_utf8_byte_no_longer_ends_the_stream(build):
    p = _serve(build, _good("before") + b"\n\x80\x81\n" + _good("after") + b"\n")
    assert p.returncode == 0, p.stderr.decode()
    answers = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert [(a["id"], a["ok"]) for a in answers] == [("before", True), (None, False), ("after", True)]
    assert "requests 3 (ok 2, errors 1)" in p.stderr.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_reading_answers_what_was_read_and_exits_0(build, tmp_path, sig):
    """SIGTERM once killed the stdin loop at once (1,848 of 10,000 answered, no summary); SIGINT aborted (134)."""
    import threading

    n = 3000
    log = tmp_path / "sig.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(build), "--log", str(log)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    streams = {}
    readers = [threading.Thread(target=lambda k=k: streams.__setitem__(k, getattr(proc, k).read()))
               for k in ("stdout", "stderr")]
    try:
        proc.stdin.write(_good(0) + b"\n")  # the first answer tells the engine is up
        proc.stdin.flush()
        first = proc.stdout.readline()
        assert first, "the server did not answer"
        for t in readers:
            t.start()
        proc.stdin.write(b"".join(_good(i, "sst2" if i % 2 else "mrpc") + b"\n" for i in range(1, n)))
        proc.stdin.flush()  # 3,000 lines read or in the pipe; the server answers a few hundred a second
        time.sleep(0.3)
        proc.send_signal(sig)
        time.sleep(0.2)
        try:  # stdin stays open: never read, never answered (the server may already have stopped)
            proc.stdin.write(_good("after-signal") + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        proc.wait(timeout=120)  # the server stops by itself, stdin still open
        for t in readers:
            t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.stdin.close()
        except BrokenPipeError:  # the server stopped reading: what it had not read is in the dead pipe
            pass
    out, err = streams["stdout"], streams["stderr"]
    err = err.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Fatal Python error" not in err
    answers = [json.loads(first)] + [json.loads(x) for x in out.decode().splitlines()]
    ids = [a["id"] for a in answers]
    assert len(ids) == len(set(ids)) and all(a["ok"] for a in answers)
    assert ids == list(range(len(ids)))  # a prefix of the stream: every line read was answered, in order
    got = read_log(log)
    assert got.summary is not None and got.summary["requests"] == len(ids) == len(got.requests)
    assert "energy per inference" in err


def test_torn_log_reads_every_complete_line(tmp_path):
    p = tmp_path / "torn.jsonl"
    with LogWriter(p, {"build_id": "abc"}) as w:
        for i in range(5):
            w.request({"id": i, "ok": True, "energy_j": float("nan") if i == 3 else 1e-6})
    full = p.read_bytes()
    p.write_bytes(full + b'{"type": "request", "id": 5, "ok": tr')  # a crash mid-write
    log = read_log(p)
    assert [r["id"] for r in log.requests] == [0, 1, 2, 3, 4] and log.summary is None
    assert log.dropped_bytes == 37
    assert log.requests[3]["energy_j"] is None  # NaN is written as null: every line is strict JSON
    assert read_log(tmp_path / "torn.jsonl").header["build_id"] == "abc"
    p.write_bytes(b'{"type": "hea')
    with pytest.raises(FormatError, match="no complete line"):
        read_log(p)
    lines = full.split(b"\n")
    p.write_bytes(b"\n".join([lines[0], lines[1][:-5], lines[2]]) + b"\n")  # damage inside is still refused
    with pytest.raises(FormatError, match="line 2"):
        read_log(p)


def test_parse_request_never_raises_anything_else():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                     st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                                  lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                      max_size=4),
                                  max_leaves=20).map(lambda o: json.dumps(o).encode())))
    def check(raw):
        try:
            parse_request(raw, RULES)
        except RequestParseError as exc:
            json.loads(response_json({"id": exc.request_id, "error": str(exc)}))

    check()


def test_split_lines_bounds_every_line():
    data = b'a\n' + b"x" * 50 + b"\nb"
    for size in (1, 3, 64):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        got = list(split_lines(chunks, max_bytes=10))
        assert got[0] == b"a" and isinstance(got[1], RequestParseError) and got[2] == b"b"
        assert "50 bytes" in str(got[1])


def test_response_json_is_strict():
    s = response_json({"id": 1, "logits": [float("nan"), float("inf"), 1.0]})
    assert json.loads(s)["logits"] == [None, None, 1.0] and "NaN" not in s


def test_serve_reads_requests_file_as_bytes(build, tmp_path):
    req = tmp_path / "r.jsonl"
    req.write_bytes(_good(1) + b"\n\xc3\x28\n" + _good(2))  # a bad 2-byte sequence, last line without newline
    p = _serve(build, b"", "--requests", str(req))
    assert p.returncode == 0, p.stderr.decode()
    assert [json.loads(x)["ok"] for x in p.stdout.decode().splitlines()] == [True, False, True]
    assert os.path.getsize(req) > 0


def test_nan_weights_give_an_error_answer_never_bare_nan(tmp_path_factory, tmp_path):
    """A consistent build whose fp16 pack holds a NaN (what an fp16 edit of the issue produced): the answer is an
    ok: false NonFiniteOutput in strict JSON, the log too."""
    import hashlib

    import numpy as np

    from edgemti.formats.manifest import DIGEST_KEY, derive_build_id, manifest_digest
    from edgemti.runtime.engine import Engine
    from edgemti.runtime.server import serve_stream

    src = tiny_build(tmp_path_factory.getbasetemp(), name="fp16", pack_quant="fp16")
    folder = tmp_path / "nan"
    import shutil

    shutil.copytree(src, folder)
    d = json.loads((folder / "manifest.json").read_text())
    pack = next(p for p in d["packs"] if p["task"] == "sst2")
    bias = next(t for t in pack["tensors"] if t["name"] == "classifier.bias")
    dram = bytearray((folder / "dram.bin").read_bytes())
    at = pack["offset"] + bias["offset"]
    dram[at:at + bias["length"]] = np.full(bias["numel"], np.nan, dtype=np.float16).tobytes()
    (folder / "dram.bin").write_bytes(bytes(dram))
    pack["sha256"] = hashlib.sha256(dram[pack["offset"]:pack["offset"] + pack["length"]]).hexdigest()
    d["images"]["dram"]["sha256"] = hashlib.sha256(dram).hexdigest()
    d["build_id"] = derive_build_id(d)
    d[DIGEST_KEY] = manifest_digest(d)
    (folder / "manifest.json").write_text(json.dumps(d))
    out = []
    res = serve_stream(Engine.open(folder), [_good(1), _good(2, "stsb")], log_path=tmp_path / "n.jsonl",
                       emit=out.append)
    assert [a["ok"] for a in out] == [False, True] and out[0]["error"]["type"] == "NonFiniteOutput"
    assert res.summary["errors"] == 1
    text = (tmp_path / "n.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_log(tmp_path / "n.jsonl").requests[0]["error"]["type"] == "NonFiniteOutput"


def test_summary_counters_are_bounded_and_exact():
    """The session keeps counters, not responses (failure 8): 30,000 records in, bounded state, same summary."""
    import random

    import numpy as np

    from edgemti.runtime.summary import SummaryAccumulator

    rng = random.Random(0)
    recs = []
    for seq in range(30_000):
        ok = rng.random() < 0.8
        task = rng.choice("abc")
        swapped = rng.random() < 0.3
        recs.append({"ok": ok, "seq": seq, "task": task, "swapped": swapped,
                     "swap": {"energy_j": 2.0, "latency_s": 0.1} if swapped else None,
                     "inference": {"energy_j": 1.0, "latency_s": 0.01}, "energy_j": 1.0 + 2.0 * swapped,
                     "latency_s": rng.lognormvariate(-5, 1), "host_s": rng.lognormvariate(-6, 1),
                     "energy_by_component_j": {"sram": 1.0}})
    served = recs[:]
    for i in range(0, len(served) - 8, 8):  # served out of arrival order, as under swap-aware
        served[i:i + 8] = rng.sample(served[i:i + 8], 8)
    acc = SummaryAccumulator(swap_cost=lambda t: (2.0, 0.1), policy="swap-aware")
    peak = 0
    for r in served:
        acc.add(r)
        peak = max(peak, len(acc._held))
    s = acc.result()
    ok = [r for r in recs if r["ok"]]
    assert s["requests"] == 30_000 and s["ok"] == len(ok) and peak <= 8
    assert acc.sim_latency._hist is not None and len(acc.sim_latency._exact) == 0  # past 10,000: a histogram
    for q in (50, 99):
        exact = float(np.percentile([r["latency_s"] for r in ok], q))
        assert s["sim_latency_s"][f"p{q}"] == pytest.approx(exact, rel=2e-3)
    fifo = 0  # the fifo replay in arrival order, by hand
    resident = None
    for r in ok:
        fifo += 1.0 + (2.0 if r["task"] != resident else 0.0)
        resident = r["task"]
    assert s["fifo_baseline"]["energy_j_total"] == pytest.approx(fifo)
    gap = SummaryAccumulator(swap_cost=lambda t: (2.0, 0.1), hold=100)  # a seq that never gets a record
    for r in recs[1:1000]:
        gap.add(r)
    assert len(gap._held) <= 100


def test_requests_file_mode_stops_on_sigterm(build, tmp_path):
    req = tmp_path / "many.jsonl"
    req.write_bytes(b"".join(_good(i) + b"\n" for i in range(20_000)))
    log = tmp_path / "f.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", str(build), "--requests", str(req),
                             "--log", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # serving has begun
        assert first, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    n = 1 + len(out.splitlines())
    got = read_log(log)
    assert n < 20_000 and got.summary["requests"] == n == len(got.requests)
