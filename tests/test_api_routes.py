"""The routes of /api/v1 against the library, on SQLite and PostgreSQL: a real server on
loopback gives, noun by noun, what the library gives on the same store, and refuses
what a caller's role does not allow."""

from __future__ import annotations

import csv
import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

import test_api
import trenches
from test_api import Live
from trenches.api.app import PREFIX
from trenches.api.routes import models as model_routes
from trenches.gates.outputs import junit
from trenches.json_form import to_json
from trenches.patterns.snapshots import TrainingData

from conftest import log_requests, make_frame

INPUTS = ["radius", "texture", "grade"]
#: The store as a team runs it: PostgreSQL with artifacts on S3, SQLite with a folder.
store = test_api.store


class Team:
    """A live server over the store, and a token per role (granted on ``tumours`` and
    ``clf``), per admin account (``admin``) and for a user with no grant (``stranger``)."""

    def __init__(self, store: trenches.Store, live: Live, tokens: dict[str, str]) -> None:
        self.store = store
        self.live = live
        self.tokens = tokens
        self.client = httpx.Client(base_url=live.url + PREFIX, timeout=120)

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, who: str, url: str, **kwargs: Any) -> Any:
        """The JSON answer of a GET that must succeed."""
        answer = self.call(who, "GET", url, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()


def over_http(store: trenches.Store, action: str) -> list[Any]:
    """The audit rows of ``action`` made by signed-in users (the house's, made by the
    library here, are the local user's)."""
    return [e for e in store.audit.list(action=action) if e.user_id is not None]


def json_of(value: Any) -> Any:
    """``value`` as the server sends it: trenches' JSON form, through the wire."""
    return orjson.loads(orjson.dumps(to_json(value)))


def _house(store: trenches.Store) -> None:
    """``tumours``, snapshotted; ``clf@1`` and ``clf@2`` fitted on it in runs 1 and 2 and
    evaluated on validation; a problem; requests answered by ``clf@1`` with feedback;
    ``secret``, a dataset nobody but admins may see, with a run of its own."""
    frame = make_frame(300)
    ds = store.datasets.create(
        "tumours", task="classification", label="label", salt=b"tumours-api-test".hex()
    )
    ds.add(frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    X = X[INPUTS]
    # A cautious model and one that learns the noise by heart: they disagree.
    models = {0.01: LogisticRegression(C=1e-4), 10.0: DecisionTreeClassifier(random_state=0)}
    for c, model in models.items():
        with store.run(f"C={c}", snapshot=snap, params={"C": c}, capture_code=False) as run:
            run.log_metric("accuracy", 0.5 + c / 100)
            run.log_model(model.fit(X, y), "clf", X=X)
    for v in ("clf@1", "clf@2"):
        store.evaluate(v, "validation")
    store.problems.create("small", dataset="tumours", title="small tumours")
    store.problems.add("small", positive=[1, 2, 3], negative=[4])
    version = store.models.get("clf@1")
    log_requests(store, version, frame.head(20), INPUTS, label="label")
    secret = store.datasets.create("secret", task="classification", label="label")
    secret.add(make_frame(30, seed=3), source="expert")
    with store.run("hidden", snapshot=secret.snapshot(), capture_code=False):
        pass
    with store.run("loose", capture_code=False):
        pass


@pytest.fixture
def team(store: trenches.Store) -> Any:
    _house(store)
    tokens = test_api.role_tokens(store)
    with Live(store) as live:
        t = Team(store, live, tokens)
        yield t
        t.client.close()


def _csv(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    return out.getvalue().encode()


def _upload(team: Team, who: str, content: bytes, name: str, **form: Any) -> httpx.Response:
    return team.call(
        who,
        "POST",
        "/datasets/tumours/imports",
        files={"file": (name, content, "text/csv")},
        data={"source": "expert", **form},
    )


# --- datasets, imports, patterns ----------------------------------------------------------


def test_a_dataset_made_and_filled_over_http_is_the_librarys(team: Team) -> None:
    body = {"task": "regression", "label": "size", "description": "cells", "tolerance": "10%"}
    refused = team.call("maintainer", "POST", "/datasets/cells", json=body)
    assert refused.status_code == 403  # a new namespace: granted first, by an admin
    for who in ("tester", "maintainer"):
        team.store.grants.grant(f"{who}-user", who, "cells")
    assert team.call("tester", "POST", "/datasets/cells", json=body).status_code == 403
    made = team.call("maintainer", "POST", "/datasets/cells", json=body)
    assert made.status_code == 201, made.text
    cells = team.store.datasets.get("cells")
    assert made.json()["task"] == cells.task == "regression"
    assert made.json()["tolerance"] == str(cells.tolerance)
    again = team.call("maintainer", "POST", "/datasets/cells", json=body)
    assert again.status_code == 409
    assert team.call("admin", "POST", "/datasets/cells", json={"task": "x"}).status_code == 422

    rows = make_frame(12, seed=5)
    added = _upload(team, "labeller", _csv(rows), "batch.csv", note="from the lab")
    assert added.status_code == 201, added.text
    result = added.json()
    assert (result["rows"], result["file"], result["source"]) == (12, "batch.csv", "expert")
    stored = team.store.datasets.get("tumours").patterns(
        ids=list(range(result["first_id"], result["last_id"] + 1))
    )
    pd.testing.assert_frame_equal(
        stored.reset_index(drop=True)[rows.columns], rows, check_dtype=False
    )
    info = team.store.datasets.get("tumours").pattern_info()
    assert set(info.loc[result["first_id"] : result["last_id"], "labelled_by"]) == {"labeller-user"}
    [row] = over_http(team.store, "patterns.add")
    assert (row.actor, row.target, row.detail["file"]) == (
        "labeller-user",
        "dataset:tumours",
        "batch.csv",
    )
    assert _upload(team, "viewer", _csv(rows), "batch.csv").status_code == 403


def test_a_page_of_patterns_holds_their_values_exactly(team: Team) -> None:
    ds = team.store.datasets.get("tumours")
    page = team.get("viewer", "/datasets/tumours/patterns", params={"split": "test", "limit": 7})
    ids = ds.pattern_ids("test")[:7].tolist()
    assert [r["pattern_id"] for r in page["items"]] == ids
    local = ds.patterns(ids=ids).reset_index()
    assert page["items"] == json_of(local.to_dict(orient="records"))
    assert [r["radius"] for r in page["items"]] == local["radius"].tolist()


def test_a_bad_row_of_an_upload_is_a_422_naming_row_and_field_and_nothing_is_stored(
    team: Team,
) -> None:
    rows = make_frame(9, seed=6).astype({"radius": object})
    rows.loc[6, "radius"] = "oops"
    before = len(team.store.datasets.get("tumours").patterns(include_inactive=True))
    refused = _upload(team, "labeller", _csv(rows), "bad.csv")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["detail"] == "bad.csv, row 7, column \"radius\": 'oops' is not a number"
    assert problem["field"] == "radius"
    after = len(team.store.datasets.get("tumours").patterns(include_inactive=True))
    assert after == before
    assert over_http(team.store, "patterns.add") == []


def test_a_client_file_name_is_kept_as_text_and_never_becomes_a_path(
    team: Team, tmp_path: Path
) -> None:
    passwd = Path("/etc/passwd")
    was = passwd.read_bytes() if passwd.exists() else None
    rows = make_frame(5, seed=7)
    name = "../../etc/passwd"
    nameless = _upload(team, "labeller", _csv(rows), name)
    assert nameless.status_code == 422 and nameless.json()["field"] == "format"
    added = _upload(team, "labeller", _csv(rows), name, format="csv")
    assert added.status_code == 201, added.text
    assert added.json()["file"] == name
    assert (passwd.read_bytes() if passwd.exists() else None) == was
    assert not (tmp_path / ".." / ".." / "etc" / "passwd").exists()
    [row] = over_http(team.store, "patterns.add")
    assert row.detail["file"] == name
    long = _upload(team, "labeller", _csv(rows), "x" * 1_001 + ".csv")
    assert long.status_code == 422 and long.json()["field"] == "file"
    # httpx escapes control characters in a file name; a raw client need not.
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="source"\r\n\r\nexpert\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="bell\x07.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + _csv(rows) + b"\r\n--b--\r\n"
    )
    bell = team.call(
        "labeller",
        "POST",
        "/datasets/tumours/imports",
        content=raw,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert bell.status_code == 422 and bell.json()["field"] == "file", bell.text


def test_an_upload_over_the_body_limit_is_a_413_and_stores_nothing(
    store: trenches.Store,
) -> None:
    _house(store)
    admin = store.accounts.create("root", admin=True)
    token = store.tokens.create(admin, "t", expires_in=None).secret
    before = len(store.datasets.get("tumours").patterns())
    big = _csv(make_frame(2_000))
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="source"\r\n\r\nexpert\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + big + b"\r\n--b--\r\n"
    )

    def chunks() -> Iterator[bytes]:  # sent without a length: counted as it comes
        for start in range(0, len(raw), 4_096):
            yield raw[start : start + 4_096]

    url = f"{PREFIX}/datasets/tumours/imports"
    headers = {"Authorization": f"Bearer {token}"}
    with Live(store, max_body=20_000) as live, httpx.Client(base_url=live.url) as client:
        declared = client.post(
            url,
            files={"file": ("big.csv", big, "text/csv")},
            data={"source": "expert"},
            headers=headers,
        )
        streamed = client.post(
            url,
            content=chunks(),
            headers={**headers, "content-type": "multipart/form-data; boundary=b"},
        )
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["detail"] == "the body is over 20000 bytes"
    assert "content-length" not in streamed.request.headers
    assert len(store.datasets.get("tumours").patterns()) == before


def test_deactivation_and_history_over_http_are_the_librarys(team: Team) -> None:
    body = {"ids": [5, 6], "reason": "duplicates"}
    refused = team.call("tester", "POST", "/datasets/tumours/patterns/deactivate", json=body)
    assert refused.status_code == 403
    done = team.call("maintainer", "POST", "/datasets/tumours/patterns/deactivate", json=body)
    assert done.status_code == 200 and done.json() == {"deactivated": 2}
    assert not team.store.patterns.get(5).active
    history = team.get("viewer", "/datasets/tumours/patterns/5/history")
    assert history == json_of(team.store.patterns.history(5))
    assert history["changes"][0]["changed_by"] == "maintainer-user"
    secret_id = int(team.store.datasets.get("secret").pattern_ids()[0])
    elsewhere = {"ids": [secret_id], "reason": "x"}
    lost = team.call("maintainer", "POST", "/datasets/tumours/patterns/deactivate", json=elsewhere)
    assert lost.status_code == 404
    assert team.store.patterns.get(secret_id).active
    hidden = team.call("viewer", "GET", f"/datasets/tumours/patterns/{secret_id}/history")
    assert hidden.status_code == 404
    [row] = over_http(team.store, "patterns.deactivate")
    assert row.actor == "maintainer-user" and row.detail["ids"] == [5, 6]


# --- snapshots and runs -------------------------------------------------------------------


def test_snapshots_over_http_are_the_librarys(team: Team) -> None:
    ds = team.store.datasets.get("tumours")
    assert team.get("viewer", "/datasets/tumours/snapshots") == json_of(ds.snapshots())
    body = {"note": "for the next model"}
    assert team.call("tester", "POST", "/datasets/tumours/snapshots", json=body).status_code == 403
    made = team.call("maintainer", "POST", "/datasets/tumours/snapshots", json=body)
    assert made.status_code == 201, made.text
    snap = team.store.snapshots.get(made.json()["id"])
    assert made.json() == json_of(snap) and snap.note == "for the next model"
    assert team.get("viewer", f"/datasets/tumours/snapshots/{snap.id}") == json_of(snap)
    secret = team.store.datasets.get("secret").snapshots()[0]
    assert team.call("viewer", "GET", f"/datasets/tumours/snapshots/{secret.id}").status_code == 404
    assert team.call("viewer", "GET", "/datasets/secret/snapshots").status_code == 403
    [row] = over_http(team.store, "snapshots.create")
    assert row.actor == "maintainer-user"


def _training_data(answer: httpx.Response, label: str = "label") -> TrainingData:
    """A Parquet answer rebuilt as the route's docstring tells a client to."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    X = pd.read_parquet(io.BytesIO(answer.content))
    y = X.pop(label).to_numpy()
    weights = X.pop("sample_weight").to_numpy()
    return TrainingData(X, y, weights, X.index.to_numpy())


def _assert_same(remote: TrainingData, local: TrainingData) -> None:
    pd.testing.assert_frame_equal(remote.X, local.X)
    for got, wanted in zip(remote[1:], local[1:], strict=True):
        assert got.dtype == wanted.dtype
        np.testing.assert_array_equal(got, wanted)


def test_training_data_over_http_is_the_snapshots(team: Team) -> None:
    first = team.store.snapshots.get(1)
    url = "/datasets/tumours/snapshots/1/training-data"
    _assert_same(_training_data(team.call("viewer", "GET", url)), first.training_data())
    weighted = {"split": "all", "weighting": "exponential", "half_life_days": 7}
    _assert_same(
        _training_data(team.call("viewer", "GET", url, params=weighted)),
        first.training_data(None, weighting="exponential", half_life_days=7.0),
    )
    by_age = {"split": "test", "weighting": "inverse-age", "age_offset_days": 2}
    _assert_same(
        _training_data(team.call("viewer", "GET", url, params=by_age)),
        first.training_data("test", weighting="inverse-age", age_offset_days=2.0),
    )
    # A snapshot made while the problem is open holds its patterns out, over HTTP too.
    held = team.store.datasets.get("tumours").snapshot(note="problems held out")
    assert set(held.held_out) >= {1, 2, 3, 4}
    url = f"/datasets/tumours/snapshots/{held.id}/training-data"
    every = {"split": "all"}
    left = _training_data(team.call("viewer", "GET", url, params=every))
    _assert_same(left, held.training_data(None))
    assert not set(held.held_out) & set(left.pattern_ids.tolist())
    kept = _training_data(
        team.call("viewer", "GET", url, params={**every, "include_held_out": "true"})
    )
    _assert_same(kept, held.training_data(None, include_held_out=True))
    assert set(held.held_out) <= set(kept.pattern_ids.tolist())
    secret = team.store.datasets.get("secret").snapshots()[0]
    elsewhere = f"/datasets/tumours/snapshots/{secret.id}/training-data"
    assert team.call("viewer", "GET", elsewhere).status_code == 404
    hidden = f"/datasets/secret/snapshots/{secret.id}/training-data"
    assert team.call("viewer", "GET", hidden).status_code == 403
    bad = team.call("viewer", "GET", url, params={"split": "everything"})
    assert bad.status_code == 422 and bad.json()["field"] == "split"
    zero = {"weighting": "exponential", "half_life_days": 0}
    never = team.call("viewer", "GET", url, params=zero)
    assert never.status_code == 422 and "half_life_days" in never.json()["detail"]
    # An input column the Parquet form would shadow is refused, not silently renamed.
    odd = team.store.datasets.create("odd", task="regression", label="y")
    odd.add(pd.DataFrame({"sample_weight": [1.0, 2.0], "y": [0.5, 1.5]}), source="expert")
    shadowed = f"/datasets/odd/snapshots/{odd.snapshot().id}/training-data"
    clash = team.call("admin", "GET", shadowed, params=every)
    assert clash.status_code == 409 and "'sample_weight'" in clash.json()["detail"]


def test_runs_are_listed_as_the_library_lists_them_but_only_where_the_caller_may_read(
    team: Team,
) -> None:
    runs = team.store.runs
    mine = runs.list(filter="attributes.snapshot = 1", order_by="metrics.accuracy DESC")
    seen = team.get(
        "viewer", "/runs", params={"filter": "params.C > 0", "order_by": "metrics.accuracy DESC"}
    )
    assert seen["items"] == json_of(mine) and seen["total"] == 2
    names = {r["name"] for r in team.get("viewer", "/runs")["items"]}
    assert names == {"C=0.01", "C=10.0"}  # not secret's run, nor one without a snapshot
    everything = team.get("admin", "/runs", params={"limit": 2})
    assert everything["total"] == 4 and everything["items"] == json_of(runs.list()[:2])
    following = team.client.get(
        everything["next"], headers={"Authorization": f"Bearer {team.tokens['admin']}"}
    ).json()
    assert following["items"] == json_of(runs.list()[2:])
    assert team.get("viewer", "/runs/1") == json_of(runs.get(1))
    loose = runs.list(filter="attributes.name = 'loose'")[0]
    assert team.call("viewer", "GET", f"/runs/{loose.id}").status_code == 403
    assert team.get("admin", f"/runs/{loose.id}") == json_of(loose)
    assert team.call("viewer", "GET", "/runs/999").status_code == 404
    bad = team.call("viewer", "GET", "/runs", params={"filter": "params.C ~ 1"})
    assert bad.status_code == 422 and "filter" in bad.json()["detail"]
    assert team.call("stranger", "GET", "/runs").status_code == 403


# --- models, predictions, comparisons -----------------------------------------------------


class Rule:
    """Not a scikit-learn model: stored as a pickle, which runs code when loaded."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["radius"] > 10, "malignant", "benign")


def test_a_model_file_downloads_byte_for_byte_and_a_pickle_only_for_admins(team: Team) -> None:
    for fmt in ("skops", "onnx"):
        got = team.call("viewer", "GET", "/models/clf/versions/2/file", params={"format": fmt})
        assert got.status_code == 200
        assert got.content == team.store.models.file_bytes("clf@2", fmt)
        assert got.headers["content-disposition"] == f'attachment; filename="clf-2.{fmt}"'
    X = team.store.datasets.get("tumours").patterns()[INPUTS]
    team.store.models.register(Rule(), "clf", X=X, dataset="tumours")
    pickled = {"format": "pickle"}
    refused = team.call("maintainer", "GET", "/models/clf/versions/3/file", params=pickled)
    assert refused.status_code == 403 and "models.trust" in refused.json()["detail"]
    got = team.call("admin", "GET", "/models/clf/versions/3/file", params=pickled)
    assert got.status_code == 200 and got.content == team.store.models.file_bytes("clf@3", "pickle")
    missing = team.call("admin", "GET", "/models/clf/versions/3/file", params={"format": "onnx"})
    assert missing.status_code == 404


class Doubling(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A transformer of the tests' own: a skops file that names it runs this module."""

    def fit(self, X: Any, y: Any = None) -> Doubling:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float) * 2


def _register(team: Team, who: str, model: bytes, **form: Any) -> httpx.Response:
    files = {"file": ("model.skops", model, "application/octet-stream")}
    if "sample" in form:
        files["sample"] = ("x.parquet", form.pop("sample"), "application/vnd.apache.parquet")
    return team.call(who, "POST", "/models/clf/versions", files=files, data=form)


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


def test_a_model_registered_over_http_predicts_like_the_local_one_and_records_its_run(
    team: Team,
) -> None:
    X, y, weights, _ = team.store.snapshots.get(1).training_data()
    X = X[INPUTS]
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y, sample_weight=weights)
    sample = _parquet(X.head(5))
    refused = _register(team, "tester", sio.dumps(model), run_id="1", sample=sample)
    assert refused.status_code == 403
    made = _register(
        team, "maintainer", sio.dumps(model), run_id="1", sample=sample, description="shallow"
    )
    assert made.status_code == 201, made.text
    version = team.store.models.get("clf@3")
    assert made.json() == json_of(version)
    assert (version.run_id, version.dataset, version.needs_trust) == (1, "tumours", ())
    assert set(version.formats) == {"skops", "onnx"}
    np.testing.assert_array_equal(team.store.models.load(version).predict(X), model.predict(X))
    lineage = team.store.lineage("clf@3")
    assert lineage.run is not None and lineage.run["id"] == 1
    assert lineage.snapshot is not None and lineage.snapshot["id"] == 1
    [row] = over_http(team.store, "models.register")
    # The target names the new version: the library makes it precise as it registers.
    assert (row.actor, row.target, row.detail["run_id"]) == ("maintainer-user", "model:clf@3", 1)
    # The run and the dataset named must be the caller's to read, and must exist.
    hidden = team.store.runs.list(filter="attributes.name = 'hidden'")[0]
    other = _register(team, "maintainer", sio.dumps(model), run_id=str(hidden.id), sample=sample)
    assert other.status_code == 403 and "runs.read" in other.json()["detail"]
    elsewhere = _register(team, "maintainer", sio.dumps(model), dataset="secret", sample=sample)
    assert elsewhere.status_code == 403 and "datasets.read" in elsewhere.json()["detail"]
    lost = _register(team, "maintainer", sio.dumps(model), run_id="999", sample=sample)
    assert lost.status_code == 404
    assert [v.version for v in team.store.models.versions("clf")] == [1, 2, 3]


def test_an_untrusted_or_unreadable_model_file_is_refused_and_nothing_is_stored(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, _, _ = team.store.snapshots.get(1).training_data()
    X = X[INPUTS]
    own = make_pipeline(Doubling(), LogisticRegression()).fit(X, y)
    sample = _parquet(X.head(5))
    before = team.store.models.versions("clf")
    audited = over_http(team.store, "models.register")
    untrusted = _register(team, "maintainer", sio.dumps(own), sample=sample, dataset="tumours")
    assert untrusted.status_code == 422, untrusted.text
    assert untrusted.headers["content-type"] == "application/problem+json"
    assert "test_api_routes.Doubling" in untrusted.json()["detail"]
    pickled = _register(team, "admin", pickle.dumps(LogisticRegression()), sample=sample)
    assert pickled.status_code == 422 and pickled.json()["field"] == "file"
    good = sio.dumps(LogisticRegression().fit(X, y))
    broken = _register(team, "maintainer", good, sample=b"not parquet", dataset="tumours")
    assert broken.status_code == 422 and broken.json()["field"] == "sample"
    # A small upload that would unpack past the bound is refused before it is loaded.
    monkeypatch.setattr(model_routes, "MOST_UNPACKED", len(good) // 2)
    bomb = _register(team, "maintainer", good, sample=sample, dataset="tumours")
    assert bomb.status_code == 422 and "unpacks to" in bomb.json()["detail"]
    assert team.store.models.versions("clf") == before
    assert over_http(team.store, "models.register") == audited


def test_a_model_upload_over_the_body_limit_is_a_413_and_stores_nothing(
    store: trenches.Store,
) -> None:
    _house(store)
    admin = store.accounts.create("root", admin=True)
    token = store.tokens.create(admin, "t", expires_in=None).secret
    X, y, _, _ = store.snapshots.get(1).training_data()
    big = sio.dumps(DecisionTreeClassifier(random_state=0).fit(X[INPUTS], y))
    with Live(store, max_body=len(big) // 2) as live, httpx.Client(base_url=live.url) as client:
        answer = client.post(
            f"{PREFIX}/models/clf/versions",
            files={"file": ("model.skops", big, "application/octet-stream")},
            data={"run_id": "1"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 413, answer.text
    assert [v.version for v in store.models.versions("clf")] == [1, 2]


def test_a_page_of_predictions_is_the_librarys(team: Team) -> None:
    local = team.store.predictions("clf@1", "validation")
    page = team.get(
        "viewer",
        "/models/clf/versions/1/predictions",
        params={"patterns": "validation", "limit": 5, "offset": 3},
    )
    assert page["total"] == len(local) and page["pattern_set"] == local.attrs["pattern_set"]
    expected = json_of(local.iloc[3:8].reset_index().to_dict(orient="records"))
    assert page["items"] == expected
    assert [r["pattern_id"] for r in page["items"]] == local.index[3:8].tolist()
    problem = team.get(
        "viewer", "/models/clf/versions/1/predictions", params={"patterns": "problem:small"}
    )
    assert [r["pattern_id"] for r in problem["items"]] == [1, 2, 3, 4]
    unknown = team.call(
        "viewer", "GET", "/models/clf/versions/1/predictions", params={"patterns": "nope"}
    )
    assert unknown.status_code == 422


def test_evaluating_over_http_predicts_and_measures_as_the_library_does(team: Team) -> None:
    body = {"patterns": "test"}
    assert (
        team.call("tester", "POST", "/models/clf/versions/2/evaluate", json=body).status_code == 403
    )
    done = team.call("maintainer", "POST", "/models/clf/versions/2/evaluate", json=body)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["predicted"]["computed"] > 0
    local = team.store.evaluate("clf@2", "test")
    assert local.predicted.computed == 0  # the server stored every prediction
    assert result["evaluation"] == json_of(local.evaluation)
    [row] = over_http(team.store, "predictions.create")
    assert (row.actor, row.target) == ("maintainer-user", "model:clf@2")


def test_a_comparison_over_http_is_the_librarys(team: Team) -> None:
    remote = team.get("viewer", "/models/clf/compare", params={"a": "1", "b": "2"})
    local = team.store.compare("clf@1", "clf@2")
    assert remote == json_of(local)
    assert local.overall.fixed or local.overall.broken  # the two versions disagree somewhere
    on_problem = team.get(
        "viewer", "/models/clf/compare", params={"a": 1, "b": 2, "problem": "small"}
    )
    assert on_problem == json_of(team.store.compare("clf@1", "clf@2", problem="small"))
    assert (
        team.call("stranger", "GET", "/models/clf/compare", params={"a": 1, "b": 2}).status_code
        == 403
    )


# --- gate checks and explanations ---------------------------------------------------------


def test_a_gate_check_over_http_is_stored_and_read_as_the_library_does(team: Team) -> None:
    Path("trenches.toml").write_text(
        '[[gates.clf]]\nmetric = "accuracy"\nmin = 0.1\n\n'
        '[[gates.clf]]\nname = "perfect"\nmetric = "accuracy"\nmin = 1.0\n'
    )
    assert team.call("tester", "POST", "/models/clf/versions/2/checks").status_code == 403
    ran = team.call("maintainer", "POST", "/models/clf/versions/2/checks")
    assert ran.status_code == 201, ran.text
    latest = team.store.gates.latest("clf@2")
    assert latest is not None and ran.json() == json_of(latest)
    assert ran.json()["passed"] is False and ran.json()["checked_by"] == "maintainer-user"
    assert [r["status"] for r in ran.json()["results"]] == ["pass", "fail"]
    listed = team.get("viewer", "/models/clf/versions/2/checks")
    assert listed == json_of(team.store.gates.history("clf@2"))
    xml = team.call("viewer", "GET", "/models/clf/versions/2/checks/latest/junit")
    assert xml.status_code == 200 and xml.headers["content-type"] == "application/xml"
    assert xml.content == junit(latest)
    never = team.call("viewer", "GET", "/models/clf/versions/1/checks/latest/junit")
    assert never.status_code == 404
    [row] = over_http(team.store, "checks.run")
    assert row.actor == "maintainer-user"
    # A version whose latest check failed is not released: 409, as the CLI refuses it.
    body = {"version": 2, "reason": "the newest"}
    refused = team.call("approver", "POST", "/models/clf/aliases/production", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["kind"] == "CheckFailed"
    assert "production" not in team.store.models.get("clf@2").aliases


def test_explanations_over_http_are_the_librarys(team: Team) -> None:
    body = {"patterns": [1, 2], "num_samples": 60, "num_features": 3, "seed": 1}
    refused = team.call("tester", "POST", "/models/clf/versions/1/explanations", json=body)
    assert refused.status_code == 403
    made = team.call("maintainer", "POST", "/models/clf/versions/1/explanations", json=body)
    assert made.status_code == 200, made.text
    stored = team.store.explanations.list("clf@1")
    assert made.json() == json_of(stored)
    assert [e["pattern_id"] for e in made.json()] == [1, 2]
    assert team.get("viewer", "/models/clf/versions/1/explanations") == json_of(stored)
    few = team.call(
        "maintainer", "POST", "/models/clf/versions/1/explanations", json={**body, "num_samples": 2}
    )
    assert few.status_code == 422 and few.json()["field"] == "num_samples"


# --- the request log, feedback, drift, retraining ------------------------------------------


def test_the_request_log_pages_back_from_the_newest_as_the_library_lists_it(team: Team) -> None:
    log = team.store.requests
    first = team.get("viewer", "/models/clf/requests", params={"limit": 3})
    newest = log.list(version="clf", limit=3).iloc[::-1]
    assert first["total"] == 4
    assert first["items"] == json_of(newest.to_dict(orient="records"))
    assert [r["request_id"] for r in first["items"]] == ["r-15", "r-10", "r-5"]
    rest = team.client.get(
        first["next"], headers={"Authorization": f"Bearer {team.tokens['viewer']}"}
    ).json()
    assert [r["request_id"] for r in rest["items"]] == ["r-0"] and rest["next"] is None
    assert rest["items"][0]["feedback"] == json_of(log.list(version="clf")["feedback"].iloc[0])
    later = team.get("viewer", "/models/clf/requests", params={"since": "2999-01-01"})
    assert later == {"items": [], "total": 0, "next": None}
    assert team.call("viewer", "GET", "/models/nope/requests").status_code == 403
    assert team.call("admin", "GET", "/models/nope/requests").status_code == 404


def test_feedback_over_http_is_stored_on_the_model_that_answered(team: Team) -> None:
    body = {"row": 2, "label": "benign", "comment": "biopsy"}
    assert team.call("viewer", "POST", "/requests/r-5/feedback", json=body).status_code == 403
    given = team.call("labeller", "POST", "/requests/r-5/feedback", json=body)
    assert given.status_code == 201, given.text
    stored = team.store.requests.get_feedback("r-5")
    assert given.json() == json_of(stored[-1])
    assert team.get("viewer", "/requests/r-5/feedback") == json_of(stored)
    assert team.call("labeller", "POST", "/requests/zzz/feedback", json=body).status_code == 404
    wrong = team.call("labeller", "POST", "/requests/r-5/feedback", json={"label": "huge"})
    assert wrong.status_code == 422 and "huge" in wrong.json()["detail"]
    [row] = over_http(team.store, "feedback.add")
    assert (row.actor, row.target) == ("labeller-user", "request:r-5")
    # A request answered by a model the caller has no grant on is not theirs to label.
    frame = make_frame(40, seed=8)
    fitted = LogisticRegression(max_iter=500).fit(frame[INPUTS], frame["label"])
    other = team.store.models.register(fitted, "other", X=frame[INPUTS])
    log_requests(team.store, other, make_frame(5), INPUTS, prefix="o")
    assert team.call("labeller", "POST", "/requests/o-0/feedback", json=body).status_code == 403
    assert team.call("viewer", "GET", "/requests/o-0/feedback").status_code == 403


def test_a_traffic_policy_set_over_http_is_the_librarys_and_audited(team: Team) -> None:
    canary = {"kind": "canary", "versions": [2], "share": 0.1, "reason": "shadow agreed"}
    assert team.call("maintainer", "PUT", "/models/clf/traffic", json=canary).status_code == 403
    made = team.call("approver", "PUT", "/models/clf/traffic", json=canary)
    assert made.status_code == 200, made.text
    policy = team.store.traffic.policy("clf")
    assert made.json() == json_of(policy.to_json())
    assert policy.kind == "canary" and policy.set_by == "approver-user"
    assert team.get("viewer", "/models/clf/traffic")["policy"]["described"] == (
        "canary: v2 10%, baseline 90%"
    )
    [row] = over_http(team.store, "traffic.set")
    assert (row.actor, row.target) == ("approver-user", "model:clf")
    assert row.detail["reason"] == "shadow agreed"
    wrong = [
        ({**canary, "versions": []}, "names 1 version"),
        ({**canary, "share": None}, "needs its share"),
        ({**canary, "versions": [9]}, "clf@9"),
        ({"kind": "bandit", "versions": [2], "floor": 0.9, "reason": "x"}, "floor"),
    ]
    for body, words in wrong:
        answer = team.call("approver", "PUT", "/models/clf/traffic", json=body)
        assert answer.status_code in (404, 422), answer.text
        assert words in answer.text, answer.text
    assert team.store.traffic.policy("clf") == policy  # nothing stored


def test_drift_reports_and_retraining_passes_are_the_librarys(team: Team) -> None:
    report = team.store.monitoring.run("clf@1")
    remote = team.get("viewer", "/models/clf/drift")
    assert remote["total"] == 1
    assert remote["items"] == json_of(team.store.monitoring.history("clf"))
    assert remote["items"][0]["id"] == report.id
    assert team.get("viewer", "/models/clf/retrains") == {"items": [], "total": 0, "next": None}
    assert team.call("admin", "GET", "/models/nope/retrains").status_code == 404
    assert team.call("stranger", "GET", "/models/clf/drift").status_code == 403


# --- what no client should send ---------------------------------------------------------


def test_a_nul_character_in_a_name_or_a_text_is_refused_not_a_crash(team: Team) -> None:
    """PostgreSQL text cannot hold a NUL, not even to look one up: on either backend,
    a request carrying one in a path, a query or a body is answered (SQLite finds no
    such name), or refused with problem details (PostgreSQL), never a 500."""
    asked = [
        ("GET", "/problems/a%00b", {}),
        ("GET", "/datasets/tumours%00/snapshots", {}),
        ("GET", "/models/clf/versions/1%00/checks", {}),
        ("GET", "/requests/r-0%00/feedback", {}),
        ("GET", "/runs", {"params": {"filter": "params.C = 'a\x00'"}}),
        ("GET", "/models/clf/versions/1/predictions", {"params": {"patterns": "problem:a\x00"}}),
        ("POST", "/datasets/tumours/snapshots", {"json": {"sources": ["ex\x00pert"]}}),
    ]
    for method, url, kwargs in asked:
        answer = team.call("admin", method, url, **kwargs)
        assert answer.status_code < 500, (url, answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == "application/problem+json"
    made = team.call("maintainer", "POST", "/datasets/tumours/snapshots", json={"note": "n\x00te"})
    if team.store.location.sqlite_path is None:
        assert made.status_code == 422 and "NUL" in made.json()["detail"]
        assert len(team.store.datasets.get("tumours").snapshots()) == 1
    else:
        assert made.status_code == 201  # SQLite keeps the text as it is
