"""Times as stored (integer microseconds since the Unix epoch, UTC) and as shown."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from trenches.errors import InvalidInput

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*(?:ago)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


#: The times a ``datetime`` can show, as microseconds: a parsed time stays between them.
EARLIEST_US = _us(datetime.min.replace(tzinfo=UTC))
LATEST_US = _us(datetime.max.replace(tzinfo=UTC))


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def iso(us: int | None) -> str | None:
    """ISO 8601 in UTC, to the second unless the time has a fraction."""
    if us is None:
        return None
    moment = from_us(us)
    spec = "seconds" if moment.microsecond == 0 else "microseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse(value: str | datetime | int | None, *, what: str = "time") -> int | None:
    """Parse a user's time: ISO 8601 (``2026-03-01``, ``2026-03-01T12:00Z``), a
    ``datetime``, microseconds, or a relative ``3d`` / ``12h ago``. Naive times are UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_us(value)
    if isinstance(value, int):
        if not EARLIEST_US <= value <= LATEST_US:
            raise InvalidInput(f"{what} {value} is not a time from year 1 to 9999 (microseconds)")
        return value
    text = value.strip()
    m = _RELATIVE.match(text)
    if m:
        span = float(m.group(1)) * _UNITS[m.group(2)] * 1_000_000
        now = now_us()
        if not now - span >= EARLIEST_US:  # also an infinite span
            raise InvalidInput(f"{what} {value!r} reaches back before the year 1")
        return now - int(span)
    if text.lower() == "now":
        return now_us()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {value!r} is not a time; use ISO 8601 (2026-03-01 or "
            "2026-03-01T12:00:00Z) or a relative time (3d, 12h)"
        ) from None
    return to_us(moment)
