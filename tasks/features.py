"""Tokenization and batching: ``AutoTokenizer`` of the backbone, truncation to ``max_len``, dynamic padding.

Batches are padded to their longest member, not to ``max_len``; training batches are drawn length-grouped
(shuffle, sort chunks of ~50 batches by length, shuffle the batches) so little compute goes to padding on a CPU.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from edgemti.errors import ConfigError
from edgemti.tasks.data import Example
from edgemti.tasks.model import BackboneInfo

log = logging.getLogger(__name__)
MAX_SEQ_LEN = 128


def load_tokenizer(info: BackboneInfo):
    """``AutoTokenizer.from_pretrained(info.tokenizer)`` (a folder or hub name); a clear error when there is none."""
    if not info.tokenizer:
        raise ConfigError(f"backbone {info.name!r} has no tokenizer: give a checkpoint folder that holds one "
                          "(tokenizer.json / spiece.model / vocab.txt)")
    from pathlib import Path

    from transformers import AutoConfig, AutoTokenizer

    kw = {}
    folder = Path(info.tokenizer)
    if folder.is_dir() and not any((folder / f).is_file() for f in ("config.json", "tokenizer_config.json")):
        # a bare vocabulary folder (e.g. shared/data/albert-base-v2: spiece.model only): AutoTokenizer cannot tell
        # the tokenizer class without a config, so give it the backbone family's
        kw["config"] = AutoConfig.for_model(info.family)
    try:
        return AutoTokenizer.from_pretrained(info.tokenizer, **kw)
    except Exception as exc:
        raise ConfigError(f"could not load the tokenizer of backbone {info.name!r} from {info.tokenizer} "
                          f"({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example (unpadded) and its target."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    label: int | float


def encode(tokenizer, examples: Sequence[Example], max_len: int = MAX_SEQ_LEN) -> list[Encoded]:
    """Tokenize (pairs as ``[CLS] a [SEP] b [SEP]``), truncating the longer text first to ``max_len`` tokens."""
    if max_len < 8:
        raise ConfigError(f"max sequence length must be >= 8, got {max_len}")
    out: list[Encoded] = []
    step = 512
    for start in range(0, len(examples), step):
        chunk = examples[start:start + step]
        texts = [e.text for e in chunk]
        pairs = [e.text_pair for e in chunk]
        kw = dict(truncation=True, max_length=max_len, return_token_type_ids=True)
        enc = tokenizer(texts, pairs, **kw) if any(p is not None for p in pairs) else tokenizer(texts, **kw)
        for ids, tt, e in zip(enc["input_ids"], enc["token_type_ids"], chunk, strict=True):
            out.append(Encoded(tuple(ids), tuple(tt), e.label))
    return out


def collate(items: Sequence[Encoded], pad_id: int, regression: bool) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member: ``input_ids``, ``attention_mask``, ``token_type_ids`` [B, T], ``labels``."""
    width = max(len(e.input_ids) for e in items)
    n = len(items)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    tt = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, e in enumerate(items):
        L = len(e.input_ids)
        ids[i, :L] = torch.tensor(e.input_ids)
        tt[i, :L] = torch.tensor(e.token_type_ids)
        mask[i, :L] = 1
    labels = torch.tensor([e.label for e in items], dtype=torch.float32 if regression else torch.long)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt, "labels": labels}


def batches(items: Sequence[Encoded], batch_size: int, pad_id: int, regression: bool, shuffle: bool = False,
            seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Batches in order (``shuffle=False``) or length-grouped and shuffled with ``seed``."""
    if batch_size <= 0:
        raise ConfigError(f"batch size must be > 0, got {batch_size}")
    order = list(range(len(items)))
    if shuffle:
        rng = random.Random(seed)
        rng.shuffle(order)
        chunk = batch_size * 50
        order = [i for s in range(0, len(order), chunk)
                 for i in sorted(order[s:s + chunk], key=lambda j: len(items[j].input_ids))]
        groups = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        rng.shuffle(groups)
    else:
        groups = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    for g in groups:
        yield collate([items[i] for i in g], pad_id, regression)


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
