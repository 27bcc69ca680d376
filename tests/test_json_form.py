"""The one JSON form (``trenches.to_json`` / ``trenches.from_json``): the edge cases
(times, NaN, NumPy, nested and optional values, declared shapes) behave as documented."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest

from trenches import from_json, to_json
from trenches.errors import InvalidInput
from trenches.json_form import json_shape

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
