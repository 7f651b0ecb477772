"""Reading an AdapterHub (``adapters`` library) Houlsby adapter folder as a Houlsby pack.

The ``adapters`` library (1.x) saves with ``model.save_adapter(dir, name, with_head=True)``:

* ``adapter_config.json``: ``{"config": {BnConfig fields...}, "name", "model_type", "model_name", "hidden_size",
  "model_class", "version"}``; Houlsby is ``DoubleSeqBnConfig`` (``mh_adapter`` and ``output_adapter`` true,
  ``original_ln_after`` and ``residual_before_ln`` true, ``original_ln_before``, ``ln_before``, ``ln_after``
  false, ``scaling`` 1.0, no gating);
* ``adapter.safetensors`` (``use_safetensors=True``) or the pickled ``pytorch_adapter.bin``, keys
  ``[bert.]encoder.layer.<i>.attention.output.adapters.<name>.adapter_down.0.{weight,bias}`` / ``adapter_up`` (after
  the attention output projection) and ``[bert.]encoder.layer.<i>.output.adapters.<name>....`` (after the FFN);
* ``head_config.json`` (``{"config": {head_type, num_labels, layers, activation_function, label2id, use_pooler,
  bias}, ...}``) and ``model_head.safetensors`` / ``pytorch_model_head.bin``, keys ``heads.<name>.<i>.{weight,bias}``.

That adapter computes ``LN(x + h + up(act(down(h))))`` with ``h`` the projection's output: edgemti's Houlsby adapter
exactly. A one-layer head on the pooled output (``layers`` 1, ``use_pooler`` true) is edgemti's classifier; other
heads (AdapterHub's default two-layer head on the first token) are listed problems, as are BERT-only-here
architectures (ALBERT's AdapterHub key layout is not mapped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from edgemti.tasks.model import AdapterSpec

HUB_CONFIG = "adapter_config.json"
HUB_SAFETENSORS = ("adapter.safetensors",)
HUB_PICKLES = ("pytorch_adapter.bin",)
HEAD_CONFIG = "head_config.json"
HEAD_SAFETENSORS = ("model_head.safetensors",)
HEAD_PICKLES = ("pytorch_model_head.bin",)
# DoubleSeqBnConfig's values that fix the computation (what edgemti's Houlsby adapter computes)
_HOULSBY = {"mh_adapter": True, "output_adapter": True, "original_ln_before": False, "original_ln_after": True,
            "residual_before_ln": True, "ln_before": False, "ln_after": False, "scaling": 1.0, "use_gating": False,
            "is_parallel": False, "phm_layer": False}
_ACTIVATION = {"swish": "swish", "silu": "swish", "relu": "relu", "tanh": "tanh", "gelu": "gelu"}
_KEY = re.compile(r"^(?:bert\.)?encoder\.layer\.(\d+)\.(attention\.output|output)\.adapters\.([^.]+)\."
                  r"(adapter_down\.0|adapter_up)\.(weight|bias)$")


def is_adapterhub(config: Mapping[str, Any]) -> bool:
    return isinstance(config.get("config"), Mapping) and "model_type" in config


def hub_spec(config: Mapping[str, Any], weights: Mapping[str, Any], problems: list[str]) -> AdapterSpec | None:
    """The Houlsby :class:`AdapterSpec` of an AdapterHub config; bottleneck sizes read from the weights."""
    arch = config["config"]
    if config.get("model_type") != "bert":
        problems.append(f"{HUB_CONFIG}: model_type is {config.get('model_type')!r}: AdapterHub folders are mapped for "
                        "BERT encoders (MiniLM is one) here")
    for key, want in _HOULSBY.items():
        if key in arch and arch[key] != want:
            problems.append(f"{HUB_CONFIG}: config.{key} = {arch[key]!r}, a Houlsby (DoubleSeqBnConfig) adapter has "
                            f"{want!r}")
    if arch.get("leave_out"):
        problems.append(f"{HUB_CONFIG}: config.leave_out = {arch['leave_out']!r}: every layer must have its adapters")
    act = str(arch.get("non_linearity", "swish")).lower()
    if act not in _ACTIVATION:
        problems.append(f"{HUB_CONFIG}: config.non_linearity {act!r} is not one of {sorted(_ACTIVATION)}")
        return None
    sizes: dict[str, set[int]] = {"attention.output": set(), "output": set()}
    for k, v in weights.items():
        m = _KEY.match(k)
        if m and m.group(4) == "adapter_down.0" and m.group(5) == "weight":
            sizes[m.group(2)].add(int(v.shape[0]))
    if any(len(s) != 1 for s in sizes.values()):
        problems.append(f"adapter weights: bottleneck sizes per place {({k: sorted(s) for k, s in sizes.items()})}: "
                        "edgemti needs one size after attention and one after the FFN")
        return None
    try:
        return AdapterSpec(attn_bottleneck=sizes["attention.output"].pop(), ffn_bottleneck=sizes["output"].pop(),
                           per_depth=False, activation=_ACTIVATION[act])
    except Exception as exc:  # ConfigError: collected with the others
        problems.append(f"{HUB_CONFIG}: {exc}")
        return None


def hub_names(keys: list[str], adapter_name: str, problems: list[str]) -> dict[str, str]:
    """AdapterHub adapter key -> ``AdapterModel`` parameter name."""
    out = {}
    for key in keys:
        m = _KEY.match(key)
        if m is None:
            problems.append(f"adapter key {key!r} is not a Houlsby adapter_down.0/adapter_up tensor of a BERT layer")
            continue
        layer, place, name, part, kind = m.groups()
        if name != adapter_name:
            problems.append(f"adapter key {key!r} belongs to adapter {name!r}, the config names {adapter_name!r}")
            continue
        where = "attention.output.dense" if place == "attention.output" else "output.dense"
        out[key] = f"encoder.encoder.layer.{layer}.{where}.adapters.0.{'down' if part != 'adapter_up' else 'up'}.{kind}"
    return out


def head_names(head_config: Mapping[str, Any], keys: list[str], adapter_name: str,
               problems: list[str]) -> dict[str, str]:
    """Head key -> ``classifier.weight``/``.bias``: a one-layer classification head on the pooled output only."""
    cfg = head_config.get("config") or {}
    if cfg.get("head_type") != "classification":
        problems.append(f"{HEAD_CONFIG}: head_type {cfg.get('head_type')!r}: a pack is a classification head")
    if cfg.get("layers") != 1 or cfg.get("use_pooler") is not True:
        problems.append(f"{HEAD_CONFIG}: layers = {cfg.get('layers')!r}, use_pooler = {cfg.get('use_pooler')!r}: "
                        "edgemti's head is one linear layer on the backbone's pooled output (layers 1, use_pooler "
                        "true); AdapterHub's default 2-layer first-token head has its own pooler, which a pack "
                        "cannot hold")
    out = {}
    for key in keys:
        m = re.match(rf"^heads\.{re.escape(adapter_name)}\.(\d+)\.(weight|bias)$", key)
        if m is None or m.group(1) != "1":
            problems.append(f"head key {key!r} is not heads.{adapter_name}.1.weight/bias (the one linear layer)")
            continue
        out[key] = f"classifier.{m.group(2)}"
    return out


def hub_labels(head_config: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Label names in output order from the head's ``label2id``, when it has one."""
    l2i = (head_config.get("config") or {}).get("label2id")
    if not isinstance(l2i, Mapping) or not l2i:
        return None
    return tuple(str(k) for k, _ in sorted(l2i.items(), key=lambda kv: int(kv[1])))
