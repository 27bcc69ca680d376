"""Which arm of a policy answers a request: the hot path of a server under a policy.

A canary or A/B split draws the arm from a number in [0, 1): the caller key's hash
when the request sends one (``x-caller-key``: the same caller, the same arm, on every
replica), else a random one. Candidates come first on the line, so raising a canary's
share keeps every caller it had. A bandit draws a reward for each arm from its Beta
posterior (Thompson sampling) and takes the highest, after giving each arm its floor
share; the posteriors are the feedback tallies the server reads from the store.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate

from trenches.traffic.arms import TrafficPolicy

#: The request header that makes a caller's arm sticky.
KEY_HEADER = "x-caller-key"


@dataclass(frozen=True)
class Tally:
    """The feedback on one arm's answers under a policy: labels that were the answer
    given (``right``) of those given (``labelled``), and ratings (their count and sum)."""

    labelled: int = 0
    right: int = 0
    rated: int = 0
    rating_sum: float = 0.0

    def beta(self, rating_max: float | None) -> tuple[float, float]:
        """The Beta posterior's parameters from a uniform prior: a label right is a
        success, one wrong a failure, a rating ``r`` counts ``r / rating_max`` of each."""
        wins, trials = float(self.right), float(self.labelled)
        if rating_max and self.rated:
            wins += min(max(self.rating_sum / rating_max, 0.0), float(self.rated))
            trials += self.rated
        return 1.0 + wins, 1.0 + trials - wins

    @property
    def accuracy(self) -> float | None:
        return self.right / self.labelled if self.labelled else None


def unit(model: str, key: str) -> float:
    """A caller key's place in [0, 1), the same on every replica."""
    digest = hashlib.blake2b(f"{model}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Chooser:
    """Picks the arm of each request under one policy (an index into ``policy.arms``
    less its shadows)."""

    def __init__(
        self,
        policy: TrafficPolicy,
        tallies: Mapping[str, Tally] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.arms = tuple(a for a in policy.arms if a.weight > 0 or policy.kind == "bandit")
        self._rng = rng or random.Random()
        self._bounds = list(accumulate(a.weight for a in self.arms))
        self._bounds[-1] = 1.0  # rounding never leaves a gap at the end
        empty = Tally()
        given = tallies or {}
        self._betas = [(given.get(a.name) or empty).beta(policy.rating_max) for a in self.arms]
        self._floor = policy.floor * len(self.arms) if policy.kind == "bandit" else 0.0

    def pick(self, key: str | None = None) -> int:
        if len(self.arms) == 1:
            return 0
        if self.policy.kind == "bandit":
            return self._thompson()
        u = unit(self.policy.model, key) if key else self._rng.random()
        return min(bisect_right(self._bounds, u), len(self.arms) - 1)

    def _thompson(self) -> int:
        rng = self._rng
        if self._floor and rng.random() < self._floor:
            return rng.randrange(len(self.arms))
        draws = [rng.betavariate(a, b) for a, b in self._betas]
        return max(range(len(draws)), key=draws.__getitem__)


def shares(
    policy: TrafficPolicy, tallies: Mapping[str, Tally], *, draws: int = 20_000, seed: int = 0
) -> dict[str, float]:
    """The share of requests each arm gets now (a bandit's, estimated over ``draws``
    picks; a split's, its weights)."""
    chooser = Chooser(policy, tallies, random.Random(seed))
    if policy.kind != "bandit":
        return {a.name: a.weight for a in chooser.arms}
    counts = [0] * len(chooser.arms)
    for _ in range(draws):
        counts[chooser.pick()] += 1
    return {a.name: c / draws for a, c in zip(chooser.arms, counts, strict=True)}
