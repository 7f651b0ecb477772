"""The one serving entry point the CLI calls: open a build once, then serve it from a file, stdin or HTTP.

Sources: a JSON-lines file or stdin run the stream loop of :mod:`edgemti.runtime.server`; a loopback HTTP address
runs the front end of :mod:`edgemti.runtime.http`, which answers through the same loop's session. This module sits
above both, so neither imports the other's caller (the HTTP front end depends on the loop's public session API,
never the reverse).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgemti.errors import CapacityError, ConfigError
from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.http import HttpConfig, parse_address, serve_http
from edgemti.runtime.request import split_lines
from edgemti.runtime.scheduler import SchedulerConfig
from edgemti.runtime.server import ServeResult, input_lines, serve_stream

log = logging.getLogger(__name__)


def serve(
    build: str | Path,
    requests: str | Path | None = None,
    http: str | None = None,
    log_path: str | Path | None = None,
    scheduler: SchedulerConfig | None = None,
    slots: int = 1,
    pinned: tuple[str, ...] = (),
    overlong: str = "truncate",
    spec: str | Path | None = None,
    threads: int | None = None,
    duration_s: float | None = None,
    emit: Callable[[dict], None] | None = None,
    stdin: Any = None,
    ready: Callable[[tuple[str, int]], None] | None = None,
    seq_bucket: int = 16,
    warm: bool = False,
    fit: bool = False,
    fault: Any = None,
    trust: bool = False,
    batching: BatchingConfig | None = None,
    http_config: HttpConfig | None = None,
    verify_key: str | Path | None = None,
    early_exit: Any = None,
    dram_packs: int | None = None,
) -> ServeResult:
    """Open ``build`` and serve requests from a file (``requests``), HTTP (``http``) or ``stdin`` (a file
    descriptor, read as bytes line by line, or an iterable of lines).

    Every response goes to ``emit`` as it is produced and to the log at ``log_path``; returns the summary.
    ``fault`` (a :class:`edgemti.runtime.faults.FaultModel`) serves from faulty RRAM cells. The build is verified
    before serving (every file's sha256); ``trust`` skips the file hashes, never the manifest's own digest.
    ``verify_key`` (an Ed25519 public key PEM file): serve only a build signed with it (file hashes checked).
    ``early_exit`` (an :class:`edgemti.runtime.early_exit.ExitConfig`) serves layer by layer with entropy early
    exit (runtime/early_exit.py). ``dram_packs``: at most this many packs in DRAM, loaded from the build's pack
    images on disk on demand, LRU, ``pinned`` packs never evicted (None: every pack in DRAM from the start;
    docs/RUNTIME.md "Residency tiers").
    """
    from edgemti.runtime.engine import Engine

    if requests is not None and http is not None:
        raise ConfigError("give either a requests file or an HTTP address, not both", options=("requests", "http"))
    if http is not None:
        http = _listen_address(http, parse_address)  # refuse a bad or busy address before loading the build
    if requests is not None and not Path(requests).is_file():
        raise ConfigError(f"requests file {requests}: no such file (give a JSON-lines file, one request per line)",
                          options=("requests",))
    from edgemti.formats.build import open_build
    from edgemti.runtime.hma import build_spec

    # one open of the build, one spec resolved (sized to it when asked), both handed down to the engine
    opened = open_build(build, verify=not trust, verify_key=verify_key)
    arch, changes = build_spec(opened, spec, fit=fit)
    for c in changes:  # asked for: information, not a warning
        log.info("spec sized for this build: %s", c)
    try:
        engine = Engine.from_build(opened, arch, slots=slots, pinned=pinned, threads=threads, overlong=overlong,
                                   seq_bucket=seq_bucket, fault=fault, dram_packs=dram_packs)
    except CapacityError as exc:
        if fit:
            raise
        raise CapacityError(f"{exc}; or let serve size the on-chip memories to this build",
                            options=("fit",)) from None
    if early_exit is not None:  # same protocol as the engine: the loop, the log and HTTP serve it alike
        from edgemti.runtime.early_exit import EarlyExitEngine

        engine = EarlyExitEngine(engine, early_exit, threads=threads)  # type: ignore[assignment]
    if http is not None:  # the HTTP server warms on its worker: live at once, ready (/v2/health/ready) after it
        if verify_key is None:
            from edgemti.formats.signature import signed_by

            kid = signed_by(build)
            log.warning("serving %s over HTTP without checking who built it: %s; give a verify key to serve only "
                        "builds signed with it", build, f"it says it is signed by key {kid}, not checked" if kid
                        else "it is not signed")
        return serve_http(engine, http, scheduler, log_path, emit, duration_s=duration_s, ready=ready,
                          batching=batching, config=http_config, warm=warm)
    if warm:
        engine.warm(max_batch=(batching or BatchingConfig()).max_batch_size)
    limit = engine.rules.max_request_bytes
    if requests is not None:
        with open(requests, "rb") as fh:
            return serve_stream(engine, split_lines(iter(lambda: fh.read(1 << 16), b""), limit), scheduler,
                                log_path, emit, live=False, batching=batching)
    if stdin is None:
        raise ConfigError("no request source: give a requests file, an HTTP address, or JSON lines on stdin",
                          options=("requests", "http"))
    return serve_stream(engine, input_lines(stdin, limit), scheduler, log_path, emit, live=True,
                        batching=batching)


def _listen_address(http: str, parse: Callable[[str], tuple[str, int]]) -> str:
    """``http`` as the HTTP front end takes it, checked before the build is loaded: ``localhost`` is 127.0.0.1
    (loopback by name), and a port another program listens on is a :class:`ConfigError`, not a bind traceback."""
    host, sep, port = http.rpartition(":")
    given = http
    if sep and host.strip().lower() == "localhost":
        http = f"127.0.0.1:{port}"
    try:
        ip, num = parse(http)
    except ConfigError:
        parse(given)  # the error names the address as the user wrote it
        raise
    if num:  # port 0: the system picks a free one
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds
            try:
                probe.bind((ip, num))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {ip}:{num}: {exc.strerror} (is another server running "
                                  "there? choose another port)") from None
    return http
