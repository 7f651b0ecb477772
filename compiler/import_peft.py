"""Reading a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``) as a LoRA pack.

PEFT saves, for a sequence-classification model, ``base_model.model.<prefix>.<module>.lora_A.weight`` [r x in] and
``lora_B.weight`` [out x r] for every targeted linear module (the adapter name ``default`` is dropped on save) and
the ``modules_to_save`` copies (the classifier head) as ``base_model.model.classifier.weight``/``.bias``. Only the
plain LoRA that edgemti computes is accepted; every other PEFT feature in the config is a listed problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgemti.tasks.lora import LoraSpec

PEFT_CONFIG = "adapter_config.json"
PEFT_SAFETENSORS = ("adapter_model.safetensors",)
PEFT_PICKLES = ("adapter_model.bin",)
PEFT_PREFIX = "base_model.model."
# PEFT config keys whose non-default value changes the computation edgemti would do (key -> its plain value)
_PLAIN = {"use_dora": False, "fan_in_fan_out": False, "bias": "none", "lora_bias": False, "rank_pattern": {},
          "alpha_pattern": {}, "layers_to_transform": None, "layer_replication": None, "target_parameters": None,
          "trainable_token_indices": None, "use_qalora": False, "alora_invocation_tokens": None,
          "exclude_modules": None, "use_bdlora": None}


def is_peft(config: Mapping[str, Any]) -> bool:
    return "peft_type" in config


def peft_spec(config: Mapping[str, Any], problems: list[str]) -> LoraSpec | None:
    """The :class:`LoraSpec` of a PEFT config (``r``, ``lora_alpha``, ``target_modules``, ``use_rslora``)."""
    if config.get("peft_type") != "LORA":
        problems.append(f"{PEFT_CONFIG}: peft_type is {config.get('peft_type')!r}, only 'LORA' is a pack kind")
    if config.get("task_type") not in ("SEQ_CLS", None):
        problems.append(f"{PEFT_CONFIG}: task_type is {config.get('task_type')!r}: a pack is a sequence classifier "
                        "(SEQ_CLS, with the classifier in modules_to_save)")
    for key, plain in _PLAIN.items():
        if config.get(key, plain) not in (plain, None, {}, []) and config.get(key) != plain:
            problems.append(f"{PEFT_CONFIG}: {key} = {config.get(key)!r} is not supported (edgemti computes plain "
                            f"LoRA: {key} = {plain!r})")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        problems.append(f"{PEFT_CONFIG}: target_modules is the regular expression {targets!r}: give a list of "
                        "module names (edgemti matches names, not patterns)")
        return None
    if not isinstance(targets, list) or not targets:
        problems.append(f"{PEFT_CONFIG}: target_modules must be a non-empty list of module names, got {targets!r}")
        return None
    try:
        return LoraSpec(rank=config.get("r"), alpha=config.get("lora_alpha"),  # type: ignore[arg-type]
                        target_modules=tuple(sorted(str(t) for t in targets)),
                        use_rslora=bool(config.get("use_rslora", False)))
    except Exception as exc:  # ConfigError: collected with the others
        problems.append(f"{PEFT_CONFIG}: {exc}")
        return None


def peft_base_model(config: Mapping[str, Any]) -> str | None:
    name = config.get("base_model_name_or_path")
    return str(name) if name else None


def peft_names(keys: list[str], encoder_prefix: str, problems: list[str]) -> dict[str, str]:
    """PEFT key -> ``AdapterModel`` parameter name; keys of anything but LoRA pairs and the head are problems.

    ``encoder_prefix``: the encoder's attribute in the Hugging Face classification model (``bert``, ``albert``).
    """
    out = {}
    for key in keys:
        if not key.startswith(PEFT_PREFIX):
            problems.append(f"key {key!r} does not start with {PEFT_PREFIX!r} (not a PEFT-saved adapter)")
            continue
        rest = key[len(PEFT_PREFIX):]
        if rest.startswith("classifier."):
            out[key] = rest
        elif rest.startswith(encoder_prefix + ".") and (".lora_A." in rest or ".lora_B." in rest):
            out[key] = "encoder." + rest[len(encoder_prefix) + 1:]
        elif rest.startswith(encoder_prefix + "."):
            problems.append(f"key {key!r} is a backbone tensor (modules_to_save of the encoder?): a pack never "
                            "changes the shared backbone")
        else:
            problems.append(f"key {key!r} is neither a LoRA pair of the encoder nor the classifier head")
    return out
