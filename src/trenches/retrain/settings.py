"""The ``[retrain.MODEL]`` table of ``trenches.toml``: reading and checking it, and
importing the training function it names."""

from __future__ import annotations

import contextlib
import importlib
import math
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trenches import config
from trenches.errors import InvalidConfig, InvalidInput
from trenches.gates.spec import METRICS, PER_CLASS, metric_parts

if TYPE_CHECKING:
    from trenches.patterns.snapshots import TrainingData

WEIGHTINGS = ("none", "exponential", "inverse-age")
#: Metrics of a regression; every other one is a classification's.
REGRESSION_METRICS = frozenset({"mae", "rmse", "r2"})
_KEYS = (
    "train",
    "dataset",
    "weighting",
    "half-life-days",
    "age-offset-days",
    "sources",
    "metric",
    "min-improvement",
)
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


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

    @property
    def table(self) -> str:
        return f"retrain.{self.model}"

    def error(self, key: str | None, message: str) -> InvalidConfig:
        """An error about ``key`` of this table (the table itself for None), with its line."""
        return _error(Path(self.file), self.model, key, message)

    def metric_for(self, task: str) -> str:
        return self.metric or ("rmse" if task == "regression" else "accuracy")

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "train": self.train,
            "dataset": self.dataset,
            "weighting": self.weighting,
            "half_life_days": self.half_life_days,
            "age_offset_days": self.age_offset_days,
            "sources": list(self.sources) if self.sources is not None else None,
            "metric": self.metric,
            "min_improvement": self.min_improvement,
            "has_gates": self.has_gates,
        }

    @classmethod
    def from_json(cls, model: str, d: dict[str, Any]) -> RetrainSettings:
        sources = d.get("sources")
        return cls(
            model=model,
            file=d["file"],
            train=d["train"],
            dataset=d.get("dataset"),
            weighting=d["weighting"],
            half_life_days=float(d["half_life_days"]),
            age_offset_days=float(d["age_offset_days"]),
            sources=tuple(sources) if sources is not None else None,
            metric=d.get("metric"),
            min_improvement=float(d["min_improvement"]),
            has_gates=bool(d["has_gates"]),
        )

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


def _error(file: Path, model: str, key: str | None, message: str) -> InvalidConfig:
    table = f"retrain.{model}"
    return InvalidConfig(
        message,
        file=str(file),
        key=f"{table}.{key}" if key else table,
        line=config.setting_line(file, table, key) or config.setting_line(file, table),
    )


def _number(file: Path, model: str, raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _error(file, model, key, f"must be a number, not {value!r}")
    return float(value)


def load_settings(model: str, path: str | Path | None = None) -> RetrainSettings:
    """The ``[retrain.MODEL]`` table of ``path`` (default: the nearest trenches.toml),
    checked key by key; a mistake is an :class:`InvalidConfig` naming the line."""
    found = Path(path) if path is not None else config.find_project_file()
    if found is None:
        raise InvalidInput(
            f"no {config.PROJECT_FILE} here or in a folder above: write a [retrain.{model}] "
            'table there with train = "module:function" (see docs/retraining.md)'
        )
    text, document = config.read_project_file(found)
    section = document.get("retrain")
    if section is not None and not isinstance(section, dict):
        raise InvalidConfig(
            "must be a table of models: [retrain.NAME]",
            file=str(found),
            key="retrain",
            line=_first_line(text, "retrain"),
        )
    raw = (section or {}).get(model)
    if raw is None:
        known = ", ".join(sorted(section or {})) or "none"
        raise InvalidConfig(
            f"no [retrain.{model}] table (tables are written for: {known}); add one with "
            'train = "module:function"',
            file=str(found),
            key=f"retrain.{model}",
            line=None,
        )
    if not isinstance(raw, dict):
        raise _error(found, model, None, 'must be a table: [retrain.NAME] with train = "..."')
    for key in raw:
        if key not in _KEYS:
            raise _error(found, model, key, f"unknown key; [retrain] takes {', '.join(_KEYS)}")
    for key in ("train", "dataset", "weighting", "metric"):
        if key in raw and not isinstance(raw[key], str):
            raise _error(found, model, key, f"must be a string, not {raw[key]!r}")
    if "train" not in raw:
        raise _error(
            found, model, None, 'train is missing: name the training function, "module:function"'
        )
    train = raw["train"].strip()
    if not _ENTRY.match(train):
        raise _error(
            found,
            model,
            "train",
            f'{raw["train"]!r} is not "module:function" (e.g. "training:fit" or '
            '"mypackage.train:fit")',
        )
    weighting = raw.get("weighting", "none")
    if weighting not in WEIGHTINGS:
        raise _error(
            found, model, "weighting", f"{weighting!r} must be one of {', '.join(WEIGHTINGS)}"
        )
    for key, wanted in (("half-life-days", "exponential"), ("age-offset-days", "inverse-age")):
        if key in raw and weighting != wanted:
            raise _error(
                found, model, key, f'only applies to weighting = "{wanted}", not "{weighting}"'
            )
    half_life = _number(found, model, raw, "half-life-days", 30.0)
    if half_life <= 0:
        raise _error(found, model, "half-life-days", "must be more than 0 days")
    offset = _number(found, model, raw, "age-offset-days", 1.0)
    if offset <= 0:
        raise _error(found, model, "age-offset-days", "must be more than 0 days")
    sources = None
    if "sources" in raw:
        value = raw["sources"]
        if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
            raise _error(found, model, "sources", 'must be a list of source names, e.g. ["expert"]')
        from trenches.patterns.datasets import check_source

        for s in value:
            try:
                check_source(s)
            except InvalidInput as e:
                raise _error(found, model, "sources", str(e)) from None
        sources = tuple(sorted(set(value)))
    metric = raw.get("metric")
    if metric is not None:
        base, cls = metric_parts(metric)
        if (cls is None and base not in METRICS) or (cls is not None and base not in PER_CLASS):
            known = ", ".join(sorted(METRICS)) + ", precision[CLASS], recall[CLASS], f1[CLASS]"
            raise _error(found, model, "metric", f"unknown metric {metric!r}; one of {known}")
    min_improvement = _number(found, model, raw, "min-improvement", 0.0)
    if min_improvement < 0:
        raise _error(found, model, "min-improvement", "must be 0 or more")
    gates = document.get("gates")
    return RetrainSettings(
        model=model,
        file=str(found),
        train=train,
        dataset=raw.get("dataset"),
        weighting=weighting,
        half_life_days=half_life,
        age_offset_days=offset,
        sources=sources,
        metric=metric,
        min_improvement=min_improvement,
        has_gates=isinstance(gates, dict) and model in gates,
    )


def _first_line(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def load_function(settings: RetrainSettings) -> Callable[[TrainingData], Any]:
    """Import the training function ``module:function``, with the folder of
    trenches.toml first on ``sys.path``.

    A module of that folder is imported afresh on every call, so a long-running
    ``trenches monitor --retrain`` trains with the code as it is now, not as it was
    when the process started.
    """
    module_name, function_name = settings.train.split(":")
    folder = Path(settings.file).resolve().parent
    top = module_name.split(".")[0]
    if (folder / f"{top}.py").is_file() or (folder / top).is_dir():
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise settings.error(
            "train", f"cannot import {module_name!r} (looked in {folder} first): {e}"
        ) from None
    except Exception as e:
        where = "".join(traceback.format_exception_only(type(e), e)).strip()
        raise settings.error("train", f"importing {module_name!r} failed: {where}") from None
    finally:
        with contextlib.suppress(ValueError):  # the module took it off itself
            sys.path.remove(str(folder))
    function = getattr(module, function_name, None)
    if function is None:
        raise settings.error(
            "train", f"module {module_name!r} ({module.__file__}) has no {function_name!r}"
        )
    if not callable(function):
        raise settings.error(
            "train", f"{settings.train} is a {type(function).__name__}, not a function"
        )
    return function
