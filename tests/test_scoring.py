"""Batch scoring of files (``store.score``, ``trenches predict``): every row of Parquet,
CSV and JSON lines files predicted as the model itself predicts it, in input order, a
slice at a time; on a real Dask cluster of two worker processes the output file is
byte for byte the one this process writes, on SQLite with a local folder and on
PostgreSQL with moto's S3 server (the input files on S3 too); bad input is an error
naming the file (and row and column) that leaves no output file behind."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import trenches
from trenches import compute
from trenches.errors import InvalidInput, UntrustedModel
from trenches.models.formats import ONNX_TOLERANCE

from conftest import make_frame, run_cli

# One xdist worker runs the tests of the session's cluster, so that one cluster serves them.
pytestmark = pytest.mark.xdist_group("dask")


def _cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def _classifier(store: trenches.Store) -> tuple[trenches.ModelVersion, Any]:
    """A fitted classifier registered (with its ONNX form) without a dataset: scoring
    needs none."""
    X, y = _cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return store.models.register(model, "clf", X=X), model


def _rows(n_copies: int = 1) -> pd.DataFrame:
    """The model's inputs, with an id first and a text column that CSV has to quote."""
    X, _ = _cancer()
    X = pd.concat([X] * n_copies, ignore_index=True)
    notes = np.array(["plain", "a, comma", 'a "quote"', "two\nlines", ""], dtype=object)
    return pd.concat(
        [
            pd.DataFrame({"id": np.arange(len(X)) + 1000}),
            X,
            pd.DataFrame({"note": notes[np.arange(len(X)) % len(notes)]}),
        ],
        axis=1,
    )


def _write(frame: pd.DataFrame, path: str) -> None:
    with fsspec.open(path, "wb") as f:
        if path.endswith(".parquet"):
            frame.to_parquet(f, index=False, row_group_size=100)
        elif path.endswith(".csv"):
            f.write(frame.to_csv(index=False).encode())
        else:  # exactly: pandas' to_json keeps 10 decimals
            f.write(_json_lines(frame))


def _json_lines(frame: pd.DataFrame) -> bytes:
    records = frame.to_dict("records")
    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, dtype={"note": str})
    return pd.DataFrame([orjson.loads(line) for line in path.read_bytes().splitlines()])


def _assert_predicted_as_the_model_does(
    got: pd.DataFrame, rows: pd.DataFrame, store: trenches.Store, version: Any, native: Any
) -> None:
    X = rows[list(version.signature.columns)]
    loaded = store.models.load(version, format="onnx")  # what scoring runs
    assert np.array_equal(got["prediction"].to_numpy(), loaded.predict(X))
    proba = loaded.predict_proba(X)
    assert np.array_equal(got[["p_0", "p_1"]].to_numpy(), proba)
    # ... which is the scikit-learn model's own answer (to the ONNX form's tolerance).
    assert np.array_equal(got["prediction"].to_numpy(), native.predict(X))
    assert np.abs(got[["p_0", "p_1"]].to_numpy() - native.predict_proba(X)).max() < ONNX_TOLERANCE


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_each_format_is_predicted_as_the_model_predicts_it_in_order(
    sqlite_store: trenches.Store, tmp_path: Path, suffix: str
) -> None:
    version, native = _classifier(sqlite_store)
    rows = _rows()
    _write(rows, str(tmp_path / f"day{suffix}"))
    out = tmp_path / f"scores{suffix}"
    heard: list[tuple[int, int]] = []
    done = sqlite_store.score(
        "clf@1",
        tmp_path / f"day{suffix}",
        out,
        chunk=64,
        progress=lambda n, t: heard.append((n, t)),
    )
    assert done.rows == len(rows) and done.output == str(out) and done.cluster is None
    assert sum(n for n, _ in heard) == len(rows) and len(heard) == -(-len(rows) // 64)
    assert {t for _, t in heard} == {len(rows)}
    got = _read(out)
    assert list(got.columns) == [*rows.columns, "prediction", "p_0", "p_1"]
    assert got["id"].astype(str).tolist() == rows["id"].astype(str).tolist()
    assert got["note"].tolist() == rows["note"].tolist()  # quoted commas, quotes, newlines
    _assert_predicted_as_the_model_does(got, rows, sqlite_store, version, native)
    assert not list(tmp_path.glob(".*.part"))


def test_a_glob_of_files_is_read_in_the_order_of_their_names(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    version, native = _classifier(sqlite_store)
    rows = _rows()
    (tmp_path / "in").mkdir()
    cuts = [0, 100, 101, 350, len(rows)]
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        _write(rows.iloc[a:b], str(tmp_path / "in" / f"part-{k:02d}.parquet"))
    (tmp_path / "in" / "notes.txt").write_text("not matched")
    done = sqlite_store.score(
        version, str(tmp_path / "in" / "part-*.parquet"), tmp_path / "out.parquet", chunk=40
    )
    assert len(done.inputs) == 4 and done.inputs == tuple(sorted(done.inputs))
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["id"].tolist() == rows["id"].tolist()
    _assert_predicted_as_the_model_does(got, rows, sqlite_store, version, native)


def test_kept_columns_and_a_regression_and_names_clear_of_the_inputs(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    X, _ = _cancer()
    target = X.pop("mean area")
    model = LinearRegression().fit(X, target)
    sqlite_store.models.register(model, "area", X=X)
    rows = X.assign(customer_id=np.arange(len(X)), prediction="yesterday's")
    rows.to_parquet(tmp_path / "in.parquet")
    sqlite_store.score("area@1", tmp_path / "in.parquet", tmp_path / "out.csv")
    got = pd.read_csv(tmp_path / "out.csv")
    assert list(got.columns[-3:]) == ["customer_id", "data_prediction", "prediction"]
    want = sqlite_store.models.load("area@1", format="onnx").predict(X)
    assert np.array_equal(got["prediction"].to_numpy(), want)
    assert np.abs(want - model.predict(X)).max() < ONNX_TOLERANCE * np.abs(want).max()
    sqlite_store.score(
        "area@1", tmp_path / "in.parquet", tmp_path / "ids.jsonl", keep=["customer_id"]
    )
    ids = _read(tmp_path / "ids.jsonl")
    assert list(ids.columns) == ["customer_id", "prediction"]
    assert ids["customer_id"].tolist() == list(range(len(X)))


@pytest.mark.parametrize("onnx", [True, False], ids=["onnx", "native"])
def test_a_model_over_text_inputs_scores_a_file_like_itself(
    sqlite_store: trenches.Store, tmp_path: Path, onnx: bool
) -> None:
    """Its ONNX form takes one input a column; a model skl2onnx cannot convert (label
    spreading) predicts from the frame natively."""
    from sklearn.semi_supervised import LabelSpreading

    frame = make_frame(300)
    X, y = frame.drop(columns="label"), frame["label"]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), ["site"]), remainder="passthrough", verbose_feature_names_out=False
        ),
        LogisticRegression(max_iter=1000) if onnx else LabelSpreading(),
    ).fit(X, y)
    version = sqlite_store.models.register(model, "sites", X=X)
    assert ("onnx" in version.formats) == onnx
    frame.to_csv(tmp_path / "in.csv", index=False)
    sqlite_store.score("sites@1", tmp_path / "in.csv", tmp_path / "out.parquet", chunk=70)
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["prediction"].tolist() == model.predict(X).tolist()
    proba = got[["p_benign", "p_malignant"]].to_numpy()
    assert np.abs(proba - model.predict_proba(X)).max() <= (1e-5 if onnx else 0)


# --- on the session's cluster -------------------------------------------------------------


def _scored_there(address: str) -> int:
    """How many scoring tasks the cluster at ``address`` has finished so far."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {
                k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()
            }
        )
    return sum(int(c.get("memory", 0)) for k, c in counts.items() if k.startswith("trenches-score"))


def _inputs_beside(store: trenches.Store, tmp_path: Path) -> str:
    """Where a store's input files go: its bucket on S3 (moto's), or a local folder."""
    if "://" in store.location.artifacts:
        return store.location.artifacts.rsplit("/", 1)[0] + "/inputs"
    (tmp_path / "inputs").mkdir()
    return str(tmp_path / "inputs")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_a_cluster_writes_the_file_this_process_writes(
    store: trenches.Store,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    suffix: str,
) -> None:
    _classifier(store)
    rows = _rows(2)
    where = _inputs_beside(store, tmp_path)
    _write(rows.iloc[:700], f"{where}/day-a{suffix}")
    _write(rows.iloc[700:], f"{where}/day-b{suffix}")
    here = store.score("clf@1", f"{where}/day-*{suffix}", tmp_path / f"here{suffix}", chunk=150)
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _scored_there(dask_scheduler)
    there = store.score("clf@1", f"{where}/day-*{suffix}", tmp_path / f"there{suffix}", chunk=150)
    assert there.cluster is not None and here.cluster is None
    slices = -(-700 // 150) + -(-(len(rows) - 700) // 150)  # a task each
    assert _scored_there(dask_scheduler) - before == slices
    assert there.rows == here.rows == len(rows)
    assert (tmp_path / f"there{suffix}").read_bytes() == (tmp_path / f"here{suffix}").read_bytes()


def test_ctrl_c_cancels_the_cluster_tasks_and_writes_nothing(
    sqlite_store: trenches.Store,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from distributed import Client

    _classifier(sqlite_store)
    _write(_rows(4), str(tmp_path / "day.csv"))
    monkeypatch.setenv(compute.ENV, dask_scheduler)

    def interrupt(n: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sqlite_store.score(
            "clf@1", tmp_path / "day.csv", tmp_path / "out.csv", chunk=50, progress=interrupt
        )
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".*.part"))
    with Client(dask_scheduler, set_as_default=False) as client:
        deadline = time.monotonic() + 20
        while True:
            left = client.run_on_scheduler(
                lambda dask_scheduler: [
                    k for k in dask_scheduler.tasks if str(k).startswith("trenches-score")
                ]
            )
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert left == []


def test_a_cluster_refuses_a_pickled_model_before_reading_a_file(
    sqlite_store: trenches.Store,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    X, _ = _cancer()
    sqlite_store.models.register(_Halves(), "halves", X=X)
    (tmp_path / "broken.csv").write_text('a,b\n1,"2\n')
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    with pytest.raises(UntrustedModel, match=r"halves@1 loads only with trusted=True.*pickle"):
        sqlite_store.score("halves@1", tmp_path / "broken.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_bad_input_on_a_cluster_is_named_as_in_one_process(
    sqlite_store: trenches.Store,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _classifier(sqlite_store)
    bad = _rows().astype({"worst area": object})
    bad.loc[440, "worst area"] = "oops"
    _write(bad, str(tmp_path / "day.csv"))
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    with pytest.raises(
        InvalidInput, match=r'day\.csv, row 441, column "worst area": .*not a number'
    ):
        sqlite_store.score("clf@1", tmp_path / "day.csv", tmp_path / "out.csv", chunk=100)
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".*.part"))


# --- bad input ------------------------------------------------------------------------


@pytest.fixture
def scorer(sqlite_store: trenches.Store, tmp_path: Path) -> trenches.Store:
    """A store with ``clf@1``, and yesterday's output file at ``out.csv``, which a
    failed run must leave as it was."""
    _classifier(sqlite_store)
    (tmp_path / "out.csv").write_text("yesterday\n")
    return sqlite_store


def _refused(store: trenches.Store, tmp_path: Path, given: str, match: str, **kw: Any) -> None:
    with pytest.raises(InvalidInput, match=match):
        store.score("clf@1", given, tmp_path / "out.csv", **kw)
    assert (tmp_path / "out.csv").read_text() == "yesterday\n"
    assert not list(tmp_path.glob(".*.part"))


def test_a_column_the_model_takes_that_a_file_lacks_is_named(
    scorer: trenches.Store, tmp_path: Path
) -> None:
    rows = _rows()
    _write(rows, str(tmp_path / "a.parquet"))
    _write(rows.drop(columns="worst area"), str(tmp_path / "b.parquet"))
    _refused(
        scorer,
        tmp_path,
        str(tmp_path / "*.parquet"),
        r'b\.parquet, column "worst area": clf@1 takes',
    )
    _write(rows.drop(columns="worst area"), str(tmp_path / "c.jsonl"))
    _refused(
        scorer, tmp_path, str(tmp_path / "c.jsonl"), r'c\.jsonl, column "worst area": rows 1 to'
    )
    _refused(
        scorer,
        tmp_path,
        str(tmp_path / "a.parquet"),
        r'column "customer": .*not in the file',
        keep=["id", "customer"],
    )


def test_a_file_that_does_not_parse_is_named_with_its_row(
    scorer: trenches.Store, tmp_path: Path
) -> None:
    text = _rows().to_csv(index=False).splitlines()
    # Row 301 (id 1300, in the fourth slice of 100) has a field too few; the rows before
    # it hold quoted newlines, so it is not line 302.
    at = next(k for k, line in enumerate(text) if line.startswith("1300,"))
    assert at > 301
    text[at] = text[at].rsplit(",", 1)[0]
    (tmp_path / "ragged.csv").write_text("\n".join(text) + "\n")
    _refused(
        scorer,
        tmp_path,
        str(tmp_path / "ragged.csv"),
        r"ragged\.csv, row 301: expected 32 fields, found 31",
        chunk=100,
    )
    lines = _json_lines(_rows()).decode().splitlines()
    lines[250] = lines[250][:-5]
    (tmp_path / "cut.jsonl").write_text("\n".join(lines) + "\n")
    _refused(scorer, tmp_path, str(tmp_path / "cut.jsonl"), r"cut\.jsonl, row 251: not valid JSON")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is no parquet file")
    _refused(
        scorer, tmp_path, str(tmp_path / "junk.parquet"), r"junk\.parquet: not a readable Parquet"
    )
    bad = _rows()
    bad["mean radius"] = bad["mean radius"].astype(object)
    bad.loc[440, "mean radius"] = "oops"
    bad.to_csv(tmp_path / "oops.csv", index=False)
    _refused(
        scorer,
        tmp_path,
        str(tmp_path / "oops.csv"),
        r'oops\.csv, row 441, column "mean radius": .*not a number',
        chunk=100,
    )


def test_no_matching_file_and_an_unknown_output_format_are_refused_before_any_work(
    scorer: trenches.Store, tmp_path: Path
) -> None:
    _refused(
        scorer, tmp_path, str(tmp_path / "nothing-*.csv"), r"nothing-\*\.csv: no file matches it"
    )
    _refused(scorer, tmp_path, str(tmp_path / "missing.csv"), r"missing\.csv: no such file")
    _write(_rows(), str(tmp_path / "day.parquet"))
    with pytest.raises(InvalidInput, match=r"out\.xlsx: cannot tell the format .*'\.xlsx'"):
        scorer.score("clf@1", tmp_path / "day.parquet", tmp_path / "out.xlsx")
    with pytest.raises(InvalidInput, match=r"day\.txt: cannot tell the format"):
        (tmp_path / "day.txt").write_text("x")
        scorer.score("clf@1", tmp_path / "day.txt", tmp_path / "out.csv")
    assert not (tmp_path / "out.xlsx").exists()


class _Halves:
    """A model that is no scikit-learn estimator: registered as a pickle."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["mean radius"] > 14, 1.0, 0.0)


def test_a_pickled_model_loads_only_when_trusted(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    X, _ = _cancer()
    sqlite_store.models.register(_Halves(), "halves", X=X)
    X.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(UntrustedModel):
        sqlite_store.score("halves@1", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    # Refused before any file is read: a broken one is not even looked at.
    (tmp_path / "broken.csv").write_text('a,b\n1,"2\n')
    with pytest.raises(UntrustedModel):
        sqlite_store.score("halves@1", tmp_path / "broken.csv", tmp_path / "out.parquet")
    sqlite_store.score("halves@1", tmp_path / "in.parquet", tmp_path / "out.parquet", trusted=True)
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["prediction"].tolist() == _Halves().predict(X).tolist()


def test_the_output_can_be_a_url_and_appears_only_when_whole(
    sqlite_store: trenches.Store, tmp_path: Path, moto_s3: str
) -> None:
    from conftest import s3_bucket

    _classifier(sqlite_store)
    rows = _rows()
    _write(rows, str(tmp_path / "day.parquet"))
    url = f"s3://{s3_bucket(moto_s3)}/scores/day.parquet"
    sqlite_store.score("clf@1", tmp_path / "day.parquet", url, chunk=200)
    sqlite_store.score("clf@1", tmp_path / "day.parquet", tmp_path / "here.parquet", chunk=200)
    with fsspec.open(url, "rb") as f:
        assert f.read() == (tmp_path / "here.parquet").read_bytes()
    bad = rows.astype({"mean radius": object})
    bad.loc[500, "mean radius"] = "oops"
    _write(bad, str(tmp_path / "bad.csv"))
    with pytest.raises(InvalidInput, match="row 501"):
        sqlite_store.score("clf@1", tmp_path / "bad.csv", url + ".csv", chunk=200)
    assert not fsspec.filesystem("s3").exists(url.removeprefix("s3://") + ".csv")


# --- the command ------------------------------------------------------------------------


def test_the_command_scores_a_glob_into_a_file(tmp_path: Path) -> None:
    with trenches.open(tmp_path / "store") as store:
        version, native = _classifier(store)
    rows = _rows()
    _write(rows.iloc[:300], str(tmp_path / "day-1.csv"))
    _write(rows.iloc[300:], str(tmp_path / "day-2.csv"))
    code, out, err = run_cli(
        "--store",
        tmp_path / "store",
        "predict",
        "clf@1",
        "--input",
        str(tmp_path / "day-*.csv"),
        "--output",
        tmp_path / "scores.parquet",
        "--keep",
        "id",
        "--chunk-size",
        "128",
        "--json",
    )
    assert code == 0, err
    assert '"rows": 569' in out
    got = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(got.columns) == ["id", "prediction", "p_0", "p_1"]
    with trenches.open(tmp_path / "store") as store:
        _assert_predicted_as_the_model_does(got, rows, store, version, native)
    code, out, err = run_cli(
        "--store",
        tmp_path / "store",
        "predict",
        "clf@1",
        "-i",
        str(tmp_path / "none-*.csv"),
        "-o",
        tmp_path / "x.csv",
    )
    assert code == 2 and "no file matches it" in err and not (tmp_path / "x.csv").exists()
    code, out, _ = run_cli("predict", "--help")
    assert "trenches predictions" in out and "--keep" in out


# --- the slices of a text file ----------------------------------------------------------


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 22])
def test_a_csv_file_is_cut_where_its_rows_end_whatever_the_blocks_it_is_scanned_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Quoted newlines (and quotes) stay in their row, blank lines are no rows, CRLF
    line ends and a last row without a newline are rows, however the scan's blocks
    fall."""
    from trenches.scoring import inputs

    monkeypatch.setattr(inputs, "_BLOCK", block)
    text = '\ufeffid,"a\r\nnote"\r\n1,"x\r\ny"\r\n\r\n2,""""\r\n\n3,plain\r\n4,"a,b\n\nc"\n\n5,last'
    (tmp_path / "f.csv").write_bytes(text.encode())
    planned = inputs.plan(str(tmp_path / "f.csv"), 2)
    assert planned.columns == ("id", "a\r\nnote") and planned.rows == 5
    assert [(s.first_row, s.rows) for s in planned.slices] == [(1, 2), (3, 2), (5, 1)]
    read = [inputs.read(s, None).to_pydict() for s in planned.slices]
    assert [v for r in read for v in r["id"]] == ["1", "2", "3", "4", "5"]
    notes = [v for r in read for v in r["a\r\nnote"]]
    assert notes == ["x\r\ny", '"', "plain", "a,b\n\nc", "last"]


@pytest.mark.parametrize("block", [1, 5, 1 << 22])
def test_a_json_lines_file_is_cut_at_its_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from trenches.scoring import inputs

    monkeypatch.setattr(inputs, "_BLOCK", block)
    (tmp_path / "f.jsonl").write_bytes(b'{"a": 1}\r\n\n{"a": "x\\ny"}\n{"b": 2.5}\n\n{"a": 4}')
    planned = inputs.plan(str(tmp_path / "f.jsonl"), 3)
    assert planned.rows == 4 and planned.columns is None
    assert [(s.first_row, s.rows) for s in planned.slices] == [(1, 3), (4, 1)]
    first, second = (inputs.read(s, None).to_pydict() for s in planned.slices)
    assert first == {"a": ["1", "x\ny", None], "b": [None, None, 2.5]}
    assert second == {"a": [4]}
