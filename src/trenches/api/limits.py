"""Rate limits on signing in: after :data:`PER_NAME` failures for one name from one
address, or :data:`PER_ADDRESS` from one address, within :data:`WINDOW` seconds, sign-ins
from there are refused with a 429 until the oldest failure leaves the window.

Kept in each worker's memory: with N workers a guesser gets up to N times the budget,
still a handful of guesses a minute against argon2id hashes. A success clears the name's
failures from that address.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

from trenches.errors import TrenchesError

PER_NAME = 5
PER_ADDRESS = 20
WINDOW = 300.0


class TooManyAttempts(TrenchesError):
    """Too many failed sign-ins from one address: a 429 with ``Retry-After``."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed sign-ins from here; try again in {self.retry_after} s")


class SignInLimits:
    """Failed sign-ins by (address, name) and by address, over a sliding window."""

    def __init__(
        self, *, per_name: int = PER_NAME, per_address: int = PER_ADDRESS, window: float = WINDOW
    ) -> None:
        self.per_name = per_name
        self.per_address = per_address
        self.window = window
        self._failures: defaultdict[tuple[str, str | None], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, address: str, name: str) -> None:
        """Refuse (:class:`TooManyAttempts`) a sign-in over either budget."""
        now = time.monotonic()
        with self._lock:
            for key, budget in (
                ((address, name), self.per_name),
                ((address, None), self.per_address),
            ):
                seen = self._recent(key, now)
                if len(seen) >= budget:
                    raise TooManyAttempts(seen[0] + self.window - now)

    def failed(self, address: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in ((address, name), (address, None)):
                self._recent(key, now).append(now)

    def succeeded(self, address: str, name: str) -> None:
        with self._lock:
            self._failures.pop((address, name), None)

    def _recent(self, key: tuple[str, str | None], now: float) -> deque[float]:
        seen = self._failures[key]
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen
