"""Snapshots of a dataset: ``/api/v1/datasets/{dataset}/snapshots``, and their
training data as Parquet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.errors import Conflict, NotFound
from trenches.json_form import to_json
from trenches.names import INT64_MAX

if TYPE_CHECKING:
    from trenches.patterns.snapshots import Snapshot, TrainingData

router = APIRouter(prefix="/datasets/{dataset}/snapshots", tags=["snapshots"])

Reading = Annotated[Caller, Depends(Allow("snapshots.read", path("dataset")))]
Creating = Annotated[Caller, Depends(Allow("snapshots.create", path("dataset")))]
#: The training data is the patterns' inputs and labels: as ``GET .../patterns`` reads them.
ReadingPatterns = Annotated[Caller, Depends(Allow("patterns.read", path("dataset")))]
SnapshotId = Annotated[int, Path(ge=1, le=INT64_MAX)]


@router.get("")
def list_snapshots(dataset: str, caller: Reading) -> Any:
    """The dataset's snapshots, oldest first."""
    return to_json(caller.store.datasets.get(dataset).snapshots())


class NewSnapshot(BaseModel):
    """What to freeze: the patterns active at ``as_of`` (default now), of ``sources``
    (default all)."""

    as_of: str | None = Field(None, max_length=100, description="ISO 8601 time")
    sources: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=10_000)


@router.post("", status_code=201)
def create_snapshot(dataset: str, body: NewSnapshot, caller: Creating) -> Any:
    """Freeze the dataset's active patterns into a snapshot (``trenches data snapshot``)."""
    ds = caller.store.datasets.get(dataset)
    with caller.changing("snapshots.create", f"dataset:{dataset}", body.model_dump()):
        made = ds.snapshot(as_of=body.as_of, sources=body.sources, note=body.note)
    return to_json(made)


@router.get("/{snapshot_id}")
def show_snapshot(dataset: str, snapshot_id: SnapshotId, caller: Reading) -> Any:
    """One snapshot of the dataset: its time, sources, size, digest and held-out patterns."""
    return to_json(_snapshot_of(caller, dataset, snapshot_id))


def _snapshot_of(caller: Caller, dataset: str, snapshot_id: int) -> Snapshot:
    """The snapshot ``snapshot_id``, which must be one of ``dataset``'s."""
    found = caller.store.snapshots.get(snapshot_id)
    if found.dataset != dataset:
        raise NotFound(f"dataset {dataset!r} has no snapshot {snapshot_id}")
    return found


PARQUET = "application/vnd.apache.parquet"
#: The columns the Parquet form adds to the inputs (besides the label's).
WEIGHT_COLUMN = "sample_weight"
INDEX_COLUMN = "pattern_id"
Days = Annotated[float, Query(allow_inf_nan=False)]


@router.get(
    "/{snapshot_id}/training-data",
    response_class=Response,
    responses={200: {"content": {PARQUET: {}}}},
)
def training_data(
    dataset: str,
    snapshot_id: SnapshotId,
    caller: ReadingPatterns,
    split: Literal["train", "validation", "test", "all"] = "train",
    weighting: Literal["none", "exponential", "inverse-age"] = "none",
    half_life_days: Days = 30.0,
    age_offset_days: Days = 1.0,
    include_held_out: bool = False,
) -> Response:
    """``Snapshot.training_data(...)`` as one Parquet file (``split=all``: every split).

    Its columns: the input columns of ``X`` in their order, then the label (named as
    the dataset's ``label_column``), then ``sample_weight`` (float64); its index is
    ``pattern_id`` (int64, ascending), kept as pandas' index by pyarrow's pandas
    metadata (a column named ``pattern_id`` for other readers). So a client rebuilds
    ``TrainingData(X, y, sample_weight, pattern_ids)`` exactly: read it with pandas,
    pop the label column into ``y`` and ``sample_weight`` into ``sample_weight``; the
    rest is ``X``, and its index is ``pattern_ids``."""
    snapshot = _snapshot_of(caller, dataset, snapshot_id)
    found = snapshot.training_data(
        None if split == "all" else split,
        weighting=weighting,
        half_life_days=half_life_days,
        age_offset_days=age_offset_days,
        include_held_out=include_held_out,
    )
    label = caller.store.datasets.get(dataset).label_column
    return Response(_parquet(found, label, dataset), media_type=PARQUET)


def _parquet(data: TrainingData, label: str, dataset: str) -> bytes:
    """``data`` in the column layout :func:`training_data` names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    taken = {WEIGHT_COLUMN, INDEX_COLUMN} & {*data.X.columns, label}
    if taken:
        raise Conflict(
            f"dataset {dataset!r} has a column named {sorted(taken)[0]!r}, which the "
            "Parquet form of training data keeps for its own; read it with the library "
            "on the store (snapshot.training_data())"
        )
    frame = data.X.assign(**{label: data.y, WEIGHT_COLUMN: data.sample_weight})
    frame = frame.rename_axis(INDEX_COLUMN)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), sink)
    return bytes(sink.getvalue())
