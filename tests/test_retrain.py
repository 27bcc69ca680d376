"""The continuous-training loop: a better candidate is promoted and a worse one refused,
gates and the comparison decide, the recency weights reach the training function, a
failing function fails the pass, bad settings write nothing, and the command line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import insert_returning_id, read, write
from trenches.errors import InvalidConfig, NotFound
from trenches.patterns.sets import PatternSet, split
from trenches.retrain import RetrainFailed

from conftest import run_cli as cli

#: A fixed split salt: the same splits, and so the same fitted models, on every run.
SALT = "72657472616e2d74657374732d303031"

#: The user's training module: a scaled logistic regression, fitted with the weights.
STRONG = """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(data):
        model = make_pipeline(StandardScaler(), LogisticRegression())
        return model.fit(data.X, data.y, logisticregression__sample_weight=data.sample_weight)
"""

#: A model that always answers the most frequent class.
WEAK = """
    from sklearn.dummy import DummyClassifier

    def fit(data):
        return DummyClassifier(strategy="most_frequent").fit(data.X, data.y)
"""

GATE = '[[gates.clf]]\nmetric = "accuracy"\nmin = {min}\n'


def project(
    training: str,
    *,
    retrain: str = "",
    gates: str | None = GATE.format(min=0.5),
    train: str = "training:fit",
) -> Path:
    """Write training.py and trenches.toml into the working directory (the test's own)."""
    Path("training.py").write_text(textwrap.dedent(training), encoding="utf-8")
    text = f'[retrain.clf]\ntrain = "{train}"\n{textwrap.dedent(retrain).strip()}\n\n'
    if gates is not None:
        text += gates
    path = Path("trenches.toml").resolve()
    path.write_text(text, encoding="utf-8")
    return path


def cancer(store: trenches.Store, created_at: str = "2026-01-01") -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at=created_at)
    return ds


def production(store: trenches.Store, ds: trenches.Dataset, model: object) -> str:
    """Register ``model`` fitted on the train split as clf@N and make it production."""
    X, y, _, _ = ds.snapshot().training_data("train")
    with store.run("by hand", snapshot=ds.snapshots()[-1], capture_code=False) as run:
        version = run.log_model(model.fit(X, y), "clf")  # type: ignore[attr-defined]
    store.models.promote(version.ref, "production", reason="first model")
    return version.ref


def strong() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression())


def accuracy(store: trenches.Store, ref: str, ds: trenches.Dataset) -> float:
    chosen = split(ds, "validation")
    name, ids = chosen.name, chosen.ids
    return store.evaluate(ref, PatternSet(name, ids), predict=False).evaluation.metrics["accuracy"]


# --- promotion and refusal ---------------------------------------------------------------


def test_a_better_candidate_is_promoted_and_every_step_is_recorded(
    store: trenches.Store,
) -> None:
    ds = cancer(store)
    weak = production(store, ds, DummyClassifier(strategy="most_frequent"))
    store.problems.create("hard", dataset="cancer", title="hard cases")
    val = split(ds, "validation").ids
    store.problems.add("hard", positive=val[:5].tolist(), negative=val[5:8].tolist())
    snapshots_before = len(ds.snapshots())
    project(STRONG)
    steps: list[str] = []

    result = store.retrains.run("clf", progress=lambda s: steps.append(s.name))

    assert result.status == "promoted" and result.promoted
    assert result.candidate == "clf@2" and result.production == weak
    assert store.models.get("clf@production").version == 2
    assert "candidate" in store.models.get("clf@2").aliases
    # The figures are those of the stored predictions, over the validation split.
    figures = result.figures
    assert figures is not None and figures.better and figures.metric == "accuracy"
    assert figures.candidate == pytest.approx(accuracy(store, "clf@2", ds))
    assert figures.production == pytest.approx(accuracy(store, weak, ds))
    assert figures.size == len(val) and figures.delta is not None and figures.delta > 0
    assert result.reason is not None and f"retrain #{result.id}" in result.reason
    assert "beats production's" in result.reason
    # The snapshot, run and check it made.
    snapshot = store.snapshots.get(result.snapshot_id or 0)
    assert len(ds.snapshots()) == snapshots_before + 1
    assert snapshot.note == f"retrain #{result.id} of clf"
    run = store.runs.get(result.run_id or 0)
    assert run.name == "retrain-clf" and run.status == "finished"
    assert run.snapshot_id == snapshot.id
    assert run.tags["trenches.retrain"] == str(result.id)
    assert "trenches.drift_report" not in run.tags
    assert run.params["train"] == "training:fit" and run.params["weighting"] == "none"
    assert store.models.get("clf@2").run_id == run.id
    check = store.gates.latest("clf@2")
    assert check is not None and check.passed and check.id == result.check_id
    assert [g.status for g in result.gates] == ["pass"]
    # Both versions' scores on the problem, counted from their stored predictions.
    (tally,) = result.problems
    assert tally.problem == "hard" and tally.patterns == 8
    scores = {s.predictor: s.right for s in store.problems.scores("hard")}
    assert tally.candidate_right == scores["clf@2"] and tally.production_right == scores[weak]
    # The alias history says which pass moved production, and why.
    move = store.models.alias_history("clf", "production")[-1]
    assert (move.from_version, move.to_version) == (1, 2)
    assert move.reason == result.reason
    assert store.retrains.history("clf") == [result] == [store.retrains.get(result.id)]
    assert result.started_by is not None and result.ended_at is not None
    assert steps[:4] == ["start", "snapshot", "train", "candidate"]
    assert {"predict", "predicted", "check", "compare"} <= set(steps)
    assert steps[-1] == "decision"


def test_a_worse_candidate_is_refused_and_left_at_candidate(store: trenches.Store) -> None:
    ds = cancer(store)
    strong_ref = production(store, ds, strong())
    project(WEAK)

    result = store.retrains.run("clf")

    assert result.status == "candidate" and not result.promoted
    assert store.models.get("clf@production").ref == strong_ref
    assert store.models.get("clf@candidate").ref == "clf@2" == result.candidate
    figures = result.figures
    assert figures is not None and not figures.better
    c, p = accuracy(store, "clf@2", ds), accuracy(store, strong_ref, ds)
    val = split(ds, "validation").ids
    assert result.reason is not None
    assert (
        f"accuracy {c:.4f} is not better than production's {p:.4f} (clf@1) on "
        f"{len(val)} validation patterns" in result.reason
    )
    assert len(store.models.alias_history("clf", "production")) == 1


def test_a_candidate_only_as_good_as_production_is_not_better(store: trenches.Store) -> None:
    ds = cancer(store)
    production(store, ds, strong())
    project(STRONG)  # the same model on the same patterns, with equal weights

    result = store.retrains.run("clf")

    assert result.figures is not None and result.figures.delta == 0
    assert result.status == "candidate"
    assert store.models.get("clf@production").version == 1


def test_a_candidate_must_beat_production_by_min_improvement(
    sqlite_store: trenches.Store,
) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    project(STRONG, retrain="min-improvement = 0.9")

    result = sqlite_store.retrains.run("clf")

    assert result.status == "candidate"
    assert result.reason is not None and "by more than 0.9" in result.reason


def test_a_candidate_that_fails_a_gate_is_refused_with_the_gate_named(
    store: trenches.Store,
) -> None:
    ds = cancer(store)
    production(store, ds, DummyClassifier(strategy="most_frequent"))
    project(STRONG, gates=GATE.format(min=0.5) + "\n" + GATE.format(min=0.9999))

    result = store.retrains.run("clf")

    assert result.status == "candidate"
    assert result.figures is not None and result.figures.better
    figure = accuracy(store, "clf@2", ds)
    assert result.reason is not None
    assert "failed 1 of 2 gates" in result.reason
    assert f"accuracy >= 0.9999 on cancer:validation ({figure:.4f})" in result.reason
    assert store.models.get("clf@production").version == 1
    assert [g.status for g in result.gates] == ["pass", "fail"]


def test_a_failed_no_break_gate_is_named_with_its_count_of_broken_patterns(
    sqlite_store: trenches.Store,
) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, strong())
    frame = ds.patterns()
    malignant = frame.index[frame["target"] == 0][:6].tolist()
    sqlite_store.problems.create("missed", dataset="cancer", title="malignant ones")
    sqlite_store.problems.add("missed", positive=malignant)
    # Over all the problem's patterns: production trained on some of them.
    project(
        WEAK,
        gates='[[gates.clf]]\nproblems = "open"\nno-break = "production"\nheld-out = false\n',
    )

    result = sqlite_store.retrains.run("clf")

    (gate,) = result.gates
    assert gate.status == "fail" and gate.figure is not None and gate.figure >= 1
    assert result.reason is not None
    assert f"{gate.gate} ({int(gate.figure)} broken)" in result.reason
    assert f"{gate.figure:.4f}" not in result.reason


def test_without_gates_a_candidate_is_not_promoted_and_the_reason_says_so(
    sqlite_store: trenches.Store,
) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    project(STRONG, gates=None)

    result = sqlite_store.retrains.run("clf")

    assert result.status == "candidate" and result.check_id is None
    assert result.reason is not None
    assert "a candidate needs gates in trenches.toml" in result.reason
    assert "[[gates.clf]]" in result.reason
    assert sqlite_store.models.get("clf@production").version == 1


def test_the_first_model_is_better_than_no_production_by_default(
    sqlite_store: trenches.Store,
) -> None:
    cancer(sqlite_store)
    project(STRONG, retrain='dataset = "cancer"')

    result = sqlite_store.retrains.run("clf")

    assert result.status == "promoted" and result.production is None
    assert result.figures is not None and result.figures.production is None
    assert "no production version of clf yet" in (result.reason or "")
    assert sqlite_store.models.get("clf@production").version == 1


# --- what the function receives --------------------------------------------------------

RECORDING = """
    import json
    from pathlib import Path

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(data):
        Path("received.json").write_text(json.dumps({
            "type": type(data).__name__,
            "ids": [int(i) for i in data.pattern_ids],
            "weights": [float(w) for w in data.sample_weight],
            "rows": len(data.X),
            "labels": len(data.y),
        }))
        model = make_pipeline(StandardScaler(), LogisticRegression())
        return model.fit(data.X, data.y, logisticregression__sample_weight=data.sample_weight)
"""


def two_ages(store: trenches.Store) -> tuple[trenches.Dataset, set[int]]:
    """Breast cancer in two halves created 30 days apart; returns the older half's ids."""
    frame = load_breast_cancer(as_frame=True).frame
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    old = ds.add(frame.iloc[::2], source="expert", created_at="2026-01-01")
    ds.add(frame.iloc[1::2], source="production", created_at="2026-01-31")
    return ds, set(range(old.first_id, old.last_id + 1))


def received() -> dict[str, list[float]]:
    return dict(json.loads(Path("received.json").read_text()))


def test_exponential_weights_halve_for_a_pattern_one_half_life_older(
    store: trenches.Store,
) -> None:
    _, old = two_ages(store)
    project(
        RECORDING,
        retrain='dataset = "cancer"\nweighting = "exponential"\nhalf-life-days = 30',
    )

    result = store.retrains.run("clf")

    got = received()
    assert got["type"] == "TrainingData" and got["rows"] == got["labels"]
    snapshot = store.snapshots.get(result.snapshot_id or 0)
    assert sorted(got["ids"]) == sorted(snapshot.pattern_ids("train").tolist())
    weights = dict(zip(got["ids"], got["weights"], strict=True))
    older = {w for i, w in weights.items() if i in old}
    newer = {w for i, w in weights.items() if i not in old}
    assert older and newer
    assert max(older) == pytest.approx(min(older)) and max(newer) == pytest.approx(min(newer))
    assert min(older) / min(newer) == pytest.approx(0.5)
    assert np.mean(got["weights"]) == pytest.approx(1.0)
    run = store.runs.get(result.run_id or 0)
    assert run.params["weighting"] == "exponential"
    assert float(run.params["half_life_days"]) == 30


def test_inverse_age_weights_follow_one_over_age_plus_offset(
    sqlite_store: trenches.Store,
) -> None:
    _, old = two_ages(sqlite_store)
    project(
        RECORDING,
        retrain='dataset = "cancer"\nweighting = "inverse-age"\nage-offset-days = 2',
    )

    result = sqlite_store.retrains.run("clf")

    snapshot = sqlite_store.snapshots.get(result.snapshot_id or 0)
    as_of = timestamps.to_us(snapshot.as_of)
    day = 86_400 * 1_000_000
    age_old = (as_of - timestamps.parse("2026-01-01", what="t")) / day  # type: ignore[operator]
    age_new = (as_of - timestamps.parse("2026-01-31", what="t")) / day  # type: ignore[operator]
    got = received()
    weights = dict(zip(got["ids"], got["weights"], strict=True))
    w_old = next(w for i, w in weights.items() if i in old)
    w_new = next(w for i, w in weights.items() if i not in old)
    assert w_old / w_new == pytest.approx((age_new + 2) / (age_old + 2))


def test_sources_limit_the_snapshot_the_function_trains_on(
    sqlite_store: trenches.Store,
) -> None:
    _, old = two_ages(sqlite_store)
    project(RECORDING, retrain='dataset = "cancer"\nsources = ["production"]')

    result = sqlite_store.retrains.run("clf")

    assert not set(received()["ids"]) & old
    snapshot = sqlite_store.snapshots.get(result.snapshot_id or 0)
    assert snapshot.sources == ("production",)


def test_the_training_module_is_read_afresh_on_every_pass(sqlite_store: trenches.Store) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    project(STRONG)
    assert sqlite_store.retrains.run("clf").status == "promoted"
    project(WEAK)
    second = sqlite_store.retrains.run("clf")
    assert second.status == "candidate"
    assert type(sqlite_store.models.load(second.candidate or "")).__name__ == "DummyClassifier"


# --- failures ----------------------------------------------------------------------------

RAISING = """
    def fit(data):
        raise ValueError("the GPU caught fire")
"""


def test_a_function_that_raises_fails_the_pass_and_promotes_nothing(
    store: trenches.Store,
) -> None:
    ds = cancer(store)
    weak = production(store, ds, DummyClassifier(strategy="most_frequent"))
    project(RAISING)

    with pytest.raises(RetrainFailed, match="raised ValueError: the GPU caught fire") as caught:
        store.retrains.run("clf")

    assert caught.value.exit_code == 1
    (recorded,) = store.retrains.history("clf")
    assert caught.value.retrain == recorded
    assert recorded.status == "failed" and recorded.ended_at is not None
    assert "ValueError: the GPU caught fire" in (recorded.reason or "")
    assert recorded.candidate is None and recorded.snapshot_id is not None
    run = store.runs.get(recorded.run_id or 0)
    assert run.status == "failed" and "the GPU caught fire" in (run.error or "")
    assert store.models.get("clf@production").ref == weak
    assert [v.version for v in store.models.versions("clf")] == [1]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("def fit(data):\n    return None", "returned None, not a fitted model"),
        ("def fit(data):\n    return 'a model'", "returned a str, not a fitted model"),
        (
            "from sklearn.linear_model import LogisticRegression\n"
            "def fit(data):\n    return LogisticRegression()",
            "returned a LogisticRegression that is not fitted",
        ),
    ],
)
def test_a_function_that_returns_no_fitted_model_fails_and_says_so(
    sqlite_store: trenches.Store, body: str, says: str
) -> None:
    cancer(sqlite_store)
    project(body, retrain='dataset = "cancer"')
    with pytest.raises(RetrainFailed, match=says):
        sqlite_store.retrains.run("clf")
    (recorded,) = sqlite_store.retrains.history("clf")
    assert recorded.status == "failed" and says in (recorded.reason or "")
    assert sqlite_store.runs.get(recorded.run_id or 0).status == "failed"


@pytest.mark.parametrize(
    ("retrain", "train", "key", "says"),
    [
        ('colour = "red"', "training:fit", "retrain.clf.colour", "unknown key"),
        ('weighting = "linear"', "training:fit", "retrain.clf.weighting", "must be one of"),
        ("half-life-days = 30", "training:fit", "retrain.clf.half-life-days", "only applies"),
        (
            'weighting = "exponential"\nhalf-life-days = -1',
            "training:fit",
            "retrain.clf.half-life-days",
            "more than 0",
        ),
        ('sources = "expert"', "training:fit", "retrain.clf.sources", "a list of source"),
        ('metric = "accuracy!"', "training:fit", "retrain.clf.metric", "unknown metric"),
        ('metric = "rmse"', "training:fit", "retrain.clf.metric", "does not apply to class"),
        ("min-improvement = -0.1", "training:fit", "retrain.clf.min-improvement", "0 or more"),
        ('dataset = "nope"', "training:fit", "retrain.clf.dataset", "no dataset 'nope'"),
        ("", "training.fit", "retrain.clf.train", 'is not "module:function"'),
        ("", "no_such_module:fit", "retrain.clf.train", "cannot import 'no_such_module'"),
        ("", "training:train_it", "retrain.clf.train", "has no 'train_it'"),
    ],
)
def test_bad_settings_name_the_key_and_line_and_write_nothing(
    sqlite_store: trenches.Store, retrain: str, train: str, key: str, says: str
) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    path = project(STRONG, retrain=retrain, train=train)
    runs, snapshots = len(sqlite_store.runs.list()), len(ds.snapshots())

    with pytest.raises(InvalidConfig) as caught:
        sqlite_store.retrains.run("clf")

    e = caught.value
    assert e.key == key and says in str(e)
    lines = path.read_text().splitlines()
    assert e.line is not None and lines[e.line - 1].startswith(key.split(".")[-1])
    assert str(e).startswith(f"{path}, line {e.line}: {key}: ")
    assert sqlite_store.retrains.history() == []
    assert len(sqlite_store.runs.list()) == runs and len(ds.snapshots()) == snapshots
    assert [v.version for v in sqlite_store.models.versions("clf")] == [1]


def test_a_model_without_a_retrain_table_or_a_bad_gate_writes_nothing(
    sqlite_store: trenches.Store,
) -> None:
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    project(STRONG)
    with pytest.raises(InvalidConfig, match=r"no \[retrain.other\] table .*written for: clf"):
        sqlite_store.retrains.run("other")
    project(STRONG, gates='[[gates.clf]]\nmetric = "accuracy"\nmin = "high"\n')
    with pytest.raises(InvalidConfig, match=r"gates.clf\[1\].min: must be a number"):
        sqlite_store.retrains.run("clf")
    assert sqlite_store.retrains.history() == []


# --- the drift report that set a pass off ------------------------------------------------


def drift_report(store: trenches.Store, ref: str) -> int:
    """A stored drift report about ``ref`` (as monitoring writes it)."""
    with write(store.engine) as conn:
        return insert_returning_id(
            conn,
            t.drift_reports,
            {
                "version_id": store.models.get(ref).id,
                "reference": "the train split of snapshot 1",
                "reference_rows": 341,
                "current": "served requests of the last 7 days",
                "current_rows": 500,
                "drifted": True,
                "drifted_columns": 3,
                "settings": "{}",
                "body": "{}",
                "created_at": timestamps.now_us(),
            },
        )


def test_the_drift_report_that_set_a_pass_off_is_recorded(store: trenches.Store) -> None:
    ds = cancer(store)
    weak = production(store, ds, DummyClassifier(strategy="most_frequent"))
    report = drift_report(store, weak)
    project(STRONG)

    result = store.retrains.run("clf", report_id=report)

    assert result.report_id == report and result.trigger == f"drift report #{report}"
    assert trenches.to_json(result)["report_id"] == report
    run = store.runs.get(result.run_id or 0)
    assert run.tags["trenches.drift_report"] == str(report)
    snapshot = store.snapshots.get(result.snapshot_id or 0)
    assert snapshot.note == f"retrain #{result.id} of clf, after drift report #{report}"
    assert result.reason is not None and f"after drift report #{report}" in result.reason
    with read(store.engine) as conn:
        stored = conn.execute(t.retrains.select().where(t.retrains.c.id == result.id)).one()
    assert stored.report_id == report
    with pytest.raises(NotFound, match="no drift report #999"):
        store.retrains.run("clf", report_id=999)
    assert len(store.retrains.history("clf")) == 1


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def here(sqlite_store: trenches.Store) -> str:
    """A SQLite store whose production clf@1 always answers the most frequent class."""
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    return str(sqlite_store.location.sqlite_path)


def test_the_command_exits_0_when_promoted_1_when_refused_and_2_on_bad_settings(
    here: str,
) -> None:
    project(STRONG)
    code, out, err = cli("--store", here, "retrain", "clf")
    assert code == 0, err
    text = " ".join(out.split())
    assert "retrain #1 of clf (by hand)" in text
    assert "candidate clf@2 (alias candidate)" in text
    assert "gates of clf@2" in text and "accuracy >= 0.5" in text
    assert "promoted clf@2 to production" in text and "beats production's" in text

    project(WEAK)
    code, out, _ = cli("--store", here, "retrain", "clf", "--json")
    assert code == 1
    result = json.loads(out)
    assert result["status"] == "candidate" and result["candidate"] == "clf@3"
    assert "is not better than production's" in result["reason"]

    project(STRONG, retrain='weighting = "sometimes"')
    code, out, err = cli("--store", here, "retrain", "clf")
    assert code == 2
    assert "line 3: retrain.clf.weighting" in " ".join(err.split())

    project(RAISING)
    code, out, err = cli("--store", here, "retrain", "clf")
    assert code == 1
    assert "retrain #3 of clf failed" in " ".join(err.split())

    code, out, _ = cli("--store", here, "retrain", "clf", "--history")
    assert code == 0
    text = " ".join(out.split())
    for word in ("promoted", "candidate", "failed", "by hand", "clf@2", "clf@3"):
        assert word in text
    code, out, _ = cli("--store", here, "retrain", "clf", "--history", "--json")
    passes = json.loads(out)
    assert [p["id"] for p in passes] == [3, 2, 1]
    assert [p["status"] for p in passes] == ["failed", "candidate", "promoted"]
    assert passes[0]["trigger"] == "by hand"


def test_the_command_records_the_report_and_reads_another_config(
    here: str, sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    report = drift_report(sqlite_store, "clf@1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "fitting.py").write_text(textwrap.dedent(STRONG), encoding="utf-8")
    config = elsewhere / "trenches.toml"
    config.write_text(
        '[retrain.clf]\ntrain = "fitting:fit"\n\n' + GATE.format(min=0.5), encoding="utf-8"
    )
    code, out, err = cli(
        "--store", here, "retrain", "clf", "--config", config, "--report", str(report), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["report_id"] == report and result["status"] == "promoted"
    assert result["settings"]["file"] == str(config)
    code, out, _ = cli("--store", here, "retrain", "clf", "--history")
    assert f"drift report #{report}" in " ".join(out.split())


def test_the_help_explains_the_pass_and_the_exit_statuses() -> None:
    code, out, _ = cli("retrain", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "0 promoted, 1 left at candidate" in text and "--history" in text


def test_the_function_can_live_in_a_package_beside_trenches_toml(
    sqlite_store: trenches.Store,
) -> None:
    """``package.module:function`` imports from a package beside trenches.toml."""
    ds = cancer(sqlite_store)
    production(sqlite_store, ds, DummyClassifier(strategy="most_frequent"))
    Path("mlcode").mkdir()
    Path("mlcode/__init__.py").write_text("", encoding="utf-8")
    Path("mlcode/train.py").write_text(textwrap.dedent(STRONG), encoding="utf-8")
    project(STRONG, train="mlcode.train:fit")
    assert sqlite_store.retrains.run("clf").status == "promoted"


# --- a killed pass --------------------------------------------------------------------------

SLOW = """
    import time
    from pathlib import Path

    def fit(data):
        Path("training-started").write_text("yes")
        time.sleep(60)
"""


@pytest.mark.sqlite_only
def test_a_pass_killed_while_training_is_reaped_as_failed(sqlite_store: trenches.Store) -> None:
    import signal
    import subprocess
    import sys
    import time

    ds = cancer(sqlite_store)
    before = production(sqlite_store, ds, strong())
    project(SLOW)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trenches",
            "--store",
            str(sqlite_store.location.sqlite_path),
            "retrain",
            "clf",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not Path("training-started").exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    [killed] = sqlite_store.retrains.history("clf")
    assert killed.status == "failed" and "ended before the pass did" in (killed.reason or "")
    assert killed.ended_at is not None
    assert sqlite_store.models.get("clf@production").ref == before
    # The run it was training in is reaped too, as killed, the next time a store opens.
    with trenches.open(sqlite_store.location.sqlite_path) as again:
        assert killed.run_id is not None
        assert again.runs.get(killed.run_id).status == "killed"


def test_one_pass_of_a_model_at_a_time(sqlite_store: trenches.Store) -> None:
    from sqlalchemy import insert

    from trenches import timestamps
    from trenches.db import schema as t
    from trenches.db.engine import write
    from trenches.errors import Conflict
    from trenches.retrain.record import this_process

    ds = cancer(sqlite_store)
    production(sqlite_store, ds, strong())
    project(STRONG)
    with write(sqlite_store.engine) as conn:  # a pass of this very process, still running
        conn.execute(
            insert(t.retrains).values(
                model="clf",
                status="running",
                body=orjson.dumps({"process": this_process()}).decode(),
                started_at=timestamps.now_us(),
            )
        )
    with pytest.raises(Conflict, match="retrain #1 of clf is running"):
        sqlite_store.retrains.run("clf")
    assert [r.status for r in sqlite_store.retrains.history("clf")] == ["running"]
