"""Fuzz ``edgemti serve`` through the console script: hypothesis-generated request lines over stdin and bodies over
HTTP, every hostile case of issue 10 included; checks that each request is answered exactly once.

    python tools/fuzz_serve.py BUILD [--requests 10000] [--mode stdin|http|both] [--seed 0]
    python tools/fuzz_serve.py BUILD --mode http --soak-seconds 1800 --rss-log soak.tsv   # long run, RSS sampled
    python tools/fuzz_serve.py --plot soak.tsv docs/img/soak_rss.png                       # the RSS curve

For each mode it prints: requests sent, answered exactly once (stdin: every ``seq`` 0..N-1 once; HTTP: one
response per body, none lost), answers that are not strict JSON, tracebacks on stderr, log lines (request records
in the serve log, and its summary's count), the server's exit code and its RSS after warm-up and at the end.
The payloads are generated once per seed by hypothesis (derandomized: the same seed gives the same stream).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TASKS = ["sst2", "mrpc", "stsb", "qqp", "", "SST2"]  # the build's, plus unknown ones
HOSTILE = [
    b'{"id": ' + b"9" * 5000 + b', "task": "sst2", "text": "a"}',  # int() over 4,300 digits
    b"[" * 100_000,  # recursion
    b'{"id": "bad-byte", "task": "sst2", "text": "caf\xe9"}',  # not UTF-8
    b'{"id": "sur", "task": "sst2", "text": "a\\ud800b"}',  # lone surrogate
    b'{"id": "nul", "task": "sst2", "text": "\\u0000\\u0000"}',  # only NUL
    b'{"id": "' + b"x" * 1_000_000 + b'", "task": "sst2", "text": "a"}',  # 1 MB id
    b'{"id": 1, "task": "sst2", "text": NaN}',
    b'{"id": 2, "task": "sst2", "text": "x", "n": 1e999}',
    b'{"id": "long", "task": "sst2", "text": "' + b"word " * 300_000 + b'"}',  # 1.5 MB line
    b"\xff\xfe\x00\x01",
    b'{"id": ' + b"[" * 50 + b"]" * 50 + b', "task": "sst2", "text": "a"}',
    b'{"id": {"a": 1}, "task": "sst2", "text": "a"}',
    b'{"id": true, "task": "sst2", "text": "a"}',
    b'{"id": 3, "task": "mrpc", "text": "a"}',  # pair task without text_pair
    b'{"id": 4, "task": "sst2", "text": "a", "text_pair": "b"}',
    b'"just a string"',
    b"null",
    b'{"id": 5, "task": "sst2", "text": "\\u202e\\u200b"}',  # invisible format characters only
]


def payloads(n: int, seed: int, pair_tasks: set[str]) -> list[bytes]:
    """``n`` request lines (no newline inside, not blank): ~40% valid requests, the rest mutated or hostile."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    texts = st.text(max_size=200)
    ids = st.one_of(st.integers(-(2 ** 70), 2 ** 70), st.text(max_size=300), st.none(), st.booleans(), st.floats(),
                    st.lists(st.integers(), max_size=3))
    good = st.builds(lambda i, t, x, y: {"id": i, "task": t, "text": x or "x", **({"text_pair": y or "y"}
                                                                                   if t in pair_tasks else {})},
                     st.integers(0, 10 ** 9), st.sampled_from(["sst2", "mrpc", "stsb"]), texts, texts)
    json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
                               lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                               max_leaves=15)
    mutated = st.fixed_dictionaries({}, optional={"id": ids, "task": st.sampled_from(TASKS) | st.integers(),
                                                  "text": texts | json_values, "text_pair": texts | st.integers(),
                                                  "extra": json_values})
    sentences = st.sampled_from(["a gripping , beautifully made film .", "the worst movie of the year .",
                                 "The cat sat on the mat.", "He left early, she stayed.", "it is fine , i guess ."])
    clean = st.builds(lambda i, t, x, y: {"id": i, "task": t, "text": x, **({"text_pair": y}
                                                                             if t in pair_tasks else {})},
                      st.integers(0, 10 ** 9) | st.text(min_size=1, max_size=20), st.sampled_from(["sst2", "mrpc", "stsb"]),
                      sentences, sentences)
    obj = st.one_of(clean, clean, clean, good, mutated, json_values)
    encoded = st.tuples(obj, st.booleans()).map(
        lambda oa: json.dumps(oa[0], ensure_ascii=oa[1]).encode("utf-8", "surrogatepass"))
    raw = st.one_of(encoded, encoded, encoded, encoded, st.binary(min_size=1, max_size=200),
                    st.sampled_from(HOSTILE[9:]))
    out: list[bytes] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(raw)
    def collect(line: bytes) -> None:
        line = line.replace(b"\n", b" ")
        out.append(line if line.strip() else b"x" + line)

    collect()
    rng = random.Random(seed)
    while len(out) < n:  # hypothesis may stop early on a small space; top up from what it made
        out.append(rng.choice(out))
    out = out[:n]
    for i, h in enumerate(HOSTILE):  # every hostile case of the issue, spread through the stream
        out[(i * 7919 + 13) % n] = h
    return out


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _server(build: str, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", build, "--log", str(log), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _log_counts(log: Path) -> tuple[int, int | None, int]:
    from edgemti.runtime.log import read_log

    got = read_log(log)
    return len(got.requests), (got.summary or {}).get("requests"), got.dropped_bytes


def fuzz_stdin(build: str, lines: list[bytes], workdir: Path) -> dict:
    log = workdir / "stdin.jsonl"
    proc = _server(build, log)
    answers: list[bytes] = []
    stderr: list[bytes] = []
    got = threading.Condition()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with got:
                answers.append(line)
                got.notify_all()

    threads = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)]  # type: ignore
    for t in threads:
        t.start()
    assert proc.stdin is not None
    warm = max(1, len(lines) // 10)
    t0 = time.perf_counter()

    def send(chunk: list[bytes], until: int) -> None:
        proc.stdin.write(b"".join(x + b"\n" for x in chunk))  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        with got:
            got.wait_for(lambda: len(answers) >= until or proc.poll() is not None, timeout=3600)

    send(lines[:warm], warm)
    rss0 = rss_kb(proc.pid) if proc.poll() is None else 0
    send(lines[warm:], len(lines))
    rss1 = rss_kb(proc.pid) if proc.poll() is None else 0
    proc.stdin.close()
    code = proc.wait(timeout=600)
    for t in threads:
        t.join(timeout=60)
    wall = time.perf_counter() - t0
    seqs, not_json = [], 0
    for a in answers:
        try:
            seqs.append(json.loads(a)["seq"])
        except (ValueError, KeyError):
            not_json += 1
    err = b"".join(stderr).decode("utf-8", "replace")
    n_log, n_summary, dropped = _log_counts(log)
    return {"mode": "stdin", "requests": len(lines), "answers": len(answers),
            "answered_exactly_once": sorted(seqs) == list(range(len(lines))), "not_strict_json": not_json,
            "tracebacks": err.count("Traceback"), "log_request_lines": n_log, "log_summary_requests": n_summary,
            "log_dropped_bytes": dropped, "exit_code": code, "rss_kb_after_warmup": rss0, "rss_kb_end": rss1,
            "wall_s": round(wall, 1), "ok_answers": sum(b'"ok": true' in a for a in answers)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Http:
    """The HTTP server under test, started through the console script, and a pool of client threads."""

    def __init__(self, build: str, log: Path) -> None:
        self.port = _free_port()
        self.proc = _server(build, log, "--http", f"127.0.0.1:{self.port}")
        self.stderr: list[bytes] = []
        threading.Thread(target=lambda: self.stderr.append(self.proc.stderr.read()), daemon=True).start()  # type: ignore
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()  # type: ignore
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP server did not come up: " + b"".join(self.stderr).decode()) from None
                time.sleep(0.2)
        self.statuses: dict[int, int] = {}
        self.lost: list[str] = []
        self.not_json = 0
        self.sent = 0
        self.lock = threading.Lock()

    def post(self, conn: http.client.HTTPConnection | None, body: bytes) -> http.client.HTTPConnection | None:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            conn.request("POST", "/infer", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            try:
                json.loads(data)
                bad = 0
            except ValueError:
                bad = 1
            with self.lock:
                self.sent += 1
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                self.not_json += bad
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            with self.lock:
                self.sent += 1
                self.lost.append(repr(exc)[:120])
            if conn is not None:
                conn.close()
            conn = None
        return conn

    def run(self, bodies: list[bytes], clients: int, until: float | None = None) -> None:
        """Send ``bodies`` split over ``clients`` threads (``until``: loop over them until that monotonic time)."""
        def client(part: list[bytes]) -> None:
            conn = None
            while True:
                for b in part:
                    if until is not None and time.monotonic() > until:
                        return
                    conn = self.post(conn, b)
                if until is None:
                    break
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=600)
        time.sleep(0.2)
        return code, b"".join(self.stderr).decode("utf-8", "replace")


def fuzz_http(build: str, bodies: list[bytes], workdir: Path, clients: int) -> dict:
    log = workdir / "http.jsonl"
    srv = _Http(build, log)
    warm = max(1, len(bodies) // 10)
    t0 = time.perf_counter()
    srv.run(bodies[:warm], clients)
    rss0 = rss_kb(srv.proc.pid)
    srv.run(bodies[warm:], clients)
    rss1 = rss_kb(srv.proc.pid)
    code, err = srv.stop()
    n_log, n_summary, dropped = _log_counts(log)
    answered = sum(srv.statuses.values())
    return {"mode": "http", "requests": len(bodies), "answers": answered,
            "answered_exactly_once": answered == len(bodies) and not srv.lost, "lost": len(srv.lost),
            "lost_examples": srv.lost[:3], "statuses": dict(sorted(srv.statuses.items())),
            "not_strict_json": srv.not_json, "tracebacks": err.count("Traceback"), "log_request_lines": n_log,
            "log_summary_requests": n_summary, "log_dropped_bytes": dropped, "exit_code": code,
            "rss_kb_after_warmup": rss0, "rss_kb_end": rss1, "wall_s": round(time.perf_counter() - t0, 1)}


def soak_http(build: str, bodies: list[bytes], workdir: Path, clients: int, seconds: float, rss_log: Path,
              every_s: float) -> dict:
    """Clients loop over ``bodies`` for ``seconds``; the server's RSS is appended to ``rss_log`` every ``every_s``."""
    log = workdir / "soak.jsonl"
    srv = _Http(build, log)
    t0 = time.monotonic()
    until = t0 + seconds
    rss_log.parent.mkdir(parents=True, exist_ok=True)
    with open(rss_log, "w") as fh:
        fh.write("elapsed_s\trss_kb\trequests_sent\n")
        fh.flush()
        load = threading.Thread(target=srv.run, args=(bodies, clients, until))
        load.start()
        while load.is_alive():
            fh.write(f"{time.monotonic() - t0:.1f}\t{rss_kb(srv.proc.pid)}\t{srv.sent}\n")
            fh.flush()
            load.join(timeout=every_s)
        fh.write(f"{time.monotonic() - t0:.1f}\t{rss_kb(srv.proc.pid)}\t{srv.sent}\n")
    code, err = srv.stop()
    n_log, n_summary, dropped = _log_counts(log)
    return {"mode": "soak", "seconds": seconds, "requests": srv.sent, "lost": len(srv.lost),
            "statuses": dict(sorted(srv.statuses.items())), "not_strict_json": srv.not_json,
            "tracebacks": err.count("Traceback"), "log_request_lines": n_log, "log_summary_requests": n_summary,
            "exit_code": code, "rss_log": str(rss_log)}


def plot(rss_log: Path, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [line.split("\t") for line in rss_log.read_text().splitlines()[1:] if line.strip()]
    t = [float(r[0]) / 60 for r in rows]
    rss = [int(r[1]) / 1024 for r in rows]
    sent = [int(r[2]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(t, rss, marker=".", color="tab:blue")
    ax.set_xlabel("minutes")
    ax.set_ylabel("server RSS (MiB)", color="tab:blue")
    ax.set_ylim(0, max(rss) * 1.15)
    ax2 = ax.twinx()
    ax2.plot(t, sent, color="tab:gray", lw=1)
    ax2.set_ylabel("requests sent", color="tab:gray")
    ax.set_title("edgemti serve --http soak (bert-tiny, fuzzed bodies): RSS every 30 s")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    warm = [r for tt, r in zip(t, rss, strict=True) if tt >= 2.0] or rss
    return {"samples": len(rows), "rss_mib_first": rss[0], "rss_mib_after_2min": warm[0], "rss_mib_max": max(rss),
            "rss_mib_end": rss[-1], "growth_after_2min_mib": round(warm[-1] - warm[0], 2), "requests": sent[-1],
            "png": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--mode", choices=["stdin", "http", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--soak-seconds", type=float, default=None)
    ap.add_argument("--rss-log", type=Path, default=Path("soak_rss.tsv"))
    ap.add_argument("--rss-every", type=float, default=30.0)
    ap.add_argument("--plot", nargs=2, type=Path, metavar=("RSS_LOG", "PNG"))
    a = ap.parse_args()
    if a.plot:
        print(json.dumps(plot(*a.plot), indent=1))
        return
    if not a.build:
        ap.error("give a BUILD folder")
    from edgemti.formats.build import open_build

    m = open_build(a.build, verify=False).manifest
    pair = {p.task for p in m.packs if "text_pair" in p.text_fields}
    t0 = time.perf_counter()
    lines = payloads(a.requests, a.seed, pair)
    print(f"generated {len(lines)} payloads ({sum(map(len, lines)) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="edgemti-fuzz-") as tmp:
        work = Path(tmp)
        if a.soak_seconds:
            print(json.dumps(soak_http(a.build, lines, work, a.clients, a.soak_seconds, a.rss_log, a.rss_every)),
                  flush=True)
            return
        for mode in (["stdin", "http"] if a.mode == "both" else [a.mode]):
            res = fuzz_stdin(a.build, lines, work) if mode == "stdin" else fuzz_http(a.build, lines, work, a.clients)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
