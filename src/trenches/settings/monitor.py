"""The ``[monitor]`` table of ``trenches.toml``, typed: drift thresholds, per-column
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trenches.json_form import json_shape
from trenches.settings.keys import default, key

#: How a column's drift is measured.
KINDS: tuple[str, ...] = key("monitor.columns.COLUMN", "kind").choices
#: The thresholds a column can override, as written in trenches.toml.
THRESHOLDS = ("wasserstein", "jensen-shannon", "psi", "missing", "unseen", "oov")


def _attr(name: str) -> str:
    return name.replace("-", "_")


@json_shape(omit_defaults=True)
@dataclass(frozen=True)
class ColumnSettings:
    """Thresholds for one column; ``None`` keeps the default (and is not written)."""

    wasserstein: float | None = None
    jensen_shannon: float | None = None
    psi: float | None = None
    missing: float | None = None
    unseen: float | None = None
    oov: float | None = None
    kind: str | None = None
    ignore: bool = False


@json_shape(encode={"columns": lambda columns: dict(sorted(columns.items()))})
@dataclass(frozen=True)
class DriftSettings:
    """The thresholds of a drift check; every field has a sound default (declared with
    the ``[monitor]`` keys of trenches.toml, see docs/configuration.md).

    - ``alpha``: the false discovery rate of the p-value tests, taken over all columns
      at once (Benjamini-Hochberg);
    - ``small``: when either sample has at most this many values, p-value tests are
      used (Kolmogorov-Smirnov, chi-square); above it, distances (normalised
      Wasserstein, Jensen-Shannon), since with many rows any difference is
      "significant" and what matters is its size;
    - ``wasserstein``: normalised Wasserstein distance ``W1 / std(reference)`` at which
      a numeric column drifts (0.1: a tenth of a standard deviation);
    - ``jensen_shannon``: Jensen-Shannon distance (natural log) at which a categorical
      column drifts;
    - ``psi``: population stability index at which a column drifts, on large samples
      only (on small ones PSI is noisy, and is shown without deciding);
    - ``missing``: change in the missing rate (0.05: five points) that counts as drift
      (on small samples Fisher's exact test must agree);
    - ``unseen``: share of current values in categories the reference never had, beyond
      the share the reference itself predicts (its rate of categories seen once);
    - ``oov``: rise of the out-of-vocabulary rate of a text column;
    - ``categorical_below``: a numeric column with at most this many distinct values in
      the reference is treated as categorical;
    - ``prediction``: whether drift of the predictions counts as drift.
    """

    alpha: float = default("monitor", "alpha")
    small: int = default("monitor", "small")
    wasserstein: float = default("monitor", "wasserstein")
    jensen_shannon: float = default("monitor", "jensen-shannon")
    psi: float = default("monitor", "psi")
    missing: float = default("monitor", "missing")
    unseen: float = default("monitor", "unseen")
    oov: float = default("monitor", "oov")
    categorical_below: int = default("monitor", "categorical-below")
    prediction: bool = default("monitor", "prediction")
    columns: Mapping[str, ColumnSettings] = field(default_factory=dict)

    def threshold(self, column: str, name: str) -> float:
        own = self.columns.get(column)
        value = getattr(own, name, None) if own is not None else None
        return float(value if value is not None else getattr(self, name))


@dataclass(frozen=True)
class MonitorSettings:
    """Drift thresholds and where alerts go: the ``[monitor]`` table."""

    drift: DriftSettings = field(default_factory=DriftSettings)
    webhook: str | None = None
    webhook_timeout: float = default("monitor", "webhook-timeout")
    webhook_retries: int = default("monitor", "webhook-retries")
    webhook_backoff: float = default("monitor", "webhook-backoff")
    #: The trenches.toml it was read from; None when there was none.
    file: str | None = None


def _column(own: dict[str, Any]) -> ColumnSettings:
    values: dict[str, Any] = {_attr(k): float(v) if k in THRESHOLDS else v for k, v in own.items()}
    return ColumnSettings(**values)


def monitoring(raw: dict[str, Any], file: str | None) -> MonitorSettings:
    """The typed ``[monitor]`` table (already checked key by key)."""
    top = {_attr(k): v for k, v in raw.items() if k != "columns" and not k.startswith("webhook")}
    for name in ("alpha", *THRESHOLDS):
        if _attr(name) in top:
            top[_attr(name)] = float(top[_attr(name)])
    columns = {str(c): _column(own) for c, own in (raw.get("columns") or {}).items()}
    return MonitorSettings(
        DriftSettings(**top, columns=columns),
        webhook=raw.get("webhook"),
        webhook_timeout=float(raw.get("webhook-timeout", default("monitor", "webhook-timeout"))),
        webhook_retries=int(raw.get("webhook-retries", default("monitor", "webhook-retries"))),
        webhook_backoff=float(raw.get("webhook-backoff", default("monitor", "webhook-backoff"))),
        file=file,
    )
