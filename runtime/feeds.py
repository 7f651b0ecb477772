"""Request texts as the graph's inputs: token ids cut (or refused) at the build's length, rows padded into one
batch, and the sequence bucket the simulated accelerator is priced at.

The host runs the real length; the simulated cost is priced at the length rounded up to the sequence bucket
(``seq_bucket`` tokens, capped at ``max_seq_len``, :meth:`RequestEncoder.bucket`): the accelerator runs fixed-size
tiles, and the cost table stays small (one entry per bucket and task). Padding the host run to the bucket as well
cost ~20 % of HTTP throughput for the same answers (tools/bench_http.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgemti.errors import ConfigError, FormatError, RequestError
from edgemti.runtime.request import OVERLONG_POLICIES
from edgemti.runtime.session import DATA_INPUTS
from edgemti.runtime.tokenize import BuildTokenizer, Encoded


class RequestEncoder:
    """Texts -> int64 data inputs for one build: ``max_seq_len`` tokens at most (``overlong``: truncate or
    reject), padded with the tokenizer's pad id; ``seq_bucket``: the priced length's granularity (0 or 1: exact)."""

    def __init__(self, tokenizer: BuildTokenizer, max_seq_len: int, overlong: str = "truncate",
                 seq_bucket: int = 16) -> None:
        if overlong not in OVERLONG_POLICIES:
            raise ConfigError(f"RequestEncoder: overlong must be one of {OVERLONG_POLICIES}, got {overlong!r}",
                              options=("overlong",))
        if not isinstance(seq_bucket, int) or seq_bucket < 0:
            raise ConfigError(f"seq_bucket must be an int >= 0 (0 or 1: no bucketing), got {seq_bucket!r}")
        self.tokenizer = tokenizer
        self.max_seq_len = int(max_seq_len)
        self.overlong = overlong
        self.seq_bucket = seq_bucket
        self.pad_id = int(tokenizer.pad_token_id)

    def encode(self, text: str, text_pair: str | None = None) -> tuple[Encoded, bool]:
        """Token ids of one request and whether they were truncated to ``max_seq_len`` (overlong='reject':
        :class:`RequestError` instead)."""
        enc = self.tokenizer.encode(text, text_pair)
        n = len(enc.ids)
        if n <= self.max_seq_len:
            return enc, False
        if self.overlong == "reject":
            raise RequestError(f"text is {n} tokens, over the build's max_seq_len {self.max_seq_len}: shorten "
                               "it, or serve with overlong texts truncated", options=("overlong",))
        return self.tokenizer.encode(text, text_pair, max_length=self.max_seq_len), True

    def pad(self, rows: Sequence[Encoded], length: int) -> dict[str, np.ndarray]:
        """int64 ``[len(rows), length]`` data inputs, each row padded with the pad id and attention mask 0."""
        feeds = {k: np.zeros((len(rows), length), dtype=np.int64) for k in DATA_INPUTS}
        feeds["input_ids"].fill(self.pad_id)
        for i, enc in enumerate(rows):
            n = len(enc.ids)
            feeds["input_ids"][i, :n] = enc.ids
            feeds["attention_mask"][i, :n] = 1
            feeds["token_type_ids"][i, :n] = enc.type_ids
        return feeds

    def tokenize(self, text: str, text_pair: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """int64 ``[1, n]`` data inputs (``n`` the token count) and whether the text was truncated."""
        enc, truncated = self.encode(text, text_pair)
        return self.pad([enc], len(enc.ids)), truncated

    def bucket(self, n_tokens: int) -> int:
        """The sequence length a run of ``n_tokens`` is priced at (module docstring)."""
        if self.seq_bucket <= 1:
            return n_tokens
        return min(self.max_seq_len, -(-n_tokens // self.seq_bucket) * self.seq_bucket)


def load_tokenizer(build: Path, manifest) -> BuildTokenizer:
    """The build's tokenizer (its ``tokenizer.json``, read with the tokenizers library alone)."""
    rel = manifest.backbone.get("tokenizer")
    if not rel:
        raise FormatError(f"{build}/manifest.json: backbone.tokenizer is null; the build cannot tokenize text "
                          "(recompile with a backbone that has a tokenizer)")
    path = build / rel
    if not path.is_dir():
        raise FormatError(f"{build}: tokenizer folder {rel!r} is missing; the build is incomplete, recompile it")
    return BuildTokenizer(path)
