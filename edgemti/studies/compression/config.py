"""The compression study's grid file: :class:`StudyConfig` (format ``edgemti-study-compression``, docs/RESULTS.md),
parsed once at the boundary by :func:`load_study` / :func:`study_from_dict`; every problem is collected and raised
as one :class:`ConfigError`.

The file names the backbone, the tasks, the training/eval budget (seeded subsets, epochs) and one table per figure
of the paper's s III: ``[fig3]`` (accuracy vs cumulative sparsity: embedding-only, transformer-only and combined
levels), ``[fig4]`` (named compressed backbones x adapter sizes, packs trained on the float backbone vs on the
compressed one) and ``[fig5]`` (value formats on one of the fig4 backbones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgemti.errors import ConfigError

STUDY_FORMAT, STUDY_VERSION = "edgemti-study-compression", 1
TRAINED_ON = ("float", "compressed")
_ZERO_IS_ALL = ("max_train_examples", "max_eval_examples", "threads")  # 0 in the file: all of it (TOML has no null)  # the pack trained on the float backbone, or on the compressed one as served


@dataclass(frozen=True)
class Budget:
    """Training and scoring budget of every point: seeded subsets (None: the whole split) and epochs."""

    max_train_examples: int | None = 2000
    max_eval_examples: int | None = None
    epochs: int = 1
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    max_seq_len: int = 128
    threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"Budget: {name} must be a positive int, got {v!r}")
        for name in ("max_train_examples", "max_eval_examples", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ConfigError(f"Budget: {name} must be a positive int or absent (0 in the file), got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"Budget: seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not 0 < self.lr < 1:
            raise ConfigError(f"Budget: lr must be in (0, 1), got {self.lr!r}")

    def describe(self) -> str:
        train = f"{self.max_train_examples} seeded train examples" if self.max_train_examples else "the full train set"
        dev = f"{self.max_eval_examples} seeded dev examples" if self.max_eval_examples else "the full dev set"
        return (f"{train}, {self.epochs} epoch(s), lr {self.lr:g}, batch {self.batch_size}, seq {self.max_seq_len}, "
                f"seed {self.seed}; scored on {dev}")


@dataclass(frozen=True)
class Compression:
    """A named backbone compression: group sparsities (fractions of each pruned tensor set to zero)."""

    name: str
    sparsity_embedding: float
    sparsity_transformer: float

    def __post_init__(self) -> None:
        for f in ("sparsity_embedding", "sparsity_transformer"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v < 1.0:
                raise ConfigError(f"Compression {self.name!r}: {f} must be in [0, 1), got {v!r}")
            object.__setattr__(self, f, float(v))


@dataclass(frozen=True)
class Fig3:
    """Accuracy vs cumulative sparsity on one task: embedding-only levels (S_tf = 0), transformer-only levels
    (S_embd = 0) and combined (S_embd, S_tf) pairs."""

    task: str
    adapter: str
    quant: str
    trained_on: tuple[str, ...]
    embedding: tuple[float, ...]
    transformer: tuple[float, ...]
    both: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Fig4:
    """Named backbones x adapter sizes x trained-on; ``backbones[0]`` is the unpruned reference (the parser
    orders them: unpruned, then by S_embd + S_tf, embedding-pruned first, as the paper's Fig. 4)."""

    backbones: tuple[Compression, ...]
    adapters: tuple[str, ...]
    quant: str
    trained_on: tuple[str, ...]


@dataclass(frozen=True)
class Fig5:
    """Value formats on one fig4 backbone (packs quantized like it)."""

    backbone: str
    quants: tuple[str, ...]
    adapters: tuple[str, ...]
    trained_on: tuple[str, ...]


@dataclass(frozen=True)
class StudyConfig:
    name: str
    backbone: str
    tasks: tuple[str, ...]
    budget: Budget
    fig3: Fig3 | None
    fig4: Fig4 | None
    fig5: Fig5 | None
    data_dir: str | None = None
    source: str = ""

    def compression(self, name: str) -> Compression:
        assert self.fig4 is not None
        return next(c for c in self.fig4.backbones if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": STUDY_FORMAT, "format_version": STUDY_VERSION, "name": self.name,
                             "backbone": self.backbone, "tasks": list(self.tasks), "budget": {k: (0 if v is None and k in _ZERO_IS_ALL else v)
                                                                     for k, v in asdict(self.budget).items()}}
        if self.fig3:
            d["fig3"] = _listify(asdict(self.fig3))
        if self.fig4:
            d["fig4"] = {"backbones": {c.name: [c.sparsity_embedding, c.sparsity_transformer]
                                       for c in self.fig4.backbones},
                         "adapters": list(self.fig4.adapters), "quant": self.fig4.quant,
                         "trained_on": list(self.fig4.trained_on)}
        if self.fig5:
            d["fig5"] = {"backbone": self.fig5.backbone, "quant": list(self.fig5.quants),
                         "adapters": list(self.fig5.adapters), "trained_on": list(self.fig5.trained_on)}
        if self.data_dir is not None:
            d["data_dir"] = self.data_dir
        return d


def _listify(v: Any) -> Any:
    """A dataclass dict as the TOML file writes it (tuples -> lists), so the saved config parses back."""
    if isinstance(v, dict):
        return {k: _listify(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_listify(x) for x in v]
    return v


def load_study(path: str | Path) -> StudyConfig:
    from edgemti.hwmodel.tomlfile import read_toml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist (example: edgemti/sweeps/compression_minilm.toml)")
    return study_from_dict(read_toml(path, ConfigError, "the study file"), origin=str(path))


class _Problems(list):
    def check(self, ok: bool, msg: str) -> bool:
        if not ok:
            self.append(msg)
        return ok


def _keys(p: _Problems, table: dict, known: set[str], where: str) -> None:
    for k in table:
        p.check(k in known, f"{where}{k} is not a known key (known: {sorted(known)})")


def _str_list(p: _Problems, v: Any, where: str, parse=None) -> tuple[str, ...]:
    vals = v if isinstance(v, list) else [v]
    out = []
    for x in vals:
        if not p.check(isinstance(x, str) and bool(x), f"{where}: {x!r} is not a non-empty string"):
            continue
        if parse is not None:
            try:
                x = parse(x)
            except ConfigError as exc:
                p.append(f"{where}: {exc}")
                continue
        out.append(x)
    p.check(bool(vals), f"{where} is empty")
    return tuple(out)


def _fractions(p: _Problems, v: Any, where: str) -> tuple[float, ...]:
    vals = v if isinstance(v, list) else [v]
    ok = [float(x) for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1]
    p.check(len(ok) == len(vals) and bool(vals), f"{where} must be a non-empty list of sparsities in [0, 1), got {v!r}")
    return tuple(ok)


def _quant(q: str) -> str:
    from edgemti.formats.quant import parse_format

    return parse_format(q).name


def _adapter(a: str) -> str:
    from edgemti.tasks.model import AdapterSpec

    s = AdapterSpec.parse(a)
    return str(s.attn_bottleneck) if s.attn_bottleneck == s.ffn_bottleneck else f"{s.attn_bottleneck},{s.ffn_bottleneck}"


def _trained_on(p: _Problems, v: Any, where: str) -> tuple[str, ...]:
    vals = _str_list(p, v, where)
    p.check(all(x in TRAINED_ON for x in vals), f"{where} must be among {list(TRAINED_ON)}, got {v!r}")
    return tuple(x for x in vals if x in TRAINED_ON)


def study_from_dict(data: dict, origin: str = "<study>") -> StudyConfig:
    from edgemti.hwmodel.tomlfile import header_problems
    from edgemti.tasks.glue import get_task

    p = _Problems()
    _keys(p, data, {"format", "format_version", "name", "backbone", "tasks", "data_dir", "budget", "fig3", "fig4",
                    "fig5"}, "")
    p += header_problems(data, STUDY_FORMAT, STUDY_VERSION)
    backbone = data.get("backbone", "minilm")
    p.check(isinstance(backbone, str), f"backbone must be a string, got {backbone!r}")

    def task_name(t: str) -> str:
        try:
            return get_task(t).name
        except Exception as exc:
            raise ConfigError(str(exc)) from None

    tasks = _str_list(p, data.get("tasks", []), "tasks", task_name)
    raw_b = data.get("budget", {})
    budget = Budget()
    if p.check(isinstance(raw_b, dict), "budget must be a table"):
        _keys(p, raw_b, set(Budget.__dataclass_fields__), "budget.")
        kw: dict[str, Any] = {k: (None if v == 0 and k in _ZERO_IS_ALL else v)
              for k, v in raw_b.items() if k in Budget.__dataclass_fields__}
        try:
            budget = Budget(**kw)
        except ConfigError as exc:
            p.append(str(exc))
    fig3 = fig4 = fig5 = None
    if "fig3" in data and p.check(isinstance(data["fig3"], dict), "fig3 must be a table"):
        f = data["fig3"]
        _keys(p, f, {"task", "adapter", "quant", "trained_on", "embedding", "transformer", "both"}, "fig3.")
        t = _str_list(p, f.get("task", tasks[0] if tasks else ""), "fig3.task", task_name)
        both = []
        for pair in f.get("both", []):
            if p.check(isinstance(pair, list) and len(pair) == 2, f"fig3.both: {pair!r} is not [S_embd, S_tf]"):
                both.append(_fractions(p, pair, "fig3.both"))
        fig3 = Fig3(t[0] if t else "", (_str_list(p, f.get("adapter", "64"), "fig3.adapter", _adapter) or ("",))[0],
                    (_str_list(p, f.get("quant", "fp32"), "fig3.quant", _quant) or ("",))[0],
                    _trained_on(p, f.get("trained_on", list(TRAINED_ON)), "fig3.trained_on"),
                    _fractions(p, f.get("embedding", []), "fig3.embedding"),
                    _fractions(p, f.get("transformer", []), "fig3.transformer"),
                    tuple((a[0], a[1]) for a in both if len(a) == 2))
    if "fig4" in data and p.check(isinstance(data["fig4"], dict), "fig4 must be a table"):
        f = data["fig4"]
        _keys(p, f, {"backbones", "adapters", "quant", "trained_on"}, "fig4.")
        comps = []
        raw = f.get("backbones", {})
        if p.check(isinstance(raw, dict) and bool(raw), "fig4.backbones must be a table name = [S_embd, S_tf]"):
            for name, pair in raw.items():
                sp = _fractions(p, pair, f"fig4.backbones.{name}")
                if p.check(len(sp) == 2, f"fig4.backbones.{name} must be [S_embd, S_tf], got {pair!r}"):
                    comps.append(Compression(name, sp[0], sp[1]))
        p.check(not comps or any(c.sparsity_embedding == c.sparsity_transformer == 0 for c in comps),
                "fig4.backbones needs the unpruned reference, name = [0.0, 0.0]")
        # shown in the paper's order: the unpruned reference, then by cumulative target, embedding-pruned first
        comps.sort(key=lambda c: (c.sparsity_embedding + c.sparsity_transformer, -c.sparsity_embedding, c.name))
        fig4 = Fig4(tuple(comps), _str_list(p, f.get("adapters", ["64"]), "fig4.adapters", _adapter),
                    (_str_list(p, f.get("quant", "fp32"), "fig4.quant", _quant) or ("",))[0],
                    _trained_on(p, f.get("trained_on", list(TRAINED_ON)), "fig4.trained_on"))
    if "fig5" in data and p.check(isinstance(data["fig5"], dict), "fig5 must be a table"):
        f = data["fig5"]
        _keys(p, f, {"backbone", "quant", "adapters", "trained_on"}, "fig5.")
        b = f.get("backbone", "")
        p.check(fig4 is not None and b in {c.name for c in fig4.backbones},
                f"fig5.backbone must name one of fig4.backbones, got {b!r}")
        fig5 = Fig5(str(b), _str_list(p, f.get("quant", ["fp32", "q3.13", "q3.5"]), "fig5.quant", _quant),
                    _str_list(p, f.get("adapters", ["64"]), "fig5.adapters", _adapter),
                    _trained_on(p, f.get("trained_on", list(TRAINED_ON)), "fig5.trained_on"))
    p.check(any((fig3, fig4, fig5)), "give at least one of [fig3], [fig4], [fig5]")
    data_dir = data.get("data_dir")
    p.check(data_dir is None or isinstance(data_dir, str), f"data_dir must be a string, got {data_dir!r}")
    if p:
        raise ConfigError(f"{origin}: {len(p)} problem(s) in the study file: " + "; ".join(p))
    return StudyConfig(str(data.get("name", Path(origin).stem)), backbone, tasks, budget, fig3, fig4, fig5,
                       data_dir, origin)
