"""Load test of ``edgemti serve --http``: N concurrent clients on loopback for a bounded time.

    python tools/load_http.py BUILD [--clients 8] [--seconds 10] [--policy swap-aware] [--log load.jsonl]

Starts the HTTP server in-process on 127.0.0.1 (an ephemeral port), runs N client threads that POST mixed-task
requests (a few malformed ones included) until the time is up, stops the server (which answers everything
queued) and checks that every request sent got exactly one answer and one log record. Reports throughput and
client-side latency p50/p99.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time

import numpy as np

from edgemti.runtime.engine import Engine
from edgemti.runtime.hma import fit_spec
from edgemti.runtime.http import HttpServer
from edgemti.runtime.log import read_log
from edgemti.runtime.scheduler import SchedulerConfig

TEXTS = ["a gripping , beautifully made film .", "the worst movie of the year .", "it is fine , i guess ."]
PAIRS = [("The cat sat on the mat.", "A cat was sitting on a mat."), ("He left early.", "She arrived late.")]


def client(addr, cid: int, deadline: float, tasks: list[str], pair_tasks: set[str], out: list, errors: list) -> None:
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
            body = json.dumps(req).encode()
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read())
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
    args = ap.parse_args()
    eng = Engine.open(args.build, spec=fit_spec(args.build)[0], threads=args.threads)
    if not args.cold:
        t = time.perf_counter()
        n = eng.warm()
        print(f"priced {n} (task, length bucket) pairs in {time.perf_counter() - t:.1f} s before serving (--cold skips)")
    srv = HttpServer(eng, "127.0.0.1:0", SchedulerConfig(args.policy), log_path=args.log).start()
    addr = srv.address
    results: list = []
    errors: list = []
    deadline = time.monotonic() + args.seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(addr, c, deadline, list(eng.rules.tasks),
                                                     set(eng.rules.pair_tasks), results, errors))
               for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    summary = srv.stop().summary
    log = read_log(args.log)
    sent = len(results) + len(errors)
    ok = sum(1 for r in results if r[3].get("ok"))
    lat = [r[1] for r in results]
    ids_logged = [r.get("id") for r in log.requests]
    print(f"{args.clients} clients on http://{addr[0]}:{addr[1]} for {args.seconds:.0f} s, policy {args.policy}")
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
    if errors or unlogged or len(log.requests) != len(results):
        raise SystemExit("FAIL: requests lost or unlogged")
    print("PASS: every request answered exactly once, none lost")


if __name__ == "__main__":
    main()
