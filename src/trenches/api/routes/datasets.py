"""Datasets and their patterns: ``/api/v1/datasets``, and imports of pattern files."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.api.pages import Limit, Offset, page
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import to_json
from trenches.names import INT64_MAX, SPLITS

router = APIRouter(prefix="/datasets", tags=["datasets"])

Reading = Annotated[Caller, Depends(Allow("datasets.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("datasets.read", path("dataset")))]
Creating = Annotated[Caller, Depends(Allow("datasets.create", path("dataset")))]
ReadingPatterns = Annotated[Caller, Depends(Allow("patterns.read", path("dataset")))]
Adding = Annotated[Caller, Depends(Allow("patterns.add", path("dataset")))]
Relabelling = Annotated[Caller, Depends(Allow("patterns.relabel", path("dataset")))]
Deactivating = Annotated[Caller, Depends(Allow("patterns.deactivate", path("dataset")))]

#: A pattern id, as the store's 64-bit integers hold it.
PatternId = Annotated[int, Field(ge=1, le=INT64_MAX)]


def _dataset(d: Any) -> dict[str, Any]:
    return {
        "name": d.name,
        "task": d.task,
        "label_column": d.label_column,
        "label_type": d.label_type,
        "description": d.description,
        "created_at": to_json(d.created_at),
        "tolerance": None if d.tolerance is None else str(d.tolerance),
    }


@router.get("")
def list_datasets(caller: Reading) -> list[dict[str, Any]]:
    """The datasets the caller may read."""
    return [
        _dataset(d) for d in caller.store.datasets.list() if caller.may("datasets.read", d.name)
    ]


class NewDataset(BaseModel):
    """What ``trenches data create`` asks: the task, the label column, and optionally
    the input schema, a free-text column, split ratios and a tolerance."""

    task: Literal["classification", "regression"]
    label: str = Field(min_length=1, max_length=200)
    text: str | None = Field(None, max_length=200)
    schema_: str | None = Field(
        None, alias="schema", max_length=100_000, description="e.g. 'radius:number,site:string'"
    )
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    description: str | None = Field(None, max_length=100_000)
    tolerance: str | float | None = Field(None, description="Regression: '0.5', '10%'.")
    salt: str | None = Field(
        None, pattern="^[0-9a-f]{32}$", description="The split hash's salt (default: random)."
    )


@router.post("/{dataset}", status_code=201)
def create_dataset(dataset: str, body: NewDataset, caller: Creating) -> Any:
    """Create the dataset ``dataset`` (its name is in the path, where the rule reads it)."""
    with caller.changing("datasets.create", f"dataset:{dataset}", {"task": body.task}):
        made = caller.store.datasets.create(
            dataset,
            task=body.task,
            label=body.label,
            text=body.text,
            schema=body.schema_,
            splits=body.splits,
            description=body.description,
            tolerance=body.tolerance,
            salt=body.salt,
        )
    return _dataset(made)


@router.get("/{dataset}")
def show_dataset(dataset: str, caller: ReadingOne) -> Any:
    """What ``trenches data show`` prints: counts by split, source, label and month."""
    return to_json(caller.store.datasets.get(dataset).summary())


@router.get("/{dataset}/patterns")
def list_patterns(
    dataset: str,
    request: Request,
    caller: ReadingPatterns,
    limit: Limit = 100,
    offset: Offset = 0,
    split: Annotated[str | None, Query(description="train, validation or test")] = None,
) -> Any:
    """The active patterns, by id: their inputs and label, a page at a time."""
    ds = caller.store.datasets.get(dataset)
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}", field="split")
    ids = ds.pattern_ids(split)
    chosen = ids[offset : offset + limit]
    frame = ds.patterns(ids=chosen.tolist()) if len(chosen) else None
    # Values as stored: pandas' own JSON would round floats to 10 digits.
    rows = [] if frame is None else to_json(frame.reset_index().to_dict(orient="records"))
    out = page(request, range(len(ids)), limit=limit, offset=offset)
    out["items"] = rows
    return out


class Relabel(BaseModel):
    """A new label for a pattern, and why."""

    label: Any = Field(description="The new label, as the dataset's labels are.")
    reason: str = Field(min_length=1, max_length=10_000)
    source: str = Field("expert", max_length=100)


@router.post("/{dataset}/patterns/{pattern_id}/relabel")
def relabel(dataset: str, pattern_id: int, body: Relabel, caller: Relabelling) -> Any:
    """Relabel a pattern: the old one is deactivated and a new one points back to it
    (``trenches data relabel``). Recorded in the audit log as the caller's."""
    if caller.store.patterns.get(pattern_id).dataset != dataset:
        raise NotFound(f"dataset {dataset!r} has no pattern {pattern_id}")
    return relabelled(caller, pattern_id, body)


def relabelled(caller: Caller, pattern_id: int, body: Relabel) -> Any:
    """Relabel ``pattern_id`` as the caller, recorded in the audit log."""
    with caller.changing("patterns.relabel", f"pattern:{pattern_id}", {"reason": body.reason}):
        new = caller.store.patterns.relabel(
            pattern_id,
            body.label,
            source=body.source,
            reason=body.reason,
            labelled_by=caller.user.name,
        )
    return to_json(new)


@router.get("/{dataset}/patterns/{pattern_id}/history")
def pattern_history(
    dataset: str, pattern_id: Annotated[int, Path(ge=1, le=INT64_MAX)], caller: ReadingPatterns
) -> Any:
    """Every version of the example ``pattern_id`` is one version of, oldest first,
    with the relabels and deactivations between them and their reasons."""
    found = caller.store.patterns.history(pattern_id)
    if found.patterns[0].dataset != dataset:
        raise NotFound(f"dataset {dataset!r} has no pattern {pattern_id}")
    return to_json(found)


class Deactivation(BaseModel):
    """Patterns that leave the data (they stay stored), and why."""

    ids: list[PatternId] = Field(min_length=1, max_length=100_000)
    reason: str = Field(min_length=1, max_length=10_000)


@router.post("/{dataset}/patterns/deactivate")
def deactivate(dataset: str, body: Deactivation, caller: Deactivating) -> dict[str, int]:
    """Take patterns of ``dataset`` out of every later snapshot, all or none
    (``trenches data deactivate``)."""
    detail = {"ids": body.ids, "reason": body.reason}
    with caller.changing("patterns.deactivate", f"dataset:{dataset}", detail):
        done = caller.store.patterns.deactivate(body.ids, reason=body.reason, dataset=dataset)
    return {"deactivated": done}


#: The formats an import reads, by the suffix of the name a client gives its file.
_SUFFIXES = {"csv": "csv", "parquet": "parquet", "pq": "parquet", "jsonl": "jsonl"}
_SUFFIXES["ndjson"] = "jsonl"
#: The longest file name kept with an import (as text).
_LONGEST_NAME = 1_000


@router.post("/{dataset}/imports", status_code=201)
def import_file(  # noqa: PLR0913 (a form's fields are its arguments)
    dataset: str,
    caller: Adding,
    file: Annotated[UploadFile, File(description="A CSV, Parquet or JSON-lines file.")],
    source: Annotated[str, Form(min_length=1, max_length=100)],
    labelled_by: Annotated[str | None, Form(max_length=200)] = None,
    note: Annotated[str | None, Form(max_length=10_000)] = None,
    created_at: Annotated[str | None, Form(max_length=100)] = None,
    format: Annotated[
        Literal["csv", "parquet", "jsonl"] | None,
        Form(description="Default: told by the file name's suffix."),
    ] = None,
    skip_existing: Annotated[bool, Form()] = False,
    from_frame: Annotated[
        bool, Form(description="The rows are a client's DataFrame: no file name is kept.")
    ] = False,
) -> Any:
    """Import a file of patterns, all rows or none (``trenches data add``). The upload
    is written to a file the server names; the name the client gave is kept only as
    text, in the import's record and its errors (which name the row and the column)."""
    name = _client_name(file.filename)
    fmt = format or _SUFFIXES.get(name.rpartition(".")[2].lower() if "." in name else "")
    if fmt is None:
        raise InvalidInput(
            f"cannot tell the format of {name!r}; name it: format=csv, parquet or jsonl",
            field="format",
        )
    ds = caller.store.datasets.get(dataset)
    detail = {"file": name, "source": source, "format": fmt}
    with tempfile.TemporaryDirectory(prefix="trenches-upload-") as folder:
        upload = pathlib.Path(folder) / f"upload.{fmt}"
        with upload.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)
        options: dict[str, Any] = {
            "source": source,
            "labelled_by": labelled_by or caller.user.name,
            "note": note,
            "created_at": created_at,
            "skip_existing": skip_existing,
        }
        with caller.changing("patterns.add", f"dataset:{dataset}", detail):
            if from_frame:
                done = ds.add(_frame(upload, fmt), **options)
            else:
                done = ds.add_file(upload, file_name=name, **options)
    return to_json(done)


def _frame(upload: pathlib.Path, fmt: str) -> Any:
    """A client's DataFrame, sent as Parquet."""
    import pandas as pd

    if fmt != "parquet":
        raise InvalidInput("a DataFrame is sent as Parquet (format=parquet)", field="format")
    try:
        return pd.read_parquet(upload)
    except (OSError, ValueError) as e:
        raise InvalidInput(f"the DataFrame sent is not Parquet: {e}", field="file") from None


def _client_name(given: str | None) -> str:
    """The file name a client sent, as text to keep (never a path to open)."""
    name = given or "upload"
    if len(name) > _LONGEST_NAME or not name.isprintable():
        raise InvalidInput(
            f"the file's name must be printable text of at most {_LONGEST_NAME} characters",
            field="file",
        )
    return name
