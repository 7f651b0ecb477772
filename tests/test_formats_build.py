"""The build format on its own: write a small build through the formats writers, read it back, corrupt it."""

import json
import shutil

import numpy as np
import pytest

from edgemti.errors import FormatError, UnknownTaskError
from edgemti.formats.build import (
    GRAPH_FILE,
    decode_backbone,
    decode_pack,
    open_build,
    sha256_hex,
)
from edgemti.formats.build_write import (
    ImageBuilder,
    encode_backbone_tensor,
    encode_pack,
    image_entries,
    write_build,
)
from edgemti.formats.manifest import CompileSection, Manifest
from edgemti.formats.manifest_schema import manifest_from_json
from edgemti.formats.quant import fake_quantize, parse_format


def _graph() -> bytes:
    """A weightless graph whose inputs are the tensors below (the format layer checks the manifest binds to it)."""
    from onnx import TensorProto, helper

    def inp(name, dims, kind=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, kind, dims)

    inputs = [inp("input_ids", ["batch", "seq"], TensorProto.INT64), inp("encoder.embeddings.word_embeddings.weight",
              [37, 5]), inp("encoder.pooler.weight", [6, 6]), inp("encoder.pooler.bias", [6]),
              inp("classifier.weight", ["num_labels", 6]), inp("classifier.bias", ["num_labels"])]
    node = helper.make_node("Identity", ["classifier.bias"], ["logits"])
    g = helper.make_graph([node], "g", inputs, [inp("logits", ["num_labels"])])
    return helper.make_model(g).SerializeToString()


GRAPH = _graph()


def _tensors(seed=0):
    g = np.random.default_rng(seed)
    emb = g.standard_normal((37, 5)).astype(np.float32)  # 185 elements: not a multiple of 8
    emb[g.random(emb.shape) < 0.6] = 0
    w = g.standard_normal((6, 6)).astype(np.float32)
    return {"encoder.embeddings.word_embeddings.weight": emb, "encoder.pooler.weight": w,
            "encoder.pooler.bias": np.zeros(6, dtype=np.float32)}


def _write(folder, fmt="q3.13", pfmt="q3.5"):
    fmt, pfmt = parse_format(fmt), parse_format(pfmt)
    mlc, slc, dram = ImageBuilder("rram_mlc"), ImageBuilder("rram_slc"), ImageBuilder("dram")
    tensors = tuple(encode_backbone_tensor(n, x, fmt, "embedding" if "embeddings" in n else "transformer", True, 0.6,
                                           mlc, slc) for n, x in _tensors().items())
    g = np.random.default_rng(1)
    pack_a = {"classifier.weight": g.standard_normal((3, 6)).astype(np.float32),
              "classifier.bias": g.standard_normal(3).astype(np.float32)}
    pack_b = {"classifier.weight": g.standard_normal((1, 6)).astype(np.float32),
              "classifier.bias": np.zeros(1, dtype=np.float32)}
    packs = (encode_pack("mnli", ("e", "n", "c"), False, None, "h" * 64, True, pack_a, pfmt, dram),
             encode_pack("stsb", (), True, None, "h" * 64, True, pack_b, pfmt, dram))
    images = {"rram_mlc": mlc.getvalue(), "rram_slc": slc.getvalue(), "dram": dram.getvalue()}
    entries = image_entries(images)
    compile_meta = {"quant": fmt.name, "value_format": fmt.to_dict(), "pack_format": pfmt.to_dict(),
                    "activation_bits": 16, "sparsity_embedding": 0.6, "sparsity_transformer": 0.0,
                    "cumulative_sparsity": 0.5, "max_seq_len": 16}
    m = Manifest(edgemti_version="test", build_id="",
                 design="adapter", synthetic=True,
                 backbone={"name": "t", "family": "albert", "pretrained": False, "hash": "h" * 64, "pooling": "pooler",
                           "hf_config": {}, "tokenizer": None, "num_params": 227},
                 compile=CompileSection.from_dict(compile_meta), graph={"file": GRAPH_FILE, "sha256": sha256_hex(GRAPH),
                                              "data_inputs": ["input_ids"], "output": "logits"},
                 images=entries, tensors=tensors, packs=packs).with_build_id()
    folder.mkdir()
    write_build(folder, m, images, GRAPH)
    return folder, (pack_a, pack_b), (fmt, pfmt)


def test_round_trip(tmp_path):
    folder, (pack_a, pack_b), (fmt, pfmt) = _write(tmp_path / "b")
    build = open_build(folder)
    m = build.manifest
    assert manifest_from_json(m.to_json()) == m
    dec = build.decode_backbone()
    for name, x in _tensors().items():
        np.testing.assert_array_equal(dec[name], fake_quantize(x, fmt))
        assert dec[name].dtype == np.float32
    for task, pack in (("mnli", pack_a), ("stsb", pack_b)):
        got = decode_pack(m, task, build.image_bytes("dram"))
        for n, a in pack.items():
            np.testing.assert_array_equal(got[n], fake_quantize(a, pfmt))
    assert m.tensor("encoder.pooler.bias").nnz == 0 and m.pack("stsb").num_labels == 1
    assert len(build.verify()) == 6  # 3 images, graph sha256, graph inputs, manifest vs images
    with pytest.raises(UnknownTaskError, match="qqp"):
        m.pack("qqp")


@pytest.mark.parametrize("image", ["rram_mlc.bin", "rram_slc.bin", "dram.bin", "graph.onnx"])
def test_altered_or_truncated_files_are_rejected(tmp_path, image):
    folder, _, _ = _write(tmp_path / "b")
    p = folder / image
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=f"{image}.*(sha256|corrupt)"):
        open_build(folder)
    p.write_bytes(bytes(data[:-3]))
    with pytest.raises(FormatError, match=image):
        open_build(folder)


def test_manifest_problems_are_named(tmp_path):
    folder, _, _ = _write(tmp_path / "b")
    mpath = folder / "manifest.json"
    good = json.loads(mpath.read_text())
    bad = dict(good, format_version=1)  # builds of format 1 carry no digest: refused by name
    mpath.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match="format_version 1 is not supported.*recompile"):
        open_build(folder)
    bad = json.loads(json.dumps(good))
    bad["tensors"][0]["nnz"] += 1  # manifest no longer matches the mask popcount / value length
    mpath.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match="encoder.embeddings.word_embeddings.weight"):
        open_build(folder)
    mpath.write_text(mpath.read_text()[:100])
    with pytest.raises(FormatError, match="not valid JSON"):
        open_build(folder)
    mpath.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not an edgemti build manifest"):
        open_build(folder)
    shutil.rmtree(folder)
    with pytest.raises(FormatError, match="not an edgemti build"):
        open_build(folder)


def test_decoders_reject_short_images(tmp_path):
    folder, _, _ = _write(tmp_path / "b")
    build = open_build(folder)
    m = build.manifest
    with pytest.raises(FormatError, match="truncated"):
        decode_backbone(m, build.image_bytes("rram_mlc")[:-1], build.image_bytes("rram_slc"))
    with pytest.raises(FormatError, match="stsb"):
        decode_pack(m, "stsb", build.image_bytes("dram")[:-1])
