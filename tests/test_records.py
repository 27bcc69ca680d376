"""The request log's records (``trenches.requests.records``): one codec for a served
request and a feedback, between the record the server logs, the row the database
stores and the line a spool file holds; and reading a window of the log as columns."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import trenches
from trenches import tables, timestamps
from trenches.db.engine import read, write
from trenches.requests import records, stored
from trenches.requests.records import LoggedFeedback, LoggedRequest
from trenches.serving.requestlog import RequestLog

from conftest import make_frame

# --- what a record may hold ---------------------------------------------------------------

#: Text a database column takes on both backends (PostgreSQL refuses NUL in text), and
#: UTF-8 can carry (no lone surrogates).
_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_ids = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=64)
_int64 = st.integers(-(2**63), 2**63 - 1)
_times = st.integers(946_684_800_000_000, 4_102_444_800_000_000)  # 2000 to 2100, in µs
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    _int64,
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)


@st.composite
def requests(draw: Any, version_id: st.SearchStrategy[int] = _int64) -> LoggedRequest:
    columns = draw(st.lists(_text, min_size=1, max_size=4, unique=True))
    n = draw(st.integers(0, 4))
    data = draw(
        st.lists(
            st.lists(_scalars, min_size=len(columns), max_size=len(columns)), min_size=n, max_size=n
        )
    )
    labels = draw(st.one_of(st.none(), st.lists(_scalars, min_size=n, max_size=n)))
    scores = draw(
        st.one_of(
            st.none(),
            st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=2), min_size=n, max_size=n),
        )
    )
    inputs = {"columns": columns, "data": data}
    return LoggedRequest(
        request_id=draw(_ids),
        version_id=draw(version_id),
        endpoint=draw(st.sampled_from(["v2", "invocations", "predict"])),
        n=n,
        inputs=lambda: inputs,
        outputs={"labels": labels, "scores": scores, "values": None},
        latency_us=draw(st.integers(0, 2**40)),
        received_at=draw(_times),
    )


feedback = st.builds(
    LoggedFeedback,
    request_id=_ids,
    row=st.integers(0, 2**31 - 1),
    label=_scalars,
    rating=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    comment=st.one_of(st.none(), _text),
    created_at=_times,
)


# --- record, row, line ------------------------------------------------------------------


@given(item=requests())
def test_a_request_comes_back_from_its_row_and_its_spool_line(item: LoggedRequest) -> None:
    row = item.to_row()
    assert LoggedRequest.from_row(row).fields() == item.fields()
    line = records.encode("request", row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert records.decode(line) == ("request", row)


@given(item=feedback)
def test_a_feedback_comes_back_from_its_row_and_its_spool_line(item: LoggedFeedback) -> None:
    row = item.to_row()
    assert LoggedFeedback.from_row(row) == item
    assert records.decode(records.encode("feedback", row)) == ("feedback", row)


def test_each_record_holds_the_fields_of_its_shape() -> None:
    for record, shape in [(LoggedRequest, records.REQUEST), (LoggedFeedback, records.FEEDBACK)]:
        assert tuple(f.name for f in dataclasses.fields(record)) == shape.columns
        # ... and the shape, the columns of its table (after the id), nullable where
        # optional, and where a request's body leaves once moved into the tables.
        moved = {"inputs", "outputs"} if shape is records.REQUEST else set()
        assert tuple(c.name for c in shape.table.columns)[1:][: len(shape.columns)] == shape.columns
        assert [shape.table.c[f.name].nullable for f in shape.fields] == [
            f.optional or f.name in moved for f in shape.fields
        ]


def test_a_value_of_the_wrong_kind_is_refused_naming_its_field() -> None:
    with pytest.raises(ValueError, match="row 'two'"):
        LoggedFeedback("r", "two", None, 1.0, None, 1).to_row()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request_id"):
        LoggedFeedback(None, 0, None, 1.0, None, 1).to_row()  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # JSON lines cannot carry an integer past 64 bits
        records.encode("feedback", ("r", 2**64, None, None, None, 1, None))
    with pytest.raises(ValueError, match="unknown kind"):
        records.decode(b'{"kind":"alert","request_id":"r"}\n')


#: Lines of a spool file as the request log wrote them before the codec was shared
#: (trenches 83d458d): they must load as they did, and new lines must be the same bytes.
OLD_LINES = [
    b'{"kind":"request","request_id":"req-old","version_id":1,"endpoint":"invocations","n":2,'
    b'"inputs":{"columns":["radius","grade"],"data":[[12.5,"high"],[9.0,null]]},'
    b'"outputs":{"labels":["malignant","benign"],"scores":[[0.25,0.75],[0.875,0.125]],'
    b'"values":null},"latency_us":1234,"received_at":1767225600000000}\n',
    b'{"kind":"feedback","request_id":"req-old","row":1,"label":"malignant","rating":4.5,'
    b'"comment":"biopsy","created_at":1767225660000000}\n',
    b'{"kind":"feedback","request_id":"req-old","row":0,"label":null,"rating":1.0,'
    b'"comment":null,"created_at":1767225720000000}\n',
]
OLD_RECORDS = [
    LoggedRequest(
        "req-old",
        1,
        "invocations",
        2,
        lambda: {"columns": ["radius", "grade"], "data": [[12.5, "high"], [9.0, None]]},
        {
            "labels": ["malignant", "benign"],
            "scores": np.array([[0.25, 0.75], [0.875, 0.125]]),
            "values": None,
        },
        1234,
        1767225600000000,
    ),
    LoggedFeedback("req-old", 1, "malignant", 4.5, "biopsy", 1767225660000000),
    LoggedFeedback("req-old", 0, None, 1.0, None, 1767225720000000),
]


def test_spool_lines_are_written_as_before() -> None:
    for item, line in zip(OLD_RECORDS, OLD_LINES, strict=True):
        assert records.encode(item.shape.kind, item.to_row()) == line


@pytest.fixture
def version(store: trenches.Store) -> trenches.ModelVersion:
    """A version (id 1) of ``clf``, trained on dataset ``tumours``."""
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(make_frame(60).drop(columns=["site"]), source="expert")
    X = ds.patterns().drop(columns="label")
    return store.models.register(
        LogisticRegression().fit(X, ds.patterns()["label"]), "clf", X=X, dataset="tumours"
    )


def test_a_spool_file_written_before_loads_into_the_store(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    assert version.id == 1
    spool = tmp_path / "spool"
    spool.mkdir()
    header = b'{"kind":"store","url":"' + store.url.encode() + b'"}\n'
    (spool / "requests-1-1.jsonl").write_bytes(header + b"".join(OLD_LINES))
    log = RequestLog(store.location.db_url, spool)
    log.start()
    log.stop()
    assert log.stats["loaded_back"] == 3 and log.stats["rejected"] == 0
    assert not list(spool.glob("*.jsonl"))
    [listed] = store.requests.list().to_dict(orient="records")
    assert listed["inputs"] == {
        "columns": ["radius", "grade"],
        "data": [[12.5, "high"], [9.0, None]],
    }
    assert listed["outputs"]["scores"] == [[0.25, 0.75], [0.875, 0.125]]
    assert (listed["version"], listed["endpoint"], listed["latency_ms"]) == (
        "clf@1",
        "invocations",
        1.234,
    )
    assert listed["received_at"] == pd.Timestamp("2026-01-01", tz="UTC")
    given = [(f.row, f.label, f.rating, f.comment) for f in store.requests.get_feedback("req-old")]
    assert given == [(1, "malignant", 4.5, "biopsy"), (0, None, 1.0, None)]


_IDS = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(item=requests(version_id=st.just(1)), notes=st.lists(feedback, max_size=3))
def test_a_record_written_by_the_log_reads_back_the_same(
    store: trenches.Store,
    version: trenches.ModelVersion,
    tmp_path: Path,
    item: LoggedRequest,
    notes: list[LoggedFeedback],
) -> None:
    k = next(_IDS)
    item.request_id = f"{k}-{item.request_id}"[:64]
    for note in notes:
        note.request_id = item.request_id
    log = RequestLog(store.location.db_url, tmp_path / f"spool-{k}")
    log.start()
    log.put(item)
    for note in notes:
        log.put(note)
    log.stop()
    assert log.stats["written"] == 1 + len(notes)
    frame = store.requests.list()
    [listed] = frame[frame["request_id"] == item.request_id].to_dict(orient="records")
    assert listed["inputs"] == item.inputs()
    assert listed["outputs"] == item.outputs
    assert (listed["n"], listed["endpoint"]) == (item.n, item.endpoint)
    assert listed["received_at"] == pd.Timestamp(item.received_at, unit="us", tz="UTC")
    back = store.requests.get_feedback(item.request_id)
    # Feedback on the same row at the same time is one feedback (stored once).
    once = {(f.row, f.created_at): f for f in reversed(notes)}
    expected = sorted(once.values(), key=lambda f: (f.created_at, notes.index(f)))
    assert [
        (f.row, f.label, f.rating, f.comment, timestamps.to_us(f.created_at)) for f in back
    ] == [(f.row, f.label, f.rating, f.comment, f.created_at) for f in expected]


# --- a window as columns ------------------------------------------------------------------


def _window_row_by_row(store: trenches.Store) -> dict[str, Any]:
    """What a window is, computed the slow way from ``store.requests.list()``, one
    entry per input row: each row's values of its version's input columns (a number
    column's value that is no number is missing), the columns of all versions in the
    order of the versions."""
    listed = store.requests.list()
    out: dict[str, list[Any]] = {k: [] for k in ("request_id", "row", "version", "answer", "label")}
    signatures = {ref: store.models.get(ref).signature for ref in sorted(set(listed["version"]))}
    columns = list(dict.fromkeys(c for s in signatures.values() for c in s.columns))
    values: list[dict[str, Any]] = []
    for r in listed.itertuples(index=False):
        logged, data = list(r.inputs.get("columns") or ()), r.inputs.get("data") or []
        if not logged:
            continue
        answer = r.outputs.get("labels") or r.outputs.get("values") or []
        given = {f["row"]: f["label"] for f in r.feedback or () if f["label"] is not None}
        for k, row in enumerate(data):
            by_name = dict(zip(logged, row, strict=True))
            values.append(
                {
                    name: v if isinstance(v := by_name.get(name), int | float) else None
                    for name in signatures[r.version].columns
                }
            )
            out["request_id"].append(r.request_id)
            out["row"].append(k)
            out["version"].append(r.version)
            out["answer"].append(answer[k] if len(answer) == len(data) else None)
            out["label"].append(given.get(k))
    return {"inputs": pd.DataFrame(values, columns=columns, dtype=float), **out}


def test_a_window_is_the_rows_of_its_requests_as_columns(
    store: trenches.Store, version: trenches.ModelVersion, tmp_path: Path
) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0]})
    other = store.models.register(LogisticRegression().fit(X, ["x", "y"]), "other", X=X)
    now = timestamps.now_us()
    logged = [
        # id, version, columns, data, labels
        ("a", version, ["radius", "grade"], [[1.5, 2], [2.5, 3]], ["benign", "malignant"]),
        ("b", other, ["radius", "grade"], [[3.5, 1]], ["x"]),
        ("c", version, ["grade", "radius", "extra"], [[4, 4.5, "z"]], ["benign"]),
        ("d", version, [], [], None),  # inputs not logged
        ("e", version, ["radius", "grade"], [[5.5, None], [6.5, 2]], ["benign"]),  # one label short
    ]
    log = RequestLog(store.location.db_url, tmp_path / "spool")
    log.start()
    for k, (rid, by, columns, data, labels) in enumerate(logged):
        inputs = {"columns": columns, "data": data}
        if not columns:
            inputs["error"] = "TypeError: not logged"
        log.put(
            LoggedRequest(
                rid,
                by.id,
                "predict",
                len(data),
                lambda inputs=inputs: inputs,
                {"labels": labels, "scores": None, "values": None},
                100,
                now + k,
            )
        )
    for rid, row, label, at in [
        ("a", 1, "benign", 1),
        ("a", 1, "malignant", 2),  # the newest counts
        ("a", 0, None, 3),  # a rating only
        ("c", 0, "malignant", 4),
        ("e", 7, "benign", 5),  # no such row
    ]:
        log.put(LoggedFeedback(rid, row, label, 1.0, None, now + at))
    log.stop()

    expected = _window_row_by_row(store)
    listed = store.requests.list()
    # The same window with every request staged, with the first two moved into the
    # tables, and with all of them moved.
    _check_window(store, expected, version, other, now)
    with write(store.engine) as conn:
        assert stored.move(conn, most=2) == 2
    _check_window(store, expected, version, other, now)
    assert stored.move_all(store.engine) == 3
    _check_window(store, expected, version, other, now)
    with read(store.engine) as conn:  # read whole by every drift check: LZ4, not zstd
        store_tables = tables.of(conn)
        files = store_tables.files(conn, stored.rows_name(version.id))
        footers = [store_tables.footer(f) for f in files]
    assert files and {f.row_group(0).column(0).compression for f in footers} == {"LZ4"}
    assert store.requests.list().equals(listed), "the log lists the same after the move"


def _check_window(
    store: trenches.Store,
    expected: dict[str, Any],
    version: trenches.ModelVersion,
    other: trenches.ModelVersion,
    now: int,
) -> None:
    window = store.requests.window()
    assert isinstance(window, trenches.RequestWindow)
    assert window.requests == 5 and len(window) == 6
    assert list(window.inputs.columns) == ["radius", "texture", "grade", "a"]
    pd.testing.assert_frame_equal(window.inputs.astype(float), expected["inputs"])
    assert list(window.request_id) == expected["request_id"] == ["a", "a", "b", "c", "e", "e"]
    assert list(window.row) == expected["row"] == [0, 1, 0, 0, 0, 1]
    versions = {version.id: version.ref, other.id: other.ref}
    assert [versions[v] for v in window.version_id] == expected["version"]
    assert (
        list(window.answer)
        == expected["answer"]
        == ["benign", "malignant", "x", "benign", None, None]
    )
    assert (
        list(window.label)
        == expected["label"]
        == [None, "malignant", None, "malignant", None, None]
    )
    assert window.labelled == 2
    assert list(window.received_at) == [now, now, now + 1, now + 2, now + 4, now + 4]

    only = store.requests.window(version="clf@1", since=now + 1)
    assert only.requests == 3 and list(only.request_id) == ["c", "e", "e"]
    assert list(only.inputs.columns) == ["radius", "texture", "grade"]
    assert only.inputs["grade"].tolist()[:1] == [4] and np.isnan(only.inputs["grade"][1])
    empty = store.requests.window(until=now)
    assert (empty.requests, len(empty), len(empty.inputs.columns)) == (0, 0, 0)
    for since in (None, now + 1):
        _check_numbers_apart(store, since)


def _check_numbers_apart(store: trenches.Store, since: int | None) -> None:
    """With its numbers set apart, a window is a sample of the same rows in no set
    order: the numbers, read a column at a time (into a reused buffer too), are the
    same values; each row keeps its other inputs, answer and feedback label; which
    request, row and time each is is left unread."""
    whole = store.requests.window(since=since)
    apart = store.requests.window(since=since, numbers_apart=True)
    assert apart.numbers is not None and apart.numbers.names
    assert len(apart) == apart.numbers.rows == len(whole)
    assert apart.requests == whole.requests and apart.labelled == whole.labelled
    names = set(apart.numbers.names)
    assert names | set(apart.inputs.columns) == set(whole.inputs.columns)
    assert not names & set(apart.inputs.columns)
    buffer = np.full(len(whole) + 3, 7.0)
    for name in apart.numbers.names:
        want = np.sort(whole.inputs[name].to_numpy(dtype=float))
        assert np.array_equal(np.sort(apart.numbers.read(name)), want, equal_nan=True)
        assert np.array_equal(np.sort(apart.numbers.read(name, buffer)), want, equal_nan=True)
    assert apart.request_id is None and apart.row is None and apart.received_at is None

    def rows(window: trenches.RequestWindow) -> list[str]:
        others = window.inputs[sorted(apart.inputs.columns)].to_numpy(dtype=object).tolist()
        return sorted(
            repr(r)
            for r in zip(window.version_id, window.answer, window.label, others, strict=True)
        )

    assert rows(apart) == rows(whole)


def test_a_routed_request_carries_its_policy_and_arm_in_its_line() -> None:
    routed = LoggedRequest(
        "req-new",
        1,
        "invocations",
        1,
        lambda: {"columns": ["radius"], "data": [[1.5]]},
        {"labels": ["benign"], "scores": None, "values": None},
        900,
        1767225600000000,
        policy_id=7,
        arm="v2",
        shadow_of="req-0",
    )
    line = records.encode("request", routed.to_row())
    assert b'"policy_id":7,"arm":"v2","shadow_of":"req-0"' in line
    kind, row = records.decode(line)
    assert kind == "request" and row == routed.to_row()
    # A line without them (an older one, or a request under no policy) reads as None.
    _, old = records.decode(OLD_LINES[0])
    assert old[-3:] == (None, None, None)
