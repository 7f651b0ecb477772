"""The build's tokenizer, read with the ``tokenizers`` library alone (no transformers, no torch).

A build carries its backbone's tokenizer in ``tokenizer/`` as the compiler saved it (Hugging Face layout:
``tokenizer.json`` + ``tokenizer_config.json``). ``tokenizer.json`` is the whole pipeline (normalizer,
pre-tokenizer, word pieces, the ``[CLS] a [SEP] b [SEP]`` template with token types), so serving needs only the
small ``tokenizers`` wheel; the ids equal what transformers' fast tokenizer returns for the same folder
(tests/test_serve_only.py). A folder without ``tokenizer.json`` (a build saved from a slow sentencepiece tokenizer)
falls back to transformers when it is installed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import FormatError

log = logging.getLogger(__name__)
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"


@dataclass(frozen=True)
class Encoded:
    """One request's tokens: ids and token types (segment 0 / 1), special tokens included, no padding."""

    ids: list[int]
    type_ids: list[int]


class BuildTokenizer:
    """``encode(text, text_pair, max_length)`` -> :class:`Encoded`; ``pad_token_id`` pads batches."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        path = self.folder / TOKENIZER_JSON
        self._hf: Any = None
        self._plain: Any = None
        self._cut: dict[int, Any] = {}
        if path.is_file():
            from tokenizers import Tokenizer

            try:
                self._plain = Tokenizer.from_file(str(path))
            except Exception as exc:  # the tokenizers library raises its own exception type
                raise FormatError(f"{path}: could not load the tokenizer ({exc}): the build is corrupt, recompile "
                                  "it") from None
            self._plain.no_padding()
            self._plain.no_truncation()
        else:
            self._hf = _transformers_tokenizer(self.folder)
        self.pad_token_id = self._find_pad_id()

    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None) -> Encoded:
        """Tokens of ``text`` (and ``text_pair``); with ``max_length`` the longest input is cut first (as
        transformers' ``truncation=True``) until the whole sequence, special tokens included, fits."""
        if self._hf is not None:
            kw: dict[str, Any] = {"truncation": True, "max_length": max_length} if max_length else {}
            enc = self._hf(text, text_pair, return_token_type_ids=True, **kw)
            return Encoded(list(enc["input_ids"]), list(enc["token_type_ids"]))
        tok = self._plain if max_length is None else self._truncating(max_length)
        e = tok.encode(text, text_pair) if text_pair is not None else tok.encode(text)
        return Encoded(list(e.ids), list(e.type_ids))

    def _truncating(self, max_length: int) -> Any:
        if max_length not in self._cut:
            from tokenizers import Tokenizer

            t = Tokenizer.from_str(self._plain.to_str())
            t.no_padding()
            t.enable_truncation(max_length, strategy="longest_first")
            self._cut[max_length] = t
        return self._cut[max_length]

    def _find_pad_id(self) -> int:
        if self._hf is not None:
            return int(getattr(self._hf, "pad_token_id", None) or 0)
        pad: Any = None
        cfg = self.folder / TOKENIZER_CONFIG
        if cfg.is_file():
            try:
                pad = json.loads(cfg.read_text()).get("pad_token")
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                pad = None
            if isinstance(pad, dict):
                pad = pad.get("content")
        tid = self._plain.token_to_id(pad) if isinstance(pad, str) else None
        return int(tid) if tid is not None else 0


def _transformers_tokenizer(folder: Path) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise FormatError(f"{folder}: no {TOKENIZER_JSON}, and transformers is not installed to read the slow "
                          "tokenizer files: recompile the build (the compiler writes tokenizer.json) or install "
                          "transformers") from None
    log.warning("%s: no %s; reading the tokenizer with transformers", folder, TOKENIZER_JSON)
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds
        raise FormatError(f"{folder}: could not load the tokenizer ({type(exc).__name__}: {exc})") from None
