"""The ``[retrain.MODEL]`` tables of ``trenches.toml``, typed: one model's retraining
settings, and the rules its keys must follow together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trenches.errors import InvalidConfig, InvalidInput
from trenches.json_form import json_shape
from trenches.settings.gates import metric_parts, unknown_metric
from trenches.settings.keys import default, key

if TYPE_CHECKING:
    from trenches.settings.document import Document

_TABLE = "retrain.MODEL"
WEIGHTINGS = key(_TABLE, "weighting").choices
#: Metrics of a regression; every other one is a classification's.
REGRESSION_METRICS = frozenset({"mae", "rmse", "r2"})
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


@json_shape(omit=("model", "lines"))
@dataclass(frozen=True)
class RetrainSettings:
    """One model's ``[retrain.NAME]`` table of ``trenches.toml``, checked."""

    model: str
    file: str
    train: str  # module:function
    dataset: str | None  # None: the dataset of the production (else newest) version
    weighting: str
    half_life_days: float
    age_offset_days: float
    sources: tuple[str, ...] | None
    metric: str | None  # None: accuracy (classification) or rmse (regression)
    min_improvement: float
    #: Whether trenches.toml has gates for the model (without them nothing is promoted).
    has_gates: bool
    #: The line of the table's header ("") and of each of its keys.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def table(self) -> str:
        return f"retrain.{self.model}"

    def error(self, key: str | None, message: str) -> InvalidConfig:
        """An error about ``key`` of this table (the table itself for None), with its line."""
        line = self.lines.get(key or "", self.lines.get(""))
        return InvalidConfig(
            message, file=self.file, key=f"{self.table}.{key}" if key else self.table, line=line
        )

    def metric_for(self, task: str) -> str:
        return self.metric or ("rmse" if task == "regression" else "accuracy")

    def check_task(self, dataset: str, task: str) -> str:
        """The metric that judges "better" for a model of ``task``; one of the other
        task is an error naming the key."""
        metric = self.metric_for(task)
        base, cls = metric_parts(metric)
        if (task == "regression") != (base in REGRESSION_METRICS and cls is None):
            use = (
                "mae, rmse or r2"
                if task == "regression"
                else "accuracy, f1_macro, log_loss, recall[CLASS], ..."
            )
            raise self.error(
                "metric", f"{metric!r} does not apply to {task} (dataset {dataset!r}); use {use}"
            )
        return metric


def retraining(
    doc: Document, tables: dict[str, dict[str, Any]], gates: Mapping[str, Any]
) -> dict[str, RetrainSettings]:
    """The checked ``[retrain.MODEL]`` tables (already checked key by key)."""
    return {model: _one(doc, model, raw, model in gates) for model, raw in tables.items()}


def _one(doc: Document, model: str, raw: dict[str, Any], has_gates: bool) -> RetrainSettings:
    path = ("retrain", model)
    lines = {k: line for k in raw if (line := doc.lines.get((*path, k))) is not None}
    if (header := doc.lines.get(path)) is not None:
        lines[""] = header
    if "train" not in raw:
        raise doc.error(path, 'train is missing: name the training function, "module:function"')
    train = raw["train"].strip()
    if not _ENTRY.match(train):
        raise doc.error(
            (*path, "train"),
            f'{raw["train"]!r} is not "module:function" (e.g. "training:fit" or '
            '"mypackage.train:fit")',
        )
    weighting = raw.get("weighting", default(_TABLE, "weighting"))
    for name, wanted in (("half-life-days", "exponential"), ("age-offset-days", "inverse-age")):
        if name in raw and weighting != wanted:
            raise doc.error(
                (*path, name), f'only applies to weighting = "{wanted}", not "{weighting}"'
            )
    sources = None
    if "sources" in raw:
        from trenches.names import check_source

        for s in raw["sources"]:
            try:
                check_source(s)
            except InvalidInput as e:
                raise doc.error((*path, "sources"), str(e)) from None
        sources = tuple(sorted(set(raw["sources"])))
    metric = raw.get("metric")
    if metric is not None and (wrong := unknown_metric(metric)) is not None:
        raise doc.error((*path, "metric"), wrong)
    return RetrainSettings(
        model=model,
        file=doc.file,
        train=train,
        dataset=raw.get("dataset"),
        weighting=weighting,
        half_life_days=float(raw.get("half-life-days", default(_TABLE, "half-life-days"))),
        age_offset_days=float(raw.get("age-offset-days", default(_TABLE, "age-offset-days"))),
        sources=sources,
        metric=metric,
        min_improvement=float(raw.get("min-improvement", default(_TABLE, "min-improvement"))),
        has_gates=has_gates,
        lines=lines,
    )
