"""Drift monitoring: the statistics against SciPy and hand computations, known shifts
found (and nothing else), reports stored with their alerts, the webhook (live and
dead), outliers, and the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

import trenches
from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidConfig, InvalidInput, NotFound
from trenches.monitoring import DriftSettings, drift, stats
from trenches.monitoring.drift import ColumnSettings

from conftest import dead_url, log_requests, run_cli, tumours

# --- the statistics ----------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60), st.lists(finite, min_size=1, max_size=60))
def test_wasserstein_equals_scipy(a: list[float], b: list[float]) -> None:
    x, y = np.sort(np.array(a)), np.sort(np.array(b))
    expected = ss.wasserstein_distance(x, y)
    assert stats.wasserstein_sorted(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(("n", "m"), [(7, 1000), (1000, 7), (333, 1000), (64, 4096)])
def test_wasserstein_of_samples_far_apart_in_size_equals_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    x = np.sort(rng.normal(size=n).round(1))  # ties too
    y = np.sort(rng.normal(0.3, 2.0, size=m).round(1))
    expected = ss.wasserstein_distance(x, y)
    assert stats.wasserstein_sorted(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_wasserstein_with_ties_and_unequal_sizes() -> None:
    a = np.sort(np.array([1.0, 1.0, 1.0, 2.0, 5.0]))
    b = np.sort(np.array([1.0, 3.0, 3.0]))
    # By hand: F_a - F_b is 0.6 - 1/3 on [1, 2), 0.8 - 1/3 on [2, 3), 0.8 - 1 on [3, 5).
    hand = (0.6 - 1 / 3) * 1 + (0.8 - 1 / 3) * 1 + abs(0.8 - 1.0) * 2
    assert stats.wasserstein_sorted(a, b) == pytest.approx(hand)
    assert stats.normalised_wasserstein(a, b) == pytest.approx(hand / np.std(a))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40))
def test_benjamini_hochberg_equals_scipy(p: list[float]) -> None:
    got = stats.benjamini_hochberg(np.array(p))
    assert np.allclose(got, ss.false_discovery_control(np.array(p)))


def test_psi_chi2_and_jensen_shannon_by_hand() -> None:
    ref = np.array([50, 30, 20])
    cur = np.array([30, 30, 40])
    r, c = ref / 100, cur / 100
    assert stats.categorical_psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)))
    chi, p = stats.chi2(ref, cur)
    expected = ss.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert (chi, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert stats.jensen_shannon(ref, cur) == pytest.approx(jensenshannon(r, c))
    # A category empty on one side is floored at 1e-4 for PSI, not infinite.
    assert np.isfinite(stats.categorical_psi(np.array([10, 0]), np.array([5, 5])))


def test_numeric_psi_uses_the_reference_deciles() -> None:
    a = np.arange(100, dtype=float)  # deciles at 10, 20, ..., 90
    b = np.sort(np.concatenate([np.full(50, 5.0), np.full(50, 95.0)]))
    edges = stats.decile_edges(a)
    assert list(edges) == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    ref_p = stats.binned_proportions(a, edges)
    cur_p = stats.binned_proportions(b, edges)
    assert ref_p[0] == pytest.approx(0.11) and cur_p[0] == 0.5 and cur_p[-1] == 0.5
    assert stats.numeric_psi(a, b) == pytest.approx(stats.psi(ref_p, cur_p))


def test_small_samples_use_ks_and_chi2_as_scipy_computes_them() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(list("abc"), 300)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, 80), "c": rng.choice(list("abc"), 80)})
    report = drift(ref, cur)
    x, c = report.column("x"), report.column("c")
    assert x.test == "ks" and c.test == "chi2"
    expected = ss.ks_2samp(ref["x"], cur["x"])
    assert (x.statistic, x.p_value) == pytest.approx((expected.statistic, expected.pvalue))
    counts = pd.crosstab(
        np.r_[np.zeros(300), np.ones(80)], np.r_[ref["c"].to_numpy(), cur["c"].to_numpy()]
    ).to_numpy()
    chi = ss.chi2_contingency(counts, correction=False)
    assert (c.statistic, c.p_value) == pytest.approx((chi.statistic, chi.pvalue))
    # Both p-values are adjusted together for the two columns.
    adjusted = ss.false_discovery_control([x.p_value, c.p_value])
    assert [x.p_adjusted, c.p_adjusted] == pytest.approx(list(adjusted))
    assert "300" not in x.why and "80 values <= 1,000: ks test" in x.why


def test_large_samples_use_distances() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(list("ab"), 5000)})
    cur = pd.DataFrame({"x": rng.normal(size=4000), "c": rng.choice(list("ab"), 4000)})
    report = drift(ref, cur)
    x, c = report.column("x"), report.column("c")
    assert x.test == "wasserstein" and c.test == "jensen-shannon"
    a, b = np.sort(ref["x"].to_numpy()), np.sort(cur["x"].to_numpy())
    assert x.statistic == pytest.approx(ss.wasserstein_distance(a, b) / np.std(a))
    share = lambda s: s.value_counts(normalize=True).sort_index().to_numpy()  # noqa: E731
    assert c.statistic == pytest.approx(jensenshannon(share(ref["c"]), share(cur["c"])))
    assert x.p_value is None and not report.drifted


# --- known shifts --------------------------------------------------------------------------

WORDS = ["good", "fine", "great", "bad", "slow", "quick", "helpful", "price", "delivery", "box"]
NEW_WORDS = ["refund", "broken", "scam", "lawyer", "chargeback", "fraud"]


def shifted(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """Twelve columns; five of them change between reference and current."""
    rng = np.random.default_rng(seed)

    def frame(n: int, shift: bool) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for i in range(6):
            mu, sd = float(i), 1.0 + i / 3
            if shift and i == 0:
                mu += 0.8 * sd  # the mean moves
            if shift and i == 1:
                sd *= 2.0  # the spread grows
            cols[f"num_{i}"] = rng.normal(mu, sd, n)
        if shift:  # a fifth of num_5 goes missing
            cols["num_5"][rng.random(n) < 0.2] = np.nan
        p = np.array([0.6, 0.3, 0.1])
        cols["cat_0"] = rng.choice(["a", "b", "c"], n, p=p[::-1] if shift else p)
        cols["cat_1"] = rng.choice(["x", "y", "z", "w"], n)
        cols["grade"] = rng.integers(1, 4, n)  # a numeric code: compared as categories
        words = WORDS + NEW_WORDS if shift else WORDS
        lengths = rng.integers(5, 12, n)
        cols["review"] = [" ".join(rng.choice(words, k)) for k in lengths]
        return pd.DataFrame(cols)

    return frame(n_ref, False), frame(n_cur, True), {"num_0", "num_1", "num_5", "cat_0", "review"}


@pytest.mark.parametrize(("n_ref", "n_cur"), [(600, 400), (20_000, 15_000)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_shifted_columns_and_only_those_are_flagged(n_ref: int, n_cur: int, seed: int) -> None:
    ref, cur, expected = shifted(n_ref, n_cur, seed)
    report = drift(ref, cur)
    assert set(report.drifted_columns) == expected
    assert report.column("grade").kind == "categorical"
    assert report.column("review").kind == "text"
    review = report.column("review")
    assert review.oov_current is not None and review.oov_reference is not None
    assert review.oov_current > review.oov_reference + 0.1
    assert any("out-of-vocabulary" in r for r in review.reasons)
    assert any("missing" in r for r in report.column("num_5").reasons)
    # An unchanged sample against itself drifts nowhere.
    same = drift(ref, ref.sample(frac=0.5, random_state=seed))
    assert same.drifted_columns == []


def test_unseen_categories_are_listed_and_flagged_beyond_what_the_reference_predicts() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"city": rng.choice(["paris", "lyon", "nice"], 2000)})
    cur = pd.DataFrame({"city": np.r_[rng.choice(["paris", "lyon", "nice"], 1900), ["oslo"] * 100]})
    c = drift(ref, cur).column("city")
    assert c.unseen == {"oslo": 100}
    assert c.unseen_share == pytest.approx(0.05) and c.unseen_expected == 0.0
    assert any("never seen" in r and "oslo" in r for r in c.reasons)
    # A reference full of one-off categories expects new ones: a few are no drift.
    ids = [f"id{i}" for i in range(2000)]
    ref = pd.DataFrame({"ticket": ids})
    cur = pd.DataFrame({"ticket": [f"new{i}" for i in range(50)] + ids[:1950]})
    t_ = drift(ref, cur, kinds={"ticket": "categorical"}).column("ticket")
    assert t_.unseen_share == pytest.approx(0.025) and t_.unseen_expected == 1.0
    assert not any("never seen" in r for r in t_.reasons)


def test_missing_values_on_either_side_and_an_absent_column() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    ref = pd.DataFrame({"x": x, "y": rng.normal(size=500), "z": rng.normal(size=500)})
    cur = pd.DataFrame({"x": np.where(rng.random(500) < 0.3, np.nan, x), "extra": 1.0})
    cur["y"] = np.nan  # every value missing: no distribution test, the missing rate drifts
    report = drift(ref, cur)
    y = report.column("y")
    assert y.test == "none" and y.missing_current == 1.0 and y.drifted
    xr = report.column("x")
    assert xr.missing_current == pytest.approx(0.3, abs=0.05) and xr.missing_p is not None
    assert xr.drifted and not any(r.startswith("ks") for r in xr.reasons)
    assert report.column("z").reasons == ("the column is absent from the current sample",)
    assert report.extra == ("extra",)


def test_thresholds_per_column_and_ignored_columns() -> None:
    ref, cur, expected = shifted(20_000, 15_000, 0)
    loose = DriftSettings(
        columns={
            "num_0": ColumnSettings(wasserstein=5.0, psi=50.0),
            "cat_0": ColumnSettings(ignore=True),
        }
    )
    report = drift(ref, cur, settings=loose)
    assert set(report.drifted_columns) == expected - {"num_0", "cat_0"}
    assert report.ignored == ("cat_0",)
    assert report.column("num_0").threshold == 5.0


def test_prediction_drift_is_compared_like_a_column() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0)})
    report = drift(
        ref,
        ref,
        prediction=(["a"] * 70 + ["b"] * 30, ["a"] * 20 + ["b"] * 80),
        prediction_kind="categorical",
    )
    assert report.prediction is not None and report.prediction.test == "chi2"
    assert report.drifted_columns == [] and report.drifted
    quiet = drift(
        ref,
        ref,
        prediction=(["a"] * 70 + ["b"] * 30, ["a"] * 20 + ["b"] * 80),
        settings=DriftSettings(prediction=False),
    )
    assert not quiet.drifted


# --- in the store ---------------------------------------------------------------------------

COLUMNS = ["radius", "texture", "grade"]


@pytest.fixture
def version(store: trenches.Store) -> trenches.ModelVersion:
    ds = store.datasets.create(
        "tumours", task="classification", label="label", salt="00112233445566778899aabbccddeeff"
    )
    ds.add(tumours(600, 0), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("lr", snapshot=snap, capture_code=False) as run:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        v = run.log_model(model, "clf")
    store.models.promote(v.ref, "production", reason="first")
    return v


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """No access log on the test's output."""


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_quiet_window_has_no_drift_and_a_shifted_one_alerts_the_webhook(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path, webhook: str
) -> None:
    toml = tmp_path / "trenches.toml"
    toml.write_text(f'[monitor]\nwebhook = "{webhook}"\n', encoding="utf-8")
    log_requests(store, version, tumours(300, 1), COLUMNS, prefix="quiet", label="label")
    quiet = store.monitoring.run("clf@production", window="1h", path=toml)
    assert not quiet.drifted and quiet.alert is None and Hook.received == []
    assert quiet.report.current_rows == 300
    assert quiet.reference.startswith("train split of snapshot")
    assert quiet.report.prediction is not None and not quiet.report.prediction.drifted
    assert quiet.metrics is not None and quiet.metrics["window"]["labelled"] == 300
    assert quiet.metrics["window"]["accuracy"] > 0.7

    since = timestamps.now_us()
    log_requests(store, version, tumours(300, 2, shift=3.0), COLUMNS, prefix="moved")
    moved = store.monitoring.run("clf@production", since=since, path=toml)
    assert moved.report.drifted_columns == ["radius"]
    assert moved.report.prediction is not None and moved.report.prediction.drifted
    assert moved.alert is not None and moved.alert.delivered is True
    [posted] = Hook.received
    assert posted["event"] == "trenches.drift" and posted["report_id"] == moved.id
    assert posted["drifted_columns"] == ["radius"] and posted["prediction_drifted"]

    history = store.monitoring.history("clf")
    assert [h.id for h in history] == [moved.id, quiet.id]
    assert history[0].report.drifted_columns == ["radius"]
    assert history[0].alert is not None and history[0].alert.delivered
    assert store.monitoring.get(quiet.id or 0).report.current_rows == 300
    with pytest.raises(NotFound, match="no drift report 999"):
        store.monitoring.get(999)
    assert history[0].report.column("radius").statistic == pytest.approx(
        moved.report.column("radius").statistic
    )


def test_a_dead_webhook_does_not_fail_the_check(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    toml = tmp_path / "trenches.toml"
    toml.write_text(
        f'[monitor]\nwebhook = "{dead_url()}"\nwebhook-retries = 2\nwebhook-backoff = 0.01\n',
        encoding="utf-8",
    )
    log_requests(store, version, tumours(200, 3, shift=3.0), COLUMNS)
    found = store.monitoring.run("clf@production", window="1h", path=toml)
    assert found.drifted and found.alert is not None
    assert found.alert.delivered is False and found.alert.attempts == 3
    assert found.alert.error
    with read(store.engine) as conn:
        stored = conn.execute(select(t.alerts)).one()
    assert stored.delivered is False and stored.attempts == 3 and stored.report_id == found.id


def test_a_file_of_production_inputs_and_the_reference_choices(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    path = tmp_path / "prod.csv"
    tumours(250, 5).to_csv(path, index=False)
    found = store.monitoring.run(version.ref, current=path, reference="validation")
    assert not found.drifted and found.current == "file prod.csv (250 rows)"
    assert found.reference.startswith("validation split of snapshot")
    assert found.metrics is not None and found.metrics["window"]["labelled"] == 250
    with pytest.raises(InvalidInput, match="reference 'yesterday'"):
        store.monitoring.run(version.ref, current=path, reference="yesterday")
    with pytest.raises(InvalidInput, match="not both"):
        store.monitoring.run(version.ref, current=path, window="1h")
    with pytest.raises(InvalidInput, match=r"nothing to compare: 0 requests \(0 rows\)"):
        store.monitoring.run(version.ref, window="1h")
    assert len(store.monitoring.history()) == 1


def test_bad_monitor_settings_name_the_line_and_store_nothing(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    toml = tmp_path / "trenches.toml"
    toml.write_text(
        "[monitor]\nalpha = 0.05\n\n[monitor.columns.radius]\nwasserstien = 0.2\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidConfig, match=r"line 5: monitor\.columns\.radius\.wasserstien"):
        store.monitoring.run("clf@production", window="1h", path=toml)
    toml.write_text("[monitor]\nalpha = 2\n", encoding="utf-8")
    with pytest.raises(InvalidConfig, match=r"line 2: monitor\.alpha: 2 must be between"):
        store.monitoring.run("clf@production", window="1h", path=toml)
    assert store.monitoring.history() == []


def test_outliers_rank_the_strangest_requests_first(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    frame = tumours(200, 6)
    frame.loc[[17, 123], "radius"] = [45.0, -30.0]
    log_requests(store, version, frame, COLUMNS)
    top = store.monitoring.outliers("clf@production", window="1h", top=2)
    assert {(r.request_id, r.row) for r in top.itertuples()} == {("r-15", 2), ("r-120", 3)}
    assert all("radius=" in u and "sd)" in u for u in top["unusual"])


def cli(*args: str) -> tuple[int, str]:
    code, out, err = run_cli(*args)
    return code, out + err


@pytest.mark.sqlite_only
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_exit_status_json_history_and_outliers(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    url = str(store.location.sqlite_path)
    log_requests(store, version, tumours(200, 7), COLUMNS, prefix="a")
    code, out = cli("--store", url, "monitor", "clf@production", "--window", "1h")
    assert code == 0 and "no drift in 3 columns" in out
    since = timestamps.iso(timestamps.now_us())
    assert since is not None
    log_requests(store, version, tumours(200, 8, shift=3.0), COLUMNS, prefix="b")
    code, out = cli(
        "--store", url, "monitor", "drift", "clf@production", "--since", since, "--json"
    )
    assert code == 1
    found = json.loads(out)
    assert found["drifted_columns"] == ["radius"] and found["alert"]["webhook"] is None
    code, out = cli("--store", url, "monitor", "history", "clf")
    assert code == 0 and f"#{found['id']}" in out and "radius" in out
    code, out = cli("--store", url, "monitor", "outliers", "clf@production", "--top", "3", "--json")
    assert code == 0 and len(json.loads(out)) == 3
    code, _ = cli("--store", url, "monitor", "clf@production", "--reference", "nope")
    assert code == 2


TRAINING = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(data):
    model = make_pipeline(StandardScaler(), LogisticRegression())
    return model.fit(data.X, data.y, logisticregression__sample_weight=data.sample_weight)
"""


@pytest.mark.sqlite_only
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_monitor_retrain_runs_a_pass_set_off_by_the_report(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    url = str(store.location.sqlite_path)
    (tmp_path / "train_clf.py").write_text(TRAINING, encoding="utf-8")
    toml = tmp_path / "trenches.toml"
    toml.write_text(
        '[retrain.clf]\ntrain = "train_clf:fit"\nweighting = "exponential"\n'
        '\n[[gates.clf]]\nmetric = "accuracy"\nmin = 0.5\n',
        encoding="utf-8",
    )
    # A mistake in [retrain] stops everything before a report is stored.
    toml.write_text(toml.read_text().replace("train_clf:fit", "train_clf:nope"))
    code, out = cli("--store", url, "monitor", "clf@production", "--retrain", "--config", str(toml))
    assert code == 2 and "nope" in out
    assert store.monitoring.history() == []
    toml.write_text(toml.read_text().replace("train_clf:nope", "train_clf:fit"))
    log_requests(store, version, tumours(200, 9, shift=3.0), COLUMNS)
    code, out = cli(
        "--store", url, "monitor", "clf@production", "--retrain", "--config", str(toml), "--json"
    )
    assert code == 1
    found = json.loads(out)
    assert found["drifted_columns"] == ["radius"]
    assert found["retrain"]["report_id"] == found["id"]
    assert found["retrain"]["candidate"] == "clf@2"
    [stored] = store.monitoring.history("clf")
    assert [r["id"] for r in stored.retrains] == [found["retrain"]["id"]]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_on_drift_watches_and_retrains_in_one_call(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    (tmp_path / "train_clf.py").write_text(TRAINING, encoding="utf-8")
    toml = tmp_path / "trenches.toml"
    toml.write_text(
        '[retrain.clf]\ntrain = "train_clf:fit"\n\n[[gates.clf]]\nmetric = "accuracy"\nmin = 0.5\n',
        encoding="utf-8",
    )
    heard: list[int | None] = []
    with trenches.open(store.location.sqlite_path, settings=toml) as watched:
        log_requests(watched, version, tumours(200, 8), COLUMNS, prefix="a")
        calm = watched.retrains.on_drift("clf@production", on_report=lambda r: heard.append(r.id))
        assert not calm.report.drifted and calm.retrain is None
        since = timestamps.iso(timestamps.now_us())
        log_requests(watched, version, tumours(200, 9, shift=3.0), COLUMNS, prefix="b")
        moved = watched.retrains.on_drift(
            "clf@production", since=since, on_report=lambda r: heard.append(r.id)
        )
    assert moved.report.drifted and moved.retrain is not None
    assert moved.retrain.report_id == moved.report.id
    assert heard == [calm.report.id, moved.report.id]
    assert [r.id for r in store.retrains.history("clf")] == [moved.retrain.id]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 1000), min_size=2, max_size=12).flatmap(
        lambda a: st.tuples(
            st.just(a), st.lists(st.integers(0, 1000), min_size=len(a), max_size=len(a))
        )
    )
)
def test_jensen_shannon_equals_scipy(pair: tuple[list[int], list[int]]) -> None:
    a, b = np.array(pair[0]), np.array(pair[1])
    if a.sum() == 0 or b.sum() == 0:
        assert stats.jensen_shannon(a, b) == 0.0
        return
    assert stats.jensen_shannon(a, b) == pytest.approx(jensenshannon(a, b), abs=1e-7)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(2, 80))
    value = st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False))
    numbers = draw(st.lists(value, min_size=n, max_size=n))
    words = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n))
    return pd.DataFrame(
        {"x": pd.Series(numbers, dtype="float64"), "c": pd.Series(words, dtype=object)}
    )


@settings(max_examples=60, deadline=None)
@given(frames(), st.randoms(use_true_random=False))
def test_a_sample_against_itself_or_reordered_does_not_drift(frame: pd.DataFrame, rnd: Any) -> None:
    same = drift(frame, frame)
    assert same.drifted_columns == []
    order = list(range(len(frame)))
    rnd.shuffle(order)
    shuffled = drift(frame, frame.iloc[order].reset_index(drop=True))
    assert shuffled.drifted_columns == []
    for a, b in zip(same.columns, shuffled.columns, strict=True):
        assert (a.test, a.psi, a.missing_current) == (b.test, b.psi, b.missing_current)
        assert a.statistic == b.statistic or (np.isnan(a.statistic) and np.isnan(b.statistic))
