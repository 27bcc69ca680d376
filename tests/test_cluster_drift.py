"""Drift over a window larger than memory (trenches.monitoring.partitioned): the parts
of a logged window sketched on a real LocalCluster of two worker processes give the
very report of the same sketches made in this process, and the report of the window
read whole up to the stated tolerance (exact where the figures are counts), on SQLite
with a local folder and on PostgreSQL with moto's S3 server; per-part sketches merge
into the sketch of the whole."""

from __future__ import annotations

import dataclasses
import itertools
import re
import socket
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from trenches import compute, timestamps
from trenches.errors import ComputeUnavailable, InvalidInput
from trenches.monitoring import partitioned, sketches, stats
from trenches.monitoring.figures import Sample
from trenches.monitoring.results import DriftReport
from trenches.requests import stored

from conftest import log_requests, tumours

# One xdist worker runs them all, so that one cluster serves them.
pytestmark = pytest.mark.xdist_group("dask")

COLUMNS = ["radius", "texture", "grade"]


def _version(store: trenches.Store) -> trenches.ModelVersion:
    """A classifier trained on 3,000 patterns: a reference of more than ``small``
    (1,000) values, so that numbers are compared by the Wasserstein distance."""
    ds = store.datasets.create(
        "tumours", task="classification", label="label", salt="00112233445566778899aabbccddeeff"
    )
    ds.add(tumours(3000, 0), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("lr", snapshot=snap, capture_code=False) as run:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        v = run.log_model(model, "clf")
    store.models.promote(v.ref, "production", reason="first")
    return v


def _log_window(store: trenches.Store, version: trenches.ModelVersion) -> int:
    """A window of 1,400 rows whose radius moved: four batches moved into the tables
    (a file each), the last one left staged; every row labelled by feedback."""
    since = timestamps.now_us()
    for k in range(4):
        log_requests(
            store, version, tumours(300, 10 + k, shift=1.5), COLUMNS, prefix=f"b{k}", label="label"
        )
        stored.move_all(store.engine)
    log_requests(store, version, tumours(200, 20, shift=1.5), COLUMNS, prefix="staged")
    return since


def _drift_tasks_done(address: str) -> int:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {
                k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()
            }
        )
    return int(counts.get("trenches-drift", {}).get("memory", 0))


def _within(c: Any) -> float:
    """The tolerance a sketched Wasserstein distance states (0: exact)."""
    found = re.search(r"within ([0-9.e+-]+)", c.why)
    return float(found[1]) if found else 0.0


def _assert_near(a: DriftReport, b: DriftReport) -> None:
    """The report of the sketches against that of the window read whole: every figure
    equal, the Wasserstein distance within what the report states; the same verdicts."""
    assert a.current_rows == b.current_rows and a.reference_rows == b.reference_rows
    assert a.extra == b.extra and a.ignored == b.ignored
    assert a.drifted_columns == b.drifted_columns
    assert (a.prediction is None) == (b.prediction is None)
    pairs = [*zip(a.columns, b.columns, strict=True)]
    if a.prediction is not None and b.prediction is not None:
        pairs.append((a.prediction, b.prediction))
    for x, y in pairs:
        assert (x.name, x.kind, x.test, x.drifted) == (y.name, y.kind, y.test, y.drifted)
        for figure in ("p_value", "p_adjusted", "psi", "missing_reference", "missing_current"):
            assert getattr(x, figure) == getattr(y, figure), (x.name, figure)
        assert (x.unseen, x.unseen_share, x.unseen_expected) == (
            y.unseen,
            y.unseen_share,
            y.unseen_expected,
        )
        if x.test == "wasserstein":
            assert 0 < _within(x) < 0.01, x.why
            assert abs(x.statistic - y.statistic) <= _within(x), x.name
        else:
            assert x.statistic == y.statistic and x.why == y.why, x.name
        assert (x.oov_reference, x.oov_current) == (y.oov_reference, y.oov_current)


def test_a_window_sketched_on_the_cluster_reports_what_one_process_does(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _version(store)
    since = _log_window(store, version)
    whole = store.monitoring.run("clf@production", since=since, keep=False)
    assert whole.report.drifted_columns == ["radius"]

    monkeypatch.setattr(partitioned, "SKETCH_FROM", 1)  # every window part by part
    monkeypatch.setattr(partitioned, "PART_ROWS", 1)  # a file a part: 4 parts, 2 workers
    monkeypatch.setattr(partitioned, "BATCH_ROWS", 128)  # each read in a few batches
    here = store.monitoring.run("clf@production", since=since, keep=False)
    _assert_near(here.report, whole.report)
    assert here.metrics == whole.metrics and here.current == whole.current
    radius = here.report.column("radius")
    assert radius.test == "wasserstein" and "from the window's sketch" in radius.why
    assert here.report.drifted_columns == ["radius"]  # moved: flagged; the others not
    assert here.metrics is not None and here.metrics["window"]["labelled"] == 1200

    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _drift_tasks_done(dask_scheduler)
    there = store.monitoring.run("clf@production", since=since, keep=False)
    assert _drift_tasks_done(dask_scheduler) - before == 4  # more parts than workers
    # The same sketches, merged in the same order: the very same report.
    assert there.report == here.report
    assert there.metrics == here.metrics and there.current == here.current
    # And stored like any other.
    kept = store.monitoring.run("clf@production", since=since)
    assert kept.id is not None and kept.alert is not None
    assert store.monitoring.get(kept.id).report.drifted_columns == ["radius"]


SMALL_SALT = "736d616c6c2d7265666572656e636531"


def test_a_small_reference_is_compared_by_the_exact_ks_test_from_counts(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed split salt: a random one drew, now and then, a training split that the
    # requests' radii differ from by chance (the KS test's p below its threshold).
    ds = store.datasets.create("small", task="classification", label="label", salt=SMALL_SALT)
    ds.add(tumours(400, 0), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("lr", snapshot=snap, capture_code=False) as run:
        version = run.log_model(LogisticRegression().fit(X, y), "small-clf")
    since = timestamps.now_us()
    for k in range(3):
        log_requests(store, version, tumours(400, 30 + k), COLUMNS, prefix=f"q{k}")
        stored.move_all(store.engine)
    whole = store.monitoring.run(version.ref, since=since, keep=False)
    monkeypatch.setattr(partitioned, "SKETCH_FROM", 1)
    monkeypatch.setattr(partitioned, "PART_ROWS", 1)
    sketched = store.monitoring.run(version.ref, since=since, keep=False)
    # Reference under 1,000 values, window of 1,200: KS, exact from the counts.
    assert sketched.report.column("radius").test == "ks"
    assert sketched.report == whole.report
    assert not sketched.report.drifted


def test_an_empty_window_read_part_by_part_says_there_is_nothing_to_compare(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _version(store)
    monkeypatch.setattr(partitioned, "SKETCH_FROM", 0)
    with pytest.raises(InvalidInput, match=r"nothing to compare: 0 requests \(0 rows\) to clf"):
        store.monitoring.run(version.ref, window="1h", keep=False)


def test_a_cluster_that_cannot_be_reached_stops_the_check_and_stores_nothing(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _version(store)
    since = _log_window(store, version)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(compute.ENV, address)
    monkeypatch.setattr(compute, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(partitioned, "SKETCH_FROM", 1)
    with pytest.raises(ComputeUnavailable, match=f"{address} \\(from {compute.ENV}\\)"):
        store.monitoring.run("clf@production", since=since)
    assert store.monitoring.history("clf") == []
    # A window under the threshold never asks the cluster.
    monkeypatch.setattr(partitioned, "SKETCH_FROM", 10_000)
    assert store.monitoring.run("clf@production", since=since).report.drifted_columns == ["radius"]


# --- the sketches ------------------------------------------------------------------------


def _assert_same(a: Any, b: Any) -> None:
    """Two sketches equal, field by field (arrays by value)."""
    assert type(a) is type(b)
    for name, x in vars(a).items():
        y = getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, name
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
        elif isinstance(x, sketches.NumericSketch):
            _assert_same(x, y)
        else:
            assert x == y, name


def _splits(draw: st.DrawFn, n: int) -> list[int]:
    cuts = draw(st.lists(st.integers(0, n), max_size=6))
    return sorted(cuts)


numbers = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    st.sampled_from([np.nan, 0.0, 1.5, -2.25, np.inf, -np.inf]),
)


@st.composite
def numeric_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    ref = np.array(draw(st.lists(numbers.filter(np.isfinite), min_size=1, max_size=60)))
    values = np.array(draw(st.lists(numbers, max_size=120)), dtype=np.float64)
    keep = draw(st.sampled_from([5, 30, 1000]))
    return np.sort(ref), values, _splits(draw, len(values)), keep


@settings(max_examples=150, deadline=None)
@given(numeric_case())
def test_numeric_sketches_of_parts_merge_into_the_sketch_of_the_whole(
    case: tuple[np.ndarray, np.ndarray, list[int], int],
) -> None:
    ref, values, cuts, keep = case
    grid = sketches.Grid.of(ref, keep)
    parts = [sketches.sketch_numbers(p, grid) for p in np.split(values, cuts)]
    found = parts[0]
    for p in parts[1:]:
        found = sketches.merge_numbers(found, p, grid)
    _assert_same(found, sketches.sketch_numbers(values, grid))


values_met = st.one_of(
    st.sampled_from(["a", "b", "c", None, np.nan, 1, 1.0, 2, True, "1"]), st.text(max_size=2)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(values_met, max_size=80), st.data())
def test_category_counts_of_parts_merge_into_the_counts_of_the_whole(
    values: list[Any], data: st.DataObject
) -> None:
    series = pd.Series(values, dtype=object)
    cuts = data.draw(st.lists(st.integers(0, len(values)), max_size=6).map(sorted))
    bounds = [0, *cuts, len(values)]
    parts = [sketches.sketch_categories(series.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    found = parts[0]
    for p in parts[1:]:
        found = sketches.merge_categories(found, p)
    _assert_same(found, sketches.sketch_categories(series))


@pytest.mark.parametrize(("n", "m"), [(300, 4000), (700, 30_000), (1000, 1000)])
def test_ks_from_counts_at_the_reference_points_is_scipys(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    a = np.sort(np.round(rng.normal(0, 1, n), 2))  # ties, as real data has
    b = np.round(rng.normal(0.1, 1.2, m), 2)
    # The reference's points, but none of b's values kept: counts only.
    grid = dataclasses.replace(sketches.Grid.of(a, n), keep=10)
    side = sketches.Sketched(sketches.sketch_numbers(b, grid), grid)
    assert side.sketch.values is None
    assert side.ks(a) == stats.ks(a, np.sort(b))
    edges = stats.decile_edges(a)
    assert np.array_equal(side.proportions(edges), stats.binned_proportions(np.sort(b), edges))


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5, 3.0, 40.0])
def test_the_sketched_wasserstein_distance_is_within_its_stated_bound(shift: float) -> None:
    rng = np.random.default_rng(7)
    a = np.sort(rng.lognormal(2, 0.7, 20_000))
    b = rng.lognormal(2, 0.7, 50_000) + shift * np.std(a)
    b[::13] = np.nan
    grid = sketches.Grid.of(a, 1000)
    side = sketches.Sketched(sketches.sketch_numbers(b, grid), grid)
    found, note = side.wasserstein(a)
    exact, _ = Sample.of(b).wasserstein(a)
    bound = float(re.search(r"within ([0-9.e+-]+)", note)[1])  # type: ignore[index]
    assert abs(found - exact) <= bound
    assert bound <= 2e-3 * (1 + shift)  # about ALPHA of the values' distance, in sds


# --- every kind of column, against the comparison of the samples whole -----------------


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{k}" for k in range(40 + int(20 * shift))])
    notes = [" ".join(rng.choice(vocabulary, rng.integers(3, 12))) for _ in range(n)]
    site = rng.choice(["left", "right", "centre"] + (["new"] if shift else []), n).astype(object)
    site[rng.random(n) < 0.05 + 0.1 * shift] = None
    count = rng.poisson(4 + shift, n).astype(np.float64)
    count[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "radius": rng.normal(10 + 2 * shift, 2, n),
            "count": count,  # numbers with ties
            "site": site,
            "notes": pd.Series(notes, dtype=object).where(rng.random(n) > 0.03, None),
            "flag": rng.random(n) < 0.3 + 0.2 * shift,
        }
    )


def _sample(frame: pd.DataFrame, answer: np.ndarray, by: np.ndarray) -> Any:
    from trenches.requests.window import RequestWindow

    return RequestWindow(
        requests=len(frame),
        inputs=frame.reset_index(drop=True),
        request_id=None,
        row=None,
        version_id=by,
        received_at=None,
        answer=answer,
        label=np.full(len(frame), None, dtype=object),
    )


def _answers(n: int, seed: int, kind: str, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "categorical":
        return rng.choice(
            ["benign", "malignant", "unsure"], n, p=[0.6 - shift / 4, 0.35, 0.05 + shift / 4]
        ).astype(object)
    return rng.normal(5 + shift, 1, n).astype(object)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(3000, 2500), (400, 2500), (3000, 600), (300, 200)])
@pytest.mark.parametrize("shift", [0.0, 1.0])
@pytest.mark.parametrize("answers", ["categorical", "numeric"])
def test_every_kind_of_column_sketched_in_parts_reports_what_the_samples_whole_do(
    n_ref: int, n_cur: int, shift: float, answers: str
) -> None:
    from trenches.monitoring import drift
    from trenches.requests.window import WindowLabels

    reference, current = _frame(n_ref, 1, 0.0), _frame(n_cur, 2, shift)
    ref_answers, answered = _answers(n_ref, 3, answers, 0.0), _answers(n_cur, 4, answers, shift)
    # A tenth of the rows answered by another version, some not at all: not compared.
    by = np.where(np.arange(n_cur) % 10 == 3, 2, 1)
    answered[np.arange(n_cur) % 17 == 5] = None
    mine = answered[(by == 1) & (answered != None)]  # noqa: E711
    kinds = {"notes": "text", "site": "categorical", "flag": "categorical"}
    whole = drift(
        reference, current, kinds=kinds, prediction=(ref_answers, mine), prediction_kind=answers
    )
    none = np.zeros(0, dtype=np.int64)
    s = whole.settings
    ref = partitioned.plan(
        reference, s, kinds, (ref_answers, answers), 1, None, WindowLabels(none, none, none)
    )
    cuts = ((0, 7), (7, n_cur // 2), (n_cur // 2, n_cur))
    parts = [_sample(current.iloc[a:b], answered[a:b], by[a:b]) for a, b in cuts]
    found = partitioned.merged((partitioned.sketch_sample(p, ref.plan) for p in parts), ref.plan)
    assert found is not None and found.served == len(mine)
    sketched = partitioned.drift_of(ref, found, frozenset(), s)
    assert sketched.prediction is not None
    _assert_near(sketched, whole)
    if shift:
        assert set(sketched.drifted_columns) >= {"radius", "site", "notes", "flag"}
        assert sketched.prediction.drifted
    else:
        assert sketched.drifted_columns == []
