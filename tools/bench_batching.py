"""Dynamic batching, side by side in one run: HTTP throughput/latency with batching off vs on, the engine's batched
run vs plain onnxruntime at the same batch size (the ceiling), and the simulated energy per inference at batch B.

    python tools/bench_batching.py BUILD [--clients 1,4,16] [--batches 1,4,8,16] [--seconds 8] [--delay-ms 0]
    python tools/bench_batching.py --energy BUILD [BUILD ...] [--seq 128] [--batches 1,4,16]

Throughput mode (BUILD: e.g. the README's MiniLM build of the shipped packs):

* plain ORT: an ``onnxruntime.InferenceSession`` over the build's graph with *every* tensor (backbone and the
  task's pack, decoded from the build) an initializer, ``session.run`` on ready-made int64 inputs of B rows at
  the requests' sequence bucket: rows/s = B / median run time;
* engine: ``Engine.infer_batch`` on B requests of the same texts (tokenize + pad + run + price + answers);
* HTTP: ``HttpServer`` in-process on 127.0.0.1 (``before``: the server as it was, batch 1 with onnxruntime's
  threads spinning; ``off``: batch 1, no spinning; ``on``: dynamic batching), N client threads POST ``/infer`` (``--tasks``, default the
  build's tasks mixed) for ``--seconds`` (each client sends its next request when the last is answered),
  swap-aware scheduling, batching off (max batch 1) vs on (max batch ``max(clients)``, ``--delay-ms`` queue
  delay), the two modes interleaved in ``--rounds`` slices so both see the same machine load: req/s, client
  p50/p99, mean batch size (per request). Every request must be answered ok.

Energy mode: the hardware model's energy per inference of one run at batch B (``hw.inference(seq, task,
batch=B).energy_j / B``) for each build (e.g. albert-base adapter Q3.5 and vanilla FP32), and its fall vs B = 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time

import numpy as np
import onnxruntime as ort

from edgemti.formats.build import open_build
from edgemti.formats.graph import bind_initializers, load_graph
from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.engine import Engine
from edgemti.runtime.http import HttpServer
from edgemti.runtime.request import Request
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.session import session_options
from edgemti.runtime.workload import hw_model
from edgemti.studies.sized import open_sized

TEXTS = ["a gripping , beautifully made film .", "the worst movie of the year .", "it is fine , i guess .",
         "an uneven but often funny comedy ."]
PAIRS = [("The cat sat on the mat.", "A cat was sitting on a mat."), ("He left early.", "She arrived late.")]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _interleaved(a, b, iters: int, warmup: int = 3) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, called alternately (the machine's load drifts; both see the same)."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(iters):
        for fn, ts in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def bench_runs(eng: Engine, build: str, task: str, batches: list[int], iters: int, threads: int | None) -> list[dict]:
    """Plain ORT vs Engine.infer_batch at each batch size, interleaved per size (same texts, same bucket)."""
    b = open_build(build)
    tensors = {**b.decode_backbone(), **b.decode_pack(task)}
    plain = ort.InferenceSession(bind_initializers(load_graph(b.graph_bytes()), tensors).SerializeToString(),
                                 sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    names = {i.name for i in plain.get_inputs()}
    rows = []
    for n in batches:
        texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
        reqs = [Request(id=i, task=task, text=t, seq=i) for i, t in enumerate(texts)]
        encs = [eng.encoder.encode(t, None)[0] for t in texts]
        feeds = eng.encoder.pad(encs, max(eng.bucket(len(e.ids)) for e in encs))
        pfeeds = {k: v for k, v in feeds.items() if k in names}
        out = eng.infer_batch(reqs)
        ref = plain.run(["logits"], pfeeds)[0]
        diff = float(np.max(np.abs(np.asarray([r["logits"] for r in out]) - ref)))
        t_plain, t_eng = _interleaved(lambda: plain.run(["logits"], pfeeds),  # noqa: B023 - used right here
                                      lambda: eng.infer_batch(reqs), iters)  # noqa: B023
        rows.append({"batch": n, "seq_len": int(feeds["input_ids"].shape[1]), "plain_rps": n / t_plain,
                     "engine_rps": n / t_eng, "ratio": t_plain / t_eng, "max_logit_diff": diff})
    return rows


def _client(addr, cid: int, deadline: float, tasks: list[str], pair_tasks: set[str], lat: list, answers: list,
            errors: list) -> None:
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=120)
    i = 0
    while time.monotonic() < deadline:
        task = tasks[(cid + i) % len(tasks)]
        req: dict = {"id": f"c{cid}-{i}", "task": task}
        if task in pair_tasks:
            req["text"], req["text_pair"] = PAIRS[i % len(PAIRS)]
        else:
            req["text"] = TEXTS[(cid + i) % len(TEXTS)]
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/infer", json.dumps(req).encode(), {"Content-Type": "application/json"})
            data = json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(addr[0], addr[1], timeout=120)
            continue
        lat.append(time.perf_counter() - t0)
        answers.append(data)
        i += 1
    conn.close()


def _http_round(eng: Engine, clients: int, batching: BatchingConfig, seconds: float, tasks: list[str],
                lat: list, answers: list, errors: list) -> float:
    """One timed round of ``clients`` closed-loop clients against a fresh server; returns its seconds."""
    srv = HttpServer(eng, "127.0.0.1:0", SchedulerConfig("swap-aware"), batching=batching).start()
    pair_tasks = set(eng.rules.pair_tasks)
    t0 = time.monotonic()
    deadline = t0 + seconds
    threads = [threading.Thread(target=_client, args=(srv.address, c, deadline, tasks, pair_tasks, lat, answers,
                                                      errors)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    srv.stop()
    return elapsed


def bench_http(clients: int, modes: list[tuple[str, Engine, BatchingConfig]], seconds: float, rounds: int,
               tasks: list[str]) -> list[dict]:
    """Every mode for ``seconds`` in total, in ``rounds`` interleaved slices (a, b, c, a, b, c, ...)."""
    acc: list[dict] = [{"lat": [], "answers": [], "errors": [], "elapsed": 0.0} for _ in modes]
    for _ in range(rounds):
        for (_, eng, m), a in zip(modes, acc, strict=True):
            a["elapsed"] += _http_round(eng, clients, m, seconds / rounds, tasks, a["lat"], a["answers"],
                                        a["errors"])
    return [_http_row(label, clients, m, a["lat"], a["answers"], a["errors"], a["elapsed"])
            for (label, _, m), a in zip(modes, acc, strict=True)]


def _http_row(label: str, clients: int, batching: BatchingConfig, lat: list, answers: list, errors: list,
              elapsed: float) -> dict:
    ok = [a for a in answers if a.get("ok")]
    return {"mode": label, "clients": clients, "max_batch_size": batching.max_batch_size,
            "max_queue_delay_ms": batching.max_queue_delay_s * 1e3, "answered": len(answers), "ok": len(ok),
            "errors": len(errors) + len(answers) - len(ok), "rps": len(ok) / elapsed,
            "p50_ms": 1e3 * float(np.percentile(lat, 50)) if lat else None,
            "p99_ms": 1e3 * float(np.percentile(lat, 99)) if lat else None,
            "mean_batch": float(np.mean([a.get("batch_size", 1) for a in ok])) if ok else None,
            "swaps": sum(1 for a in ok if a.get("swapped"))}


def throughput(args) -> dict:
    sized = open_sized(args.build)
    eng = sized.engine(threads=args.threads)
    # the server as it was before batching: one request per run, onnxruntime's threads spinning (its default)
    before = sized.engine(threads=args.threads, spin=True)
    tasks = args.tasks.split(",") if args.tasks else list(eng.rules.tasks)
    batches = _ints(args.batches)
    clients = _ints(args.clients)
    t0 = time.perf_counter()
    for t in tasks:  # steady state: the cost table (batch 1 and every batch size up to the largest) is priced
        for L in (16, 32):
            for n in range(1, max([*batches, *clients]) + 1):
                eng.hw.inference(L, t, batch=n)
            before.hw.inference(L, t)
    priced_s = time.perf_counter() - t0
    runs = bench_runs(eng, args.build, tasks[0], batches, args.iters, args.threads)
    http_rows = []
    on = BatchingConfig(max(clients), args.delay_ms / 1e3)
    for c in clients:
        modes = [("before (off, ORT spinning)", before, BatchingConfig()), ("off", eng, BatchingConfig()),
                 (f"on (max {on.max_batch_size}, {args.delay_ms:g} ms)", eng, on)]
        http_rows += bench_http(c, modes, args.seconds, args.rounds, tasks)
    ceiling = {r["batch"]: r["plain_rps"] for r in runs}
    for r in http_rows:  # plain ORT at the batch size nearest to the mean batch the server ran
        if r["mean_batch"]:
            near = min(ceiling, key=lambda b: abs(b - r["mean_batch"]))
            r["plain_batch"], r["vs_plain"] = near, r["rps"] / ceiling[near]
    return {"build": args.build, "tasks": tasks, "threads": args.threads, "pricing_warmup_s": priced_s,
            "runs": runs, "http": http_rows}


def energy(args) -> dict:
    out = []
    for build in args.energy:
        b = open_build(build, verify=False)
        m = b.manifest
        hw = hw_model(m, load_graph(b.graph_bytes()))
        task = m.tasks[0]
        one = None
        for n in _ints(args.batches):
            c = hw.inference(args.seq, task, batch=n)
            per = c.energy_j / n
            one = per if one is None else one
            out.append({"build": build, "design": m.design, "quant": m.compile.quant, "task": task,
                        "seq_len": args.seq, "batch": n, "energy_per_inference_uj": per * 1e6,
                        "vs_batch1": per / one, "latency_ms": c.latency_s * 1e3,
                        "by_component_uj": {k: v / n * 1e6 for k, v in c.energy_by_component_j.items()}})
    return {"energy": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--seconds", type=float, default=8.0, help="per (clients, mode), over all rounds")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved slices per (clients, mode)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--iters", type=int, default=30, help="runs per batch size, plain and engine alternated")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (both sides)")
    ap.add_argument("--tasks", default=None, help="comma list (default: every task of the build)")
    ap.add_argument("--energy", nargs="+", default=None, metavar="BUILD")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    if args.energy:
        res = energy(args)
        print("| build | design | quant | batch | energy/inference (uJ) | vs B=1 | run latency (ms) |")
        print("|---|---|---|---|---|---|---|")
        for r in res["energy"]:
            print(f"| {r['build']} | {r['design']} | {r['quant']} | {r['batch']} | "
                  f"{r['energy_per_inference_uj']:.2f} | {r['vs_batch1']:.3f} | {r['latency_ms']:.3f} |")
    else:
        if not args.build:
            ap.error("give a BUILD (or --energy BUILD ...)")
        res = throughput(args)
        print(f"cost table priced for batch sizes up to the largest in {res['pricing_warmup_s']:.1f} s")
        print("| batch | seq | plain ORT rows/s | engine.infer_batch rows/s | engine / plain | max logit diff |")
        print("|---|---|---|---|---|---|")
        for r in res["runs"]:
            print(f"| {r['batch']} | {r['seq_len']} | {r['plain_rps']:.1f} | {r['engine_rps']:.1f} | "
                  f"{r['ratio']:.3f} | {r['max_logit_diff']:.1e} |")
        print("\n| clients | server | req/s | p50 ms | p99 ms | mean batch | vs plain ORT at that batch | ok | "
              "errors | swaps |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in res["http"]:
            vs = f"{r['vs_plain']:.2f} (B={r['plain_batch']})" if "vs_plain" in r else "n/a"
            print(f"| {r['clients']} | {r['mode']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                  f"{r['mean_batch']:.2f} | {vs} | {r['ok']} | {r['errors']} | {r['swaps']} |")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
