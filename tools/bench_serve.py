"""Host latency of serve's engine vs plain onnxruntime on the same fp32 model and inputs; charging overhead.

    python tools/bench_serve.py BUILD [--task sst2] [--seq 128] [--iters 200] [--threads 1]

Both paths run the build's graph in one process, interleaved request by request, on identical int64 inputs
(batch 1, ``--seq`` tokens):
* engine: ``Engine.infer_ids`` = the serve path (pack bound via IOBinding from SRAM, backbone baked from the
  decoded RRAM images, then the request charged with the hardware model);
* plain:  an ``onnxruntime.InferenceSession`` over the same graph with *every* tensor (backbone and pack, decoded
  from the build) as an initializer, ``session.run`` with a feed dict.
Targets: engine / plain <= 1.15; charging < 5 % of host time per request.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from edgemti.formats.graph import bind_initializers, load_graph
from edgemti.runtime.session import session_options
from edgemti.studies.sized import open_sized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--task", default=None)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    sized = open_sized(args.build)
    eng = sized.engine(threads=args.threads)
    task = args.task or eng.rules.tasks[0]
    b = sized.build
    tensors = {**b.decode_backbone(), **b.decode_pack(task)}
    plain = ort.InferenceSession(bind_initializers(load_graph(b.graph_bytes()), tensors).SerializeToString(),
                                 sess_options=session_options(args.threads), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    vocab = int(eng.manifest.backbone["hf_config"].get("vocab_size", 1000))
    ids = rng.integers(5, vocab, size=(1, args.seq), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    names = [i.name for i in plain.get_inputs()]
    pfeeds = {k: v for k, v in feeds.items() if k in names}

    a = eng.infer_ids(task, feeds)
    ref = plain.run(["logits"], pfeeds)[0][0]
    max_diff = float(np.max(np.abs(np.asarray(a.logits) - ref)))
    t_eng, t_plain, t_charge = [], [], []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        r = eng.infer_ids(task, feeds)
        t1 = time.perf_counter()
        plain.run(["logits"], pfeeds)
        t2 = time.perf_counter()
        if i >= args.warmup:
            t_eng.append(t1 - t0)
            t_plain.append(t2 - t1)
            t_charge.append(r.host_charge_s)
    me, mp, mc = statistics.median(t_eng), statistics.median(t_plain), statistics.median(t_charge)
    print(f"build {eng.build_id[:12]} ({eng.manifest.backbone['name']}, {eng.manifest.compile.quant}), task {task}, "
          f"batch 1, seq {args.seq}, threads {args.threads}, {args.iters} iterations interleaved")
    print(f"max |logits engine - plain| = {max_diff:.2e}")
    print(f"engine (serve path, charged) median {me * 1e3:.3f} ms   p99 {np.percentile(t_eng, 99) * 1e3:.3f} ms")
    print(f"plain onnxruntime            median {mp * 1e3:.3f} ms   p99 {np.percentile(t_plain, 99) * 1e3:.3f} ms")
    print(f"ratio engine / plain = {me / mp:.3f}   (target <= 1.15)")
    print(f"charging (pricing + response) median {mc * 1e6:.1f} us = {100 * mc / me:.2f} % of host time "
          "(target < 5 %)")


if __name__ == "__main__":
    main()
