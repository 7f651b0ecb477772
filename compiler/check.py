"""Does a build compute what the compiler meant? Logits from the decoded images (onnxruntime on graph.onnx)
against the pruned + quantized PyTorch model, and against the unpruned float model.

The PyTorch side is computed independently of the images: prune and fake-quantize the float tensors again, swap
them into the model with ``torch.func.functional_call`` (so tasks with other label counts or adapter sizes run on
one module tree), and compare.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call

from edgemti.compiler.config import CompileConfig
from edgemti.compiler.packs import load_tasks
from edgemti.compiler.prune import prune_backbone
from edgemti.formats.build import Build, open_build, reference_logits
from edgemti.formats.manifest import Manifest
from edgemti.formats.quant import fake_quantize


def config_of_build(m: Manifest) -> CompileConfig:
    """The :class:`CompileConfig` a build was compiled with (saved in its manifest ``m``)."""
    cfg = dict(m.compile.config or {})
    cfg["packs"] = tuple(cfg.get("packs") or ())
    cfg["synthetic_tasks"] = tuple(cfg.get("synthetic_tasks") or ())
    return CompileConfig(**cfg)


def example_batch(vocab: int, batch: int = 3, seq: int = 12, seed: int = 0) -> tuple[np.ndarray, ...]:
    g = np.random.default_rng(seed)
    ids = g.integers(5, min(vocab, 1000), (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[-1, seq // 2:] = 0
    types = np.zeros((batch, seq), dtype=np.int64)
    types[:, seq // 3:] = 1
    return ids, mask, types


def _torch_logits(model, tensors: dict[str, np.ndarray], ids, mask, types) -> np.ndarray:
    params = {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in tensors.items()}
    with torch.no_grad():
        out = functional_call(model, params, (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)),
                              strict=False, tie_weights=False)
    return out.numpy()


def compare_logits(build: Build | str | Path, config: CompileConfig | None = None, batch: int = 3, seq: int = 12,
                   seed: int = 0) -> dict[str, dict]:
    """Per task: max |logit difference| of the decoded build vs the pruned+quantized model (should be <= 1e-5)
    and vs the unpruned float model (with argmax agreement), on a seeded random batch. ``build``: an opened build
    (``inspect`` hands down its own open), or a build folder, opened here once with every checksum."""
    if not isinstance(build, Build):
        build = open_build(build)
    config = config or config_of_build(build.manifest)
    model, tasks = load_tasks(config)
    backbone = {n: t.cpu().numpy() for n, t in model.backbone_state().items()}
    pruned, _ = prune_backbone(backbone, config.sparsity_embedding, config.sparsity_transformer)
    vfmt, pfmt = config.value_format, config.pack_format
    backbone_q = {n: fake_quantize(x, vfmt) for n, x in pruned.items()}
    ids, mask, types = example_batch(int(model.encoder.config.vocab_size), batch, seq, seed)
    out = {}
    for t in tasks:
        ours = reference_logits(build, t.task, ids, mask, types)
        compiled = _torch_logits(model, {**backbone_q, **{n: fake_quantize(a, pfmt) for n, a in t.tensors.items()}},
                                 ids, mask, types)
        float_ = _torch_logits(model, {**backbone, **t.tensors}, ids, mask, types)
        agree = float(np.mean(ours.argmax(-1) == float_.argmax(-1))) if ours.shape[-1] > 1 else None
        flips = ours.argmax(-1) != float_.argmax(-1)
        top2 = np.sort(float_, axis=-1)[:, -2:] if ours.shape[-1] > 1 else None
        out[t.task] = {"max_abs_diff_vs_compiled_torch": float(np.max(np.abs(ours - compiled))),
                       "max_abs_diff_vs_float": float(np.max(np.abs(ours - float_))),
                       "argmax_agreement_vs_float": agree, "batch": batch, "seq": seq,
                       # the float model's top-1 minus top-2 logit where the build decides otherwise: a flip is
                       # expected where this margin is within the logits' drift (max_abs_diff_vs_float)
                       "float_margin_on_flips": (float(np.max(top2[flips, 1] - top2[flips, 0]))
                                                 if top2 is not None and flips.any() else None)}
    return out
