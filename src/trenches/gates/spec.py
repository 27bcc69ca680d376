"""Gates as written in ``trenches.toml``: parsing, validation, and where each key is.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from trenches import config
from trenches.errors import InvalidConfig

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
_PER_CLASS = re.compile(r"^(?P<metric>[a-z0-9_]+)\[(?P<cls>[^\]]+)\]$")
SETS = ("validation", "test", "train", "all")
_KEYS = frozenset(
    {
        "name",
        "metric",
        "on",
        "min",
        "max",
        "vs",
        "tolerance",
        "ratio",
        "significance",
        "problems",
        "min-score",
        "patterns",
        "no-break",
        "held-out",
    }
)


@dataclass(frozen=True)
class GateSpec:
    """One gate of one model, as written (validated), with where it was written."""

    model: str
    index: int  # 0-based position in the model's array of gates
    kind: str  # metric | relative | problem | no-break
    raw: dict[str, Any]
    line: int | None
    file: str

    @property
    def key(self) -> str:
        return f"gates.{self.model}[{self.index + 1}]"

    def line_of(self, key: str) -> int | None:
        return _locate(Path(self.file)).get((self.model, self.index), {}).get(key, self.line)

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
        return str(self.raw.get("on", "validation"))

    @property
    def vs(self) -> str | None:
        value = self.raw.get("vs", self.raw.get("no-break"))
        return None if value is None else str(value)

    @property
    def polarity(self) -> str:
        return str(self.raw.get("patterns", "all"))

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
    return metric_parts(metric)[0] in LOWER_IS_BETTER


def load(model: str, path: Path | None = None) -> Criteria:
    """The gates of ``model`` from ``path`` (default: the nearest trenches.toml)."""
    from trenches.errors import InvalidInput

    found = path or config.find_project_file()
    if found is None:
        raise InvalidInput(
            f"no {config.PROJECT_FILE} here or in a folder above: write the gates of "
            f"{model!r} there as [[gates.{_toml_key(model)}]] tables (see docs/gates.md)"
        )
    file = str(found)
    text, settings = config.read_project_file(found)
    gates = settings.get("gates")
    if gates is None:
        raise InvalidConfig(
            f"there are no gates; add [[gates.{_toml_key(model)}]] tables",
            file=file,
            key="gates",
            line=None,
        )
    if not isinstance(gates, dict):
        raise InvalidConfig(
            "must be a table of models, each an array of gates",
            file=file,
            key="gates",
            line=_line_of_text(text, "gates"),
        )
    tables = gates.get(model)
    if tables is None:
        known = ", ".join(sorted(gates)) or "none"
        raise InvalidConfig(
            f"no gates for model {model!r} (gates are written for: {known}); add "
            f"[[gates.{_toml_key(model)}]] tables",
            file=file,
            key=f"gates.{model}",
            line=None,
        )
    where = _locate(found)
    if not isinstance(tables, list) or not all(isinstance(g, dict) for g in tables):
        raise InvalidConfig(
            f"must be an array of tables: write [[gates.{_toml_key(model)}]] above each gate",
            file=file,
            key=f"gates.{model}",
            line=_line_of_text(text, f"gates.{model}") or _line_of_text(text, "gates"),
        )
    specs = []
    for i, table in enumerate(tables):
        line = where.get((model, i), {}).get("", None)
        specs.append(_validate(model, i, table, file, line))
    return Criteria(model, file, tuple(specs))


def _validate(model: str, index: int, raw: dict[str, Any], file: str, line: int | None) -> GateSpec:
    draft = GateSpec(model, index, "metric", raw, line, file)
    for key in raw:
        if key not in _KEYS:
            raise draft.error(key, f"unknown key; a gate takes {', '.join(sorted(_KEYS))}")
    for key in ("name", "metric", "on", "vs", "no-break", "patterns"):
        if key in raw and not isinstance(raw[key], str):
            raise draft.error(key, "must be a string")
    for key in ("min", "max", "tolerance", "ratio", "significance", "min-score"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int | float)):
            raise draft.error(key, "must be a number")
    if "held-out" in raw and not isinstance(raw["held-out"], bool):
        raise draft.error(
            "held-out",
            "must be true (only the problem patterns the version did not train on) or false "
            "(all of them)",
        )

    if "problems" in raw:
        kind = "no-break" if "no-break" in raw else "problem"
        scope = raw["problems"]
        if not (
            isinstance(scope, str)
            or (isinstance(scope, list) and all(isinstance(s, str) for s in scope))
        ):
            raise draft.error(
                "problems", 'must be "open", "all", a problem slug or a list of slugs'
            )
        extra = {"metric", "min", "max", "vs", "tolerance", "ratio", "significance"} & set(raw)
        if extra:
            raise draft.error(
                sorted(extra)[0], "does not apply to a problem gate (it has problems = ...)"
            )
        if kind == "problem":
            if "min-score" not in raw:
                raise draft.error(
                    "problems", "a problem gate needs min-score (share right) or no-break"
                )
            if not 0 <= raw["min-score"] <= 1:
                raise draft.error("min-score", "must be between 0 and 1 (a share of patterns)")
        elif "min-score" in raw:
            raise draft.error("min-score", "give either min-score or no-break, not both")
        if raw.get("patterns", "all") not in ("all", "positive", "negative"):
            raise draft.error("patterns", 'must be "all", "positive" or "negative"')
        return GateSpec(model, index, kind, raw, line, file)

    for key in ("min-score", "patterns", "no-break"):
        if key in raw:
            raise draft.error(key, "only applies to a problem gate (problems = ...)")
    if "metric" not in raw:
        raise draft.error("metric", "missing: a gate names a metric (or problems = ...)")
    base, cls = metric_parts(raw["metric"])
    if (cls is None and base not in METRICS) or (cls is not None and base not in PER_CLASS):
        known = ", ".join(sorted(METRICS)) + ", precision[CLASS], recall[CLASS], f1[CLASS]"
        raise draft.error("metric", f"unknown metric {raw['metric']!r}; one of {known}")
    on = raw.get("on", "validation")
    if on not in SETS and not (on.startswith("problem:") and len(on) > len("problem:")):
        raise draft.error("on", f"must be {', '.join(SETS)} or problem:SLUG, not {on!r}")
    if "held-out" in raw and not on.startswith("problem:"):
        raise draft.error(
            "held-out",
            'applies to problem patterns only (problems = ... or on = "problem:SLUG"); a '
            "split is not trained on by definition",
        )
    if "vs" in raw:
        bounds = [k for k in ("tolerance", "ratio") if k in raw]
        if len(bounds) != 1:
            raise draft.error(
                "vs",
                "a relative gate takes exactly one of tolerance (no worse by more "
                "than) or ratio (at least this share of the reference's figure)",
            )
        for key in ("min", "max"):
            if key in raw:
                raise draft.error(key, "an absolute bound does not go with vs")
        if "tolerance" in raw and raw["tolerance"] < 0:
            raise draft.error("tolerance", "must be 0 or more")
        if "ratio" in raw and raw["ratio"] <= 0:
            raise draft.error("ratio", "must be more than 0")
        if "significance" in raw and not 0 < raw["significance"] < 1:
            raise draft.error("significance", "must be a level between 0 and 1, e.g. 0.05")
        return GateSpec(model, index, "relative", raw, line, file)
    for key in ("tolerance", "ratio", "significance"):
        if key in raw:
            raise draft.error(key, "only applies to a relative gate (vs = ...)")
    if "min" not in raw and "max" not in raw:
        raise draft.error("metric", "needs a bound: min = ..., max = ..., or vs = ...")
    return GateSpec(model, index, "metric", raw, line, file)


# --- where keys are: tomllib gives values, not lines -----------------------------------

_HEADER = re.compile(
    r"""^\s*\[\[\s*gates\s*\.\s*(?:"(?P<dq>[^"]+)"|'(?P<sq>[^']+)'|(?P<bare>[A-Za-z0-9_-]+))"""
    r"""\s*\]\]\s*(?:\#.*)?$"""
)
_ANY_HEADER = re.compile(r"^\s*\[")
_ASSIGN = re.compile(r"""^\s*(?:"(?P<dq>[^"]+)"|'(?P<sq>[^']+)'|(?P<bare>[A-Za-z0-9_-]+))\s*=""")


def _locate(path: Path) -> dict[tuple[str, int], dict[str, int]]:
    """For each (model, gate index): the line of its ``[[gates.model]]`` header (key
    "") and of each key assigned under it, 1-based."""
    found: dict[tuple[str, int], dict[str, int]] = {}
    counts: dict[str, int] = {}
    current: tuple[str, int] | None = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for number, text in enumerate(lines, start=1):
        header = _HEADER.match(text)
        if header:
            model = header["dq"] or header["sq"] or header["bare"]
            index = counts.get(model, 0)
            counts[model] = index + 1
            current = (model, index)
            found[current] = {"": number}
            continue
        if _ANY_HEADER.match(text):
            current = None
            continue
        if current is not None:
            assign = _ASSIGN.match(text)
            if assign:
                key = assign["dq"] or assign["sq"] or assign["bare"]
                found[current].setdefault(key, number)
    return found


def _line_of_text(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'
