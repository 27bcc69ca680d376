"""The ``[guard]`` table of ``trenches.toml``, typed: the bounds of the live figures
of a canary's candidate or a bandit's arm (see :mod:`trenches.traffic.guard`).

```toml
[guard]
error-rate = 0.02          # an arm failing 2% of its requests is rolled back
latency-p99-ms = 50
agreement = 0.9            # with the version served, on the same rows
feedback-accuracy = 0.8
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trenches.settings.keys import default


@dataclass(frozen=True)
class GuardSettings:
    """Bounds of an arm's live figures; None: not judged."""

    error_rate: float = default("guard", "error-rate")
    latency_p99_ms: float | None = default("guard", "latency-p99-ms")
    agreement: float | None = default("guard", "agreement")
    feedback_accuracy: float | None = default("guard", "feedback-accuracy")
    min_requests: int = default("guard", "min-requests")
    min_feedback: int = default("guard", "min-feedback")


def guarding(raw: Mapping[str, Any]) -> GuardSettings:
    """The typed table (its keys already checked against the declaration)."""
    values = {name.replace("-", "_"): value for name, value in raw.items()}
    for name in ("error_rate", "latency_p99_ms", "agreement", "feedback_accuracy"):
        if values.get(name) is not None:
            values[name] = float(values[name])
    return GuardSettings(**values)
