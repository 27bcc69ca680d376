"""The backfill: every version predicts every validation, test and problem pattern of
its dataset once; a second backfill computes nothing; patterns added later are filled
for every version; a version that cannot be loaded is skipped with why while the others
are done (and the commands exit 1); the retraining pass backfills older versions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import func, select

import trenches
from trenches import predictions as store_of
from trenches.backfill import BackfillResult, SkippedVersion
from trenches.db import schema as t
from trenches.patterns.sets import split

from conftest import run_cli

#: A fixed split salt: the same splits on every run.
SALT = "6261636b66696c6c2d74657374732d31"


class ThresholdRule:
    """Not a scikit-learn model: it is saved as a pickle, which loads only when trusted."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X["mean radius"] < 15).astype(int).to_numpy()


def cancer(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    return ds


@pytest.fixture
def three_versions(store: trenches.Store) -> trenches.Dataset:
    """cancer, three versions of clf trained in runs (none has predicted anything), and
    a problem of four train patterns."""
    ds = cancer(store)
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    for c in (0.01, 0.1, 1.0):
        with store.run(f"c={c}", snapshot=snap, capture_code=False) as run:
            run.log_model(make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, y), "clf")
    train = split(ds, "train").ids
    store.problems.create("hard", dataset="cancer", title="Hard cases")
    store.problems.add("hard", positive=train[:3], negative=train[3:4], backfill=False)
    return ds


def measured_on(store: trenches.Store, ds: trenches.Dataset) -> np.ndarray:
    """The validation, test and problem patterns of ``ds``."""
    validation = split(ds, "validation").ids
    test = split(ds, "test").ids
    problems = [i for p in store.problems.list(dataset=ds.name) for i in p.patterns()]
    return np.union1d(np.union1d(validation, test), np.asarray(problems, dtype=np.int64))


def predicted(store: trenches.Store, ref: str) -> np.ndarray:
    with store.engine.connect() as conn:
        return store_of.predicted_ids(conn, store.predictors.resolve(ref).id)


def prediction_count(store: trenches.Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(t.prediction_blocks.c.n), 0))).scalar_one()
        )


def register_rule(store: trenches.Store, ds: trenches.Dataset) -> trenches.ModelVersion:
    X = ds.patterns().drop(columns="target").iloc[:50]
    version = store.models.register(ThresholdRule(), "rule", X=X, dataset=ds.name)
    assert version.formats == ("pickle",)
    return version


# --- the Python API ----------------------------------------------------------------------


def test_one_backfill_predicts_every_version_on_validation_test_and_problems(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    wanted = measured_on(store, three_versions)
    told: list[int] = []
    total = sum(g.missing for g in store.backfill.gaps())

    result = store.backfill(progress=told.append)

    assert total == 3 * len(wanted) == result.computed == result.missing == sum(told)
    assert result.versions == 3 and result.skipped == ()
    assert [(v.ref, v.patterns, v.missing, v.computed) for v in result.per_version] == [
        (f"clf@{n}", len(wanted), len(wanted), len(wanted)) for n in (1, 2, 3)
    ]
    for n in (1, 2, 3):
        assert np.array_equal(predicted(store, f"clf@{n}"), wanted)
    # Not the train split: no version is measured on it.
    train = split(three_versions, "train").ids
    problem = set(store.problems.get("hard").patterns())
    assert not set(predicted(store, "clf@1")) & (set(train.tolist()) - problem)


def test_a_second_backfill_computes_nothing(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    store.backfill()
    before = prediction_count(store)

    again = store.backfill()

    assert (again.computed, again.missing, again.versions) == (0, 0, 3)
    assert all(g.missing == 0 for g in store.backfill.gaps())
    assert prediction_count(store) == before


def test_the_store_backfills_a_dataset_in_one_call_and_again_computes_nothing(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    wanted = measured_on(store, three_versions)

    first = store.backfill(dataset="cancer")
    again = store.backfill(dataset="cancer")

    assert (first.computed, first.versions) == (3 * len(wanted), 3)
    assert (again.computed, again.missing) == (0, 0)
    for n in (1, 2, 3):
        assert np.array_equal(predicted(store, f"clf@{n}"), wanted)


def test_validation_patterns_added_later_are_filled_for_every_version(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    store.backfill()
    validation_before = split(three_versions, "validation").ids
    more = load_breast_cancer(as_frame=True).frame.iloc[:120].copy()
    more["mean radius"] *= 1.01  # new inputs, so new patterns (in any split)
    three_versions.add(more, source="expert", created_at="2026-02-01")
    validation = split(three_versions, "validation").ids
    assert len(validation) > len(validation_before)
    new = np.setdiff1d(measured_on(store, three_versions), predicted(store, "clf@1"))

    result = store.backfill(dataset="cancer")

    assert result.computed == 3 * len(new) and result.skipped == ()
    for n in (1, 2, 3):
        assert set(validation) <= set(predicted(store, f"clf@{n}"))


def test_a_pickled_version_is_skipped_with_its_reason_and_the_others_done(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    register_rule(store, three_versions)
    wanted = measured_on(store, three_versions)

    result = store.backfill()

    assert result.computed == 3 * len(wanted) and result.versions == 4
    (skipped,) = result.skipped
    assert skipped.ref == "rule@1"
    assert "stored as a pickle" in skipped.reason and "trusted=True" in skipped.reason
    assert "\n" not in skipped.reason
    assert [v.skipped for v in result.per_version] == [False, False, False, True]
    for n in (1, 2, 3):
        assert np.array_equal(predicted(store, f"clf@{n}"), wanted)

    trusted = store.backfill(trusted=True)

    assert (trusted.computed, trusted.skipped) == (len(wanted), ())
    assert np.array_equal(predicted(store, "rule@1"), wanted)


def test_a_version_whose_input_the_dataset_lacks_is_skipped(
    sqlite_store: trenches.Store,
) -> None:
    store = sqlite_store
    ds = cancer(store)
    X = pd.DataFrame({"shoe size": np.arange(20.0)})
    y = np.arange(20) % 2
    store.models.register(LogisticRegression().fit(X, y), "odd", X=X, dataset="cancer")

    result = store.backfill()

    assert result.skipped == (
        SkippedVersion(
            "odd@1",
            "column \"shoe size\": odd@1 takes the input 'shoe size', which dataset "
            "'cancer' does not have",
        ),
    )
    assert (result.computed, result.missing) == (0, len(measured_on(store, ds)))


def test_problems_backfill_does_the_problem_patterns_only(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    result = store.problems.backfill()

    assert isinstance(result, BackfillResult)
    assert (result.computed, result.versions) == (12, 3)
    assert store.problems.backfill().computed == 0


def test_adding_problem_patterns_skips_a_pickled_version_and_stores_them(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    register_rule(store, three_versions)
    train = split(three_versions, "train").ids
    store.problems.create("more", dataset="cancer", title="More")

    result = store.problems.add("more", positive=train[10:14])

    assert result.added == 4 and result.predicted == 12 and result.versions == 4
    (skipped,) = result.skipped
    assert skipped.ref == "rule@1" and "trusted=True" in skipped.reason
    assert store.problems.get("more").positive == tuple(sorted(train[10:14].tolist()))

    trusted = store.problems.add("more", positive=train[14:16], trusted=True)
    assert trusted.skipped == () and trusted.predicted == 4 * 2


# --- the commands ------------------------------------------------------------------------


def test_the_command_names_a_skipped_version_exits_1_and_trusted_predicts_it(
    store: trenches.Store, store_url: str, three_versions: trenches.Dataset
) -> None:
    register_rule(store, three_versions)
    wanted = measured_on(store, three_versions)

    code, out, err = run_cli("--store", store_url, "backfill")

    assert code == 1, err
    assert f"{3 * len(wanted)} new predictions" in out and "4 versions visited" in out
    assert "skipped rule@1: this model is stored as a pickle" in " ".join(err.split())
    assert "1 version was skipped" in err
    assert np.array_equal(predicted(store, "clf@3"), wanted)

    code, out, err = run_cli("--store", store_url, "backfill", "--trusted", "-d", "cancer")

    assert code == 0, err
    assert f"{len(wanted)} new predictions" in out and "skipped" not in err
    assert np.array_equal(predicted(store, "rule@1"), wanted)

    code, out, err = run_cli("--store", store_url, "backfill")
    assert code == 0 and "nothing to backfill" in err and out == ""


def test_the_command_says_what_it_did_as_json(
    store: trenches.Store, store_url: str, three_versions: trenches.Dataset
) -> None:
    import json

    register_rule(store, three_versions)
    code, out, _ = run_cli("--store", store_url, "backfill", "--json")
    done = json.loads(out)
    assert code == 1
    assert done["versions"] == 4 and done["skipped"][0]["ref"] == "rule@1"
    assert [v["skipped"] for v in done["per_version"]] == [False, False, False, True]


def test_problems_add_stores_the_patterns_names_the_skipped_version_and_exits_1(
    store: trenches.Store, store_url: str, three_versions: trenches.Dataset
) -> None:
    register_rule(store, three_versions)
    train = split(three_versions, "train").ids
    store.problems.create("more", dataset="cancer", title="More")
    ids = ",".join(str(i) for i in train[20:23])

    code, out, err = run_cli("--store", store_url, "problems", "add", "more", "-p", ids)

    assert code == 1
    assert "added 3 patterns to more; 9 new predictions from 4 versions" in out
    assert "skipped rule@1:" in err and "1 version was skipped" in err
    assert len(store.problems.get("more").positive) == 3

    ids = ",".join(str(i) for i in train[23:25])
    code, out, err = run_cli(
        "--store", store_url, "problems", "add", "more", "-p", ids, "--trusted"
    )
    assert code == 0, err
    assert "8 new predictions from 4 versions" in out


def test_the_help_of_both_commands_says_trusted_and_gives_an_example() -> None:
    code, out, _ = run_cli("backfill", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--trusted" in text and "trenches backfill --dataset cancer" in text
    assert "validation and test" in text and "exits 1" in text
    code, out, _ = run_cli("problems", "add", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--trusted" in text and "--positive 12 --trusted" in text


# --- the retraining pass -----------------------------------------------------------------

TRAINING = """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(data):
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(data.X, data.y)
"""


def test_the_retraining_pass_backfills_every_older_version(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    store.models.promote("clf@3", "production", reason="first")
    register_rule(store, three_versions)
    Path("training.py").write_text(textwrap.dedent(TRAINING), encoding="utf-8")
    Path("trenches.toml").write_text(
        '[retrain.clf]\ntrain = "training:fit"\n\n[[gates.clf]]\nmetric = "accuracy"\nmin = 0.5\n',
        encoding="utf-8",
    )
    steps: list[str] = []

    result = store.retrains.run("clf", progress=lambda s: steps.append(f"{s.name}: {s.message}"))

    assert result.status in ("promoted", "candidate") and result.candidate == "clf@4"
    wanted = measured_on(store, three_versions)
    for n in (1, 2, 3, 4):
        assert np.array_equal(predicted(store, f"clf@{n}"), wanted)
    done = result.details["backfill"]
    assert done["versions"] == 5
    assert [s["ref"] for s in done["skipped"]] == ["rule@1"]
    assert {v["ref"]: v["computed"] > 0 for v in done["per_version"]} == {
        "clf@1": True,
        "clf@2": True,
        "clf@3": True,  # production: its test patterns
        "rule@1": False,
        "clf@4": True,  # the candidate: its test patterns
    }
    said = [s for s in steps if s.startswith("backfill: ")]
    assert said[0].startswith("backfill: backfill of cancer: ") and "1 skipped" in said[0]
    assert said[1].startswith("backfill: skipped rule@1: this model is stored as a pickle")
