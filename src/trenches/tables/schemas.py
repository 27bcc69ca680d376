"""What the store's tables share in their schemas: the struct of typed input columns
(a dataset's patterns, the rows a version answered) and the tables named by an id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.types import IcebergType, StructType

#: Field id of the first input column of an ``inputs`` struct (a table's own columns
#: are numbered below it).
FIRST_INPUT_ID = 10_000
#: Iceberg types of the input column types; any other input type is a string.
INPUT_TYPES = {"number": "double", "integer": "long", "boolean": "boolean"}


def iceberg_type(name: str) -> IcebergType:
    """The Iceberg type named ``double``, ``long``, ``boolean`` or ``string``."""
    from pyiceberg.types import BooleanType, DoubleType, LongType, StringType

    kinds = {
        "double": DoubleType(),
        "long": LongType(),
        "boolean": BooleanType(),
        "string": StringType(),
    }
    return kinds[name]


def inputs_struct(columns: Sequence[tuple[str, str]]) -> StructType:
    """The ``inputs`` struct of input columns (name, input type), each optional."""
    from pyiceberg.types import NestedField, StructType

    return StructType(
        *(
            NestedField(
                FIRST_INPUT_ID + j,
                name,
                iceberg_type(INPUT_TYPES.get(kind, "string")),
                required=False,
            )
            for j, (name, kind) in enumerate(columns)
        )
    )


def id_of(name: str, prefix: str) -> int | None:
    """The id in a table name ``<prefix><id>``; None for a name of another form."""
    rest = name.removeprefix(prefix)
    return int(rest) if rest != name and rest.isdigit() else None
