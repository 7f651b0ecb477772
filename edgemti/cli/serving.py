"""``edgemti serve``: its options, parsed into the runtime's typed configs, handed to
:func:`edgemti.runtime.serving.serve`."""

from __future__ import annotations

import logging
import sys

import click

from edgemti.cli.group import main


@main.command()
@click.argument("build", type=click.Path(exists=True, file_okay=False))
@click.option("--requests", "requests", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="JSON-lines file of requests; '-' or no --requests/--http: read JSON lines from stdin.")
@click.option("--http", "http", default=None, metavar="HOST:PORT",
              help="Serve POST /infer on a loopback address, e.g. 127.0.0.1:8080.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None,
              help="Write the serve log to this JSONL file, replacing it: a header, one record per request as it is "
                   "answered, the summary at the end (docs/LOGS.md).")
@click.option("--max-batch-size", type=int, default=1, show_default=True,
              help="Dynamic batching: up to this many queued requests of one task run together (1: off).")
@click.option("--max-queue-delay-ms", type=float, default=0.0, show_default=True,
              help="Dynamic batching over HTTP: how long a partial batch waits for more requests of its task.")
@click.option("--http-max-connections", type=int, default=512, show_default=True,
              help="--http: open connections at most (half of them from one address); over it, the longest-idle "
                   "one is closed, or the new one gets 503.")
@click.option("--http-read-timeout", "http_read_timeout_s", type=float, default=10.0, show_default=True,
              help="--http: seconds a connection has to deliver its next request before it is closed.")
@click.option("--json-summary", is_flag=True, help="Print the end-of-run summary as one JSON object (stderr).")
@click.option("--policy", type=click.Choice(["fifo", "swap-aware"]), default="fifo", show_default=True)
@click.option("--window", type=int, default=8, show_default=True, help="swap-aware: pending requests looked at.")
@click.option("--max-bypass", type=int, default=8, show_default=True,
              help="swap-aware: times a request may be overtaken (bounds its extra wait).")
@click.option("--slots", type=int, default=1, show_default=True, help="Task packs resident in SRAM at once (LRU).")
@click.option("--pin", "pinned", multiple=True,
              help="Keep this task's pack resident once loaded, in SRAM and in DRAM (repeatable).")
@click.option("--dram-packs", type=int, default=None,
              help="At most this many packs in DRAM, read from the build's pack images on disk on demand (LRU; "
                   "default: every pack, placed at start).")
@click.option("--overlong", type=click.Choice(["truncate", "reject"]), default="truncate", show_default=True,
              help="Texts longer than the build's max_seq_len tokens.")
@click.option("--spec", type=click.Path(dir_okay=False), default=None, help="Architecture spec TOML (default: the build's design).")
@click.option("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
@click.option("--duration", "duration_s", type=float, default=None, help="--http: stop after this many seconds.")
@click.option("--seq-bucket", type=int, default=16, show_default=True,
              help="Price requests at a multiple of this many tokens, the accelerator's tiles (0: exact length); "
                   "the host always runs the exact length.")
@click.option("--warm", is_flag=True, help="Price every (task, length bucket, batch size up to --max-batch-size) at start, so no request pays it.")
@click.option("--fit-spec", "fit", is_flag=True,
              help="Raise any on-chip memory of the spec too small for this build to the next power of two.")
@click.option("--fault-mlc-rate", type=float, default=0.0, help="Serve from faulty RRAM: MLC cell error rate.")
@click.option("--fault-slc-rate", type=float, default=0.0, help="Serve from faulty RRAM: SLC cell error rate.")
@click.option("--fault-seed", type=int, default=0, help="Seed of the RRAM fault pattern.")
@click.option("--trust", is_flag=True,
              help="Skip the image and graph sha256 checks at start (the manifest's own digest is always checked).")
@click.option("--debug", is_flag=True, help="Log a traceback for every request that fails unexpectedly.")
@click.option("--verify-key", "verify_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 public key (PEM): serve only a build signed with it (compile --sign-key); all hashes "
                   "are checked.")
@click.option("--early-exit", is_flag=True,
              help="Run layer by layer and exit at the first off-ramp under the task's entropy threshold "
                   "(packs trained with --off-ramps and calibrated; docs/EARLY_EXIT.md).")
@click.option("--latency-target-ms", type=float, default=None,
              help="--early-exit: per-request simulated latency target; DVFS picks the lowest V/F that meets it.")
def serve(build, requests, http, log_path, max_batch_size, max_queue_delay_ms, http_max_connections, http_read_timeout_s,
          json_summary, policy, window,
          max_bypass, slots, pinned, dram_packs, overlong, spec, threads, duration_s, seq_bucket, warm, fit, fault_mlc_rate,
          fault_slc_rate, fault_seed, trust, debug, verify_key, early_exit,
          latency_target_ms) -> None:
    """Serve multi-task requests on the simulated HMA; one JSON answer per request on stdout.

    \b
    Each request: {"id": 1, "task": "sst2", "text": "...", "text_pair": "..."}
    Each answer : label, scores, simulated energy/latency (inference + swap, by component), host time, swapped.
    The summary (swaps, energy per inference, latency p50/p99, savings vs fifo) goes to stderr at the end.
    """
    from edgemti.runtime.batcher import BatchingConfig
    from edgemti.runtime.faults import FaultModel
    from edgemti.runtime.http import HttpConfig
    from edgemti.runtime.request import response_json
    from edgemti.runtime.scheduler import SchedulerConfig
    from edgemti.runtime.serving import serve as run_serve
    from edgemti.runtime.summary import format_summary

    if debug:
        logging.getLogger("edgemti.runtime").setLevel(logging.DEBUG)

    def emit(resp: dict) -> None:
        click.echo(response_json(resp))

    def ready(addr) -> None:
        click.echo(f"serving http://{addr[0]}:{addr[1]}/infer (Ctrl-C to stop)", err=True)

    requests = None if requests == "-" else requests  # '-': stdin, like no --requests
    if latency_target_ms is not None and not early_exit:
        raise click.UsageError("--latency-target-ms needs --early-exit")
    from edgemti.runtime.early_exit import ExitConfig

    exit_cfg = ExitConfig(latency_target_ms / 1e3 if latency_target_ms is not None else None) if early_exit else None
    result = run_serve(build, requests=requests, http=http, log_path=log_path,
                       scheduler=SchedulerConfig(policy, window, max_bypass), slots=slots, pinned=tuple(pinned),
                       overlong=overlong, spec=spec, threads=threads, duration_s=duration_s, emit=emit,
                       stdin=None if (requests or http) else sys.stdin.buffer, ready=ready,
                       batching=BatchingConfig(max_batch_size, max_queue_delay_ms / 1e3),
                       http_config=HttpConfig(max_connections=http_max_connections,
                                              max_connections_per_address=max(1, http_max_connections // 2),
                                              read_timeout_s=http_read_timeout_s),
                       seq_bucket=seq_bucket, warm=warm, fit=fit, trust=trust, verify_key=verify_key,
                       fault=FaultModel(fault_slc_rate, fault_mlc_rate, fault_seed)
                       if (fault_mlc_rate or fault_slc_rate) else None, early_exit=exit_cfg, dram_packs=dram_packs)
    click.echo(response_json(result.summary) if json_summary else format_summary(result.summary), err=True)
