"""Gates as written in ``trenches.toml``: the typed gate, one model's criteria, and the
rules a gate's keys must follow together.

Each model name has an array of tables, one table a gate::

    [[gates.cancer-clf]]
    metric = "accuracy"          # on = "validation" by default
    min = 0.95

    [[gates.cancer-clf]]
    problems = "open"            # every open problem of the model's dataset
    min-score = 0.8              # over the patterns the version did not train on
                                 # (held-out = false: over all of them)

    [[gates.cancer-clf]]
    metric = "accuracy"
    vs = "production"            # an alias of this model, name@V, or a baseline
    tolerance = 0.01

A mistake is reported with the file, the line and the key (``gates.cancer-clf[2].min``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from trenches.errors import InvalidConfig
from trenches.settings.keys import default

if TYPE_CHECKING:
    from trenches.settings.document import Document

KINDS = ("metric", "relative", "problem", "no-break")

#: Metrics where lower is better; every other one is better higher.
LOWER_IS_BETTER = frozenset({"log_loss", "cost", "cost_per_pattern", "mae", "rmse"})
METRICS = frozenset(
    {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "roc_auc",
        "log_loss",
        "cost",
        "cost_per_pattern",
        "mae",
        "rmse",
        "r2",
    }
)
PER_CLASS = frozenset({"precision", "recall", "f1"})
#: What a check measures of the version itself (lower is better, every one):
#: :mod:`trenches.gates.measure`.
MEASURED = frozenset(
    {
        "latency-p50-ms",
        "latency-p99-ms",
        "batch-latency-p50-ms",
        "batch-latency-p99-ms",
        "cpu-seconds-per-1k",
        "cost-per-1k",
        "model-mb",
        "peak-memory-mb",
    }
)
#: What a check reads of the version's newest replay on the request log (higher is
#: better): :mod:`trenches.traffic.replay`.
REPLAYED = frozenset({"replay-agreement", "replay-accuracy"})
_PER_CLASS = re.compile(r"^(?P<metric>[a-z0-9_]+)\[(?P<cls>[^\]]+)\]$")
SETS = ("validation", "test", "train", "all")
_TABLE = "gates.MODEL"


@dataclass(frozen=True)
class GateSpec:
    """One gate of one model, as written (checked), with where it was written."""

    model: str
    index: int  # 0-based position in the model's array of gates
    kind: str  # metric | relative | problem | no-break
    raw: dict[str, Any]
    line: int | None
    file: str
    #: The line of each key of the gate, for errors found when the gate is checked.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"gates.{self.model}[{self.index + 1}]"

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key, self.line)

    def error(self, key: str, message: str) -> InvalidConfig:
        """An error about ``key`` of this gate, naming its line."""
        return InvalidConfig(
            message, file=self.file, key=f"{self.key}.{key}", line=self.line_of(key)
        )

    # --- typed access ----------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self.raw.get("name")

    @property
    def metric(self) -> str:
        return str(self.raw["metric"])

    @property
    def on(self) -> str:
        return str(self.raw.get("on", default(_TABLE, "on")))

    @property
    def vs(self) -> str | None:
        value = self.raw.get("vs", self.raw.get("no-break"))
        return None if value is None else str(value)

    @property
    def polarity(self) -> str:
        return str(self.raw.get("patterns", default(_TABLE, "patterns")))

    def held_out(self, trainable: bool = False) -> bool:
        """Over a problem's patterns: only those the checked version did not train on, or
        all of them (``held-out = false``). By default held out, but for a problem
        marked trainable (its patterns are meant to be trained on)."""
        return bool(self.raw.get("held-out", not trainable))

    @property
    def problem_scope(self) -> str | list[str]:
        value = self.raw["problems"]
        return value if isinstance(value, str) else [str(v) for v in value]


@dataclass(frozen=True)
class Criteria:
    """Every gate of one model, and the digest that says which criteria were checked."""

    model: str
    file: str
    gates: tuple[GateSpec, ...]

    @property
    def raw(self) -> list[dict[str, Any]]:
        return [g.raw for g in self.gates]

    @property
    def digest(self) -> str:
        """SHA-256 of the gates as canonical JSON (key order and layout do not count)."""
        return hashlib.sha256(orjson.dumps(self.raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def metric_parts(metric: str) -> tuple[str, str | None]:
    """``recall[malignant]`` -> ("recall", "malignant"); ``accuracy`` -> ("accuracy", None)."""
    m = _PER_CLASS.match(metric)
    if m:
        return m["metric"], m["cls"]
    return metric, None


def lower_is_better(metric: str) -> bool:
    return metric_parts(metric)[0] in LOWER_IS_BETTER or metric in MEASURED


def unknown_metric(metric: str) -> str | None:
    """What is wrong with a metric name a gate or a retrain table gives, or None."""
    base, cls = metric_parts(metric)
    if (cls is None and base in METRICS | MEASURED | REPLAYED) or (
        cls is not None and base in PER_CLASS
    ):
        return None
    known = (
        ", ".join(sorted(METRICS))
        + ", precision[CLASS], recall[CLASS], f1[CLASS], "
        + ", ".join(sorted(MEASURED | REPLAYED))
    )
    return f"unknown metric {metric!r}; one of {known}"


def toml_key(name: str) -> str:
    """A model name as a TOML header writes it (quoted unless bare)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def criteria(doc: Document, gates: dict[str, list[dict[str, Any]]]) -> dict[str, Criteria]:
    """The checked gates of every model in ``[gates]`` (already checked key by key)."""
    found = {}
    for model, tables in gates.items():
        specs = []
        for index, raw in enumerate(tables):
            path = ("gates", model, index)
            lines = {k: line for k in raw if (line := doc.lines.get((*path, k))) is not None}
            draft = GateSpec(model, index, "metric", raw, doc.lines.get(path), doc.file, lines)
            specs.append(_checked(draft))
        found[model] = Criteria(model, doc.file, tuple(specs))
    return found


def _kind(draft: GateSpec, kind: str) -> GateSpec:
    return GateSpec(draft.model, draft.index, kind, draft.raw, draft.line, draft.file, draft.lines)


def _checked(draft: GateSpec) -> GateSpec:
    """The gate with its kind, once its keys are found to fit together."""
    raw = draft.raw
    if "problems" in raw:
        return _problem_gate(draft)
    _refuse(
        draft,
        ("min-score", "patterns", "no-break"),
        "only applies to a problem gate (problems = ...)",
    )
    _check_measure(draft)
    if raw["metric"] in MEASURED | REPLAYED:
        return _measured_gate(draft)
    _refuse(draft, ("price-per-cpu-hour",), 'only applies to metric = "cost-per-1k"')
    if "vs" in raw:
        return _relative_gate(draft)
    _refuse(
        draft,
        ("tolerance", "ratio", "significance"),
        "only applies to a relative gate (vs = ...)",
    )
    if "min" not in raw and "max" not in raw:
        raise draft.error("metric", "needs a bound: min = ..., max = ..., or vs = ...")
    return _kind(draft, "metric")


def _refuse(draft: GateSpec, keys: tuple[str, ...], message: str) -> None:
    """Refuse the first of ``keys`` the gate gives: it does not go with its kind."""
    for key in keys:
        if key in draft.raw:
            raise draft.error(key, message)


def _check_measure(draft: GateSpec) -> None:
    """A metric gate's metric and the patterns it is measured on."""
    raw = draft.raw
    if "metric" not in raw:
        raise draft.error("metric", "missing: a gate names a metric (or problems = ...)")
    wrong = unknown_metric(raw["metric"])
    if wrong is not None:
        raise draft.error("metric", wrong)
    on = draft.on
    if on not in SETS and not (on.startswith("problem:") and len(on) > len("problem:")):
        raise draft.error("on", f"must be {', '.join(SETS)} or problem:SLUG, not {on!r}")
    if "held-out" in raw and not on.startswith("problem:"):
        raise draft.error(
            "held-out",
            'applies to problem patterns only (problems = ... or on = "problem:SLUG"); a '
            "split is not trained on by definition",
        )


def _measured_gate(draft: GateSpec) -> GateSpec:
    """A gate on what the version itself costs: a bound, and for ``cost-per-1k`` the
    price of an hour of one CPU."""
    raw = draft.raw
    _refuse(
        draft,
        ("vs", "tolerance", "ratio", "significance", "held-out"),
        f"does not apply to {raw['metric']}, which is measured of the version alone",
    )
    replayed = raw["metric"] in REPLAYED
    if replayed and "on" in raw:
        raise draft.error("on", f"does not apply to {raw['metric']}: it is of the request log")
    if "min" not in raw and "max" not in raw:
        bound = "min = ... (or max = ...)" if replayed else "max = ... (or min = ...)"
        raise draft.error("metric", f"needs a bound: {bound}")
    price = raw.get("price-per-cpu-hour")
    if raw["metric"] == "cost-per-1k":
        if price is None:
            raise draft.error(
                "metric", "cost-per-1k needs price-per-cpu-hour = ... (the price of a CPU hour)"
            )
        if isinstance(price, bool) or not isinstance(price, int | float) or price <= 0:
            raise draft.error("price-per-cpu-hour", f"must be a positive number, not {price!r}")
    elif price is not None:
        raise draft.error("price-per-cpu-hour", 'only applies to metric = "cost-per-1k"')
    return _kind(draft, "metric")


def _relative_gate(draft: GateSpec) -> GateSpec:
    raw = draft.raw
    if len([k for k in ("tolerance", "ratio") if k in raw]) != 1:
        raise draft.error(
            "vs",
            "a relative gate takes exactly one of tolerance (no worse by more "
            "than) or ratio (at least this share of the reference's figure)",
        )
    _refuse(draft, ("min", "max"), "an absolute bound does not go with vs")
    return _kind(draft, "relative")


def _problem_gate(draft: GateSpec) -> GateSpec:
    raw = draft.raw
    kind = "no-break" if "no-break" in raw else "problem"
    extra = {"metric", "min", "max", "vs", "tolerance", "ratio", "significance"} & set(raw)
    if extra:
        raise draft.error(
            sorted(extra)[0], "does not apply to a problem gate (it has problems = ...)"
        )
    if kind == "problem" and "min-score" not in raw:
        raise draft.error("problems", "a problem gate needs min-score (share right) or no-break")
    if kind == "no-break" and "min-score" in raw:
        raise draft.error("min-score", "give either min-score or no-break, not both")
    return _kind(draft, kind)
