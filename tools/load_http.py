"""Load test of ``edgemti serve --http``: N concurrent clients on loopback for a bounded time.

    python tools/load_http.py BUILD [--clients 8] [--seconds 10] [--policy swap-aware] [--log load.jsonl]
        [--oip] [--max-batch-size 1 --max-queue-delay-ms 0] [--metrics-out metrics.txt]

Starts the HTTP server in-process on 127.0.0.1 (an ephemeral port), runs N client threads that POST mixed-task
requests (a few malformed ones included) until the time is up, stops the server (which answers everything
queued) and checks that every request sent got exactly one answer and one log record. Reports throughput and
client-side latency p50/p99. Halfway through, ``GET /metrics`` is scraped (as Prometheus would) and written to
``--metrics-out``; the ``edgemti_`` samples are printed. ``--oip``: the clients speak the Open Inference Protocol
(``POST /v2/models/{task}/infer``) instead of the compact ``POST /infer``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time

import numpy as np

from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.studies.sized import open_sized

TEXTS = ["a gripping , beautifully made film .", "the worst movie of the year .", "it is fine , i guess ."]
PAIRS = [("The cat sat on the mat.", "A cat was sitting on a mat."), ("He left early.", "She arrived late.")]


def _oip_body(rid: str, req: dict) -> bytes:
    inputs = [{"name": k, "shape": [1], "datatype": "BYTES", "data": [req[k]]} for k in ("text", "text_pair")
              if k in req]
    return json.dumps({"id": rid, "inputs": inputs}).encode()


def client(addr, cid: int, deadline: float, tasks: list[str], pair_tasks: set[str], out: list, errors: list,
           oip: bool = False) -> None:
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=60)
    i = 0
    while time.monotonic() < deadline:
        rid = f"c{cid}-{i}"
        task = tasks[(cid + i) % len(tasks)]
        if i % 25 == 7:
            body = b'{"id": "' + rid.encode() + b'", "task": '  # malformed JSON on purpose
        else:
            req = {"id": rid, "task": task}
            if task in pair_tasks:
                req["text"], req["text_pair"] = PAIRS[i % len(PAIRS)]
            else:
                req["text"] = TEXTS[i % len(TEXTS)]
            body = _oip_body(rid, req) if oip else json.dumps(req).encode()
        path = f"/v2/models/{task}/infer" if oip else "/infer"
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read())
            if oip:  # the OIP answer has no ok/id fields: read them off the status (a malformed body has no id)
                data = {"ok": resp.status == 200, "id": data.get("id", rid if i % 25 != 7 else None)}
            out.append((rid, time.perf_counter() - t0, resp.status, data))
        except Exception as exc:  # noqa: BLE001 - a lost request is what this tool counts
            errors.append((rid, repr(exc)))
            conn.close()
            conn = http.client.HTTPConnection(addr[0], addr[1], timeout=60)
        i += 1
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--policy", default="swap-aware")
    ap.add_argument("--log", default="load_http.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cold", action="store_true", help="do not price the cost table before serving")
    ap.add_argument("--oip", action="store_true", help="clients use the Open Inference Protocol routes")
    ap.add_argument("--max-batch-size", type=int, default=1, help="dynamic batching: requests per run (1: off)")
    ap.add_argument("--max-queue-delay-ms", type=float, default=0.0, help="dynamic batching: wait for company")
    ap.add_argument("--metrics-out", default="load_http_metrics.txt", help="the /metrics scrape taken mid-run")
    args = ap.parse_args()
    eng = open_sized(args.build).engine(threads=args.threads)
    if not args.cold:
        t = time.perf_counter()
        n = eng.warm()
        print(f"priced {n} (task, length bucket) pairs in {time.perf_counter() - t:.1f} s before serving (--cold skips)")
    batching = BatchingConfig(args.max_batch_size, args.max_queue_delay_ms / 1e3)
    srv = HttpServer(eng, "127.0.0.1:0", SchedulerConfig(args.policy), log_path=args.log, batching=batching).start()
    addr = srv.address
    results: list = []
    errors: list = []
    deadline = time.monotonic() + args.seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(addr, c, deadline, list(eng.rules.tasks),
                                                     set(eng.rules.pair_tasks), results, errors, args.oip))
               for c in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.seconds / 2)
    scrape = _scrape(addr)  # as Prometheus would, while the clients are at it
    with open(args.metrics_out, "w", encoding="utf-8") as fh:
        fh.write(scrape)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    summary = srv.stop().summary
    log = read_log(args.log)
    sent = len(results) + len(errors)
    ok = sum(1 for r in results if r[3].get("ok"))
    lat = [r[1] for r in results]
    ids_logged = [r.get("id") for r in log.requests]
    print(f"{args.clients} clients on http://{addr[0]}:{addr[1]} for {args.seconds:.0f} s, policy {args.policy}, "
          f"{'OIP /v2/models/{task}/infer' if args.oip else 'compact /infer'}, batching {batching.to_dict()}")
    print(f"sent {sent}, answered {len(results)} (ok {ok}, error responses {len(results) - ok}), "
          f"lost {len(errors)}; log records {len(log.requests)}")
    print(f"throughput {len(results) / wall:.1f} req/s; client latency p50 {np.percentile(lat, 50) * 1e3:.1f} ms, "
          f"p99 {np.percentile(lat, 99) * 1e3:.1f} ms")
    print(f"served swaps {summary['swaps']} (fifo on the same stream: {summary.get('fifo_baseline', {}).get('swaps')})"
          f", energy/inference {summary['energy_per_inference_j'] * 1e6:.3f} uJ")
    logged = {x for x in ids_logged if x is not None}
    unlogged = [rid for rid, _, _, data in results if data.get("id") is not None and rid not in logged]
    malformed = sum(1 for r in results if r[3].get("id") is None)
    print(f"answers missing from the log: {len(unlogged)} (malformed-JSON answers, logged with id null: {malformed})")
    print(f"/metrics scraped mid-run ({len(scrape)} bytes, all in {args.metrics_out}); its edgemti_ samples:")
    for line in scrape.splitlines():
        if line.startswith("edgemti_") and "_created{" not in line and not line.startswith((
                "edgemti_host_latency_seconds_bucket", "edgemti_simulated_latency_seconds_bucket")):
            print("  " + line)
    if errors or unlogged or len(log.requests) != len(results):
        raise SystemExit("FAIL: requests lost or unlogged")
    print("PASS: every request answered exactly once, none lost")


def _scrape(addr) -> str:
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return text


if __name__ == "__main__":
    main()
