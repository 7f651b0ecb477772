"""The GLUE task registry: text fields, labels (or regression), official metrics and the TSV layout of each task.

Names follow the Hugging Face ``glue`` configs (``cola``, ``sst2``, ``mrpc``, ``stsb``, ``qqp``, ``mnli``,
``mnli-mm`` for the mismatched dev set, ``qnli``, ``rte``, ``wnli``); label lists are in the Hugging Face
``datasets`` order, so an integer label ``i`` there is ``labels[i]`` here, and carry the ``datasets`` label names
(``negative``/``positive``, ``not_equivalent``/``equivalent``, ...): packs and served answers use these names. The
GLUE TSVs write some labels as ``0``/``1``; ``label_values`` maps those column values to the names.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgemti.errors import ConfigError, UnknownTaskError

METRICS = ("mcc", "accuracy", "f1", "pearson", "spearman")


@dataclass(frozen=True)
class TaskSpec:
    """One task: where its data is and how it is scored.

    ``text_columns`` / ``label_column`` are header names in the TSV, or ``int`` column indices for a headerless
    file (CoLA). ``labels == ()`` means regression (one output, e.g. STS-B's 0..5 similarity score).
    ``metrics[0]`` is the headline metric (the one the paper's Table I reports). ``label_values`` are the label
    column's values in the TSV, in ``labels`` order (empty: the TSV writes the label names themselves).
    """

    name: str
    folder: str
    text_columns: tuple[str | int, ...]
    label_column: str | int
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    has_header: bool = True
    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    hf_name: tuple[str, str] | None = None  # (dataset, config) for Hugging Face datasets
    hf_text_columns: tuple[str, ...] = ()
    hf_dev_split: str = "validation"
    description: str = ""
    label_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("TaskSpec: name must be non-empty")
        if self.label_values and len(self.label_values) != len(self.labels):
            raise ConfigError(f"TaskSpec {self.name}: label_values {self.label_values} must pair with labels "
                              f"{self.labels}")
        if len(self.text_columns) not in (1, 2):
            raise ConfigError(f"TaskSpec {self.name}: text_columns must hold 1 or 2 columns, got {self.text_columns}")
        if len(self.labels) == 1:
            raise ConfigError(f"TaskSpec {self.name}: labels must be empty (regression) or >= 2, got {self.labels}")
        bad = [m for m in self.metrics if m not in METRICS]
        if not self.metrics or bad:
            raise ConfigError(f"TaskSpec {self.name}: metrics must be a non-empty subset of {METRICS}, got "
                              f"{self.metrics}")
        if not self.is_regression and set(self.metrics) & {"pearson", "spearman"}:
            raise ConfigError(f"TaskSpec {self.name}: pearson/spearman are regression metrics")
        if self.is_regression and set(self.metrics) - {"pearson", "spearman"}:
            raise ConfigError(f"TaskSpec {self.name}: a regression task is scored by pearson/spearman only")

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    def label_index(self, value: str) -> int | None:
        """Index of a label as the TSV writes it (a value of ``label_values``, or a label name); None if neither."""
        for names in (self.label_values, self.labels):
            if value in names:
                return names.index(value)
        return None

    def split_file(self, split: str) -> str:
        if split == "train":
            return self.train_file
        if split == "dev":
            return self.dev_file
        raise ConfigError(f"task {self.name}: unknown split {split!r}: use 'train' or 'dev' (GLUE test labels are "
                          "hidden)")


def _spec(name, folder, text, label, labels, metrics, hf_text, **kw) -> TaskSpec:
    return TaskSpec(name=name, folder=folder, text_columns=tuple(text), label_column=label, labels=tuple(labels),
                    metrics=tuple(metrics), hf_name=("glue", kw.pop("hf_config", name)), hf_text_columns=hf_text, **kw)


_BIN = ("0", "1")  # how the GLUE TSVs write binary labels
_NLI2 = ("entailment", "not_entailment")
_NLI3 = ("entailment", "neutral", "contradiction")

GLUE_TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    _spec("cola", "CoLA", [3], 1, ("unacceptable", "acceptable"), ["mcc"], ("sentence",), has_header=False,
          label_values=_BIN,
          description="grammatical acceptability (0 unacceptable, 1 acceptable)"),
    _spec("sst2", "SST-2", ["sentence"], "label", ("negative", "positive"), ["accuracy"], ("sentence",),
          label_values=_BIN,
          description="sentiment of a movie-review phrase (0 negative, 1 positive)"),
    _spec("mrpc", "MRPC", ["#1 String", "#2 String"], "Quality", ("not_equivalent", "equivalent"),
          ["f1", "accuracy"], ("sentence1", "sentence2"), label_values=_BIN,
          description="are two news sentences paraphrases (1) or not (0)"),
    _spec("stsb", "STS-B", ["sentence1", "sentence2"], "score", (), ["pearson", "spearman"],
          ("sentence1", "sentence2"), description="semantic similarity score 0..5 (regression)"),
    _spec("qqp", "QQP", ["question1", "question2"], "is_duplicate", ("not_duplicate", "duplicate"),
          ["f1", "accuracy"], ("question1", "question2"), label_values=_BIN,
          description="are two Quora questions duplicates (1) or not (0)"),
    _spec("mnli", "MNLI", ["sentence1", "sentence2"], "gold_label", _NLI3, ["accuracy"], ("premise", "hypothesis"),
          dev_file="dev_matched.tsv", hf_dev_split="validation_matched",
          description="entailment / neutral / contradiction, matched-genre dev set"),
    _spec("mnli-mm", "MNLI", ["sentence1", "sentence2"], "gold_label", _NLI3, ["accuracy"],
          ("premise", "hypothesis"), dev_file="dev_mismatched.tsv", hf_config="mnli",
          hf_dev_split="validation_mismatched",
          description="entailment / neutral / contradiction, mismatched-genre dev set (trains on MNLI train)"),
    _spec("qnli", "QNLI", ["question", "sentence"], "label", _NLI2, ["accuracy"], ("question", "sentence"),
          description="does the sentence answer the question"),
    _spec("rte", "RTE", ["sentence1", "sentence2"], "label", _NLI2, ["accuracy"], ("sentence1", "sentence2"),
          description="textual entailment (2 classes)"),
    _spec("wnli", "WNLI", ["sentence1", "sentence2"], "label", ("not_entailment", "entailment"), ["accuracy"],
          ("sentence1", "sentence2"), label_values=_BIN,
          description="Winograd pronoun resolution as entailment (0 no, 1 yes)"),
)}

# The paper's Table I (dev set, headline metric in %), printed beside ours, never used as a result.
PAPER_TABLE_I: dict[str, dict[str, float]] = {
    "Adapter-ALBERT 64": {"cola": 50.1, "mnli-mm": 84.2, "mrpc": 91.03, "sst2": 90.9, "stsb": 87.6, "qqp": 85.3,
                          "qnli": 91.2, "rte": 69.7, "wnli": 50.7},
    "ALBERT": {"cola": 55.6, "mnli-mm": 85.4, "mrpc": 91.6, "sst2": 92.8, "stsb": 91.1, "qqp": 89.4, "qnli": 91.3,
               "rte": 67.9, "wnli": 57.8},
}


def get_task(name: str) -> TaskSpec:
    """The registry entry for a GLUE task name (case-insensitive; ``sst-2``/``sts-b`` spellings accepted)."""
    key = name.strip().lower().replace("_", "-")
    key = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli-mismatched": "mnli-mm"}.get(key, key)
    if key not in GLUE_TASKS:
        raise UnknownTaskError(f"unknown task {name!r}: use one of {', '.join(GLUE_TASKS)}, or a custom task from "
                               "a train file and a dev file", options=("train_file", "dev_file"))
    return GLUE_TASKS[key]


def custom_task(name: str, labels: tuple[str, ...] | list[str], is_pair: bool) -> TaskSpec:
    """A user's own task: accuracy (+F1 for two labels) for classification, Pearson/Spearman for regression."""
    labels = tuple(labels)
    if labels:
        metrics = ("accuracy", "f1") if len(labels) == 2 else ("accuracy",)
    else:
        metrics = ("pearson", "spearman")
    text = ("text", "text_pair") if is_pair else ("text",)
    return TaskSpec(name=name, folder="", text_columns=text, label_column="label", labels=labels, metrics=metrics,
                    description="custom task")
