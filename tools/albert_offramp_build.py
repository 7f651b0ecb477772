"""An albert-base build (random weights: shapes only) whose pack has EdgeBERT off-ramps, for the early-exit study.

The off-ramps are attached (initialised from the pooler and a seeded head) and not trained: the study prices
their shapes, its exits come from a measured MiniLM run (edgemti/studies/early_exit.py, ``albert_base``). The pack
is labelled synthetic in its metrics; the backbone's random-init warning travels with it as with any albert-base
pack. usage: python tools/albert_offramp_build.py OUT_BUILD [TASK]
"""

import sys
from pathlib import Path

import torch

from edgemti.compiler import CompileConfig, compile_build
from edgemti.tasks.backbones import build_model
from edgemti.tasks.model import AdapterSpec
from edgemti.tasks.offramp import attach_off_ramps, num_layers
from edgemti.tasks.pack import save_pack
from edgemti.tasks.pack_model import pack_from_model


def main(out: str, task: str = "sst2") -> None:
    torch.manual_seed(0)
    model = build_model("albert-base", num_labels=2, adapter=AdapterSpec(64, 64))
    attach_off_ramps(model)
    pack_dir = Path(out).with_name(Path(out).name + "_pack")
    pack = pack_from_model(model, task=task, labels=("negative", "positive"), is_regression=False,
                           text_fields=("sentence",), metrics={"synthetic": True},
                           off_ramps={"num_layers": num_layers(model), "pooling": model.info.pooling,
                                      "train": {"untrained": "shapes only (tools/albert_offramp_build.py)"}})
    save_pack(pack, pack_dir)
    compile_build(CompileConfig(backbone="albert-base", packs=(pack_dir,), check_capacity=False), out, force=True)
    print(f"wrote {out} (albert-base, {num_layers(model) - 1} off-ramps, pack {pack.size_bytes / 1e6:.1f} MB fp32)")


if __name__ == "__main__":
    main(*sys.argv[1:])
