"""Talk to ``edgemti serve --http`` with the stock Open Inference Protocol client (``tritonclient.http``).

    python tools/oip_client.py 127.0.0.1:8080 [--task sst2] [--text "a fine film" ...] [--pair "..."]

Prints what a Triton/KServe user sees: liveness and readiness, server and model metadata, the repository
index, then one inference request carrying every ``--text`` (the batch dimension), its labels, scores and the
simulated cost the server reports in the response ``parameters``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import tritonclient.http as oip


def _bytes_input(name: str, texts: list[str]) -> oip.InferInput:
    x = oip.InferInput(name, [len(texts)], "BYTES")
    x.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="HOST:PORT of the server")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--text", action="append", default=None)
    ap.add_argument("--pair", action="append", default=None, help="text_pair per --text (pair tasks)")
    args = ap.parse_args()
    texts = args.text or ["a gripping , beautifully made film .", "the worst movie of the year ."]
    c = oip.InferenceServerClient(args.url)
    print(f"live {c.is_server_live()}  ready {c.is_server_ready()}  model {args.task} ready "
          f"{c.is_model_ready(args.task)}")
    print("server   ", json.dumps(c.get_server_metadata()))
    print("model    ", json.dumps(c.get_model_metadata(args.task)))
    print("index    ", json.dumps(c.get_model_repository_index()))
    inputs = [_bytes_input("text", texts)]
    if args.pair:
        inputs.append(_bytes_input("text_pair", args.pair))
    res = c.infer(args.task, inputs, request_id="oip-client-1")
    labels = [x.decode() for x in res.as_numpy("label")]
    scores = res.as_numpy("scores")
    for t, lab, sc in zip(texts, labels, scores, strict=True):
        print(f"infer     {t!r} -> {lab} {np.round(sc, 4).tolist()}")
    print("params   ", json.dumps(res.get_response()["parameters"]))
    c.close()


if __name__ == "__main__":
    main()
