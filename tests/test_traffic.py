"""Traffic policies in the store (both set-ups), and the choosing of arms."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import trenches
from trenches.errors import InvalidInput, NotFound
from trenches.settings import GuardSettings
from trenches.traffic.guard import ArmFigures, Watch, judge
from trenches.traffic.policies import TrafficArm, TrafficPolicy
from trenches.traffic.routing import Chooser, Tally, shares, unit

from conftest import run_cli

NUMBERS = ["radius", "texture", "grade"]


@pytest.fixture
def versions(store: trenches.Store, dataset: trenches.Dataset) -> trenches.Store:
    """clf@1 (production), clf@2, clf@3; other@1, of other inputs."""
    snap = dataset.snapshot()
    X, y, _, _ = snap.training_data("train")
    X = X[NUMBERS]
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        run.log_model(LogisticRegression(max_iter=500).fit(X, y), "clf")
        run.log_model(DecisionTreeClassifier(max_depth=2).fit(X, y), "clf")
        run.log_model(DecisionTreeClassifier(max_depth=4).fit(X, y), "clf")
        run.log_model(LogisticRegression().fit(X[NUMBERS[:2]], y), "other")
    store.models.promote("clf@1", "production", reason="first")
    return store


def test_policies_are_kept_with_who_when_and_why(versions: trenches.Store) -> None:
    traffic = versions.traffic
    assert traffic.policy("clf").kind == "off" and traffic.policy("clf").id == 0
    shadow = traffic.shadow("clf@2", reason="look first")
    assert shadow.kind == "shadow" and [a.name for a in shadow.shadows] == ["v2"]
    canary = traffic.canary("clf@2", share=0.1, reason="shadow agreed")
    assert {a.name: a.weight for a in canary.arms} == {"v2": 0.1, "baseline": 0.9}
    assert canary.arm("v2").ref == "clf@2"
    bandit = traffic.bandit(["clf@2", "clf@3"], reason="best on feedback", floor=0.1)
    assert [a.name for a in bandit.arms] == ["baseline", "v2", "v3"] and bandit.floor == 0.1
    assert traffic.policy("clf") == bandit
    history = traffic.history("clf")
    assert [p.kind for p in history] == ["shadow", "canary", "bandit"]
    assert [p.reason for p in history] == ["look first", "shadow agreed", "best on feedback"]
    assert all(p.set_by and p.created_at is not None for p in history)
    off = traffic.off("clf", reason="done")
    assert not off.routes and traffic.policy("clf").id == off.id
    # Every change is in the audit trail, with its reason.
    changes = [e for e in versions.audit.list() if e.action == "traffic.set"]
    assert len(changes) == 4 and changes[0].detail["reason"] in ("done", "look first")


def test_policies_that_cannot_work_are_refused_and_store_nothing(versions: trenches.Store) -> None:
    traffic = versions.traffic
    cases: list[tuple[Any, str]] = [
        (lambda: traffic.canary("clf@2", share=0.1, reason=" "), "reason"),
        (lambda: traffic.canary("clf@2", share=1.0, reason="x"), "less than 1"),
        (lambda: traffic.canary("clf@2", share=float("nan"), reason="x"), "between 0 and 1"),
        (lambda: traffic.ab("clf@2", share=0, reason="x"), "more than 0"),
        (lambda: traffic.bandit(["clf@2", "other@1"], reason="x"), "different models"),
        (lambda: traffic.bandit(["clf@2", "clf@2"], reason="x"), "named twice"),
        (lambda: traffic.bandit(["clf@2"], reason="x", floor=0.6), "floor"),
        (lambda: traffic.bandit([], reason="x"), "at least one version"),
        (lambda: traffic.bandit(["clf@2"], reason="x", rating_max=0), "rating_max"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidInput, match=words):
            call()
    with pytest.raises(NotFound):
        traffic.shadow("clf@9", reason="x")
    with pytest.raises(NotFound):
        traffic.off("nope", reason="x")
    # A candidate must take the inputs of the version in production.
    X, y, _, _ = versions.datasets.get("tumours").snapshot().training_data("train")
    with versions.run("fit-other", capture_code=False) as run:
        fitted = LogisticRegression(max_iter=500).fit(X[NUMBERS], y)
        run.log_model(fitted, "other", X=X[NUMBERS])
    versions.models.promote("other@1", "production", reason="first")
    with pytest.raises(InvalidInput, match="other inputs"):
        traffic.shadow("other@2", reason="x")
    assert traffic.history("clf") == [] and traffic.history("other") == []


def test_a_rollback_is_written_once_and_only_on_the_policy_judged(
    versions: trenches.Store,
) -> None:
    traffic = versions.traffic
    bandit = traffic.bandit(["clf@2", "clf@3"], reason="try", floor=0.05)
    rolled = traffic.roll_back(bandit.id, "v2", reason="guard: v2 failing")
    assert rolled is not None and rolled.kind == "bandit" and rolled.set_by == "trenches-guard"
    assert [a.name for a in rolled.arms] == ["baseline", "v3"] and rolled.floor == 0.05
    # A replica that judged the same policy a moment later writes nothing.
    assert traffic.roll_back(bandit.id, "v2", reason="guard: v2 failing") is None
    assert traffic.policy("clf") == rolled
    # The last candidate of a bandit out: the policy is off.
    off = traffic.roll_back(rolled.id, "v3", reason="guard: v3 failing")
    assert off is not None and off.kind == "off"
    actions = [e.action for e in versions.audit.list() if e.action.startswith("traffic.")]
    assert actions.count("traffic.rollback") == 2


def test_the_cli_sets_and_shows_policies(versions: trenches.Store) -> None:
    url = versions.url
    code, out, err = run_cli("--store", url, "traffic", "canary", "clf@2", "--share", "0.2")
    assert code != 0 and "--reason" in err, err
    code, out, _ = run_cli(
        "--store", url, "traffic", "canary", "clf@2", "--share", "0.2", "--reason", "ramp"
    )
    assert code == 0 and "canary: v2 20%, baseline 80%" in out
    code, out, err = run_cli(
        "--store", url, "traffic", "canary", "clf@2", "--share", "2", "--reason", "x"
    )
    assert code == 2 and "less than 1" in err
    code, out, _ = run_cli("--store", url, "traffic", "show", "clf")
    assert code == 0 and "ramp" in out and "canary" in out


# --- choosing arms -------------------------------------------------------------------


def _policy(kind: str, weights: dict[str, float], floor: float = 0.0) -> TrafficPolicy:
    arms = tuple(
        TrafficArm(name, None if name == "baseline" else i + 2, w)
        for i, (name, w) in enumerate(weights.items())
    )
    return TrafficPolicy(1, "clf", kind, arms, floor, None, "", "", None)


def test_a_split_gives_each_arm_its_share_and_each_key_one_arm() -> None:
    policy = _policy("canary", {"v2": 0.2, "baseline": 0.8})
    chooser = Chooser(policy, rng=random.Random(7))
    picks = Counter(chooser.arms[chooser.pick()].name for _ in range(20_000))
    assert abs(picks["v2"] / 20_000 - 0.2) < 0.015
    for key in (f"caller-{k}" for k in range(200)):
        first = chooser.pick(key)
        assert all(chooser.pick(key) == first for _ in range(5))
        # Ramping the candidate up keeps its callers.
        if chooser.arms[first].name == "v2":
            wider = Chooser(_policy("canary", {"v2": 0.5, "baseline": 0.5}))
            assert wider.arms[wider.pick(key)].name == "v2"


@settings(max_examples=30, deadline=None)
@given(
    right=st.lists(st.integers(0, 500), min_size=3, max_size=3),
    wrong=st.lists(st.integers(0, 500), min_size=3, max_size=3),
    floor=st.sampled_from([0.02, 0.05, 0.1, 0.3]),
)
def test_a_bandit_keeps_every_arm_above_its_floor(
    right: list[int], wrong: list[int], floor: float
) -> None:
    policy = _policy("bandit", {"baseline": 1 / 3, "v2": 1 / 3, "v3": 1 / 3}, floor)
    tallies = {
        name: Tally(labelled=r + w, right=r)
        for name, r, w in zip(("baseline", "v2", "v3"), right, wrong, strict=True)
    }
    got = shares(policy, tallies, draws=6_000, seed=1)
    assert sum(got.values()) == pytest.approx(1.0)
    assert min(got.values()) >= floor - 0.02  # 6,000 draws: a few sigma of slack


def test_a_bandit_sends_most_traffic_to_the_arm_right_most_often() -> None:
    policy = _policy("bandit", {"baseline": 0.5, "v2": 0.5}, 0.05)
    got = shares(policy, {"baseline": Tally(100, 60), "v2": Tally(100, 85)})
    assert got["v2"] > 0.9 and got["baseline"] >= 0.04
    # Ratings count as fractional rewards over their best value.
    rated = TrafficPolicy(1, "clf", "bandit", policy.arms, 0.05, 5.0, "", "", None)
    got = shares(
        rated,
        {
            "baseline": Tally(rated=80, rating_sum=80 * 4.5),
            "v2": Tally(rated=80, rating_sum=80 * 2.0),
        },
    )
    assert got["baseline"] > 0.9


def test_the_caller_key_decides_the_same_on_every_replica() -> None:
    assert unit("clf", "ada") == unit("clf", "ada")
    assert unit("clf", "ada") != unit("clf", "bob")
    assert 0 <= unit("clf", "ada") < 1


def test_the_guard_judges_only_arms_with_enough_requests() -> None:
    policy = _policy("canary", {"v2": 0.5, "baseline": 0.5})
    watch = Watch(policy)
    bounds = GuardSettings(error_rate=0.05, latency_p99_ms=50, agreement=0.9, min_requests=20)
    for _ in range(10):
        watch.failed("v2")
    assert judge(watch, {}, bounds) is None  # 10 requests: not judged yet
    for _ in range(10):
        watch.answered("v2", 0.001)
    crossed = judge(watch, {}, bounds)
    assert crossed is not None and crossed.figure == "error-rate" and crossed.value == 0.5
    assert "above the bound 0.05" in crossed.reason

    slow = Watch(policy)
    for _ in range(30):
        slow.answered("v2", 0.2)
        slow.answered("baseline", 5.0)  # the baseline is never judged
    crossed = judge(slow, {}, bounds)
    assert crossed is not None and crossed.figure == "latency-p99-ms"

    apart = Watch(policy)
    for _ in range(30):
        apart.answered("v2", 0.001)
    apart.compared("v2", 30, 20)
    crossed = judge(apart, {}, bounds)
    assert crossed is not None and crossed.figure == "agreement"

    wrong = GuardSettings(feedback_accuracy=0.8, min_feedback=30)
    assert judge(Watch(policy), {"v2": Tally(29, 2)}, wrong) is None
    crossed = judge(Watch(policy), {"v2": Tally(40, 20)}, wrong)
    assert crossed is not None and crossed.figure == "feedback-accuracy"
    # An experiment is not guarded.
    assert (
        judge(Watch(_policy("ab", {"v2": 0.5, "baseline": 0.5})), {"v2": Tally(40, 0)}, wrong)
        is None
    )
    assert ArmFigures().latency_p99_ms is None
