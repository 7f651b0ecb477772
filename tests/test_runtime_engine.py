"""The engine on a real (tiny) build made by the compiler: numerics, swaps, slots, capacities, RRAM, faults."""

import numpy as np
import pytest

from edgemti.errors import CapacityError, ConfigError, RequestError, UnknownTaskError
from edgemti.formats.build import open_build, reference_logits
from edgemti.formats.build_write import ImageBuilder, encode_pack
from edgemti.formats.quant import parse_format
from edgemti.hwmodel.spec import load_spec
from edgemti.runtime.engine import Engine
from edgemti.runtime.faults import FaultModel
from edgemti.runtime.hma import PackLoader, pack_arrays

_BUILDS: dict = {}


def tiny_build(tmp_root, name: str = "tiny", **kw):
    """A bert-tiny build with synthetic sst2 / mrpc / stsb packs, compiled once per test session."""
    if name not in _BUILDS:
        from edgemti.compiler import CompileConfig, compile_build

        cfg = dict(backbone="bert-tiny", synthetic_tasks=("sst2", "mrpc", "stsb"), quant="q3.13",
                   sparsity_embedding=0.3, sparsity_transformer=0.3, max_seq_len=32)
        cfg.update(kw)
        _BUILDS[name] = compile_build(CompileConfig(**cfg), tmp_root / name)
    return _BUILDS[name]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tiny_build(tmp_path_factory.getbasetemp())


@pytest.fixture()
def engine(build):
    return Engine.open(build)


def _feeds(engine, text="a fine film", pair=None):
    return engine.tokenize(text, pair)[0]


def test_logits_match_reference_numerics_across_swaps(engine, build):
    b = open_build(build)
    texts = {"sst2": ("a fine film", None), "mrpc": ("he left", "he went away"), "stsb": ("a cat", "a dog")}
    session_before = engine.session.session
    for task in ["sst2", "mrpc", "sst2", "stsb", "mrpc"]:
        f = _feeds(engine, *texts[task])
        got = np.asarray(engine.infer_ids(task, f).logits)
        ref = reference_logits(b, task, f["input_ids"], f["attention_mask"], f["token_type_ids"])[0]
        assert np.max(np.abs(got - ref)) <= 1e-5
    assert engine.session.session is session_before  # swaps never rebuild the session


def test_swap_moves_exactly_the_pack_and_is_charged(engine):
    dram0 = engine.hma.mem["DRAM"].counts()
    sram0 = engine.hma.mem["SRAM"].counts()
    r1 = engine.infer("sst2", "good")
    r2 = engine.infer("sst2", "bad")
    r3 = engine.infer("mrpc", "a", "b")
    n = {t: engine.manifest.pack(t).length for t in ("sst2", "mrpc")}
    assert (r1.swapped, r2.swapped, r3.swapped) == (True, False, True)
    assert r3.evicted == "sst2" and r2.swap is None
    assert (engine.hma.mem["DRAM"].counts() - dram0).bytes_read == n["sst2"] + n["mrpc"]
    assert (engine.hma.mem["SRAM"].counts() - sram0).bytes_written == n["sst2"] + n["mrpc"]
    for r in (r1, r2, r3):
        assert r.energy_j == pytest.approx(r.inference["energy_j"] + (r.swap["energy_j"] if r.swap else 0))
        assert r.latency_s == pytest.approx(r.inference["latency_s"] + (r.swap["latency_s"] if r.swap else 0))
        assert sum(r.energy_by_component_j.values()) == pytest.approx(r.energy_j)
    assert r1.swap["energy_j"] > 0 and r1.energy_j > r2.energy_j
    # the swap priced from the runtime's own counts equals the hardware model's swap of exactly the pack's bytes
    assert r3.swap["energy_j"] == pytest.approx(engine.hw.swap("mrpc").energy_j, rel=1e-12)
    assert r3.swap["latency_s"] == pytest.approx(engine.hw.swap("mrpc").latency_s, rel=1e-12)
    assert engine.slots.stats()["swaps"] == 2 and engine.slots.stats()["hits"] == 1
    assert {r.label for r in engine.hma.mem["SRAM"].regions()} == {"activations", "slot:mrpc"}


def test_slots_lru_and_pinning(build):
    eng = Engine.open(build, slots=2, pinned=("sst2",))
    seq = ["sst2", "mrpc", "stsb", "sst2", "mrpc", "sst2"]
    swapped = [eng.make_resident(t)[0] for t in seq]
    # sst2 pinned: mrpc is evicted by stsb, stsb by mrpc; sst2 never swaps again
    assert swapped == [True, True, True, False, True, False]
    assert eng.slots.resident[-1] == "sst2" and "mrpc" in eng.slots.resident
    with pytest.raises(UnknownTaskError):
        Engine.open(build, pinned=("cola",))


def test_capacity_enforced_with_numbers(build):
    spec = load_spec(design="adapter")
    eng = Engine.open(build)
    need = eng.hma.activations.size_bytes + max(p.length for p in eng.manifest.packs)
    tight = spec.with_overrides({"sram.capacity_bytes": need + 64})
    eng = Engine.open(build, spec=tight, slots=2)  # one pack + activations fit ...
    eng.infer("sst2", "x")
    with pytest.raises(CapacityError, match=r"pack 'mrpc' does not fit SRAM.*needs [0-9.]+ KiB, SRAM has "
                                            r"[0-9.]+ KiB free of [0-9.]+ KiB"):
        eng.infer("mrpc", "x", "y")  # ... a second resident pack does not
    with pytest.raises(CapacityError, match=r"needs .*MiB"):
        Engine.open(build, spec=spec.with_overrides({"rram_mlc.capacity_bytes": 1024}))


def test_rram_programmed_once_and_read_only(engine):
    mlc = engine.hma.mem["RRAM_MLC2"]
    region = mlc.region("rram_mlc")
    assert mlc.counts().cell_writes == region.size_bytes * 4
    assert mlc.max_cell_writes() == 1
    with pytest.raises(ConfigError):
        mlc.write(region, b"\x00")
    assert engine.program_cost["energy_j"] > 0


def test_request_validation_in_engine(engine):
    with pytest.raises(UnknownTaskError):
        engine.infer("cola", "x")
    with pytest.raises(RequestError, match="empty"):
        engine.infer("sst2", "  ")
    long = "word " * 200
    r = engine.infer("sst2", long)
    assert r.truncated and r.seq_len == engine.max_seq_len
    strict = Engine.open(engine.build.path, overlong="reject")
    with pytest.raises(RequestError, match="over the build's max_seq_len 32"):
        strict.infer("sst2", long)


def test_faults_change_logits_and_masks_in_mlc_hurt_more(build):
    eng = Engine.open(build)
    f = _feeds(eng, "the movie was long but rewarding")
    clean = np.asarray(eng.infer_ids("sst2", f).logits)
    eng.set_fault(FaultModel(0.0, 0.0, seed=1))
    assert np.array_equal(np.asarray(eng.infer_ids("sst2", f).logits), clean)
    dev = {}
    for masks_in in ("slc", "mlc"):
        errs = []
        for seed in range(3):
            eng.set_fault(FaultModel(slc_error_rate=0.0, mlc_error_rate=1e-3, seed=seed, masks_in=masks_in))
            errs.append(np.abs(np.asarray(eng.infer_ids("sst2", f).logits) - clean).max())
        dev[masks_in] = float(np.mean(errs))
    assert dev["slc"] > 0  # value errors do reach the logits
    assert dev["mlc"] > dev["slc"]  # a corrupted bitmask misaligns whole tensors
    eng.set_fault(None)
    assert np.allclose(np.asarray(eng.infer_ids("sst2", f).logits), clean, atol=1e-6)


def test_pack_loader_fixed_float_and_general_paths():
    rng = np.random.default_rng(0)
    tensors = {"a.weight": rng.normal(size=(4, 3)).astype(np.float32), "a.bias": rng.normal(size=(3,)).astype(np.float32)}
    for fmt in ("fp32", "fp16", "q3.13", "q3.5", "q4.8"):  # q4.8: 12-bit codes, the general per-tensor path
        dram = ImageBuilder("dram")
        p = encode_pack("t", ("0", "1"), False, None, "h", True, tensors, parse_format(fmt), dram)
        raw = np.frombuffer(dram.getvalue(), dtype=np.uint8)
        loader = PackLoader(p)
        out = loader.load(raw)
        assert loader._fast == (fmt != "q4.8")
        f = parse_format(fmt)
        tol = 1e-3 if fmt == "fp16" else (0 if fmt == "fp32" else f.scale)
        for n, x in tensors.items():
            assert out[n].dtype == np.float32 and out[n].shape == x.shape
            assert np.max(np.abs(out[n] - np.clip(x, -f.max_value, f.max_value))) <= tol
        again = pack_arrays(p, raw, loader)
        assert again["a.weight"] is out["a.weight"]  # the same buffers every swap: bindings stay valid
