"""Predictions you can query: ``store.predictions(ref, patterns)`` and
``trenches predictions export / show``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import trenches
from trenches.errors import InvalidInput
from trenches.patterns.sets import split as split_of

from conftest import run_cli, tumours

INPUTS = ["radius", "texture", "grade"]


@pytest.fixture
def classifier(store: trenches.Store) -> str:
    """A version of a classifier of tumours that has predicted the validation split."""
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(tumours(160, seed=0), source="expert")
    frame = ds.patterns()
    model = LogisticRegression().fit(frame[INPUTS], frame["label"])
    version = store.models.register(model, "clf", X=frame[INPUTS], dataset="tumours")
    store.predict(version.ref, split_of(ds, "validation").ids)
    return version.ref


def _prices(store: trenches.Store, tolerance: str | None) -> tuple[trenches.Dataset, str]:
    """A regression dataset and a version that has predicted all of it."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 80)
    frame = pd.DataFrame({"x": x, "y": 3 * x + rng.normal(0, 2, 80)})
    ds = store.datasets.create("prices", task="regression", label="y", tolerance=tolerance)
    ds.add(frame, source="expert")
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    version = store.models.register(model, "price", X=frame[["x"]], dataset="prices")
    store.predict(version.ref, ds.pattern_info().index.to_numpy())
    return ds, version.ref


def test_a_versions_predictions_are_the_models_own(store: trenches.Store, classifier: str) -> None:
    frame = store.predictions(classifier, "validation")
    ds = store.datasets.get("tumours")
    assert list(frame.index) == list(split_of(ds, "validation").ids)
    assert frame.index.name == "pattern_id" and frame.index.is_monotonic_increasing
    assert list(frame.columns) == [
        *INPUTS,
        "label",
        "split",
        "source",
        "predicted",
        "prediction",
        "p_benign",
        "p_malignant",
        "right",
        "loss",
    ]
    model = store.models.load(classifier)
    X = frame[INPUTS]
    assert list(frame["prediction"]) == list(model.predict(X))
    proba = frame[["p_benign", "p_malignant"]].to_numpy()
    assert np.abs(proba - model.predict_proba(X)).max() <= 1e-5
    assert list(frame["right"]) == list(frame["prediction"] == frame["label"])
    p_true = np.where(frame["label"] == "benign", proba[:, 0], proba[:, 1])
    assert np.allclose(frame["loss"], -np.log(p_true), atol=1e-5)
    assert frame["predicted"].all() and (frame["split"] == "validation").all()
    assert (frame["source"] == "expert").all()
    assert frame.attrs == {"predictor": classifier, "pattern_set": "tumours:validation"}


def test_patterns_without_a_prediction_are_kept(store: trenches.Store, classifier: str) -> None:
    ds = store.datasets.get("tumours")
    frame = store.predictions(classifier, "all")
    assert list(frame.index) == list(split_of(ds, "all").ids)
    validation = set(split_of(ds, "validation").ids.tolist())
    assert frame["predicted"].tolist() == [i in validation for i in frame.index]
    missing = frame[~frame["predicted"]]
    assert len(missing) == len(frame) - len(validation) > 0
    assert missing[["prediction", "p_benign", "right", "loss"]].isna().all().all()
    assert (missing["label"].notna()).all()  # the pattern is there, only its prediction is not
    # By default: every pattern it predicted, and no other.
    assert set(store.predictions(classifier).index) == validation


def test_a_split_is_its_active_patterns_as_split_names_them(
    store: trenches.Store, classifier: str
) -> None:
    ds = store.datasets.get("tumours")
    gone = int(split_of(ds, "validation").ids[0])
    store.patterns.deactivate([gone], reason="a duplicate")
    for split in ("train", "validation", "test", "all"):
        frame = store.predictions(classifier, split)
        assert list(frame.index) == list(split_of(ds, split).ids)
        assert split == "all" or (frame["split"] == split).all()
        assert gone not in frame.index
    # Named by id, a deactivated pattern is there, with its prediction.
    assert bool(store.predictions(classifier, [gone])["predicted"].iloc[0])


def test_pattern_ids_give_those_patterns_in_id_order(
    store: trenches.Store, classifier: str
) -> None:
    validation = split_of(store.datasets.get("tumours"), "validation").ids
    wanted = [int(validation[3]), int(validation[0]), 1, int(validation[3])]
    frame = store.predictions(classifier, wanted)
    assert list(frame.index) == sorted({*wanted})
    assert frame["predicted"].tolist() == [i in set(validation.tolist()) for i in frame.index]


def test_a_problem_gives_its_patterns(store: trenches.Store, classifier: str) -> None:
    train = split_of(store.datasets.get("tumours"), "train").ids
    store.problems.create("big", dataset="tumours", title="Big and benign")
    store.problems.add("big", positive=train[:6], negative=train[6:9])  # backfilled
    frame = store.predictions(classifier, "problem:big")
    assert list(frame.index) == sorted(train[:9].tolist())
    assert frame["predicted"].all() and frame.attrs["pattern_set"] == "problem:big"


def test_unknown_ids_and_other_datasets_ids_are_refused(
    store: trenches.Store, classifier: str
) -> None:
    other = store.datasets.create("other", task="classification", label="label")
    foreign = other.add(tumours(5, seed=2), source="expert").first_id
    with pytest.raises(InvalidInput, match=f"pattern {foreign} belongs to dataset 'other'"):
        store.predictions(classifier, [1, foreign, 99_999])
    with pytest.raises(InvalidInput, match="there is no pattern 99999"):
        store.predictions(classifier, [1, 99_999, foreign])
    with pytest.raises(InvalidInput, match="must be validation, test, train, all"):
        store.predictions(classifier, "holdout")
    store.problems.create("elsewhere", dataset="other", title="Not about tumours")
    with pytest.raises(InvalidInput, match="about dataset 'other'"):
        store.predictions(classifier, "problem:elsewhere")


def test_regression_is_right_within_the_datasets_tolerance(store: trenches.Store) -> None:
    _, ref = _prices(store, tolerance="0.5 or 10%")
    frame = store.predictions(ref, "all")
    model = store.models.load(ref)
    y = frame["y"].to_numpy()
    predicted = model.predict(frame[["x"]])
    assert np.allclose(frame["prediction"], predicted)
    assert np.allclose(frame["error"], frame["prediction"] - y)
    assert np.allclose(frame["loss"], (frame["prediction"] - y) ** 2)
    within = np.abs(frame["prediction"] - y) <= np.maximum(0.5, 0.1 * np.abs(y))
    assert frame["right"].tolist() == within.tolist()
    assert 0 < within.sum() < len(frame)  # the test tells right from wrong
    assert "p_" not in "".join(frame.columns)


def test_regression_without_a_tolerance_is_neither_right_nor_wrong(
    store: trenches.Store,
) -> None:
    ds, ref = _prices(store, tolerance=None)
    frame = store.predictions(ref)
    assert frame["right"].isna().all() and frame["error"].notna().all()
    # The verdict is worked out when read: a tolerance set later applies at once.
    ds.set_tolerance("2")
    again = store.predictions(ref)
    assert again["right"].tolist() == (again["error"].abs() <= 2).tolist()


def test_a_baselines_imported_predictions(store: trenches.Store) -> None:
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(tumours(30, seed=0), source="expert", labelled_by="dr.a")
    truth = ds.patterns()["label"]
    ids = [int(i) for i in truth.index[[4, 1, 7]]]
    p_benign = np.array([0.9, 0.2, 0.6])
    reads = pd.DataFrame(
        {
            "pattern_id": ids,
            "prediction": np.where(p_benign >= 0.5, "benign", "malignant"),
            "proba_benign": p_benign,
            "proba_malignant": 1 - p_benign,
        }
    )
    store.baselines.add("radiologists", dataset="tumours", predictions=reads)
    frame = store.predictions("radiologists")
    assert list(frame.index) == sorted(ids)
    by_id = reads.set_index("pattern_id").loc[sorted(ids)]
    assert list(frame["prediction"]) == list(by_id["prediction"])
    assert np.allclose(frame["p_benign"], by_id["proba_benign"])
    assert list(frame["right"]) == [by_id["prediction"][i] == truth[i] for i in sorted(ids)]
    assert frame.attrs["predictor"] == "radiologists"
    # Without probabilities, there are no p_ columns.
    plain = reads[["pattern_id", "prediction"]]
    store.baselines.add("rule", dataset="tumours", predictions=plain)
    assert not [c for c in store.predictions("rule").columns if c.startswith("p_")]


def test_a_dataset_column_named_like_a_table_column_is_renamed(store: trenches.Store) -> None:
    ds = store.datasets.create("notes", task="classification", label="label")
    ds.add(
        pd.DataFrame({"source": ["web", "mail"], "loss": [1.0, 2.0], "label": ["a", "b"]}),
        source="expert",
    )
    ids = ds.pattern_info().index.tolist()
    store.baselines.add(
        "guess", dataset="notes", predictions=pd.DataFrame({"pattern_id": ids, "prediction": "a"})
    )
    frame = store.predictions("guess")
    assert list(frame["data_source"]) == ["web", "mail"]
    assert list(frame["data_loss"]) == [1.0, 2.0]
    assert list(frame["source"]) == ["expert", "expert"]


# --- the command line ------------------------------------------------------------------


def test_export_to_parquet_reads_back_as_the_api_gives_it(
    store: trenches.Store, store_url: str, classifier: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.parquet"
    code, stdout, err = run_cli(
        "--store", store_url, "predictions", "export", classifier, "--out", out, "--patterns", "all"
    )
    assert code == 0, err
    expected = store.predictions(classifier, "all")
    unpredicted = int((~expected["predicted"]).sum())
    assert f"wrote {len(expected)} rows" in stdout
    assert f"{unpredicted} without a prediction" in stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)


def test_export_to_csv_and_json_lines(
    store: trenches.Store, store_url: str, classifier: str, tmp_path: Path
) -> None:
    expected = store.predictions(classifier, "all")
    for name in ("all.csv", "all.jsonl"):
        out = tmp_path / name
        code, _, err = run_cli(
            "--store",
            store_url,
            "predictions",
            "export",
            classifier,
            "--out",
            out,
            "--patterns",
            "all",
        )
        assert code == 0, err
        if name.endswith(".csv"):
            back = pd.read_csv(out, index_col="pattern_id")
        else:
            back = pd.read_json(out, lines=True, dtype=False, precise_float=True).set_index(
                "pattern_id"
            )
        assert list(back.index) == list(expected.index)
        assert list(back["predicted"]) == list(expected["predicted"])
        assert back["prediction"].isna().tolist() == (~expected["predicted"]).tolist()
        # Floats are written exactly, nulls as nulls.
        assert np.array_equal(back["loss"], expected["loss"], equal_nan=True)


def test_export_refuses_a_suffix_it_cannot_write(
    store_url: str, classifier: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.xlsx"
    code, _, err = run_cli("--store", store_url, "predictions", "export", classifier, "--out", out)
    assert code == 2
    assert ".xlsx" in err and ".csv, .parquet or .jsonl" in err
    assert not out.exists()


def test_show_json_gives_the_first_rows_and_the_counts(
    store: trenches.Store, store_url: str, classifier: str
) -> None:
    code, stdout, err = run_cli(
        "--store", store_url, "predictions", "show", classifier, "--patterns", "all",
        "--limit", "5", "--json",
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(stdout)
    expected = store.predictions(classifier, "all")
    assert (shown["predictor"], shown["pattern_set"]) == (classifier, "tumours:all")
    assert shown["rows"] == len(expected) and shown["shown"] == 5
    assert shown["unpredicted"] == int((~expected["predicted"]).sum())
    rows = shown["predictions"]
    assert [r["pattern_id"] for r in rows] == list(expected.index[:5])
    first = expected.iloc[0]
    assert rows[0]["label"] == first["label"] and rows[0]["predicted"] == first["predicted"]


def test_show_prints_a_table_of_ids_given(
    store: trenches.Store, store_url: str, classifier: str
) -> None:
    ids = split_of(store.datasets.get("tumours"), "validation").ids[:3]
    code, stdout, err = run_cli(
        "--store", store_url, "predictions", "show", classifier, "--patterns",
        ",".join(map(str, ids)),
    )  # fmt: skip
    assert code == 0, err
    assert f"{classifier} on tumours:ids: 3 patterns, 0 without a prediction" in stdout
    assert all(str(i) in stdout for i in ids) and "p_malignant" in stdout
