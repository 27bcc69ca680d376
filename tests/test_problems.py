"""The problem database: problems, patterns, backfill and scores."""

from __future__ import annotations

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
from trenches.db import schema as t
from trenches.errors import Conflict, InvalidInput, NotFound

from conftest import noisy_corner, run_cli


@pytest.fixture
def three_versions(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    for c in (0.001, 0.01, 1.0):
        with store.run(f"c={c}", snapshot=snap, capture_code=False) as run:
            # Scaled, so lbfgs converges in a few iterations (unscaled it ran to 5,000).
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c))
            run.log_model(model.fit(X, y), "clf")
    return ds


def _prediction_count(store: trenches.Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(t.prediction_blocks.c.n), 0))).scalar_one()
        )


def test_a_new_problem_is_backfilled_over_every_version_once(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    from trenches.patterns.sets import split

    validation = split(three_versions, "validation").ids
    for v in (1, 2, 3):
        store.predict(f"clf@{v}", validation)
    before = _prediction_count(store)
    train = split(three_versions, "train").ids
    store.problems.create("hard", dataset="cancer", title="Hard cases")
    result = store.problems.add("hard", positive=train[:8], negative=train[8:12])
    assert (result.added, result.predicted, result.versions) == (12, 36, 3)
    assert _prediction_count(store) == before + 36
    # Patterns the versions predicted already are not predicted again.
    store.problems.create("known", dataset="cancer", title="Validation cases")
    again = store.problems.add("known", positive=validation[:5])
    assert again.predicted == 0 and _prediction_count(store) == before + 36


def test_scores_are_shares_of_positive_and_negative_patterns_right(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    frame = three_versions.patterns()
    ids = frame.index.to_numpy()
    pos, neg = ids[:10], ids[10:15]
    store.problems.create("p", dataset="cancer", title="Some patterns")
    store.problems.add("p", positive=pos, negative=neg)
    scores = store.problems.scores("p")
    assert [s.predictor for s in scores] == ["clf@1", "clf@2", "clf@3"]
    for s in scores:
        model = store.models.load(s.predictor)
        right = model.predict(frame.drop(columns="target")) == frame["target"].to_numpy()
        assert s.positive_right == int(right[:10].sum()) and s.positive_total == 10
        assert s.negative_right == int(right[10:15].sum()) and s.negative_total == 5
        assert s.score == pytest.approx(right[:15].mean())


def test_no_backfill_defers_to_backfill(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    ids = three_versions.pattern_info().index.to_numpy()
    store.problems.create("later", dataset="cancer", title="Later")
    result = store.problems.add("later", positive=ids[:4], backfill=False)
    assert result.predicted == 0
    assert all(s.missing == 4 for s in store.problems.scores("later"))
    done = store.problems.backfill()
    assert (done.computed, done.versions, done.skipped) == (12, 3, ())
    again = store.problems.backfill()
    assert (again.computed, again.versions) == (0, 3)
    assert all(s.missing == 0 for s in store.problems.scores("later"))


def test_bad_additions_are_refused_whole(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    store.problems.create("x", dataset="cancer", title="X")
    with pytest.raises(InvalidInput, match="both positive and negative"):
        store.problems.add("x", positive=[1, 2], negative=[2])
    with pytest.raises(NotFound, match="no pattern 99999"):
        store.problems.add("x", positive=[1, 99999])
    assert store.problems.get("x").patterns() == ()
    store.problems.add("x", positive=[1], backfill=False)
    with pytest.raises(Conflict, match="positive pattern"):
        store.problems.add("x", negative=[1], backfill=False)
    with pytest.raises(Conflict, match="exists"):
        store.problems.create("x", dataset="cancer", title="again")
    with pytest.raises(InvalidInput, match="slug"):
        store.problems.create("Bad Slug", dataset="cancer", title="t")


def test_closing_keeps_the_problem(store: trenches.Store, three_versions: trenches.Dataset) -> None:
    store.problems.create("done", dataset="cancer", title="Done", severity="high")
    store.problems.add("done", positive=[1, 2], backfill=False)
    closed = store.problems.close("done", reason="fixed in clf@3")
    assert closed.status == "closed" and closed.close_reason == "fixed in clf@3"
    assert closed.positive == (1, 2)
    assert [p.slug for p in store.problems.list(status="open")] == []
    with pytest.raises(Conflict, match="closed already"):
        store.problems.close("done", reason="again")
    assert store.problems.scores("done")[0].missing == 2


def test_a_tester_adds_new_inputs_from_a_file(
    store: trenches.Store, three_versions: trenches.Dataset, tmp_path: Path
) -> None:
    frame = three_versions.patterns().iloc[:5].copy()
    frame["polarity"] = ["positive", "positive", "positive", "negative", "negative"]
    path = tmp_path / "new-cases.csv"
    frame.to_csv(path, index=False)
    store.problems.create("edge", dataset="cancer", title="Edge cases")
    result = store.problems.add_from_file("edge", path, source="production")
    assert (result.added, result.predicted, result.versions) == (5, 15, 3)
    problem = store.problems.get("edge")
    assert len(problem.positive) == 3 and len(problem.negative) == 2
    info = three_versions.pattern_info()
    assert set(info.loc[list(problem.patterns()), "source"]) == {"production"}


def test_the_same_file_added_twice_says_its_rows_were_there(
    store: trenches.Store, three_versions: trenches.Dataset, tmp_path: Path
) -> None:
    frame = three_versions.patterns().iloc[:4].copy()
    path = tmp_path / "new-cases.csv"
    frame.to_csv(path, index=False)
    store.problems.create("edge", dataset="cancer", title="Edge cases")
    first = store.problems.add_from_file("edge", path, source="production", backfill=False)
    assert first.already_stored == 0
    where = store.location.db_url
    code, _, err = run_cli(
        "--store",
        where,
        "problems",
        "add",
        "edge",
        "--from-file",
        path,
        "--source",
        "production",
        "--no-backfill",
    )
    assert code == 0, err
    assert "4 of the file's rows were in the dataset already" in " ".join(err.split())


def test_a_bad_polarity_in_the_file_stores_nothing(
    store: trenches.Store, three_versions: trenches.Dataset, tmp_path: Path
) -> None:
    frame = three_versions.patterns().iloc[:2].copy()
    frame["polarity"] = ["positive", "sideways"]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    store.problems.create("edge", dataset="cancer", title="Edge cases")
    before = len(three_versions.pattern_info())
    with pytest.raises(InvalidInput, match="sideways") as err:
        store.problems.add_from_file("edge", path)
    assert (err.value.row, err.value.field) == (2, "polarity")
    assert len(three_versions.pattern_info()) == before


# --- held out: what a version did not train on -------------------------------------------


def test_a_memorising_model_scores_high_on_all_and_at_chance_held_out(
    store: trenches.Store,
) -> None:
    ds, corner = noisy_corner(store)
    info = ds.pattern_info()
    training = sorted(i for i in corner if info.loc[i, "split"] == "train")
    assert 0 < len(training) < len(corner)
    store.problems.create("corner", dataset="noisy", title="The noisy corner")
    result = store.problems.add("corner", positive=corner)
    # problems add names the patterns a version may have trained on.
    assert list(result.training) == training

    (score,) = store.problems.scores("corner")
    assert score.trained_on == len(training) and set(score.trained_ids or ()) == set(training)
    # Every training pattern is right by heart ...
    assert set(training) <= set(score.right_ids)
    # ... the others only by luck: the held-out score is its skill, measured directly.
    frame = ds.patterns(ids=corner)
    held = [i for i in corner if i not in training]
    said = store.models.load("tree@1").predict(frame.loc[held, ["x1", "x2"]])
    skill = float((said == frame.loc[held, "label"].to_numpy()).mean())
    assert score.held_out_total == len(held)
    assert score.held_out_score == pytest.approx(skill)
    assert score.score > 0.75 and score.held_out_score < 0.65

    # The report's table says the same.
    table = store.problems.history("noisy")
    row = table.iloc[0]
    assert row["trained_on"] == len(training) and row["held_out_score"] == pytest.approx(skill)


def test_a_new_snapshot_holds_out_open_problems_and_copies_of_their_inputs(
    store: trenches.Store,
) -> None:
    ds, corner = noisy_corner(store)
    before = ds.snapshots()[0]
    trained_before = before.training_data().pattern_ids
    store.problems.create("corner", dataset="noisy", title="The noisy corner")
    store.problems.add("corner", positive=corner[:12])
    # A copy of a problem pattern's inputs, imported later (not in the problem).
    copy = ds.patterns(ids=[corner[0]])
    imported = ds.add(copy, source="crowd")

    snap = ds.snapshot()
    assert snap.held_out == tuple(sorted(corner[:12]))
    data = snap.training_data(None)
    assert not set(data.pattern_ids) & {*corner[:12], imported.first_id}
    assert snap.verify()
    # An older snapshot trains on what it always did: nothing held out after the fact.
    assert (before.training_data().pattern_ids == trained_before).all()
    assert before.held_out == ()

    # A version fitted on the new snapshot trained on none of the problem's patterns.
    from sklearn.tree import DecisionTreeClassifier

    X, y, _, _ = snap.training_data("train")
    with store.run("fresh", snapshot=snap, capture_code=False) as run:
        run.log_model(DecisionTreeClassifier(random_state=0).fit(X, y), "tree")
    assert store.problems.scores("corner")[-1].missing == 12
    store.problems.backfill()
    fresh = store.problems.scores("corner")[-1]
    assert fresh.predictor == "tree@2" and fresh.trained_on == 0
    assert fresh.held_out_score == fresh.score

    # Trainable, or closed: new snapshots train on it; the digest says they differ.
    store.problems.edit("corner", trainable=True)
    open_again = ds.snapshot()
    assert open_again.held_out == () and open_again.digest != snap.digest
    store.problems.edit("corner", trainable=False)
    assert ds.snapshot().digest == snap.digest
    store.problems.close("corner", reason="fixed")
    assert ds.snapshot().held_out == ()


def test_a_problem_pattern_added_later_counts_as_trained_on_when_it_copies_a_training_input(
    store: trenches.Store, tmp_path: Path
) -> None:
    ds, corner = noisy_corner(store)
    info = ds.pattern_info()
    seen = next(i for i in corner if info.loc[i, "split"] == "train")
    path = tmp_path / "case.csv"
    ds.patterns(ids=[seen]).to_csv(path, index=False)
    store.problems.create("copies", dataset="noisy", title="Copies")
    result = store.problems.add_from_file("copies", path, source="production")
    (score,) = store.problems.scores("copies")
    assert result.training == (score.right_ids + score.wrong_ids)
    assert score.trained_on == 1 and score.held_out_total == 0


def test_problems_add_warns_about_training_patterns(store: trenches.Store) -> None:
    _, corner = noisy_corner(store)
    at = ("--store", store.location.db_url)
    assert (
        run_cli(*at, "problems", "create", "corner", "--dataset", "noisy", "--title", "C")[0] == 0
    )
    ids = ",".join(map(str, corner))
    code, out, err = run_cli(*at, "problems", "add", "corner", "--positive", ids)
    assert code == 0 and "added" in out
    assert "in the train split" in err and "held-out score" in err
    code, out, _ = run_cli(*at, "problems", "show", "corner")
    assert code == 0 and "held out" in out and "trained on" in out


# --- regression: right within a tolerance ------------------------------------------------

DIABETES_SALT = "64696162657465732d746573742d3031"


@pytest.fixture
def diabetes(store: trenches.Store) -> trenches.Dataset:
    """scikit-learn's diabetes data, right within 25 of the label; diab@1 and diab@2 are
    the same linear model, diab@3 predicts the mean."""
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    ds = store.datasets.create(
        "diabetes", task="regression", label="target", salt=DIABETES_SALT, tolerance="25"
    )
    ds.add(load_diabetes(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    for model in (LinearRegression(), LinearRegression(), DummyRegressor()):
        with store.run("fit", snapshot=snap, capture_code=False) as run:
            run.log_model(model.fit(X, y), "diab")
    return ds


def test_a_regression_dataset_end_to_end(store: trenches.Store, diabetes: trenches.Dataset) -> None:
    import numpy as np
    from scipy.stats import wilcoxon

    from trenches.patterns.sets import split
    from trenches.verdicts import Tolerance

    validation = split(diabetes, "validation").ids
    frame = diabetes.patterns(ids=validation.tolist())
    severe = frame.index[frame["target"] > 200][:10].tolist()
    mild = frame.index[frame["target"] < 100][:5].tolist()
    store.problems.create("severe", dataset="diabetes", title="Misjudges severe progression")
    store.problems.add("severe", positive=severe, negative=mild)

    # Problem scores: right within 25 of the label, as worked out directly.
    inputs = frame.drop(columns="target")
    errors = {
        v: np.abs(store.models.load(f"diab@{v}").predict(inputs) - frame["target"].to_numpy())
        for v in (1, 3)
    }
    right1 = pd.Series(errors[1] <= 25, index=frame.index)
    scores = {s.predictor: s for s in store.problems.scores("severe")}
    assert scores["diab@1"].right == int(right1[severe + mild].sum())
    assert scores["diab@1"].score > 0, "a regression version is right within its tolerance"
    assert scores["diab@1"].tolerance == Tolerance(absolute=25.0)
    assert scores["diab@1"].score == scores["diab@2"].score

    # compare: Wilcoxon on the absolute errors, exactly SciPy's; flips by the tolerance.
    for v in (1, 3):
        store.predict(f"diab@{v}", validation)
    result = store.compare("diab@1", "diab@3")
    assert result.overall.test == "wilcoxon" and result.overall.size == len(validation)
    assert result.overall.p_value == pytest.approx(wilcoxon(errors[1], errors[3]).pvalue, rel=1e-12)
    right3 = errors[3] <= 25
    assert set(result.broken) == set(frame.index[right1.to_numpy() & ~right3])
    assert set(result.fixed) == set(frame.index[~right1.to_numpy() & right3])
    assert result.problems["severe"].tolerance == Tolerance(absolute=25.0)

    # Gates: nothing production gets right may break (passes for its twin, fails for the
    # mean), and a share right.
    store.models.promote("diab@1", "production", reason="first")
    Path("trenches.toml").write_text(
        '[[gates.diab]]\nproblems = "open"\nno-break = "production"\n\n'
        '[[gates.diab]]\nproblems = "severe"\nmin-score = 0.2\n\n'
        '[[gates.diab]]\nmetric = "mae"\nvs = "production"\ntolerance = 100\n'
        "significance = 0.05\n",
        encoding="utf-8",
    )
    twin = store.gates.check("diab@2")
    # Identical errors: nothing breaks, and no difference can be significant.
    assert [r.status for r in twin.results] == ["pass", "pass", "fail"]
    assert "Wilcoxon p = 1 (not significant)" in twin.results[2].detail
    assert twin.results[0].tolerance == "±25" and twin.results[0].figure == 0
    mean = store.gates.check("diab@3")
    p = wilcoxon(errors[1], errors[3]).pvalue
    assert f"Wilcoxon p = {p:.4g}" in mean.results[2].detail
    no_break = mean.results[0]
    assert no_break.status == "fail"
    broken = [i for i in severe + mild if right1[i] and errors[3][frame.index.get_loc(i)] > 25]
    assert broken and no_break.figure == len(broken)
    assert all(str(i) in no_break.detail for i in broken)
    # The check stored the tolerance with its figures.
    stored = store.gates.latest("diab@3")
    assert stored is not None and stored.results[0].tolerance == "±25"

    # A problem's own tolerance overrides the dataset's.
    store.problems.edit("severe", tolerance="5")
    tight = {s.predictor: s for s in store.problems.scores("severe")}["diab@1"]
    assert tight.tolerance == Tolerance(absolute=5.0)
    assert tight.right == int((errors[1] <= 5)[frame.index.get_indexer(severe + mild)].sum())
    assert tight.right <= scores["diab@1"].right


def test_regression_without_a_tolerance_says_so_instead_of_scoring_zero(
    store: trenches.Store, diabetes: trenches.Dataset
) -> None:

    diabetes.set_tolerance(None)
    ids = diabetes.pattern_info().index[:6].tolist()
    store.problems.create("some", dataset="diabetes", title="Some")
    store.problems.add("some", positive=ids)
    score = store.problems.scores("some")[0]
    assert score.undefined is not None and "without a tolerance" in score.undefined
    assert score.score != score.score  # NaN: not a flat line at zero
    result = store.compare("diab@1", "diab@3", problem="some")
    assert result.overall.fixed == () and result.overall.undefined is not None
    assert result.overall.test == "wilcoxon"
    code, _, err = run_cli("--store", store.location.db_url, "problems", "show", "some")
    assert code == 0 and "without a tolerance" in err
    with pytest.raises(InvalidInput, match="is not a number"):
        store.problems.create("x", dataset="diabetes", title="x", tolerance="bad")


def test_a_classification_dataset_refuses_a_tolerance(store: trenches.Store) -> None:
    with pytest.raises(InvalidInput, match="regression only"):
        store.datasets.create("c", task="classification", label="y", tolerance="5")
    ds = store.datasets.create("c", task="classification", label="y")
    with pytest.raises(InvalidInput, match="regression only"):
        ds.set_tolerance("10%")
    code, _, err = run_cli("--store", store.location.db_url, "data", "tolerance", "c", "5")
    assert code == 2 and "regression only" in err


def test_what_a_snapshot_trained_on_is_remembered_and_stays_true(
    store: trenches.Store,
) -> None:
    ds, corner = noisy_corner(store)
    snap = ds.snapshots()[-1]
    ids = np.asarray(sorted(corner), dtype=np.int64)
    fresh = snap.trained_on(ids)
    first = store.snapshots.trained_on(snap.id, ids)
    assert first.tolist() == fresh.tolist() and 0 < first.sum() < len(ids)
    first[:] = False  # the caller's copy: the remembered answer is not touched
    # Later changes to the data do not change what an earlier snapshot trained on.
    pid = int(ids[fresh.argmax()])
    other = "b" if ds.patterns(ids=[pid])["label"].iloc[0] == "a" else "a"
    store.patterns.relabel(pid, other, source="expert", reason="a second look")
    store.patterns.deactivate([int(ids[-1])], reason="a duplicate")
    again = store.snapshots.trained_on(snap.id, ids)
    assert again.tolist() == fresh.tolist() == snap.trained_on(ids).tolist()
