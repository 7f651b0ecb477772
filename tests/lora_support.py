"""Shared fixture material of the LoRA tests: a tiny BERT saved as a Hugging Face folder and a LoRA adapter on it
saved by PEFT itself (B and the head drawn at random, so the adapter is not the identity)."""

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

TINY = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def inputs(batch: int = 3, seq: int = 10):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 1000, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, seq // 2 + 1:] = 0
    return ids, mask


def copy_tokenizer(folder: Path) -> None:
    """MiniLM's BERT tokenizer files (the tiny BERT's vocabulary) into a backbone folder, so builds can serve text."""
    from edgemti.tasks.backbones import minilm_path

    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm_path() / f).is_file():
            (folder / f).write_bytes((minilm_path() / f).read_bytes())


def peft_adapter(root: Path, task: str = "sst2", rank: int = 4, alpha: int = 8,
                 targets: tuple[str, ...] = ("query", "value")):
    """``(backbone folder, adapter folder, the PEFT model in eval mode)``; the backbone folder carries MiniLM's
    BERT tokenizer files (same vocabulary) so builds made from it can serve text."""
    from peft import LoraConfig, get_peft_model

    bb = root / "tiny-bert"
    if not bb.is_dir():
        torch.manual_seed(0)
        BertForSequenceClassification(BertConfig(**TINY)).save_pretrained(bb)
        copy_tokenizer(bb)
    base = BertForSequenceClassification.from_pretrained(bb)
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=rank, lora_alpha=alpha,
                                            target_modules=list(targets)))
    torch.manual_seed(rank)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or "classifier" in n:
                p.normal_(0, 0.3)
    model.eval().save_pretrained(root / task)
    return bb, root / task, model
