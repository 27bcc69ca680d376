"""The model registry: ``/api/v1/models``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.api.routes.runs import namespace_of
from trenches.errors import InvalidInput, TrenchesError
from trenches.json_form import to_json
from trenches.models import formats
from trenches.names import INT64_MAX
from trenches.team.roles import promotion_action

if TYPE_CHECKING:
    import pandas as pd

    from trenches.patterns.snapshots import Snapshot

router = APIRouter(prefix="/models", tags=["models"])

Reading = Annotated[Caller, Depends(Allow("models.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("models.read", path("model")))]
Registering = Annotated[Caller, Depends(Allow("models.register", path("model")))]


def forced(request: Request) -> bool:
    """Whether a promotion asks to pass a failed check (``?force=1``, ``true`` or ``yes``)."""
    return request.query_params.get("force", "").lower() in ("1", "true", "yes")


def _promotion(request: Request) -> str:
    return promotion_action(str(request.path_params["alias"]), force=forced(request))


#: The rule of moving an alias (the API's and the web UI's): the alias and ``?force``
#: decide the action.
Promoting = Annotated[
    Caller,
    Depends(
        Allow(
            _promotion,
            path("model"),
            actions=(
                "models.promote.candidate",
                "models.promote.production",
                "models.promote.force",
            ),
        )
    ),
]


@router.get("")
def list_models(caller: Reading) -> list[str]:
    """The names of the models the caller may read."""
    return [n for n in caller.store.models.names() if caller.may("models.read", n)]


@router.get("/{model}/versions")
def list_versions(model: str, caller: ReadingOne) -> Any:
    """Every version of ``model``, oldest first, with its aliases."""
    return to_json(caller.store.models.versions(model))


@dataclass(frozen=True)
class _MadeBy:
    """The run a version comes from, as the registry reads it (``registry.MadeBy``)."""

    id: int
    snapshot: Snapshot | None


@router.post("/{model}/versions", status_code=201)
def register(
    model: str,
    caller: Registering,
    file: Annotated[UploadFile, File(description="The fitted model: skops.io.dumps(model).")],
    sample: Annotated[
        UploadFile | None,
        File(description="Parquet of a few input rows (a DataFrame of the input columns)."),
    ] = None,
    run_id: Annotated[int | None, Form(ge=1, le=INT64_MAX)] = None,
    dataset: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    description: Annotated[str | None, Form(max_length=100_000)] = None,
) -> Any:
    """Register a fitted model as the next version of ``model`` (``store.models.register``).

    ``file`` is a skops file, loaded with trenches' fixed trust list only: a file that
    names any other type is refused (422, naming the types) and nothing is stored; a
    pickle is never taken over HTTP. ``sample`` (Parquet) is the input example ``X``
    for the signature and the check of the ONNX form; without it, the run's snapshot
    gives one. ``run_id`` is the run that made the model: the caller must be allowed
    to read it (``runs.read`` on its dataset); ``dataset`` likewise (``datasets.read``)."""
    store = caller.store
    made_by = None
    if run_id is not None:
        run = store.runs.get(run_id)
        store.grants.require(caller.user, "runs.read", namespace_of(store, run.snapshot_id))
        snapshot = None if run.snapshot_id is None else store.snapshots.get(run.snapshot_id)
        made_by = _MadeBy(run.id, snapshot)
    if dataset is not None:
        store.grants.require(caller.user, "datasets.read", dataset)
    fitted = _fitted(file.file.read())
    X = None if sample is None else _sample(sample.file.read())
    detail = {"run_id": run_id, "dataset": dataset}
    with caller.changing("models.register", f"model:{model}", detail):
        made = store.models.register(
            fitted, model, X=X, run=made_by, dataset=dataset, description=description
        )
    return to_json(made)


#: The most a skops file (a zip) may unpack to: a small upload must not unpack to gigabytes.
MOST_UNPACKED = 1 << 30


def _fitted(data: bytes) -> Any:
    """The model a skops file holds, loaded untrusted (:func:`formats.from_skops`)."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            unpacked = sum(entry.file_size for entry in packed.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InvalidInput(f"not a skops file (skops.io.dumps(model)): {e}", field="file") from e
    if unpacked > MOST_UNPACKED:
        raise InvalidInput(
            f"the skops file unpacks to {unpacked:,} bytes, over {MOST_UNPACKED:,}", field="file"
        )
    try:
        return formats.from_skops(data, trusted=False)
    except TrenchesError:
        raise  # UntrustedModel: the file names types outside the trust list
    except Exception as e:  # not a skops file: zip, JSON and schema errors of every kind
        raise InvalidInput(f"not a skops file (skops.io.dumps(model)): {e}", field="file") from e


def _sample(data: bytes) -> pd.DataFrame:
    """The input example of a Parquet upload, as a DataFrame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InvalidInput(f"not a Parquet file: {e}", field="sample") from e


@router.get("/{model}/versions/{version}")
def show_version(model: str, version: str, caller: ReadingOne) -> Any:
    """One version: ``3``, or an alias (``production``)."""
    return to_json(caller.store.models.get(f"{model}@{version}"))


def _download(request: Request) -> str:
    """A pickle runs code when loaded: only those who may trust one download it."""
    pickled = request.query_params.get("format") == "pickle"
    return "models.trust" if pickled else "models.read"


Downloading = Annotated[
    Caller, Depends(Allow(_download, path("model"), actions=("models.read", "models.trust")))
]
BYTES = "application/octet-stream"


@router.get(
    "/{model}/versions/{version}/file",
    response_class=Response,
    responses={200: {"content": {BYTES: {}}}},
)
def download(
    model: str,
    version: str,
    caller: Downloading,
    format: Annotated[Literal["skops", "onnx", "pickle"], Query()] = "skops",
) -> Response:
    """The version's stored file, byte for byte: ``skops`` or ``onnx`` (which load
    without running code), or ``pickle`` (admins only: it runs code when loaded)."""
    found = caller.store.models.get(f"{model}@{version}")
    data = caller.store.models.file_bytes(found, format)
    name = f"{found.model}-{found.version}.{format}"
    return Response(
        data,
        media_type=BYTES,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/{model}/versions/{version}/lineage")
def lineage(model: str, version: str, caller: ReadingOne) -> Any:
    """What made the version: run, code, snapshot, data, environment."""
    return caller.store.lineage(f"{model}@{version}").to_json()


class Promotion(BaseModel):
    """Which version the alias moves to, and why (kept in the alias history)."""

    version: int = Field(ge=1, le=2**62)
    reason: str = Field(min_length=1, max_length=10_000)


@router.post("/{model}/aliases/{alias}")
def promote(
    model: str,
    alias: str,
    body: Promotion,
    caller: Promoting,
    force: Annotated[bool, Query(description="Past a failed check (approvers).")] = False,
) -> Any:
    """Move ``alias`` to a version. ``candidate`` is a maintainer's; any other alias is
    a release, an approver's; ``?force=true`` (approvers) passes a failed gate check
    and is recorded with the reason."""
    ref = f"{model}@{body.version}"
    detail = {"alias": alias, "version": body.version, "reason": body.reason, "force": force}
    with caller.changing("models.promote", f"model:{model}@{alias}", detail):
        moved = caller.store.models.promote(ref, alias, reason=body.reason, force=force)
    return to_json(moved)
