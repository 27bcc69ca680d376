"""The ``[monitor]`` table of ``trenches.toml``: drift thresholds, per-column
overrides, and the webhook that alerts go to.

```toml
[monitor]
alpha = 0.05              # false discovery rate of the p-value tests, over all columns
wasserstein = 0.1         # normalised Wasserstein distance (numeric, large samples)
webhook = "https://hooks.example.com/trenches"

[monitor.columns.mean_radius]
wasserstein = 0.2
[monitor.columns.patient_id]
ignore = true
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trenches import config
from trenches.errors import InvalidConfig
from trenches.monitoring.drift import KINDS, ColumnSettings, DriftSettings

#: Thresholds that are fractions or distances: a float >= 0.
_BOUNDS = {
    "wasserstein": "wasserstein",
    "jensen-shannon": "jensen_shannon",
    "psi": "psi",
    "missing": "missing",
    "unseen": "unseen",
    "oov": "oov",
}
_TOP = {
    "alpha",
    "small",
    "categorical-below",
    "prediction",
    "webhook",
    "webhook-timeout",
    "webhook-retries",
    "webhook-backoff",
    "columns",
    *_BOUNDS,
}
_COLUMN = {"kind", "ignore", *_BOUNDS}


@dataclass(frozen=True)
class MonitorSettings:
    """Drift thresholds and where alerts go."""

    drift: DriftSettings
    webhook: str | None = None
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    webhook_backoff: float = 0.5
    file: str | None = None


def load(path: Path | None = None) -> MonitorSettings:
    """The ``[monitor]`` settings of ``path`` (default: the nearest trenches.toml); the
    defaults when there is no file or no table. A bad setting is an ``InvalidConfig``
    naming the file, the line and the key."""
    file = path if path is not None else config.find_project_file()
    if file is None:
        return MonitorSettings(DriftSettings())
    _, data = config.read_project_file(file)
    raw = data.get("monitor", {})
    name = Path(file).name

    def bad(message: str, table: str, key: str) -> InvalidConfig:
        return InvalidConfig(
            message,
            file=name,
            key=f"{table}.{key}",
            line=config.setting_line(Path(file), table, key),
        )

    if not isinstance(raw, dict):
        raise bad("must be a table", "monitor", "")
    for key in raw:
        if key not in _TOP:
            raise bad(f"unknown setting; known: {', '.join(sorted(_TOP))}", "monitor", key)

    def number(
        table: str, key: str, value: Any, *, low: float = 0.0, high: float | None = None
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"must be a number, not {value!r}", table, key)
        if value < low or (high is not None and value > high):
            span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise bad(f"{value!r} must be {span}", table, key)
        return float(value)

    def integer(table: str, key: str, value: Any, *, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(f"must be a whole number of at least {low}, not {value!r}", table, key)
        return int(value)

    top: dict[str, Any] = {}
    if "alpha" in raw:
        top["alpha"] = number("monitor", "alpha", raw["alpha"], low=1e-12, high=1.0)
    if "small" in raw:
        top["small"] = integer("monitor", "small", raw["small"], low=1)
    if "categorical-below" in raw:
        top["categorical_below"] = integer(
            "monitor", "categorical-below", raw["categorical-below"], low=0
        )
    if "prediction" in raw:
        if not isinstance(raw["prediction"], bool):
            raise bad("must be true or false", "monitor", "prediction")
        top["prediction"] = raw["prediction"]
    for key, attr in _BOUNDS.items():
        if key in raw:
            top[attr] = number("monitor", key, raw[key])
    columns: dict[str, ColumnSettings] = {}
    for column, own in (raw.get("columns") or {}).items():
        table = f"monitor.columns.{column}"
        if not isinstance(own, dict):
            raise bad("must be a table of thresholds", "monitor.columns", column)
        values: dict[str, Any] = {}
        for key, value in own.items():
            if key not in _COLUMN:
                raise bad(f"unknown setting; known: {', '.join(sorted(_COLUMN))}", table, key)
            if key == "kind":
                if value not in KINDS:
                    raise bad(f"{value!r} must be one of {', '.join(KINDS)}", table, key)
                values["kind"] = value
            elif key == "ignore":
                if not isinstance(value, bool):
                    raise bad("must be true or false", table, key)
                values["ignore"] = value
            else:
                values[_BOUNDS[key]] = number(table, key, value)
        columns[str(column)] = ColumnSettings(**values)
    webhook = raw.get("webhook")
    if webhook is not None and (
        not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))
    ):
        raise bad(f"{webhook!r} must be an http:// or https:// URL", "monitor", "webhook")
    timeout = number("monitor", "webhook-timeout", raw.get("webhook-timeout", 5.0), low=0.001)
    retries = integer("monitor", "webhook-retries", raw.get("webhook-retries", 3), low=0)
    backoff = number("monitor", "webhook-backoff", raw.get("webhook-backoff", 0.5))
    return MonitorSettings(
        DriftSettings(**top, columns=columns),
        webhook=webhook,
        webhook_timeout=timeout,
        webhook_retries=retries,
        webhook_backoff=backoff,
        file=str(file),
    )
