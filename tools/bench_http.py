"""HTTP serving throughput: ``edgemti serve --http`` vs a minimal plain-onnxruntime HTTP server, clients out of process.

    python tools/bench_http.py BUILD [--clients 16,1] [--seconds 10] [--rounds 3] [--max-batch-size 16]
        [--max-queue-delay-ms 2] [--threads N] [--task sst2] [--seq-bucket 16] [--json results/bench_http.json]

Both servers run as their own processes on 127.0.0.1 and serve the same build's task at the same batching policy:

* edgemti: ``edgemti serve BUILD --http ... --max-batch-size B --max-queue-delay-ms D --fit-spec --warm``: every
  request parsed, scheduled, run, priced on the simulated accelerator and logged as in production;
* plain: the same build's graph with every tensor decoded and bound as initializers in one
  ``onnxruntime.InferenceSession`` (the same session options), the build's tokenizer, a stdlib
  ``ThreadingHTTPServer`` and a batcher thread gathering up to B requests for D ms; it answers label and scores.

The client is a separate process (so its threads do not share the servers' GIL): C threads, one keep-alive
connection each, ``POST /infer`` for ``--seconds`` after a 1 s warm-up. Rounds alternate which server goes first
(the machine's load drifts; both see the same); the table gives each side's median over rounds and their ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TEXTS = ["a gripping , beautifully made film .", "the worst movie of the year .", "it is fine , i guess .",
         "an uneven but often funny and sharply observed comedy about two friends on the road",
         "dull", "i have rarely seen a film so sure of what it wants to say and so bad at saying it ."]


# -- the plain onnxruntime server ---------------------------------------------------------------------------------


def serve_plain(build: str, task: str, port: int, max_batch: int, delay_s: float, threads: int | None) -> None:
    import numpy as np
    import onnxruntime as ort

    from edgemti.formats.build import open_build
    from edgemti.formats.graph import bind_initializers, load_graph
    from edgemti.runtime.session import session_options
    from edgemti.runtime.tokenize import BuildTokenizer

    b = open_build(build)
    tensors = {**b.decode_backbone(), **b.decode_pack(task)}
    sess = ort.InferenceSession(bind_initializers(load_graph(b.graph_bytes()), tensors).SerializeToString(),
                                sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    tok = BuildTokenizer(b.tokenizer_path)
    labels = b.manifest.pack(task).labels
    max_len = b.manifest.compile.max_seq_len
    pending: queue.Queue = queue.Queue()

    def runner() -> None:
        while True:
            batch = [pending.get()]
            end = time.monotonic() + delay_s
            while len(batch) < max_batch:
                try:
                    batch.append(pending.get(timeout=max(0.0, end - time.monotonic())))
                except queue.Empty:
                    break
            encs = [tok.encode(text, None, max_len) for text, _ in batch]
            n = max(len(e.ids) for e in encs)
            feeds = {k: np.zeros((len(encs), n), dtype=np.int64) for k in ("input_ids", "attention_mask",
                                                                            "token_type_ids")}
            for i, e in enumerate(encs):
                feeds["input_ids"][i, :len(e.ids)] = e.ids
                feeds["attention_mask"][i, :len(e.ids)] = 1
                feeds["token_type_ids"][i, :len(e.ids)] = e.type_ids
            logits = sess.run(["logits"], {k: v for k, v in feeds.items() if k in names})[0]
            for (_, answer), row in zip(batch, logits, strict=True):
                z = np.exp(row - row.max())
                answer.put({"label": labels[int(np.argmax(row))], "scores": [float(x) for x in z / z.sum()]})

    threading.Thread(target=runner, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # noqa: ANN001 - quiet
            pass

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._send(200, {"ok": True})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer: queue.Queue = queue.Queue(maxsize=1)
            pending.put((body["text"], answer))
            self._send(200, dict(answer.get(), id=body.get("id"), ok=True))

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# -- the client process -------------------------------------------------------------------------------------------


def run_client(port: int, clients: int, seconds: float, task: str) -> dict:
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = time.monotonic() + 1.0  # warm-up: connections open, first batches formed
    stop = start + seconds

    def one(cid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = 0
        while time.monotonic() < stop:
            body = json.dumps({"id": f"c{cid}-{i}", "task": task, "text": TEXTS[(cid + i) % len(TEXTS)]})
            t0 = time.monotonic()
            try:
                conn.request("POST", "/infer", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                ok = r.status == 200 and json.loads(r.read()).get("ok")
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            t1 = time.monotonic()
            if t0 >= start and t1 <= stop:
                if ok:
                    lat[cid].append(t1 - t0)
                else:
                    errors[cid] += 1
            i += 1
        conn.close()

    threads = [threading.Thread(target=one, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = sorted(x for xs in lat for x in xs)
    n = len(all_lat)
    return {"answered": n, "errors": sum(errors), "rps": n / seconds,
            "p50_ms": 1e3 * all_lat[n // 2] if n else None,
            "p99_ms": 1e3 * all_lat[min(n - 1, int(0.99 * n))] if n else None}


# -- the driver ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, path: str, proc: subprocess.Popen, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server on {port} not ready after {timeout_s:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?")
    ap.add_argument("--clients", default="16,1")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (both servers)")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--seq-bucket", type=int, default=16, help="edgemti serve --seq-bucket")
    ap.add_argument("--json", default=None, help="write the rows and the table here")
    ap.add_argument("--serve-plain", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_plain:
        return serve_plain(a.build, a.task, a.port, a.max_batch_size, a.max_queue_delay_ms / 1e3, a.threads)
    if a.client:
        print(json.dumps(run_client(a.port, int(a.clients), a.seconds, a.task)))
        return None
    if a.build is None:
        ap.error("give BUILD")
    me = [sys.executable, str(Path(__file__).resolve())]
    ports = {"plain": _free_port(), "edgemti": _free_port()}
    thr = ["--threads", str(a.threads)] if a.threads else []
    procs = {
        "plain": subprocess.Popen([*me, a.build, "--serve-plain", "--port", str(ports["plain"]), "--task", a.task,
                                   "--max-batch-size", str(a.max_batch_size), "--max-queue-delay-ms",
                                   str(a.max_queue_delay_ms), *thr]),
        "edgemti": subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", a.build, "--http",
                                     f"127.0.0.1:{ports['edgemti']}", "--max-batch-size", str(a.max_batch_size),
                                     "--max-queue-delay-ms", str(a.max_queue_delay_ms), "--fit-spec", "--warm",
                                     "--seq-bucket", str(a.seq_bucket), *thr],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
    }
    rows = []
    try:
        _wait_ready(ports["plain"], "/health", procs["plain"])
        _wait_ready(ports["edgemti"], "/v2/health/ready", procs["edgemti"])
        counts = [int(c) for c in a.clients.split(",")]
        for rnd in range(a.rounds):
            for c in counts:
                order = ("plain", "edgemti") if rnd % 2 == 0 else ("edgemti", "plain")
                for side in order:
                    out = subprocess.run([*me, "--client", "--port", str(ports[side]), "--clients", str(c),
                                          "--seconds", str(a.seconds), "--task", a.task],
                                         capture_output=True, text=True, timeout=a.seconds + 300)
                    if out.returncode != 0:
                        raise SystemExit(f"client failed: {out.stderr[-2000:]}")
                    row = dict(json.loads(out.stdout.strip().splitlines()[-1]), server=side, clients=c, round=rnd)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    table = []
    for c in counts:
        med = {s: statistics.median(r["rps"] for r in rows if r["server"] == s and r["clients"] == c)
               for s in ("plain", "edgemti")}
        p50 = {s: statistics.median([r["p50_ms"] for r in rows if r["server"] == s and r["clients"] == c
                                     and r["p50_ms"] is not None] or [float("nan")]) for s in ("plain", "edgemti")}
        rps = {(r["server"], r["round"]): r["rps"] for r in rows if r["clients"] == c}
        per_round = [rps[("edgemti", k)] / rps[("plain", k)] if rps[("plain", k)] else float("nan")
                     for k in range(a.rounds)]
        table.append({"clients": c, "plain_rps": med["plain"], "edgemti_rps": med["edgemti"],
                      "ratio": med["edgemti"] / med["plain"], "ratio_per_round": per_round,
                      "plain_p50_ms": p50["plain"], "edgemti_p50_ms": p50["edgemti"],
                      "errors": sum(r["errors"] for r in rows if r["clients"] == c)})
    print("| clients | plain ORT req/s | edgemti req/s | edgemti / plain (per round) | p50 ms plain / edgemti | "
          "errors |\n|---|---|---|---|---|---|")
    for t in table:
        rounds = ", ".join(f"{x:.2f}" for x in t["ratio_per_round"])
        print(f"| {t['clients']} | {t['plain_rps']:.1f} | {t['edgemti_rps']:.1f} | **{t['ratio']:.2f}** ({rounds}) | "
              f"{t['plain_p50_ms']:.1f} / {t['edgemti_p50_ms']:.1f} | {t['errors']} |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows, "table": table}, indent=2))
    return None


if __name__ == "__main__":
    main()
