"""Sign-off gates: each kind passes and fails on constructed cases, the CLI's exit
statuses, JUnit and Markdown outputs, and promotion after a failed check."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junitparser import Failure, JUnitXml, Skipped
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import trenches
from trenches.patterns.sets import PatternSet, split
from trenches.settings import load

from conftest import run_cli as run

#: A fixed split salt: the same splits, and so the same fitted models, on every run
#: (a random salt once let the strong model be 100% right on validation).
SALT = "67617465732d74657374732d30303031"


@pytest.fixture
def versions(store: trenches.Store) -> trenches.Dataset:
    """Breast cancer; clf@1 is weak (a decision stump), clf@2 strong, clf@3 the same
    model as clf@2 (identical predictions). Every pattern is predicted by all three."""
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    X, y, _, _ = ds.snapshot().training_data("train")
    strong = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    for model in (DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y), strong, strong):
        store.models.register(model, "clf", X=X.iloc[:100], dataset="cancer")
    ids = split(ds, "all").ids
    for ref in ("clf@1", "clf@2", "clf@3"):
        store.predict(ref, ids)
    return ds


def gates(*tables: str) -> Path:
    """Write trenches.toml here with one [[gates.clf]] per table body."""
    text = "".join(f"[[gates.clf]]\n{textwrap.dedent(t).strip()}\n\n" for t in tables)
    path = Path("trenches.toml")
    path.write_text(text, encoding="utf-8")
    return path


def right(store: trenches.Store, ref: str, ds: trenches.Dataset) -> pd.Series:
    from trenches import predictions
    from trenches.db.engine import read

    with read(store.engine) as conn:
        found = predictions.read(conn, store.predictors.resolve(ref).id)
    assert found.correct is not None
    return pd.Series(found.correct, index=found.pattern_ids)


def statuses(check: Any) -> list[str]:
    return [r.status for r in check.results]


# --- absolute gates --------------------------------------------------------------------


def test_an_absolute_gate_passes_and_fails_on_its_bound(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    chosen = split(versions, "validation")
    name, ids = chosen.name, chosen.ids
    accuracy = float(right(store, "clf@2", versions).loc[ids].mean())
    gates(
        f'metric = "accuracy"\nmin = {accuracy - 0.001}',
        f'metric = "accuracy"\nmin = {accuracy + 0.001}',
        'metric = "log_loss"\nmax = 5.0',
        'metric = "recall[1]"\non = "test"\nmin = 0.0',
    )
    check = store.gates.check("clf@2")
    assert statuses(check) == ["pass", "fail", "pass", "pass"]
    assert not check.passed
    first = check.results[0]
    assert first.figure == pytest.approx(accuracy)
    assert first.pattern_set == name and first.size == len(ids)
    assert check.results[3].pattern_set == "cancer:test"


def test_a_class_that_does_not_occur_fails_the_gate_and_says_why(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    gates('metric = "recall[malignant]"\nmin = 0.9')
    check = store.gates.check("clf@2")
    assert statuses(check) == ["fail"]
    assert "class 'malignant' does not occur" in check.results[0].detail
    assert "0, 1" in check.results[0].detail


# --- problem gates ----------------------------------------------------------------------


def test_a_problem_gate_scores_each_open_problem(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    r2 = right(store, "clf@2", versions)
    good, bad = r2.index[r2.to_numpy()], r2.index[~r2.to_numpy()]
    assert len(bad) >= 3
    store.problems.create("easy", dataset="cancer", title="clear cases")
    store.problems.add("easy", positive=good[:10].tolist(), negative=good[10:13].tolist())
    store.problems.create("hard", dataset="cancer", title="confusing cases")
    store.problems.add("hard", positive=bad[:3].tolist(), negative=good[20:23].tolist())
    store.problems.create("closed", dataset="cancer", title="fixed long ago")
    store.problems.add("closed", positive=bad[:3].tolist())
    store.problems.close("closed", reason="won't fix")
    gates(
        'problems = "open"\nmin-score = 0.9',
        'problems = ["hard"]\npatterns = "negative"\nmin-score = 1.0',
    )
    check = store.gates.check("clf@2")
    by_set = {r.pattern_set: r for r in check.results}
    assert set(by_set) == {"problem:easy", "problem:hard", "problem:hard (negative)"}
    assert by_set["problem:easy"].status == "pass" and by_set["problem:easy"].figure == 1.0
    assert by_set["problem:hard"].status == "fail"
    assert by_set["problem:hard"].figure == pytest.approx(0.5)
    for i in bad[:3]:
        assert str(i) in by_set["problem:hard"].detail
    assert by_set["problem:hard (negative)"].status == "pass"


def test_no_break_fails_on_exactly_the_patterns_production_got_right(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    r1, r2 = right(store, "clf@1", versions), right(store, "clf@2", versions)
    broken = r1.index[r1.to_numpy() & ~r2.to_numpy()]
    steady = r1.index[r1.to_numpy() & r2.to_numpy()]
    assert len(broken) >= 1, "the weak model must get something right the strong one misses"
    store.problems.create("regressions", dataset="cancer", title="what the old model knew")
    store.problems.add(
        "regressions", positive=broken[:5].tolist() + steady[:5].tolist(), backfill=True
    )
    store.problems.create("steady", dataset="cancer", title="always right")
    store.problems.add("steady", positive=steady[5:15].tolist())
    gates('problems = "open"\nno-break = "production"')

    # No production version yet: nothing can break, and the table says so.
    check = store.gates.check("clf@2")
    assert statuses(check) == ["skip", "skip"] and check.passed
    assert "no production version yet" in check.results[0].detail

    store.models.promote("clf@1", "production", reason="first")
    check = store.gates.check("clf@2")
    by_set = {r.pattern_set: r for r in check.results}
    assert by_set["problem:regressions"].status == "fail"
    assert by_set["problem:regressions"].figure == len(broken[:5])
    for i in broken[:5]:
        assert str(i) in by_set["problem:regressions"].detail
    assert by_set["problem:steady"].status == "pass"
    assert by_set["problem:steady"].figure == 0


# --- relative gates ---------------------------------------------------------------------


def test_no_worse_than_production_by_more_than_a_tolerance(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    ids = split(versions, "validation").ids
    a1 = float(right(store, "clf@1", versions).loc[ids].mean())
    a2 = float(right(store, "clf@2", versions).loc[ids].mean())
    assert a2 > a1 + 0.02
    store.models.promote("clf@2", "production", reason="strong")
    gates('metric = "accuracy"\nvs = "production"\ntolerance = 0.01')
    assert store.gates.check("clf@3").passed  # the same model: no worse
    weak = store.gates.check("clf@1")
    assert not weak.passed
    assert weak.results[0].figure == pytest.approx(a1)
    assert f"{a2 - 0.01:.4f}" in weak.results[0].bound
    gates(f'metric = "accuracy"\nvs = "production"\ntolerance = {a2 - a1 + 0.001}')
    assert store.gates.check("clf@1").passed


def test_a_ratio_of_a_baselines_figure(store: trenches.Store, versions: trenches.Dataset) -> None:
    chosen = split(versions, "validation")
    name, ids = chosen.name, chosen.ids
    frame = versions.patterns(ids=ids)
    # People who read half the validation patterns and got them all right.
    half = frame.iloc[: len(frame) // 2]
    store.baselines.add(
        "readers",
        dataset="cancer",
        predictions=pd.DataFrame({"pattern_id": half.index, "prediction": half["target"]}),
    )
    r2 = right(store, "clf@2", versions).loc[half.index]
    share = float(r2.mean())
    gates(
        f'metric = "accuracy"\nvs = "readers"\nratio = {share - 0.01}',
        f'metric = "accuracy"\nvs = "readers"\nratio = {share + 0.01}',
    )
    check = store.gates.check("clf@2")
    assert statuses(check) == ["pass", "fail"]
    result = check.results[0]
    # Over the patterns both predicted, and it says so.
    assert result.size == len(half)
    assert result.pattern_set == f"{name} predicted by readers"


def test_significance_demands_mcnemar(store: trenches.Store, versions: trenches.Dataset) -> None:
    store.models.promote("clf@1", "production", reason="weak")
    gates('metric = "accuracy"\non = "all"\nvs = "production"\ntolerance = 0\nsignificance = 0.05')
    better = store.gates.check("clf@2")
    assert better.passed, better.results[0].detail
    assert "McNemar p = " in better.results[0].detail
    store.models.promote("clf@2", "production", reason="strong", force=True)
    same = store.gates.check("clf@3")  # as good, but not significantly better
    assert not same.passed
    assert "not significant" in same.results[0].detail


def test_a_lower_is_better_metric_bounds_from_above(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    chosen = split(versions, "validation")
    name, ids = chosen.name, chosen.ids
    loss = {
        ref: store.evaluate(ref, PatternSet(name, ids), predict=False).evaluation.metrics[
            "log_loss"
        ]
        for ref in ("clf@1", "clf@2")
    }
    better, worse = sorted(loss, key=loss.__getitem__)
    store.models.promote(better, "production", reason="lower loss")
    half = (loss[worse] - loss[better]) / 2
    assert half > 0
    gates(f'metric = "log_loss"\nvs = "production"\ntolerance = {half}')
    check = store.gates.check(worse)
    assert not check.passed
    assert check.results[0].bound == f"<= {loss[better] + half:.4f}"
    store.models.promote(worse, "production", reason="swap", force=True)
    assert store.gates.check(better).passed


# --- stored checks and promotion ---------------------------------------------------------


def test_a_check_is_stored_with_the_digest_of_its_criteria(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    gates('metric = "accuracy"\nmin = 0.5')
    first = store.gates.check("clf@2")
    Path("trenches.toml").write_text(
        "# a comment and a new layout do not change the criteria\n"
        "[[gates.clf]]\nmin = 0.5\nmetric = 'accuracy'\n"
    )
    second = store.gates.check("clf@2")
    gates('metric = "accuracy"\nmin = 0.6')
    third = store.gates.check("clf@2")
    assert first.criteria_digest == second.criteria_digest != third.criteria_digest
    stored = store.gates.history("clf@2")
    assert [c.id for c in stored] == [first.id, second.id, third.id]
    assert stored[0].results == first.results
    assert store.gates.latest("clf@2") == stored[-1]
    assert store.gates.latest("clf@1") is None


def test_promotion_is_refused_after_a_failed_check(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    gates('metric = "accuracy"\nmin = 0.99')
    assert not store.gates.check("clf@1").passed
    with pytest.raises(trenches.CheckFailed, match=r"clf@1's latest check .* failed 1 of 1"):
        store.models.promote("clf@1", "production", reason="looks fine")
    # Waiting as a candidate is allowed; forcing is allowed, and recorded.
    store.models.promote("clf@1", "candidate", reason="for review")
    move = store.models.promote("clf@1", "production", reason="demo tomorrow", force=True)
    assert move.forced and move.reason == "demo tomorrow"
    # A later passing check lifts the refusal.
    gates('metric = "accuracy"\nmin = 0.5')
    assert store.gates.check("clf@2").passed
    store.models.promote("clf@2", "production", reason="passed")


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def here(sqlite_store: trenches.Store) -> str:
    """A SQLite store with the three versions, for the CLI (which opens it by path)."""
    ds = sqlite_store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    X, y, _, _ = ds.snapshot().training_data("train")
    weak = DecisionTreeClassifier(max_depth=1, random_state=0)
    strong = make_pipeline(StandardScaler(), LogisticRegression())
    for model in (weak, strong):
        sqlite_store.models.register(model.fit(X, y), "clf", X=X.iloc[:100], dataset="cancer")
    return str(sqlite_store.location.sqlite_path)


@pytest.fixture
def tiny(sqlite_store: trenches.Store) -> str:
    """A SQLite store with one small version clf@1, for the errors found before any
    figure is computed (the gates are read first)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    y = np.where(X["a"] > 0, "yes", "no")
    ds = sqlite_store.datasets.create("d", task="classification", label="y")
    ds.add(X.assign(y=y), source="expert")
    sqlite_store.models.register(LogisticRegression().fit(X, y), "clf", X=X, dataset="d")
    return str(sqlite_store.location.sqlite_path)


def test_exit_status_is_0_when_every_gate_passes_and_1_when_one_fails(
    here: str, tmp_path: Path
) -> None:
    gates('metric = "accuracy"\nmin = 0.5', 'metric = "accuracy"\nmax = 0.1')
    code, out, _ = run("--store", here, "check", "clf@2", "--junit", tmp_path / "gates.xml")
    assert code == 1
    assert "FAIL" in out and "fails 1 of 2 gates" in " ".join(out.split())
    gates('metric = "accuracy"\nmin = 0.5')
    code, out, _ = run("--store", here, "check", "clf@2", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["passed"] is True and body["results"][0]["status"] == "pass"


def test_junit_has_one_case_per_gate_and_parses(here: str, tmp_path: Path) -> None:
    gates(
        'metric = "accuracy"\nmin = 0.5',
        'name = "near chance"\nmetric = "accuracy"\nmax = 0.1',
        'metric = "accuracy"\nvs = "production"\ntolerance = 0.0',
    )
    junit = tmp_path / "out" / "gates.xml"
    code, _, _ = run("--store", here, "check", "clf@2", "--junit", junit)
    assert code == 1
    xml = JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert len(cases) == 3
    assert [c.classname for c in cases] == ["trenches.gates.clf"] * 3
    assert cases[0].is_passed
    assert any(isinstance(r, Failure) for r in cases[1].result)
    assert cases[1].name.startswith("near chance: ")
    assert any(isinstance(r, Skipped) for r in cases[2].result)
    assert suites[0].failures == 1 and suites[0].skipped == 1 and suites[0].tests == 3


def test_markdown_summary_for_a_pull_request(here: str, tmp_path: Path) -> None:
    gates('metric = "accuracy"\nmin = 0.5', 'metric = "accuracy"\nmax = 0.1')
    md = tmp_path / "gates.md"
    assert run("--store", here, "check", "clf@2", "--markdown", md)[0] == 1
    text = md.read_text()
    assert text.startswith("### trenches check: ❌ clf@2 fails 1 of 2 gates")
    rows = [line for line in text.splitlines() if line.startswith("| accuracy")]
    assert len(rows) == 2 and "✅ pass" in rows[0] and "❌ fail" in rows[1]


def test_promote_after_a_failed_check_exits_1_unless_forced(here: str) -> None:
    gates('metric = "accuracy"\nmax = 0.1')
    assert run("--store", here, "check", "clf@1")[0] == 1
    code, _, err = run("--store", here, "models", "promote", "clf@1", "production", "--reason", "x")
    assert code == 1 and "--force" in err
    code, _, err = run(
        "--store", here, "models", "promote", "clf@1", "production", "--reason", "hotfix", "--force"
    )
    assert code == 0, err
    code, out, _ = run("--store", here, "models", "show", "clf", "--json")
    moves = json.loads(out)["alias_history"]
    assert moves[-1]["forced"] is True and moves[-1]["reason"] == "hotfix"


@pytest.mark.parametrize(
    ("toml", "key", "line"),
    [
        ('[[gates.clf]]\nmetric = "accuracy"\nminimum = 0.9\n', "gates.clf[1].minimum", 3),
        (
            '[[gates.clf]]\nmetric = "accuracy"\nmin = 0.9\n\n'
            '[[gates.clf]]\nmetric = "acc"\nmin = 1\n',
            "gates.clf[2].metric",
            6,
        ),
        ('[[gates.clf]]\nmetric = "accuracy"\nmin = "high"\n', "gates.clf[1].min", 3),
        ('[[gates.clf]]\n\nmetric = "accuracy"\n', "gates.clf[1].metric", 3),
        ('[[gates.clf]]\nmetric = "accuracy"\non = "holdout"\nmin = 1\n', "gates.clf[1].on", 3),
        ('[[gates.clf]]\nproblems = "open"\n', "gates.clf[1].problems", 2),
        ('[gates.clf]\nmetric = "accuracy"\nmin = 1\n', "gates.clf", 1),
    ],
)
def test_a_bad_trenches_toml_exits_2_naming_the_key_and_line(
    tiny: str, toml: str, key: str, line: int
) -> None:
    Path("trenches.toml").write_text(toml)
    code, out, err = run("--store", tiny, "check", "clf@1")
    message = " ".join(err.split())
    assert code == 2, out
    assert f"trenches.toml, line {line}: {key}" in message
    assert run("--store", tiny, "check", "clf@1", "--json")[0] == 2


def test_a_toml_syntax_error_exits_2_with_its_line(tiny: str) -> None:
    Path("trenches.toml").write_text('[[gates.clf]]\nmetric = "accuracy\n')
    code, _, err = run("--store", tiny, "check", "clf@1")
    assert code == 2 and "line 2" in err


def test_no_gates_for_the_model_exits_2(tiny: str) -> None:
    Path("trenches.toml").write_text('[[gates.other]]\nmetric = "accuracy"\nmin = 1\n')
    code, _, err = run("--store", tiny, "check", "clf@1")
    assert code == 2 and "no gates for model 'clf'" in " ".join(err.split())


# --- where errors point: any gate, any key -------------------------------------------------

_VALID = {
    "metric": '"accuracy"',
    "on": '"test"',
    "min": "0.5",
    "name": '"a gate"',
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    layout=st.lists(
        st.lists(st.sampled_from(sorted(_VALID)), min_size=0, max_size=3, unique=True),
        min_size=1,
        max_size=5,
    ),
    bad_gate=st.integers(min_value=0, max_value=4),
    blank=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_an_unknown_key_is_located_in_any_gate(
    tmp_path: Path, layout: list[list[str]], bad_gate: int, blank: list[bool]
) -> None:
    bad_gate %= len(layout)
    lines: list[str] = ["# gates", ""]
    expected = 0
    for i, keys in enumerate(layout):
        lines.append("[[gates.clf]]")
        if blank[i]:
            lines.append("")
        lines += ['metric = "accuracy"', "min = 0.5"]
        lines += [f"{k} = {_VALID[k]}" for k in keys if k not in ("metric", "min")]
        if i == bad_gate:
            lines.append("threshold = 0.9")
            expected = len(lines)
        if blank[i + 10]:
            lines.append("")
    path = tmp_path / "trenches.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(trenches.InvalidInput) as e:
        load(path).criteria("clf")
    assert f"line {expected}: gates.clf[{bad_gate + 1}].threshold" in str(e.value)


def test_the_criteria_digest_ignores_layout(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[[gates.clf]]\nmetric = "accuracy"\nmin = 0.5\n')
    b.write_text("# same gate\n[[gates.clf]]\nmin = 0.5   # floor\nmetric = 'accuracy'\n")
    assert load(a).criteria("clf").digest == load(b).criteria("clf").digest
    assert np.array_equal([g.kind for g in load(a).criteria("clf").gates], ["metric"])


# --- held out: gates over problem patterns measure what the version did not see ---------


def test_a_problem_gate_measures_only_what_the_version_did_not_train_on(
    store: trenches.Store,
) -> None:
    from conftest import noisy_corner

    _, corner = noisy_corner(store)
    store.problems.create("corner", dataset="noisy", title="The noisy corner")
    store.problems.add("corner", positive=corner)
    (score,) = store.problems.scores("corner")
    assert score.score >= 0.75 > score.held_out_score
    Path("trenches.toml").write_text(
        '[[gates.tree]]\nproblems = "corner"\nmin-score = 0.75\n\n'
        '[[gates.tree]]\nproblems = "corner"\nmin-score = 0.75\nheld-out = false\n\n'
        '[[gates.tree]]\nmetric = "accuracy"\non = "problem:corner"\nmin = 0.75\n',
        encoding="utf-8",
    )
    check = store.gates.check("tree@1")
    held, every, metric = check.results
    # By default, the memorised patterns are left out: its skill fails the bound ...
    assert held.status == "fail" and held.figure == pytest.approx(score.held_out_score)
    assert held.size == score.held_out_total and held.pattern_set == "problem:corner (held out)"
    assert (
        f"{score.trained_on} of {len(corner)} left out (tree@1 trained on {score.trained_on})"
        in held.detail
    )
    # ... over all of them, memory passes it.
    assert every.status == "pass" and every.figure == pytest.approx(score.score)
    assert metric.status == "fail" and metric.figure == pytest.approx(score.held_out_score)


def test_held_out_applies_to_problem_patterns_only(tmp_path: Path) -> None:
    from trenches.errors import InvalidConfig

    path = tmp_path / "trenches.toml"
    path.write_text('[[gates.m]]\nmetric = "accuracy"\nmin = 0.9\nheld-out = false\n')
    with pytest.raises(InvalidConfig, match="problem patterns only") as err:
        load(path).criteria("m")
    assert err.value.line == 4
    path.write_text('[[gates.m]]\nproblems = "open"\nmin-score = 0.9\nheld-out = "no"\n')
    with pytest.raises(InvalidConfig, match="must be true"):
        load(path).criteria("m")


# --- what the version itself costs -----------------------------------------------------


def test_a_check_measures_the_version_itself_and_gates_on_it(
    store: trenches.Store, versions: trenches.Dataset
) -> None:
    gates(
        'metric = "latency-p99-ms"\nmax = 1000',
        'metric = "latency-p50-ms"\nmax = 0.000001',  # no model answers in a nanosecond
        'metric = "batch-latency-p99-ms"\nmax = 5000',
        'metric = "cpu-seconds-per-1k"\nmax = 10',
        'metric = "cost-per-1k"\nmax = 0.01\nprice-per-cpu-hour = 0.05',
        'metric = "model-mb"\nmax = 50',
        'metric = "peak-memory-mb"\nmax = 2000',
    )
    check = store.gates.check("clf@2")
    assert statuses(check) == ["pass", "fail", "pass", "pass", "pass", "pass", "pass"]
    got = {r.gate.split(" ")[0]: r.figure for r in check.results}
    assert 0 < got["latency-p50-ms"] <= got["latency-p99-ms"] < 1000
    assert got["batch-latency-p99-ms"] > 0 and got["cpu-seconds-per-1k"] > 0
    assert got["cost-per-1k"] == pytest.approx(got["cpu-seconds-per-1k"] / 3600 * 0.05)
    onnx = store.models.file_bytes("clf@2", "onnx")  # served as ONNX: its size
    assert got["model-mb"] == pytest.approx(len(onnx) / 1e6)
    assert got["peak-memory-mb"] >= 0
    validation = len(split(versions, "validation").ids)
    assert f"measured on {min(validation, 1000)} patterns of cancer:validation" in (
        check.results[0].detail
    )
    # Stored with the check, as every figure is.
    [stored] = [c for c in store.gates.history("clf@2") if c.id == check.id]
    assert [r.figure for r in stored.results] == [r.figure for r in check.results]


@pytest.mark.parametrize(
    ("body", "key", "says"),
    [
        ('metric = "cost-per-1k"\nmax = 0.01', "metric", "price-per-cpu-hour"),
        (
            'metric = "cost-per-1k"\nmax = 1\nprice-per-cpu-hour = -1',
            "price-per-cpu-hour",
            "positive",
        ),
        (
            'metric = "latency-p99-ms"\nmax = 9\nprice-per-cpu-hour = 1',
            "price-per-cpu-hour",
            "cost-per-1k",
        ),
        (
            'metric = "latency-p99-ms"\nvs = "production"\ntolerance = 1',
            "vs",
            "measured of the version",
        ),
        (
            'metric = "accuracy"\nmin = 0.5\nprice-per-cpu-hour = 1',
            "price-per-cpu-hour",
            "cost-per-1k",
        ),
        ('metric = "latency-p99"\nmax = 9', "metric", "latency-p99-ms"),
    ],
)
def test_a_measured_gate_written_wrong_is_refused_naming_its_key(
    tmp_path: Path, body: str, key: str, says: str
) -> None:
    from trenches.errors import InvalidConfig

    path = tmp_path / "trenches.toml"
    path.write_text(f"[[gates.clf]]\n{body}\n")
    with pytest.raises(InvalidConfig) as e:
        load(path).criteria("clf")
    assert f"gates.clf[1].{key}" in str(e.value) and says in str(e.value)
