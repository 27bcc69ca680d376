"""Times as stored (integer microseconds since the Unix epoch, UTC) and as shown."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from trenches.errors import InvalidInput

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*(?:ago)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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
        return value
    text = value.strip()
    m = _RELATIVE.match(text)
    if m:
        return now_us() - int(float(m.group(1)) * _UNITS[m.group(2)] * 1_000_000)
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
