"""One JSON form for what trenches hands out: ``to_json(obj)`` gives plain values (dicts,
lists, strings, numbers, booleans, None) that any JSON encoder writes, and
``from_json(cls, data)`` reads them back into a ``cls``.

The generic form:

- None, bool, int and str as they are; a float that is NaN or infinite is null (orjson
  writes them so; the standard library would write a JSON no parser accepts), and null
  read into a field typed ``float`` (not ``float | None``) is NaN again;
- a ``datetime`` is ISO 8601 in UTC, ``2026-03-01T12:00:00Z`` (a naive one is taken as
  UTC), read back aware, in UTC; an Enum is its value, a path its text; NumPy scalars
  and arrays are their Python values and lists;
- a dataclass is an object, field by field in declaration order (a field whose name
  starts with ``_`` is never written); mappings are objects with string keys; lists,
  tuples and sets are arrays.

A class whose JSON form differs from its fields says how once, with :func:`json_shape`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import sys
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, TypeVar, cast

from trenches import timestamps
from trenches.errors import InvalidInput

T = TypeVar("T")
Hook = Callable[[Any], Any]

_PLAIN = (str, int, bool, type(None))
_MAPPINGS = frozenset({dict, Mapping})


# --- declaring a shape ------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One key of a class's JSON object: a field's value or a computed one."""

    key: str
    field: str | None  # None: computed by ``get``
    get: Hook | None = None
    flatten: bool = False


@dataclass(frozen=True)
class _Shape:
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    omit: frozenset[str] = frozenset()
    omit_defaults: frozenset[str] = frozenset()
    computed: Mapping[str, Hook] = dataclasses.field(default_factory=dict)
    encode: Mapping[str, Hook] = dataclasses.field(default_factory=dict)
    decode: Mapping[str, Hook] = dataclasses.field(default_factory=dict)
    flatten: frozenset[str] = frozenset()
    transparent: bool = False
    order: tuple[str | types.EllipsisType, ...] = ()


#: The shapes classes declared with ``json_shape``; any other dataclass has the plain one.
_SHAPES: dict[type, _Shape] = {}


# The keyword options of a public decorator are its API.
def json_shape(  # noqa: PLR0913
    *,
    rename: Mapping[str, str] | None = None,
    omit: Collection[str] = (),
    omit_defaults: bool | Collection[str] = False,
    computed: Iterable[str] | Mapping[str, Hook] = (),
    encode: Mapping[str, Hook] | None = None,
    decode: Mapping[str, Hook] | None = None,
    flatten: Collection[str] = (),
    transparent: bool = False,
    order: Sequence[str | types.EllipsisType] = (),
) -> Callable[[type[T]], type[T]]:
    """Declare how a dataclass's JSON form differs from its fields (put it above
    ``@dataclass``). The names follow cattrs' overrides, msgspec's struct options and
    serde's attributes:

    - ``rename``: field -> the key it is written under;
    - ``omit``: fields not written (read back as their default, or from ``data`` when
      it holds them);
    - ``omit_defaults``: fields (True: every one) left out while they hold their default;
    - ``computed``: keys written but not read back: the names of properties or methods
      of the class, or key -> a function of the object;
    - ``encode`` / ``decode``: field -> how its value is written / read when it is not
      None (what ``encode`` gives is then written as any value is);
    - ``flatten``: fields or computed keys whose own JSON object is written in place of
      their key (a flattened field is read from the whole object);
    - ``transparent``: a class of one field is written as that field's value;
    - ``order``: keys in the order they are written, with ``...`` for the others (in
      field order, computed keys last): ``order=("id", "trigger")`` puts those two
      first, ``order=(..., "drifted", "reasons")`` those two last.

    A name that is not a field (or a key) is refused when the class is defined.
    """

    def declare(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"json_shape goes above @dataclass: {cls.__name__} is no dataclass")
        names = [f.name for f in dataclasses.fields(cls)]
        defaults = names if omit_defaults is True else (omit_defaults or ())
        shape = _Shape(
            rename=dict(rename or {}),
            omit=frozenset(omit),
            omit_defaults=frozenset(defaults),
            computed=_computed(cls, computed),
            encode=dict(encode or {}),
            decode=dict(decode or {}),
            flatten=frozenset(flatten),
            transparent=transparent,
            order=tuple(order),
        )
        for what, given in (
            ("rename", shape.rename),
            ("omit", shape.omit),
            ("omit_defaults", shape.omit_defaults),
            ("encode", shape.encode),
            ("decode", shape.decode),
        ):
            unknown = sorted(set(given) - set(names))
            if unknown:
                raise TypeError(
                    f"json_shape({what}=...) of {cls.__name__}: no field {unknown[0]!r}"
                )
        if transparent and len(names) != 1:
            raise TypeError(f"json_shape(transparent=True): {cls.__name__} has {len(names)} fields")
        _SHAPES[cls] = shape
        _plan(cls)  # checks ``flatten`` and ``order`` now, not at the first write
        return cls

    return declare


def _computed(cls: type, computed: Iterable[str] | Mapping[str, Hook]) -> dict[str, Hook]:
    if isinstance(computed, Mapping):
        return dict(computed)
    out: dict[str, Hook] = {}
    for name in computed:
        member = inspect.getattr_static(cls, name, None)
        if isinstance(member, property | functools.cached_property):
            out[name] = _attribute(name)
        elif callable(member):
            out[name] = _call(name)
        else:
            raise TypeError(f"json_shape(computed=...) of {cls.__name__}: {name!r} is no property")
    return out


def _attribute(name: str) -> Hook:
    return lambda obj: getattr(obj, name)


def _call(name: str) -> Hook:
    return lambda obj: getattr(obj, name)()


def _shape(cls: type) -> _Shape:
    return _SHAPES.get(cls) or _PLAIN_SHAPE


_PLAIN_SHAPE = _Shape()


@functools.cache
def _plan(cls: type) -> tuple[_Key, ...]:
    """The keys of ``cls``'s JSON object, in the order they are written."""
    shape = _shape(cls)
    keys = [
        _Key(shape.rename.get(f.name, f.name), f.name, flatten=f.name in shape.flatten)
        for f in dataclasses.fields(cls)
        if not f.name.startswith("_") and f.name not in shape.omit
    ]
    keys += [_Key(k, None, get, k in shape.flatten) for k, get in shape.computed.items()]
    by_key = {k.key: k for k in keys}
    if len(by_key) != len(keys):
        raise TypeError(f"json_shape of {cls.__name__}: two values under one key")
    flattened = {k.field or k.key for k in keys if k.flatten}
    order = shape.order if ... in shape.order else (*shape.order, ...)
    named = [k for k in order if isinstance(k, str)]
    unknown = sorted(shape.flatten - flattened) + [k for k in named if k not in by_key]
    if unknown:
        raise TypeError(f"json_shape of {cls.__name__}: {unknown[0]!r} is not one of its keys")
    if len(set(named)) != len(named) or len(order) - len(named) != 1:
        raise TypeError(f"json_shape(order=...) of {cls.__name__} names a key twice")
    at = order.index(...)
    rest = [k for k in keys if k.key not in named]
    return (*(by_key[k] for k in named[:at]), *rest, *(by_key[k] for k in named[at:]))


# --- writing ----------------------------------------------------------------------------


def to_json(obj: Any) -> Any:
    """``obj`` as plain JSON values: a dataclass as an object (in its declared shape),
    a datetime as ISO 8601 in UTC, NaN and infinities as None, NumPy values as Python's.
    A value of a type with no JSON form is a ``TypeError``."""
    if isinstance(obj, Enum):
        return to_json(obj.value)
    if obj is None or type(obj) in (str, int, bool):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _object(obj)
    if isinstance(obj, Mapping):
        return {_key(k): v if type(v) in _PLAIN else to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [v if type(v) in _PLAIN else to_json(v) for v in obj]
    return _other(obj)


def _other(obj: Any) -> Any:
    if isinstance(obj, int | str):  # subclasses (bool cannot be subclassed)
        return int(obj) if isinstance(obj, int) else str(obj)
    if isinstance(obj, datetime):
        return timestamps.iso(timestamps.to_us(obj))
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return to_json(sorted(obj, key=repr))
    numpy = sys.modules.get("numpy")  # no NumPy value exists before NumPy is imported
    if numpy is not None:
        if isinstance(obj, numpy.ndarray):
            return to_json(obj.tolist())
        if isinstance(obj, numpy.generic):
            return to_json(obj.item())
    raise TypeError(
        f"{type(obj).__module__}.{type(obj).__qualname__} has no JSON form; give the field "
        "an encoder with json_shape(encode=...)"
    )


def _key(key: Any) -> str:
    if isinstance(key, str) and not isinstance(key, Enum):
        return str(key)
    plain = to_json(key)
    if isinstance(plain, bool) or plain is None:
        return "true" if plain is True else "false" if plain is False else "null"
    return str(plain)


def _object(obj: Any) -> Any:
    cls: type = type(obj)
    shape = _shape(cls)
    if shape.transparent:
        (only,) = dataclasses.fields(obj)
        return _written(shape, only.name, getattr(obj, only.name))
    out: dict[str, Any] = {}
    for key in _plan(cls):
        if key.field is None:
            value = to_json(cast(Hook, key.get)(obj))
        else:
            value = getattr(obj, key.field)
            if key.field in shape.omit_defaults and _is_default(cls, key.field, value):
                continue
            value = _written(shape, key.field, value)
        if not key.flatten:
            out[key.key] = value
        elif isinstance(value, dict):
            out.update(value)
        elif value is not None:
            raise TypeError(f"{cls.__name__}.{key.key} is flattened but is not an object")
    return out


def _written(shape: _Shape, name: str, value: Any) -> Any:
    hook = shape.encode.get(name)
    return to_json(hook(value) if hook is not None and value is not None else value)


def _is_default(cls: type, name: str, value: Any) -> bool:
    f = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    if f.default is not MISSING:
        default = f.default
    elif f.default_factory is not MISSING:
        default = f.default_factory()
    else:
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # an array against a scalar
        return False


# --- reading ----------------------------------------------------------------------------


def from_json(cls: type[T], data: Any) -> T:
    """Read ``data`` (what :func:`to_json` gave, as a JSON parser gives it back) into a
    ``cls``: ``from_json(Figures, to_json(figures)) == figures``. A value that does not
    fit its field is an :class:`InvalidInput` naming where it is; a class whose JSON
    form leaves out a field it needs is a ``TypeError``."""
    return cast(T, _read(cls, data, cls.__name__))


@dataclass(frozen=True)
class _Unresolved:
    """An annotation naming a type imported only for type checking, and not exported."""

    text: str


def _read(tp: Any, data: Any, where: str) -> Any:
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return data
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _read(typing.get_args(tp)[0], data, where)
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(tp), data, where)
    if data is None:
        if tp is type(None):
            return None
        if tp is float:
            return math.nan
        raise InvalidInput(f"{where}: null where {_named(tp)} was expected")
    if isinstance(tp, _Unresolved):
        raise TypeError(f"{where}: {tp.text!r} names a type imported only for type checking")
    if origin is typing.Literal:
        if data not in typing.get_args(tp):
            raise InvalidInput(f"{where}: {data!r} is not one of {typing.get_args(tp)}")
        return data
    if origin is not None:
        return _container(origin, typing.get_args(tp), data, where)
    if isinstance(tp, type):
        return _scalar(tp, data, where)
    raise TypeError(f"{where}: cannot read a {tp!r}")


def _union(args: tuple[Any, ...], data: Any, where: str) -> Any:
    if data is None:
        if type(None) in args:
            return None
        return _read(args[0], data, where)
    tried: list[str] = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _read(arg, data, where)
        except InvalidInput as e:
            tried.append(e.reason)
    raise InvalidInput(tried[0] if len(tried) == 1 else f"{where}: {_shown(data)} fits no type")


def _container(origin: Any, args: tuple[Any, ...], data: Any, where: str) -> Any:
    if origin in _MAPPINGS:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: {_shown(data)} is not an object")
        kt, vt = args or (Any, Any)
        return {_read_key(kt, k, where): _read(vt, v, f"{where}[{k!r}]") for k, v in data.items()}
    if not isinstance(data, list | tuple):
        raise InvalidInput(f"{where}: {_shown(data)} is not an array")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(data):
            raise InvalidInput(f"{where}: {len(data)} values where {len(args)} were expected")
        return tuple(
            _read(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, data, strict=True))
        )
    item = args[0] if args else Any
    values = [_read(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin in (tuple, set, frozenset):
        return origin(values)
    return values  # list, Sequence, Collection, Iterable


def _read_key(tp: Any, key: str, where: str) -> Any:
    if tp is str or tp is Any:
        return key
    try:
        if tp is int:
            return int(key)
        if tp is float:
            return float(key)
    except ValueError:
        raise InvalidInput(f"{where}: key {key!r} is not a {tp.__name__}") from None
    return _read(tp, key, f"{where} key")


def _scalar(tp: type, data: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where)
    if tp in (bool, int, str, float):
        return _plain(tp, data, where)
    if issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise InvalidInput(f"{where}: {_shown(data)} is not a {tp.__name__}") from None
    if issubclass(tp, datetime | date | PurePath):
        if not isinstance(data, str):
            raise InvalidInput(f"{where}: {_shown(data)} is not text")
        return _datetime(data, where) if issubclass(tp, datetime) else _dated_or_path(tp, data)
    if tp.__module__ == "numpy":
        import numpy as np

        return np.asarray(data) if tp is np.ndarray else _make(tp, data)
    if isinstance(data, tp):
        return data
    raise TypeError(f"{where}: {tp.__module__}.{tp.__qualname__} has no JSON form to read")


def _plain(tp: type, data: Any, where: str) -> Any:
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise InvalidInput(f"{where}: {_shown(data)} is not a number")
        return float(data)
    if type(data) is not tp:
        raise InvalidInput(f"{where}: {_shown(data)} is not {_named(tp)}")
    return data


def _dated_or_path(tp: type, text: str) -> Any:
    return date.fromisoformat(text) if issubclass(tp, date) else _make(tp, text)


def _datetime(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _dataclass(cls: type, data: Any, where: str) -> Any:
    shape = _shape(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if shape.transparent:
        return _make(cls, {fields[0].name: _field(cls, shape, fields[0].name, data, where)})
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: {_shown(data)} is not an object")
    written = {k.field for k in _plan(cls)}
    values: dict[str, Any] = {}
    for f in fields:
        key = shape.rename.get(f.name, f.name)
        if f.name in shape.flatten:
            raw = data
        elif key in data:
            raw = data[key]
        elif f.default is not MISSING or f.default_factory is not MISSING:
            continue
        elif f.name not in written:
            raise TypeError(
                f"{cls.__name__} cannot be read from its JSON form, which leaves out "
                f"{f.name!r}: give it in the data"
            )
        else:
            raise InvalidInput(f"{where}: no {key!r}")
        values[f.name] = _field(cls, shape, f.name, raw, f"{where}.{key}")
    return _make(cls, values)


def _make(cls: type, values: Any) -> Any:
    """``cls(**values)`` for a mapping, else ``cls(values)``."""
    make = cast(Callable[..., Any], cls)
    return make(**values) if isinstance(values, dict) else make(values)


def _field(cls: type, shape: _Shape, name: str, raw: Any, where: str) -> Any:
    hook = shape.decode.get(name)
    if hook is not None and raw is not None:
        return hook(raw)
    return _read(_hints(cls)[name], raw, where)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The field types of ``cls``, its annotations evaluated in its module; a name the
    module imports only for type checking is looked up among trenches' exported names
    (the types a store hands out), else it stays unresolved."""
    hints: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        module = sys.modules.get(base.__module__)
        names = vars(module) if module is not None else {}
        for name, annotation in vars(base).get("__annotations__", {}).items():
            hints[name] = _annotation(annotation, names)
    return hints


def _annotation(annotation: Any, names: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, names, _Exported(names))
    except NameError:
        return _Unresolved(annotation)


class _Exported(Mapping[str, Any]):
    """A module's names, then those ``trenches`` exports: for evaluating annotations."""

    def __init__(self, names: dict[str, Any]) -> None:
        self._names = names

    def __getitem__(self, name: str) -> Any:
        if name in self._names:
            return self._names[name]
        package = sys.modules.get("trenches")
        if package is not None and name in getattr(package, "__all__", ()):
            return getattr(package, name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _named(tp: Any) -> str:
    name = getattr(tp, "__name__", str(tp))
    return {"int": "an integer", "str": "text", "bool": "true or false"}.get(name, f"a {name}")


def _shown(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."
