"""Residency tiers: packs on disk -> DRAM (bounded, LRU, pinning) -> SRAM slots; loads priced as DRAM writes."""

import http.client
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from edgemti.cli import main
from edgemti.errors import ConfigError
from edgemti.formats.build import open_build
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.residency import DramPacks, PackResidency
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import serve_stream
from edgemti.runtime.serving import serve

TEXTS = {"sst2": ("a fine film", None), "mrpc": ("he left", "he went away"), "stsb": ("a cat", "a dog")}
ROUND_ROBIN = ["sst2", "mrpc", "stsb"] * 3


# -- the policy ---------------------------------------------------------------------------------------------------
def test_dram_packs_lru_order_bound_and_pins():
    d = DramPacks(2, pinned=("a",))
    assert [d.access(t).hit for t in "abab"] == [False, False, True, True]
    assert d.resident == ["a", "b"]
    acc = d.access("c")  # full: the LRU unpinned pack goes, never the pinned one (a is older than b)
    assert (acc.hit, acc.evicted) == (False, "b") and d.resident == ["a", "c"]
    d.touch("a")
    assert d.resident == ["c", "a"]  # touch refreshes without counting
    assert (d.hits, d.misses, d.loads, d.evictions) == (2, 3, 3, 1)
    d.forget("c")
    assert not d.peek("c") and d.access("c").evicted is None  # a place was free again
    with pytest.raises(ConfigError, match="pinned"):
        d.discard("a")
    assert d.discard("c") is True and d.discard("c") is False


def test_dram_packs_refuses_bad_bounds_and_too_many_pins():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="DramPacks: max_packs must be an int >= 1"):
            DramPacks(bad)
    with pytest.raises(ConfigError, match=r"2 pinned pack\(s\) \['a', 'b'\] need max_packs >= 3"):
        DramPacks(2, pinned=("a", "b"))
    with pytest.raises(ConfigError, match=r"need max_packs >= 4.*got max_packs=2"):
        DramPacks(2, pinned=("a", "b", "c"))
    assert DramPacks(None, pinned=("a", "b", "c")).max_packs is None  # no bound: any pins
    u = DramPacks(None, resident=("a", "b"))
    assert all(u.access(t).hit for t in "abab") and u.misses == 0
    b = DramPacks(1, resident=("a",))
    with pytest.raises(ConfigError, match="already holds 1 of max_packs=1"):
        b.admit("b")


def test_pack_residency_is_inclusive_and_keeps_hot_packs():
    with pytest.raises(ConfigError, match="max_dram_packs=1 is below slots=2"):
        PackResidency(slots=2, max_dram_packs=1)
    r = PackResidency(slots=2, max_dram_packs=2)
    a = r.access("a")
    assert a.swapped and a.loaded  # first use: loaded from disk, swapped into SRAM
    r.access("b")
    for _ in range(3):  # a hit in SRAM refreshes a in DRAM too
        assert not r.access("a").swapped
    c = r.access("c")  # SRAM evicts b (LRU), DRAM evicts b: the hot pack a stays in both
    assert (c.sram.evicted, c.dram.evicted, c.dropped) == ("b", "b", None)
    assert r.dram.resident == ["a", "c"] and r.slots.resident == ["a", "c"]
    # a DRAM eviction of a pack still in SRAM drops it from SRAM too (made here by forgetting a DRAM entry)
    r2 = PackResidency(slots=1, max_dram_packs=2)
    r2.access("a")
    r2.access("b")
    r2.dram.touch("a")  # b is now DRAM's LRU while it sits in SRAM
    r2.slots.access("b")
    x = r2.access("c")
    assert x.sram.evicted == "b" and x.dram.evicted == "b"
    r3 = PackResidency(slots=2, max_dram_packs=2)
    for t in "ab":
        r3.access(t)
    r3.dram.touch("a")
    r3.slots.access("a")
    r3.slots.forget("a")  # a leaves SRAM only: SRAM [b], DRAM [b, a]
    y = r3.access("c")  # SRAM has room; DRAM evicts b, which is in SRAM: dropped from there
    assert (y.sram.evicted, y.dram.evicted, y.dropped) == (None, "b", "b") and "b" not in r3.slots
    with pytest.raises(ConfigError, match="need at least 2 slots"):
        PackResidency(slots=1, max_dram_packs=3, pinned=("a",))


# -- the engine -----------------------------------------------------------------------------------------------------
def _lines(tasks):
    out = []
    for i, t in enumerate(tasks):
        text, pair = TEXTS[t]
        r = {"id": i, "task": t, "text": text}
        if pair:
            r["text_pair"] = pair
        out.append(json.dumps(r))
    return out


def test_bounded_dram_answers_as_unbounded_counts_loads_and_charges_dram_writes(build, tmp_path):
    free = serve_stream(Engine.open(build), _lines(ROUND_ROBIN), keep_responses=True)
    eng = Engine.open(build, dram_packs=1)
    assert not eng.hma.mem["DRAM"].regions()  # a bound: DRAM starts empty, packs come from disk on demand
    res = serve_stream(eng, _lines(ROUND_ROBIN), log_path=tmp_path / "log.jsonl", keep_responses=True)
    for a, b in zip(free.responses, res.responses, strict=True):
        assert a["ok"] and b["ok"] and a["logits"] == b["logits"]  # same bytes reach the graph
        assert not a["loaded"] and a["load"] is None  # no bound: today's behaviour, no load cost
        assert b["loaded"] and b["swapped"]  # one pack in DRAM, round robin: every request loads
    m = open_build(build).manifest
    spec = eng.spec
    for i, r in enumerate(res.responses):
        pack = m.pack(r["task"])
        assert r["load"]["bytes"] == pack.length
        # the load is a DRAM write of exactly the pack's bytes at the spec's write price
        assert r["load"]["energy_by_component_j"]["dram"] == pytest.approx(8 * pack.length * spec.dram.write_pj_per_bit
                                                                           * 1e-12, rel=1e-12)
        assert r["load"]["latency_s"] >= 8 * pack.length / 8 / spec.dram.bandwidth_bytes_per_s
        assert r["energy_j"] == pytest.approx(r["inference"]["energy_j"] + r["swap"]["energy_j"]
                                              + r["load"]["energy_j"], rel=1e-12)
        assert r["latency_s"] == pytest.approx(r["inference"]["latency_s"] + r["swap"]["latency_s"]
                                               + r["load"]["latency_s"], rel=1e-12)
        assert sum(r["energy_by_component_j"].values()) == pytest.approx(r["energy_j"], rel=1e-9)
        assert r["dram_evicted"] == (None if i == 0 else ROUND_ROBIN[i - 1])
    s = res.summary
    assert (s["dram_packs"], s["dram_loads"], s["dram_evictions"]) == (1, 9, 8)
    assert s["loaded_bytes_total"] == sum(m.pack(t).length for t in ROUND_ROBIN)
    assert s["load_energy_j_total"] == pytest.approx(sum(r["load"]["energy_j"] for r in res.responses))
    assert s["energy_j_total"] - free.summary["energy_j_total"] == pytest.approx(s["load_energy_j_total"], rel=1e-9)
    assert s["fifo_baseline"]["dram_loads"] == 9  # the replay runs both tiers: fifo pays the same loads here
    assert s["residency_by_task"]["sst2"] == {"sram_hits": 0, "sram_misses": 3, "dram_hits": 0, "dram_misses": 3}
    assert eng.tiers.store.bytes_read == s["loaded_bytes_total"]  # bytes read from disk = bytes written to DRAM
    assert eng.memory_report()["dram_tier"]["resident"] == ["stsb"]
    log = read_log(tmp_path / "log.jsonl")
    assert log.header["dram_packs"] == 1 and log.summary["dram_loads"] == 9
    assert [r["loaded"] for r in log.requests] == [True] * 9


def test_a_dram_hit_swaps_without_a_load_and_pins_hold_in_dram(build):
    eng = Engine.open(build, slots=2, dram_packs=3, pinned=("sst2",))
    got = [eng.infer(t, *TEXTS[t]) for t in ["sst2", "mrpc", "stsb", "mrpc", "sst2", "stsb", "mrpc"]]
    # slots 2 (sst2 pinned, 1 free), DRAM 3: every pack fits in DRAM after its first load
    assert [g.loaded for g in got] == [True, True, True, False, False, False, False]
    assert [g.swapped for g in got] == [True, True, True, True, False, True, True]
    assert all(g.load is None for g in got if not g.loaded)
    assert eng.dram.stats()["loads"] == 3 and eng.dram.stats()["evictions"] == 0
    eng2 = Engine.open(build, slots=2, dram_packs=2, pinned=("sst2",))
    for t in ["sst2", "mrpc", "stsb", "mrpc", "stsb"]:
        eng2.infer(t, *TEXTS[t])
    assert "sst2" in eng2.dram.resident and eng2.dram.stats()["evictions"] == 3  # never the pinned pack
    with pytest.raises(ConfigError, match="below slots=2"):
        Engine.open(build, slots=2, dram_packs=1)


def test_a_pack_corrupt_on_disk_fails_its_request_and_the_server_keeps_serving(build, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(build, bad)
    m = open_build(bad).manifest
    p = m.pack("mrpc")
    img = bad / m.images["dram"].file
    raw = bytearray(img.read_bytes())
    raw[p.offset + p.length // 2] ^= 0xFF
    img.write_bytes(bytes(raw))
    req = tmp_path / "req.jsonl"
    req.write_text("\n".join(_lines(["sst2", "mrpc", "stsb", "mrpc", "sst2"])) + "\n")
    # trust: the start skips the image hashes; the DRAM tier checks each pack it loads
    out = serve(bad, requests=req, dram_packs=1, trust=True, log_path=tmp_path / "bad.jsonl").summary
    recs = read_log(tmp_path / "bad.jsonl").requests
    assert [r["ok"] for r in recs] == [True, False, True, False, True] and out["errors"] == 2
    err = recs[1]["error"]
    assert err["type"] == "FormatError" and "pack 'mrpc' on disk" in err["message"] and "corrupt" in err["message"]
    assert recs[2]["dram_evicted"] is None  # the failed load left DRAM empty: stsb found a free place
    # without a bound the build's image is checked whole at start: refused before serving anything
    with pytest.raises(Exception, match="sha256"):
        serve(bad, requests=req)


def test_metrics_show_residency_per_tier(build, tmp_path):
    eng = Engine.open(build, dram_packs=2)
    srv = HttpServer(eng, "127.0.0.1:0", SchedulerConfig("fifo"), log_path=tmp_path / "h.jsonl").start()
    try:
        answers = []
        for line in _lines(["sst2", "mrpc", "sst2", "stsb", "sst2", "sst2"]):
            conn = http.client.HTTPConnection(*srv.address, timeout=60)
            conn.request("POST", "/infer", line.encode())
            answers.append(json.loads(conn.getresponse().read()))
            conn.close()
        conn = http.client.HTTPConnection(*srv.address, timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    finally:
        srv.stop()
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert all(a["ok"] for a in answers)
    # sst2 load, mrpc load, sst2 DRAM hit, stsb load (evicts mrpc), sst2 DRAM hit, sst2 SRAM hit
    assert [a["loaded"] for a in answers] == [True, True, False, True, False, False]

    def v(name, **labels):
        return m[(name, tuple(sorted(labels.items())))]

    assert v("edgemti_tier_hits_total", task="sst2", tier="sram") == 1
    assert v("edgemti_tier_misses_total", task="sst2", tier="sram") == 3
    assert v("edgemti_tier_hits_total", task="sst2", tier="dram") == 2
    assert v("edgemti_tier_misses_total", task="sst2", tier="dram") == 1
    assert v("edgemti_tier_misses_total", task="mrpc", tier="dram") == 1
    assert v("edgemti_tier_loads_total", tier="dram") == 3 and v("edgemti_tier_loads_total", tier="sram") == 5
    assert v("edgemti_tier_evictions_total", tier="dram") == 1 and v("edgemti_tier_evictions_total", tier="sram") == 4
    pk = open_build(build).manifest
    assert v("edgemti_disk_loaded_bytes_total") == sum(pk.pack(t).length for t in ("sst2", "mrpc", "stsb"))
    assert v("edgemti_tier_resident_packs", tier="dram") == 2 and v("edgemti_tier_resident_packs", tier="sram") == 1
    assert v("edgemti_tier_pack_resident", task="mrpc", tier="dram") == 0
    assert v("edgemti_tier_pack_resident", task="sst2", tier="dram") == 1
    energy = sum(val for (n, _), val in m.items() if n == "edgemti_simulated_energy_joules_total")
    assert energy == pytest.approx(sum(a["energy_j"] for a in answers), rel=1e-9)  # loads included


def test_cli_serve_dram_packs_and_refusal_hint(build, tmp_path):
    req = tmp_path / "req.jsonl"
    req.write_text("\n".join(_lines(ROUND_ROBIN[:4])) + "\n")
    r = CliRunner().invoke(main, ["serve", str(build), "--requests", str(req), "--dram-packs", "1",
                                  "--json-summary"])
    assert r.exit_code == 0, r.output
    answers = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [a["loaded"] for a in answers] == [True] * 4
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    assert summary["dram_loads"] == 4 and summary["dram_packs"] == 1
    r = CliRunner().invoke(main, ["serve", str(build), "--requests", str(req), "--dram-packs", "1", "--slots", "2"])
    assert r.exit_code != 0 and "--dram-packs" in r.output and "--slots" in r.output


def test_add_pack_while_bounded_serves_old_and_new_packs_from_the_new_image(build, tmp_path):
    from test_addpack import _adapter, _pack

    from edgemti.compiler.addpack import add_pack

    b = tmp_path / "build"
    shutil.copytree(build, b)
    eng = Engine.open(b, dram_packs=1)
    first = eng.infer("sst2", "a fine film").logits
    add_pack(_pack(tmp_path, "bert-tiny", _adapter(b)), b)  # dram.bin replaced by dram.v2.bin
    assert not (b / "dram.bin").exists()
    assert eng.infer("mrpc", "he left", "he went away").loaded  # read from the image that replaced the served one
    assert eng.infer("sst2", "a fine film").logits == first
    eng.load_task("rte")
    assert not eng.in_dram("rte")  # a bound: loaded on its first request, not at load
    r = eng.infer("rte", "the street is wet", "it rained")
    assert r.loaded and r.load["bytes"] == open_build(b).manifest.pack("rte").length
    eng.unload_task("rte")
    assert not eng.in_dram("rte") and "pack:rte" not in eng.hma.mem["DRAM"]
    assert np.isfinite(eng.infer("stsb", "a cat", "a dog").logits).all()


def test_oip_batches_on_a_bounded_server_load_once_per_batch(build, tmp_path):
    from edgemti.runtime.batcher import BatchingConfig

    free = Engine.open(build)
    srv = HttpServer(Engine.open(build, dram_packs=1), "127.0.0.1:0", SchedulerConfig("fifo"),
                     batching=BatchingConfig(4, 0.0)).start()
    texts = {"sst2": ["a fine film", "dull and long", "a joy"], "mrpc": ["he left", "she came"]}
    try:
        for task in ["sst2", "mrpc", "sst2"]:
            inputs = [{"name": "text", "datatype": "BYTES", "shape": [len(texts[task])], "data": texts[task]}]
            if task == "mrpc":
                inputs.append({"name": "text_pair", "datatype": "BYTES", "shape": [2], "data": ["he went", "x"]})
            conn = http.client.HTTPConnection(*srv.address, timeout=60)
            conn.request("POST", f"/v2/models/{task}/infer", json.dumps({"inputs": inputs}).encode())
            r = conn.getresponse()
            body = json.loads(r.read())
            conn.close()
            assert r.status == 200, body
            p = body["parameters"]
            assert p["loads"] == 1 and p["swaps"] == 1  # the batch's first row loads, the others find it resident
            scores = next(o for o in body["outputs"] if o["name"] == "scores")["data"]
            pairs = ["he went", "x"] if task == "mrpc" else [None] * 3
            ref = [free.infer(task, t, q).scores for t, q in zip(texts[task], pairs, strict=True)]
            np.testing.assert_allclose(np.reshape(scores, (len(ref), -1)), ref, atol=1e-5)
    finally:
        srv.stop()


def test_swap_aware_prefers_a_pack_in_dram_over_a_load(build):
    # slots 1, DRAM 2, window 2: after sst2 and mrpc, pending [stsb, sst2]: neither is in SRAM; sst2 is in DRAM
    lines = _lines(["sst2", "mrpc", "stsb", "sst2"])
    fifo = serve_stream(Engine.open(build, dram_packs=2), lines, SchedulerConfig("fifo"), keep_responses=True)
    aware = serve_stream(Engine.open(build, dram_packs=2), lines, SchedulerConfig("swap-aware", window=2),
                         keep_responses=True)
    assert [r["task"] for r in fifo.responses] == ["sst2", "mrpc", "stsb", "sst2"]
    assert [r["task"] for r in aware.responses] == ["sst2", "mrpc", "sst2", "stsb"]
    assert fifo.summary["dram_loads"] == 4 and aware.summary["dram_loads"] == 3
    assert aware.summary["fifo_baseline"]["dram_loads"] == 4  # the replay prices what fifo would have loaded
    assert aware.summary["saved_vs_fifo"]["energy_j"] > 0
    by_id = {r["id"]: r["logits"] for r in fifo.responses}
    assert all(r["logits"] == by_id[r["id"]] for r in aware.responses)
