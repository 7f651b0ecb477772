"""The stdin server on a huge pipe: memory while it serves, and how long SIGTERM takes to end it.

    python tools/bench_stdin_stop.py BUILD [--mib 236] [--serve-s 10] [--out results/stdin_stop.jsonl]

Writes ``--mib`` MiB of valid sst2 requests to a file, starts ``edgemti serve BUILD`` with that file on stdin, reads
the server's RSS (/proc) at the first answer and after ``--serve-s`` seconds, how far it has read the file, then
sends SIGTERM and times the exit. With the bounded read-ahead the RSS stays flat, the server has read a few
64 KiB chunks, and SIGTERM ends it after the lines already read (docs/RUNTIME.md; before: RSS 111 -> 646 MB on a
236 MB pipe and a 21.6 s SIGTERM backlog).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc (Linux only)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--mib", type=int, default=236)
    ap.add_argument("--serve-s", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="append the result as one JSON line here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "requests.jsonl"
        n = 0
        with open(src, "wb") as fh:
            while fh.tell() < args.mib << 20:
                fh.write((json.dumps({"id": n, "task": "sst2", "text": f"a fine film number {n} " + "word " * 30})
                          + "\n").encode())
                n += 1
        with open(src, "rb") as stdin:
            proc = subprocess.Popen([sys.executable, "-m", "edgemti.cli", "serve", args.build], stdin=stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            proc.stdout.readline()  # type: ignore[union-attr]
            rss0 = _rss_mib(proc.pid)
            time.sleep(args.serve_s)
            rss1 = _rss_mib(proc.pid)
            read = os.lseek(stdin.fileno(), 0, os.SEEK_CUR)
            t0 = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=600)
            stop_s = time.perf_counter() - t0
    res = {"lines": n, "mib": args.mib, "rss_first_answer_mib": round(rss0, 1), "rss_after_mib": round(rss1, 1),
           "serve_s": args.serve_s, "read_mib": round(read / 2**20, 3), "sigterm_to_exit_s": round(stop_s, 2),
           "answered": 1 + len(out.splitlines()), "returncode": proc.returncode}
    print(json.dumps(res))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
