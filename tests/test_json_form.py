"""The one JSON form (``trenches.to_json`` / ``trenches.from_json``): what every exported
dataclass is written as reads back equal, and the edge cases (times, NaN, NumPy,
nested and optional values, declared shapes) behave as documented."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trenches
from trenches import from_json, to_json
from trenches.errors import InvalidInput
from trenches.json_form import json_shape

# --- every exported dataclass reads back equal ------------------------------------------

#: Exported dataclasses whose JSON form is a view, not the whole value, and why.
NOT_ROUND_TRIPPED = {
    "Check": "leaves out the criteria (a check's results are read with their digest)",
    "Comparison": "writes each side's metrics, not its Evaluation",
    "DriftReport": "leaves out the settings it was checked with",
    "Evaluation": "writes per-class figures and the confusion matrix as plain tables",
    "EvaluateResult": "holds an Evaluation",
    "Feedback": "leaves out its database id",
    "Flips": "writes each data change as its description",
    "Gap": "holds a NumPy array of the ids it lacks",
    "ImportResult": "holds NumPy arrays of ids",
    "Monitored": "holds a DriftReport",
    "NewSession": "leaves out its secrets (the cookie's and the CSRF token)",
    "OnDrift": "holds a Monitored",
    "WindowLabels": "holds NumPy arrays of request ids, rows and labels",
    "WindowParts": "holds the staged requests' rows (NumPy arrays) and their labels",
    "PatternHistory": "holds DataFrames",
    "PatternSet": "holds a NumPy array of ids",
    "PredictResult": "holds NumPy arrays",
    "Predictions": "holds NumPy arrays of ids, labels and scores",
    "Predictor": "holds its Dataset, which reads the store",
    "ProblemScore": "writes the counts as [right, total] pairs and scores",
    "RequestWindow": "holds DataFrames and arrays",
    "RetrainSettings": "leaves out the model (the key of the record it is stored in)",
    "RunInfo": "groups the git fields under one key",
    "Snapshot": "holds the engine it reads its patterns with",
    "SnapshotDiff": "holds DataFrames",
    "ToPatterns": "writes the created and skipped patterns apart",
}

_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_PLAIN: dict[Any, st.SearchStrategy[Any]] = {
    Any: _JSON_VALUES,
    bool: st.booleans(),
    int: st.integers(-(2**63), 2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    str: st.text(max_size=8),
    datetime: st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(9000, 1, 1),
        timezones=st.sampled_from(_ZONES),
    ),
    type(None): st.none(),
}


class Unsupported(Exception):
    """A type the round trip cannot generate values of (or reads back only in part)."""


def _hints(cls: type) -> dict[str, Any]:
    module = vars(importlib.import_module(cls.__module__))
    exported = {name: getattr(trenches, name) for name in trenches.__all__}
    try:
        return typing.get_type_hints(cls, globalns={**exported, **module})
    except NameError as e:
        raise Unsupported(str(e)) from None


def _values(tp: Any) -> st.SearchStrategy[Any]:
    if tp in _PLAIN:
        return _PLAIN[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _any_of(tp, args)
    if origin is Literal:
        return st.sampled_from(args)
    if origin is tuple:
        return _tuples(args)
    if origin in (list, Sequence, dict, Mapping):
        return _containers(origin, args)
    if dataclasses.is_dataclass(tp) and tp.__name__ not in NOT_ROUND_TRIPPED:
        return _instances(tp)
    raise Unsupported(tp)


def _any_of(tp: Any, args: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    options = []
    for arg in args:
        try:
            options.append(_values(arg))
        except Unsupported:
            continue
    if not options:
        raise Unsupported(tp)
    return st.one_of(options)


def _tuples(args: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    if args[-1:] != (...,):
        return st.tuples(*map(_values, args))
    try:
        return st.lists(_values(args[0]), max_size=3).map(tuple)
    except Unsupported:
        return st.just(())


def _containers(origin: Any, args: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    try:
        if origin in (list, Sequence):
            return st.lists(_values(args[0]), max_size=3)
        return st.dictionaries(_values(args[0]), _values(args[1]), max_size=3)
    except Unsupported:
        return st.just([] if origin in (list, Sequence) else {})  # nothing it cannot read


#: Classes whose fields hold each other to rules a random value rarely meets, with
#: values that meet them.
_VALID: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "Endpoint": lambda: st.builds(
        trenches.Endpoint,
        url=st.from_regex(r"\Ahttps?://[a-z0-9.]{1,20}(:[0-9]{2,5})?/[a-z/]{0,20}\Z"),
        protocol=st.sampled_from(["v2", "mlflow", "json"]),
        timeout=st.floats(min_value=0.001, max_value=1e6),
        retries=st.integers(0, 100),
        batch_rows=st.integers(1, 10**6),
        token_env=st.none() | st.text(max_size=10),
        language=st.none() | st.sampled_from(["r", "python", "java"]),
    ),
}


def _instances(cls: type) -> st.SearchStrategy[Any]:
    if cls.__name__ in _VALID:
        return _VALID[cls.__name__]()
    hints = _hints(cls)
    fields = {f.name: _values(hints[f.name]) for f in dataclasses.fields(cls) if f.init}

    def make(values: dict[str, Any]) -> Any:
        try:
            return cls(**values)
        except InvalidInput:  # refused by the class itself (a blank column name)
            return None

    return st.fixed_dictionaries(fields).map(make).filter(lambda x: x is not None)


_EXPORTED_DATACLASSES = sorted(
    name for name in trenches.__all__ if dataclasses.is_dataclass(getattr(trenches, name))
)


def test_the_classes_left_out_of_the_round_trip_are_exported_dataclasses() -> None:
    assert set(NOT_ROUND_TRIPPED) <= set(_EXPORTED_DATACLASSES)


@pytest.mark.parametrize("name", [n for n in _EXPORTED_DATACLASSES if n not in NOT_ROUND_TRIPPED])
@settings(
    max_examples=20, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_an_exported_dataclass_reads_back_equal(name: str, data: st.DataObject) -> None:
    cls = getattr(trenches, name)
    value = data.draw(_instances(cls))
    written = orjson.dumps(to_json(value))  # real JSON text, as it is stored and printed
    assert from_json(cls, orjson.loads(written)) == value


# --- the generic form -------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    count: int
    ratio: float = 1.0
    note: str | None = None


@dataclass(frozen=True)
class Outer:
    at: datetime
    inner: Inner
    maybe: Inner | None = None
    many: tuple[Inner, ...] = ()
    by_id: dict[int, str] = field(default_factory=dict)
    colour: Colour = Colour.RED
    path: Path = Path("a/b.csv")
    figure: float | None = None


def test_a_datetime_is_written_in_utc_and_read_back_as_the_same_instant() -> None:
    paris = datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    written = to_json(Outer(paris, Inner(1)))
    assert written["at"] == "2026-03-01T12:30:00Z"
    back = from_json(Outer, written).at
    assert back == paris and back.tzinfo == UTC


def test_a_fraction_of_a_second_is_kept_and_a_naive_time_is_utc() -> None:
    naive = datetime(2026, 3, 1, 12, 0, 0, 250)
    assert to_json(naive) == "2026-03-01T12:00:00.000250Z"
    assert from_json(datetime, "2026-03-01T12:00:00.000250") == naive.replace(tzinfo=UTC)
    assert from_json(datetime, "2026-03-01T13:00:00+01:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_nan_and_infinities_are_written_as_null() -> None:
    written = to_json({"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "x": 0.5})
    assert written == {"nan": None, "inf": None, "-inf": None, "x": 0.5}
    json.dumps(written, allow_nan=False)  # strict JSON, whichever encoder writes it


def test_null_reads_back_as_nan_in_a_float_field_and_as_none_in_an_optional_one() -> None:
    back = from_json(Outer, to_json(Outer(datetime.now(UTC), Inner(1, math.nan), figure=math.nan)))
    assert math.isnan(back.inner.ratio)
    assert back.figure is None


def test_numpy_scalars_and_arrays_become_python_values() -> None:
    written = to_json(
        {
            "i": np.int64(3),
            "f": np.float32(0.5),
            "b": np.bool_(True),
            "a": np.array([[1.5, np.nan]]),
        }
    )
    assert written == {"i": 3, "f": 0.5, "b": True, "a": [[1.5, None]]}
    assert [type(written[k]) for k in "ifb"] == [int, float, bool]


def test_nested_optional_and_keyed_values_read_back_equal() -> None:
    value = Outer(
        datetime(2026, 1, 1, tzinfo=UTC),
        Inner(1, 0.25, "a"),
        maybe=Inner(2),
        many=(Inner(3), Inner(4, note="b")),
        by_id={7: "seven"},
        colour=Colour.BLUE,
        path=Path("data/x.csv"),
        figure=2.0,
    )
    written = to_json(value)
    assert written["by_id"] == {"7": "seven"} and written["colour"] == "blue"
    assert written["path"] == "data/x.csv" and written["many"][1]["note"] == "b"
    assert from_json(Outer, orjson.loads(orjson.dumps(written))) == value
    assert from_json(Outer, {**written, "maybe": None}).maybe is None


def test_a_missing_key_takes_the_field_default() -> None:
    assert from_json(Inner, {"count": 2}) == Inner(2)


def test_data_that_does_not_fit_is_refused_saying_where() -> None:
    written = to_json(Outer(datetime(2026, 1, 1, tzinfo=UTC), Inner(1)))
    with pytest.raises(InvalidInput, match=r"Outer\.inner\.count: 'one' is not an integer"):
        from_json(Outer, {**written, "inner": {"count": "one"}})
    with pytest.raises(InvalidInput, match=r"Outer: no 'inner'"):
        from_json(Outer, {"at": written["at"]})
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        from_json(Outer, {**written, "at": "yesterday"})
    with pytest.raises(InvalidInput, match="not a Colour"):
        from_json(Outer, {**written, "colour": "green"})


def test_a_value_with_no_json_form_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="has no JSON form"):
        to_json({"x": object()})


# --- declared shapes --------------------------------------------------------------------


@json_shape(
    rename={"label_column": "label"},
    omit=("secret",),
    computed={"count": lambda r: len(r.ids)},
    order=("label", "count"),
)
@dataclass(frozen=True)
class Renamed:
    ids: tuple[int, ...]
    label_column: str
    secret: str = "hidden"


def test_a_shape_renames_omits_computes_and_orders_keys() -> None:
    written = to_json(Renamed((1, 2), "diagnosis", secret="s"))
    assert list(written.items()) == [("label", "diagnosis"), ("count", 2), ("ids", [1, 2])]
    # A computed key is not read back; an omitted field takes its default.
    assert from_json(Renamed, written) == Renamed((1, 2), "diagnosis")


@json_shape(computed=("total",), order=(..., "total", "b"))
@dataclass(frozen=True)
class Ellipsis_:
    a: int
    b: int
    c: int

    @property
    def total(self) -> int:
        return self.a + self.b + self.c


def test_an_ellipsis_in_the_order_stands_for_the_other_keys() -> None:
    assert list(to_json(Ellipsis_(1, 2, 3))) == ["a", "c", "total", "b"]


@json_shape(transparent=True)
@dataclass(frozen=True)
class Columns:
    names: tuple[str, ...]


@json_shape(flatten=("columns",), omit_defaults=("comment",))
@dataclass(frozen=True)
class Flat:
    id: int
    columns: Inner
    comment: str | None = None


def test_transparent_flatten_and_omit_defaults() -> None:
    assert to_json(Columns(("a", "b"))) == ["a", "b"]
    assert from_json(Columns, ["a", "b"]) == Columns(("a", "b"))
    assert to_json(Flat(1, Inner(2))) == {"id": 1, "count": 2, "ratio": 1.0, "note": None}
    assert to_json(Flat(1, Inner(2), comment="c"))["comment"] == "c"
    assert from_json(Flat, to_json(Flat(1, Inner(2), comment="c"))) == Flat(
        1, Inner(2), comment="c"
    )


@json_shape(
    encode={"pairs": lambda pairs: [{"name": n, "type": t} for n, t in pairs]},
    decode={"pairs": lambda rows: tuple((r["name"], r["type"]) for r in rows)},
)
@dataclass(frozen=True)
class Hooked:
    pairs: tuple[tuple[str, str], ...] | None


def test_encode_and_decode_hooks_see_every_value_but_none() -> None:
    value = Hooked((("radius", "number"),))
    assert to_json(value) == {"pairs": [{"name": "radius", "type": "number"}]}
    assert from_json(Hooked, to_json(value)) == value
    assert to_json(Hooked(None)) == {"pairs": None} and from_json(
        Hooked, {"pairs": None}
    ) == Hooked(None)


def test_a_field_the_form_leaves_out_must_be_given_to_read_one_back() -> None:
    @json_shape(omit=("model",))
    @dataclass(frozen=True)
    class Keyed:
        model: str
        value: int

    with pytest.raises(TypeError, match="leaves out 'model'"):
        from_json(Keyed, to_json(Keyed("m", 1)))
    assert from_json(Keyed, {**to_json(Keyed("m", 1)), "model": "m"}) == Keyed("m", 1)


def test_a_misspelt_name_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="no field 'label'"):

        @json_shape(rename={"label": "l"})
        @dataclass
        class A:
            label_column: str

    with pytest.raises(TypeError, match="'cuont' is not one of its keys"):

        @json_shape(order=("cuont",))
        @dataclass
        class B:
            count: int

    with pytest.raises(TypeError, match="is no property"):

        @json_shape(computed=("nothing",))
        @dataclass
        class C:
            count: int


# --- trenches' own shapes keep their keys ----------------------------------------------


def test_a_flips_p_value_is_written_under_its_tests_name_too() -> None:
    flips = trenches.Flips("cancer:validation", 10, (1,), (2, 3), 0.5, test="wilcoxon")
    written = to_json(flips)
    assert written["wilcoxon_p"] == written["p_value"] == 0.5
    assert list(written)[:8] == [
        *("pattern_set", "size", "fixed", "broken", "test", "p_value", "wilcoxon_p"),
        "tolerance",
    ]


def test_a_retrain_writes_its_times_with_their_offset_and_its_trigger() -> None:
    started = datetime(2026, 3, 1, 12, tzinfo=UTC)
    retrain = trenches.Retrain(
        *(1, "clf", "promoted", "better", 7, None, None, None, None, None, None),
        started_at=started,
        ended_at=None,
    )
    written = to_json(retrain)
    assert list(written)[:5] == ["id", "model", "status", "reason", "trigger"]
    assert written["trigger"] == "drift report #7"
    assert written["started_at"] == "2026-03-01T12:00:00+00:00" and written["ended_at"] is None
