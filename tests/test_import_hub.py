"""import-pack from a hub name: the adapter is fetched with huggingface_hub into its cache, or found there offline
(how an air-gapped machine imports an adapter fetched elsewhere); the pack records the repository and commit."""

import shutil

import pytest
import torch

from edgemti.compiler.import_pack import ImportConfig, import_pack
from edgemti.compiler.import_source import HubSource, parse_source
from edgemti.errors import ConfigError, FormatError
from edgemti.tasks.pack_model import model_for_pack

pytest.importorskip("peft")  # the dev extra installs it
from lora_support import inputs, peft_adapter  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The hub library's documented offline mode: answers come from the cache only, network or not."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A PEFT adapter saved by PEFT, placed in a hub cache as the snapshot of ``org/tiny-lora`` at main."""
    root = tmp_path_factory.mktemp("hub")
    bb, folder, model = peft_adapter(root)
    ids, mask = inputs()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    cache = root / "cache"
    repo = cache / "models--org--tiny-lora"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return bb, cache, ref


def test_parse_source_reads_folders_and_hub_names(tmp_path):
    assert parse_source(str(tmp_path)) == tmp_path
    assert parse_source("org/name") == HubSource("org/name")
    assert parse_source("org/name@v1.0") == HubSource("org/name", "v1.0")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="a file, not an adapter folder"):
        parse_source(str(tmp_path / "f"))
    for bad in ("just-a-name", "a/b/c/d", "org/name@", "../x/y"):
        with pytest.raises(ConfigError, match="not a hub name"):
            parse_source(bad)
    with pytest.raises(ConfigError, match="repo_id"):
        HubSource("org/..")


def test_a_hub_adapter_imports_from_the_cache_with_peft_logits(hub, tmp_path):
    bb, cache, ref = hub
    res = import_pack(ImportConfig(source=HubSource("org/tiny-lora"), backbone=str(bb), task="sst2",
                                   hub_cache=cache), tmp_path / "pack")
    assert res.library == "peft"
    assert res.pack.imported["hub"] == {"repo_id": "org/tiny-lora", "revision": None, "commit": COMMIT}
    ids, mask = inputs()
    with torch.no_grad():
        got = model_for_pack(res.pack)(ids, mask)
    assert torch.allclose(got, ref, atol=1e-6)


def test_the_default_task_is_the_repository_name(hub, tmp_path):
    bb, cache, _ = hub
    with pytest.raises(FormatError, match="'tiny-lora' is not a GLUE task"):
        import_pack(ImportConfig(source=HubSource("org/tiny-lora"), backbone=str(bb), hub_cache=cache),
                    tmp_path / "p")


def test_a_hub_adapter_neither_reachable_nor_cached_is_a_clear_error(hub, tmp_path):
    bb, cache, _ = hub
    with pytest.raises(FormatError, match=r"hub adapter org/absent@v2: not reachable and not in the hub cache"):
        import_pack(ImportConfig(source=HubSource("org/absent", "v2"), backbone=str(bb), hub_cache=cache),
                    tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_cli_imports_a_hub_name(hub, tmp_path):
    from click.testing import CliRunner

    from edgemti.cli import main

    bb, cache, _ = hub
    run = CliRunner().invoke(main, ["import-pack", "org/tiny-lora", "--out", str(tmp_path / "p"), "--task", "sst2",
                                    "--backbone", str(bb), "--hub-cache", str(cache)])
    assert run.exit_code == 0 and "peft LoraSpec" in run.output, run.output
    run = CliRunner().invoke(main, ["import-pack", "no-such-thing", "--out", str(tmp_path / "q")])
    assert run.exit_code != 0 and "not a hub name" in run.output, run.output
