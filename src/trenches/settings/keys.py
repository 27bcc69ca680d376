"""Every table and key of ``trenches.toml``, declared once as data: its type, default,
allowed values or bounds, and what it means.

The loader checks a file against this declaration, the typed settings take their
defaults from it, and ``docs/configuration.md`` is generated from it. A part of a
table name in capitals (``MODEL``, ``COLUMN``, ``TRUE``) or a key in capitals
(``PREDICTED``) stands for a name the user chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given.
REQUIRED: Any = _Required()

#: The value types a key can have; ``docs/configuration.md`` names them so.
TYPES = ("boolean", "integer", "number", "string", "strings", "string or strings", "URL")


@dataclass(frozen=True)
class Table:
    """A table of ``trenches.toml`` (``[monitor]``), or an array of tables
    (``[[gates.MODEL]]``)."""

    name: str
    doc: str
    array: bool = False

    @property
    def header(self) -> str:
        return f"[[{self.name}]]" if self.array else f"[{self.name}]"


@dataclass(frozen=True)
class Key:
    """One key of a table: its type, default, bounds or allowed values, and meaning."""

    table: str
    name: str
    type: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    #: Whether ``low`` itself is refused (``more than 0``), and ``high`` likewise.
    above: bool = False
    below: bool = False
    #: What a value must be, as an error says it, when the type alone does not say it.
    what: str = ""

    @property
    def path(self) -> str:
        return f"{self.table}.{self.name}"


TABLES: tuple[Table, ...] = (
    Table(
        "gates.MODEL",
        "Sign-off gates of the model MODEL, one table per gate; `trenches check MODEL@V` "
        "checks a version against them. A gate is absolute (`metric` with `min`/`max`), "
        "relative (`metric` with `vs` and `tolerance` or `ratio`), a problem gate "
        "(`problems` with `min-score`) or a no-break gate (`problems` with `no-break`). "
        "See [gates](gates.md).",
        array=True,
    ),
    Table(
        "retrain.MODEL",
        "How `trenches retrain MODEL` retrains the model MODEL. See [retraining](retraining.md).",
    ),
    Table(
        "monitor",
        "Drift thresholds and where alerts go, for `trenches monitor`. See "
        "[monitoring](monitoring.md).",
    ),
    Table(
        "monitor.columns.COLUMN",
        "Thresholds of one input column, overriding those of `[monitor]`.",
    ),
    Table(
        "evaluation.cost.TRUE",
        "The cost of each kind of error, for the metrics `cost` and `cost_per_pattern`: "
        "under the true class TRUE, the cost of predicting each other class, e.g. "
        "`malignant = { benign = 10.0 }`. See [evaluation](evaluation.md#error-cost).",
    ),
    Table(
        "guard",
        "Bounds of the live figures of a canary's candidate, or a bandit's arm: a server "
        "whose arm crosses one rolls it back and posts an alert to `[monitor]`'s webhook. "
        "See [serving](serving.md#rolling-out).",
    ),
    Table("runs", "Tracked runs. See [runs](runs.md)."),
    Table(
        "compute",
        "Where heavy work runs (prediction, `evaluate`, `backfill`, the label-error check "
        "of `data check`): in this process, or on a Dask cluster. See "
        "[deploying](deploying.md#a-dask-cluster).",
    ),
)

_GATES = "gates.MODEL"
_RETRAIN = "retrain.MODEL"
_COST = "evaluation.cost.TRUE"

_GATE_KEYS = (
    Key(_GATES, "name", "string", None, "A name for the gate, shown before what it checks."),
    Key(
        _GATES,
        "metric",
        "string",
        None,
        "The metric: `accuracy`, `precision_macro`, `recall_macro`, `f1_macro`, "
        "`precision_weighted`, `recall_weighted`, `f1_weighted`, `roc_auc`, `log_loss`, "
        "`cost`, `cost_per_pattern`, `mae`, `rmse`, `r2`, or `precision[CLASS]`, "
        "`recall[CLASS]`, `f1[CLASS]` for one class; or what the version itself costs to "
        "run: `latency-p50-ms`, `latency-p99-ms` (one row), `batch-latency-p50-ms`, "
        "`batch-latency-p99-ms`, `cpu-seconds-per-1k`, `cost-per-1k`, `model-mb`, "
        "`peak-memory-mb`. Every gate but a problem gate names one.",
    ),
    Key(
        _GATES,
        "price-per-cpu-hour",
        "number",
        None,
        'For `metric = "cost-per-1k"`: the price of one CPU for an hour, in the currency '
        "the bound is in.",
    ),
    Key(
        _GATES,
        "on",
        "string",
        "validation",
        "The pattern set the metric is over: `validation`, `test`, `train`, `all`, or "
        "`problem:SLUG`.",
    ),
    Key(_GATES, "min", "number", None, "Absolute gate: the figure must be at least this."),
    Key(_GATES, "max", "number", None, "Absolute gate: the figure must be at most this."),
    Key(
        _GATES,
        "vs",
        "string",
        None,
        "Relative gate: the reference, an alias of this model (`production`), a version "
        "(`name@3`, `@3`) or a baseline; with `tolerance` or `ratio`.",
    ),
    Key(
        _GATES,
        "tolerance",
        "number",
        None,
        "Relative gate: no worse than the reference by more than this.",
        low=0,
    ),
    Key(
        _GATES,
        "ratio",
        "number",
        None,
        "Relative gate: at least this share of the reference's figure.",
        low=0,
        above=True,
    ),
    Key(
        _GATES,
        "significance",
        "number",
        None,
        "Relative gate: also the paired test's p-value must be at most this level.",
        low=0,
        high=1,
        above=True,
        below=True,
    ),
    Key(
        _GATES,
        "problems",
        "string or strings",
        None,
        'Problem gate: `"open"`, `"all"`, a problem slug or a list of slugs; with '
        "`min-score` or `no-break`.",
        what='"open", "all", a problem slug or a list of slugs',
    ),
    Key(
        _GATES,
        "min-score",
        "number",
        None,
        "Problem gate: the share of each problem's patterns that must be right.",
        low=0,
        high=1,
    ),
    Key(
        _GATES,
        "patterns",
        "string",
        "all",
        "Problem gate: which of a problem's patterns count.",
        choices=("all", "positive", "negative"),
    ),
    Key(
        _GATES,
        "no-break",
        "string",
        None,
        "Problem gate: no pattern this reference (as for `vs`) gets right may be wrong.",
    ),
    Key(
        _GATES,
        "held-out",
        "boolean",
        None,
        "Over problem patterns: only those the checked version did not train on (`true`), "
        "or all of them (`false`). Not set: `true`, but `false` for a trainable problem.",
        what="true (only the problem patterns the version did not train on) or false (all of them)",
    ),
)

_RETRAIN_KEYS = (
    Key(
        _RETRAIN,
        "train",
        "string",
        REQUIRED,
        "The training function, `module:function` or `package.module:function`; the "
        "module is imported with the folder of `trenches.toml` first on `sys.path`.",
    ),
    Key(
        _RETRAIN,
        "dataset",
        "string",
        None,
        "The dataset to snapshot and train on. Not set: the dataset of the production "
        "version (else of the newest version).",
    ),
    Key(
        _RETRAIN,
        "weighting",
        "string",
        "none",
        "Recency weights of the training patterns.",
        choices=("none", "exponential", "inverse-age"),
    ),
    Key(
        _RETRAIN,
        "half-life-days",
        "number",
        30.0,
        'With `weighting = "exponential"`: the age, in days, at which a pattern weighs '
        "half as much as a new one.",
        low=0,
        above=True,
    ),
    Key(
        _RETRAIN,
        "age-offset-days",
        "number",
        1.0,
        'With `weighting = "inverse-age"`: the offset, in days, added to every age.',
        low=0,
        above=True,
    ),
    Key(
        _RETRAIN,
        "sources",
        "strings",
        None,
        "Only patterns of these sources go into the snapshot. Not set: every source.",
        what='a list of source names, e.g. ["expert"]',
    ),
    Key(
        _RETRAIN,
        "metric",
        "string",
        None,
        'The metric on which "better" is judged (any metric a gate takes). Not set: '
        "`accuracy` (classification), `rmse` (regression).",
    ),
    Key(
        _RETRAIN,
        "min-improvement",
        "number",
        0.0,
        "The candidate must beat production by more than this.",
        low=0,
    ),
)

#: The drift thresholds a column can override: (key, default, meaning).
_THRESHOLDS = (
    ("wasserstein", 0.1, "Normalised Wasserstein distance at which a numeric column drifts."),
    (
        "jensen-shannon",
        0.1,
        "Jensen-Shannon distance at which a categorical column drifts.",
    ),
    ("psi", 0.25, "Population stability index at which a column drifts (large samples)."),
    ("missing", 0.05, "Change of the missing rate that counts as drift."),
    ("unseen", 0.01, "Share of values in unseen categories, beyond the expected, that drifts."),
    ("oov", 0.1, "Rise of the out-of-vocabulary rate of a text column that drifts."),
)

_MONITOR_KEYS = (
    Key(
        "monitor",
        "alpha",
        "number",
        0.05,
        "False discovery rate of the p-value tests, over all columns at once.",
        low=1e-12,
        high=1,
    ),
    Key(
        "monitor",
        "small",
        "integer",
        1000,
        "With at most this many values on either side, p-value tests; above, distances.",
        low=1,
    ),
    *(Key("monitor", name, "number", default, doc, low=0) for name, default, doc in _THRESHOLDS),
    Key(
        "monitor",
        "categorical-below",
        "integer",
        5,
        "A numeric column with at most this many distinct values is a category.",
        low=0,
    ),
    Key("monitor", "prediction", "boolean", True, "Whether drift of the predictions is drift."),
    Key(
        "monitor",
        "webhook",
        "URL",
        None,
        "Where alerts are posted as JSON (`http://` or `https://`). Not set: alerts are "
        "only logged.",
    ),
    Key(
        "monitor",
        "webhook-timeout",
        "number",
        5.0,
        "Seconds per attempt to post an alert.",
        low=0.001,
    ),
    Key("monitor", "webhook-retries", "integer", 3, "Attempts after the first.", low=0),
    Key(
        "monitor",
        "webhook-backoff",
        "number",
        0.5,
        "Seconds before the first retry, doubling after each (at most 8).",
        low=0,
    ),
)

_COLUMN_KEYS = (
    Key(
        "monitor.columns.COLUMN",
        "kind",
        "string",
        None,
        "How the column is compared. Not set: inferred from its values.",
        choices=("numeric", "categorical", "text"),
    ),
    Key("monitor.columns.COLUMN", "ignore", "boolean", False, "Leave the column out."),
    *(
        Key("monitor.columns.COLUMN", name, "number", None, f"{doc} Not set: `[monitor]`'s.", low=0)
        for name, _, doc in _THRESHOLDS
    ),
)

_GUARD_KEYS = (
    Key(
        "guard",
        "error-rate",
        "number",
        0.05,
        "Share of an arm's requests it failed to answer where the version served did not.",
        low=0,
        high=1,
    ),
    Key(
        "guard",
        "latency-p99-ms",
        "number",
        None,
        "99th percentile of an arm's request latency, in milliseconds. Not set: not judged.",
        low=0,
        above=True,
    ),
    Key(
        "guard",
        "agreement",
        "number",
        None,
        "Least share of rows an arm answers with the class the version served gives them "
        "(classifiers). Not set: not judged.",
        low=0,
        high=1,
    ),
    Key(
        "guard",
        "feedback-accuracy",
        "number",
        None,
        "Least share of an arm's labelled answers that were right. Not set: not judged.",
        low=0,
        high=1,
    ),
    Key(
        "guard",
        "min-requests",
        "integer",
        100,
        "Requests an arm answers before its error rate, latency and agreement are judged.",
        low=1,
    ),
    Key(
        "guard",
        "min-feedback",
        "integer",
        30,
        "Labelled answers of an arm before its feedback accuracy is judged.",
        low=1,
    ),
)

KEYS: tuple[Key, ...] = (
    *_GATE_KEYS,
    *_RETRAIN_KEYS,
    *_MONITOR_KEYS,
    *_COLUMN_KEYS,
    *_GUARD_KEYS,
    Key(
        _COST,
        "PREDICTED",
        "number",
        0.0,
        "The cost of predicting the class PREDICTED when the truth is TRUE; a pair not "
        "given costs 0.",
    ),
    Key(
        "runs",
        "git_tag",
        "boolean",
        True,
        "Tag the commit of each run in git (`trenches/run-ID`).",
    ),
    Key(
        "compute",
        "scheduler",
        "string",
        "",
        "The Dask scheduler that heavy work is sent to: `tcp://HOST:8786`, or "
        "`local-cluster:N` for a cluster of N worker processes started for one command; "
        "empty: in this process. `TRENCHES_DASK_SCHEDULER` overrides it.",
        what="empty, tcp://HOST:PORT or local-cluster:N",
    ),
)

_BY_PATH = {k.path: k for k in KEYS}


def key(table: str, name: str) -> Key:
    """The declared key ``name`` of ``table`` (``key("monitor", "alpha")``)."""
    return _BY_PATH[f"{table}.{name}"]


def default(table: str, name: str) -> Any:
    """The default of a declared key: the one place defaults are written."""
    return _BY_PATH[f"{table}.{name}"].default


def keys_of(table: str) -> tuple[Key, ...]:
    """The declared keys of ``table``, in the order of the declaration."""
    return tuple(k for k in KEYS if k.table == table)


def is_placeholder(part: str) -> bool:
    """Whether a part of a declared name stands for a name the user chooses."""
    return part.isupper()
