"""A serving install needs no training stack: serving a compiled build imports neither torch nor transformers
(checked in a fresh interpreter), the build's tokenizer read by the ``tokenizers`` library alone gives the ids
transformers gives, and shipped packs answer with GLUE label names and carry no machine paths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgemti.runtime.tokenize import BuildTokenizer
from edgemti.tasks.glue import get_task

REPO = Path(__file__).resolve().parent.parent
TRAINING = ("torch", "transformers")


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_serving_a_build_imports_no_training_dependency(build, tmp_path):
    reqs = tmp_path / "reqs.jsonl"
    reqs.write_text("\n".join(json.dumps(r) for r in [
        {"id": 1, "task": "sst2", "text": "a warm, funny film"},
        {"id": 2, "task": "mrpc", "text": "he left", "text_pair": "he went away"},
        {"id": 3, "task": "sst2", "text": "dull"}]) + "\n")
    code = f"""
import io, json, sys, contextlib
import edgemti.runtime
from edgemti.cli import main
from edgemti.runtime.batcher import BatchingConfig
from edgemti.runtime.serving import serve
res = serve({str(build)!r}, requests={str(reqs)!r}, batching=BatchingConfig(4), fit=True, warm=True)
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    main(["serve", {str(build)!r}, "--requests", {str(reqs)!r}, "--max-batch-size", "2"], standalone_mode=False)
answers = [json.loads(line) for line in out.getvalue().splitlines()]
print(json.dumps({{"ok": res.summary["ok"], "cli_ok": sum(a["ok"] for a in answers),
                  "loaded": [m for m in {TRAINING!r} if m in sys.modules]}}))
"""
    got = _run(code)
    assert got == {"ok": 3, "cli_ok": 3, "loaded": []}


def test_the_check_would_see_torch(build):
    # the same probe after importing the training side does see it (the test above can fail)
    got = _run("import json, sys; import edgemti.tasks.pack; "
               f"print(json.dumps({{'loaded': [m for m in {TRAINING!r} if m in sys.modules]}}))")
    assert "torch" in got["loaded"]


@pytest.mark.parametrize("pair", [None, "He went away, early."])
def test_build_tokenizer_equals_transformers(build, pair):
    from transformers import AutoTokenizer

    folder = Path(build) / "tokenizer"
    hf = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    ours = BuildTokenizer(folder)
    assert ours.pad_token_id == hf.pad_token_id
    for text in ("A fine, MOVING film!", "word " * 60, "naïve café — 123"):
        for max_length in (None, 16):
            kw = {"truncation": True, "max_length": max_length} if max_length else {}
            ref = hf(text, pair, return_token_type_ids=True, **kw)
            enc = ours.encode(text, pair, max_length)
            assert enc.ids == list(ref["input_ids"]) and enc.type_ids == list(ref["token_type_ids"])


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


@pytest.mark.parametrize("task", ["sst2", "mrpc", "rte"])
def test_shipped_packs_have_glue_label_names_and_no_machine_paths(task):
    meta = json.loads((REPO / "tasks" / "packs" / task / "pack.json").read_text())
    assert tuple(meta["labels"]) == get_task(task).labels and "0" not in meta["labels"]
    assert meta["backbone"]["source"] == "preset:minilm"
    paths = [s for s in _strings(meta) if s.startswith("/") or "site-packages" in s or ":\\" in s]
    assert paths == []
