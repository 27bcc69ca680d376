"""The model registry: named models, their numbered versions, files and aliases."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name, change
from trenches.db.engine import insert_ignore, read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.json_form import from_json, to_json
from trenches.models import boosting, endpoints, formats, saving
from trenches.models.endpoints import Endpoint
from trenches.models.versions import (
    SOURCE,
    AliasMove,
    MadeBy,
    ModelVersion,
    check_name,
    needs_trust,
)
from trenches.names import in_int64

if TYPE_CHECKING:
    import pandas as pd

    from trenches.artifacts import ArtifactStore
    from trenches.patterns.datasets import Dataset, Datasets

#: Called before an alias other than ``candidate`` moves, with the reference, the alias
#: and whether the move is forced; raises to refuse it.
PromotionGuard = Callable[[str, str, bool], None]

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$")
_REF = re.compile(r"^(?P<name>[^@]+)@(?P<which>.+)$")
#: Aliases any version may move to without a passing check: where versions wait.
UNGUARDED_ALIASES = frozenset({"candidate"})


class Models:
    """The registry of a store: ``store.models``."""

    def __init__(
        self,
        engine: Engine,
        artifacts: ArtifactStore,
        datasets: Callable[[], Datasets],
        *,
        guard: PromotionGuard | None = None,
    ) -> None:
        self._engine = engine
        self._artifacts = artifacts
        # Asked for only when a version is registered: a server that loads a model
        # never loads the datasets' code (pandas, pyarrow).
        self._datasets = datasets
        # What promotion policy refuses (a version whose latest check failed), given
        # by whoever owns the policy: the registry only moves aliases.
        self._guard = guard

    # --- registering ------------------------------------------------------------

    def register(
        self,
        model: Any,
        name: str,
        *,
        X: pd.DataFrame | None = None,
        run: MadeBy | None = None,
        dataset: str | None = None,
        classes: Sequence[Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``model`` as the next version of ``name``.

        scikit-learn estimators and pipelines are saved with skops, XGBoost and LightGBM
        models in their libraries' own formats, and each, where skl2onnx (with
        onnxmltools) converts it to a form that predicts like it, as ONNX too (else the
        version records why not). A PyTorch module is exported with ``torch.onnx`` and
        kept as a pickle besides; ``classes`` names a classifier's classes in the order
        of its outputs (without them it is a regressor). Any other object with
        ``predict`` is saved with cloudpickle; pickles load only when trusted.
        ``X`` is an example of the input (a DataFrame), for the signature; without it
        the signature comes from the run's snapshot.
        """
        check_name(name)
        model = saving.prepared(model, X, classes)
        if not hasattr(model, "predict"):
            raise InvalidInput(f"a {type(model).__name__} has no predict method; not a model")
        ds = None
        if dataset is not None:
            ds = self._datasets().get(dataset)
        elif run is not None and run.snapshot is not None:
            ds = self._datasets().by_id(run.snapshot.dataset_id)
        if X is None:
            if run is None or run.snapshot is None:
                raise InvalidInput(
                    "give an input example (X=DataFrame) or log the model in a run with a "
                    "snapshot, so that its signature is known"
                )
            # Up to 1,000 training patterns: the signature, and the check of the ONNX form.
            X = run.snapshot.training_data("train").X.iloc[:1000]
        signature = formats.infer_signature(model, X)

        flavor, files, onnx_error = saving.files_of(model, X, signature)
        return self._store_version(
            name,
            flavor,
            signature,
            files,
            run=run,
            dataset=ds,
            onnx_error=onnx_error,
            description=description,
        )

    def add_endpoint(
        self,
        name: str,
        endpoint: Endpoint,
        *,
        dataset: str,
        columns: Sequence[str] | None = None,
        classes: Sequence[Any] | None = None,
        sources: Mapping[str, bytes] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register the next version of ``name`` as a service that predicts
        (:mod:`trenches.models.endpoints`): it takes ``columns`` of ``dataset`` (all
        its inputs by default) and gives ``classes`` (by default the dataset's labels,
        sorted; the order of its probabilities). The service is asked about a few of
        the dataset's patterns first; one that fails or answers nonsense is not
        registered. ``sources``: files of the service (name -> bytes: its code, its
        model) kept with the version, for ``trenches package``."""
        check_name(name)
        ds = self._datasets().get(dataset)
        signature, sample = endpoints.signature_of(ds, columns, classes)
        model = endpoints.EndpointModel(endpoint, signature)
        try:
            model.predict_with_proba(sample)
        finally:
            model.close()
        files: dict[str, tuple[bytes, dict[str, Any] | None]] = {
            "endpoint": (orjson.dumps(to_json(endpoint)), None)
        }
        for source, data in (sources or {}).items():
            if not source or "/" in source or source.startswith("."):
                raise InvalidInput(f"source file name {source!r} must be a plain file name")
            files[f"{SOURCE}{source}"] = (data, None)
        return self._store_version(
            name,
            "endpoint",
            signature,
            files,
            run=None,
            dataset=ds,
            onnx_error="an endpoint: its service predicts",
            description=description,
        )

    def adopt(self, version: ModelVersion, files: saving.Files) -> ModelVersion:
        """Store ``version`` of another store here as it is there (its name, number,
        signature, flavor and ``files``, from :meth:`files`), without its run or
        dataset: what a packaged server serves."""
        return self._store_version(
            version.model,
            version.flavor,
            version.signature,
            files,
            run=None,
            dataset=None,
            onnx_error=version.onnx_error,
            description=f"packaged from {version.ref}",
            number=version.version,
        )

    def _store_version(  # noqa: PLR0913 (a version's parts)
        self,
        name: str,
        flavor: str,
        signature: formats.Signature,
        files: dict[str, tuple[bytes, dict[str, Any] | None]],
        *,
        run: MadeBy | None,
        dataset: Dataset | None,
        onnx_error: str | None,
        description: str | None,
        number: int | None = None,
    ) -> ModelVersion:
        """Store the next version of ``name`` (or version ``number``) with its
        ``files`` (format -> bytes and details), all in one transaction."""
        ds = dataset
        from trenches.predictions import make_predictor

        stored = {fmt: self._artifacts.put_bytes(data) for fmt, (data, _) in files.items()}
        now = timestamps.now_us()
        detail = {"run": run.id if run is not None else None, "flavor": flavor}
        with (
            change("models.register", f"model:{name}", detail) as marked,
            write(self._engine) as conn,
        ):
            model_id = self._model_id(conn, name, create=True, now=now)
            newest = conn.execute(
                select(func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.model_id == model_id
                )
            ).scalar()
            if number is not None and newest is not None and number <= newest:
                raise Conflict(f"{name} has versions up to {newest}; {number} cannot be added")
            version = number if number is not None else (newest or 0) + 1
            version_id = conn.execute(
                insert(t.model_versions).values(
                    model_id=model_id,
                    version=version,
                    run_id=run.id if run is not None else None,
                    dataset_id=ds.id if ds is not None else None,
                    task=ds.task if ds is not None else None,
                    flavor=flavor,
                    signature=orjson.dumps(to_json(signature)).decode(),
                    onnx_error=onnx_error,
                    description=description,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            marked.target = f"model:{name}@{version}"
            # Its predictor row now, so that reading its predictions never writes.
            make_predictor(conn, version_id=version_id, classes=_class_text(signature, ds))
            for fmt, art in stored.items():
                insert_ignore(
                    conn, t.artifacts, {"sha256": art.sha256, "size": art.size, "created_at": now}
                )
                details = files[fmt][1]
                conn.execute(
                    insert(t.model_files).values(
                        version_id=version_id,
                        format=fmt,
                        sha256=art.sha256,
                        details=orjson.dumps(details).decode() if details else None,
                    )
                )
        return self.get(f"{name}@{version}")

    def _model_id(self, conn: Connection, name: str, *, create: bool, now: int = 0) -> int:
        row = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).first()
        if row is not None:
            return int(row[0])
        if not create:
            raise NotFound(f"no model named {name!r}")
        return int(
            conn.execute(insert(t.models).values(name=name, created_at=now)).inserted_primary_key[0]  # type: ignore[index]
        )

    # --- finding ----------------------------------------------------------------

    def _resolve(self, conn: Connection, ref: str) -> Any:
        """The model_versions row for ``name@3``, ``name@alias`` or ``name@latest``."""
        m = _REF.match(ref)
        if m is None:
            raise InvalidInput(f"{ref!r} is not a model reference like name@3, name@production")
        name, which = m["name"], m["which"]
        model_id = self._model_id(conn, name, create=False)
        v = t.model_versions.c
        if which.isascii() and which.isdigit():
            if not in_int64(int(which)):
                raise NotFound(f"{ref}: model {name!r} has no version {which}")
            row = conn.execute(
                select(t.model_versions).where(v.model_id == model_id, v.version == int(which))
            ).first()
        elif which == "latest":
            row = conn.execute(
                select(t.model_versions)
                .where(v.model_id == model_id)
                .order_by(v.version.desc())
                .limit(1)
            ).first()
        else:
            a = t.aliases.c
            row = conn.execute(
                select(t.model_versions)
                .join(t.aliases, a.version_id == v.id)
                .where(a.model_id == model_id, a.alias == which)
            ).first()
        if row is None:
            raise NotFound(f"{ref}: no such version or alias of model {name!r}")
        return row

    def _version(self, conn: Connection, row: Any) -> ModelVersion:
        name = conn.execute(select(t.models.c.name).where(t.models.c.id == row.model_id)).scalar()
        files = conn.execute(
            select(t.model_files.c.format, t.model_files.c.details).where(
                t.model_files.c.version_id == row.id
            )
        ).all()
        aliases = conn.execute(
            select(t.aliases.c.alias)
            .where(t.aliases.c.version_id == row.id)
            .order_by(t.aliases.c.alias)
        ).scalars()
        dataset = None
        if row.dataset_id is not None:
            dataset = conn.execute(
                select(t.datasets.c.name).where(t.datasets.c.id == row.dataset_id)
            ).scalar()
        return ModelVersion(
            id=row.id,
            model=str(name),
            version=row.version,
            run_id=row.run_id,
            dataset=dataset,
            task=row.task,
            flavor=row.flavor,
            signature=from_json(formats.Signature, orjson.loads(row.signature)),
            formats=tuple(sorted(f.format for f in files if not f.format.startswith(SOURCE))),
            sources=tuple(
                sorted(f.format[len(SOURCE) :] for f in files if f.format.startswith(SOURCE))
            ),
            onnx_error=row.onnx_error,
            aliases=tuple(aliases),
            created_at=timestamps.from_us(row.created_at),
            needs_trust=needs_trust({f.format: f.details for f in files}),
        )

    def _given(self, conn: Connection, ref: str | ModelVersion) -> ModelVersion:
        """The version a reference names, or the version given."""
        if isinstance(ref, ModelVersion):
            return ref
        return self._version(conn, self._resolve(conn, ref))

    def get(self, ref: str) -> ModelVersion:
        """A version by reference: ``name@3``, ``name@production``, ``name@latest``."""
        with read(self._engine) as conn:
            return self._version(conn, self._resolve(conn, ref))

    def versions(self, name: str) -> list[ModelVersion]:
        with read(self._engine) as conn:
            model_id = self._model_id(conn, name, create=False)
            rows = conn.execute(
                select(t.model_versions)
                .where(t.model_versions.c.model_id == model_id)
                .order_by(t.model_versions.c.version)
            ).all()
            return [self._version(conn, r) for r in rows]

    def names(self) -> list[str]:
        with read(self._engine) as conn:
            return list(conn.execute(select(t.models.c.name).order_by(t.models.c.name)).scalars())

    # --- loading ----------------------------------------------------------------

    def file_bytes(self, ref: str | ModelVersion, format: str) -> bytes:
        """The bytes of the version's stored file in ``format`` (``skops``, ``onnx``,
        ``xgboost``, ``lightgbm``, ``pickle``, ``endpoint``, or ``source/NAME``),
        checked against their SHA-256; nothing is loaded, so nothing runs.
        ``ModelVersion.formats`` (and ``.sources``) say which files a version has."""
        with read(self._engine) as conn:
            version = self._given(conn, ref)
            sha256 = conn.execute(
                select(t.model_files.c.sha256).where(
                    t.model_files.c.version_id == version.id, t.model_files.c.format == format
                )
            ).scalar()
        if sha256 is None:
            has = ", ".join(version.formats) or "none"
            raise NotFound(f"{version.ref} has no {format} file (its files: {has})")
        return self._artifacts.get_bytes(sha256)

    def files(self, ref: str | ModelVersion) -> saving.Files:
        """Every file of the version (sources included): format -> bytes (checked
        against their SHA-256) and the details recorded with it."""
        with read(self._engine) as conn:
            version = self._given(conn, ref)
            rows = conn.execute(
                select(t.model_files).where(t.model_files.c.version_id == version.id)
            ).all()
        return {
            r.format: (
                self._artifacts.get_bytes(r.sha256),
                orjson.loads(r.details) if r.details else None,
            )
            for r in rows
        }

    def endpoint(self, ref: str | ModelVersion) -> Endpoint:
        """Where an endpoint version's service is and how it is asked."""
        return from_json(Endpoint, orjson.loads(self.file_bytes(ref, "endpoint")))

    def load(
        self,
        ref: str | ModelVersion,
        *,
        format: str = "native",
        trusted: bool = False,
        threads: int | None = None,
    ) -> Any:
        """A model that predicts like the registered one.

        ``format``: ``native`` (the scikit-learn object from skops, an XGBoost or
        LightGBM model from its library's file, or the pickled object) or ``onnx`` (run
        by ONNX Runtime). Pickles, and skops files holding a
        name outside trenches' fixed list (``trenches.models.trust``: classes of
        scikit-learn, NumPy and SciPy, and their array functions), load only with
        ``trusted=True``; ``ModelVersion.needs_trust`` names what forces it.
        ``threads``: ONNX Runtime's intra-op threads (a server answering one request at a
        time uses 1, with no spinning); None leaves its default.
        """
        with read(self._engine) as conn:
            version = self._given(conn, ref)
            files = {
                f.format: f
                for f in conn.execute(
                    select(t.model_files).where(t.model_files.c.version_id == version.id)
                )
            }
        signature = version.signature
        if format == "onnx":
            if "onnx" not in files:
                raise NotFound(
                    f"{version.ref} has no ONNX form: {version.onnx_error or 'not converted'}"
                )
            onnx_file = files["onnx"]
            details = orjson.loads(onnx_file.details) if onnx_file.details else {}
            return formats.OnnxModel(
                self._artifacts.get_bytes(onnx_file.sha256),
                signature,
                round_inputs=bool(details.get("round_inputs")),
                threads=threads,
            )
        if format != "native":
            raise InvalidInput(f"format {format!r} must be native or onnx")
        if "skops" in files:
            data = self._artifacts.get_bytes(files["skops"].sha256)
            return formats.from_skops(data, trusted)
        if "pickle" in files:
            return formats.from_pickle(self._artifacts.get_bytes(files["pickle"].sha256), trusted)
        if "endpoint" in files:
            return endpoints.EndpointModel(self.endpoint(version), signature)
        for library in boosting.LIBRARIES:
            if library in files:
                data = self._artifacts.get_bytes(files[library].sha256)
                return boosting.load(data, library, signature.classes)
        raise NotFound(f"{version.ref} has no model file")

    # --- aliases ----------------------------------------------------------------

    def promote(self, ref: str, alias: str, *, reason: str, force: bool = False) -> AliasMove:
        """Point ``alias`` at the version ``ref`` names, keeping the history of moves."""
        if not _ALIAS.match(alias or "") or alias == "latest":
            raise InvalidInput(
                f"alias {alias!r} must be a name (letters, digits, '_', '-'), not 'latest'"
            )
        if not reason or not reason.strip():
            raise InvalidInput("moving an alias needs a reason (--reason)")
        if alias not in UNGUARDED_ALIASES and self._guard is not None:
            self._guard(ref, alias, force)
        now = timestamps.now_us()
        detail = {"alias": alias, "reason": reason, "force": force}
        marking = change("models.promote", f"model:{ref}", detail)
        with marking as marked, write(self._engine) as conn:
            row = self._resolve(conn, ref)
            marked.target = f"model:{ref.split('@')[0]}@{row.version}"
            a = t.aliases.c
            current = conn.execute(
                select(a.version_id).where(a.model_id == row.model_id, a.alias == alias)
            ).scalar()
            if current == row.id:
                raise Conflict(f"{alias} already points at {ref}")
            if current is None:
                conn.execute(
                    insert(t.aliases).values(model_id=row.model_id, alias=alias, version_id=row.id)
                )
            else:
                conn.execute(
                    t.aliases.update()
                    .where(a.model_id == row.model_id, a.alias == alias)
                    .values(version_id=row.id)
                )
            conn.execute(
                insert(t.alias_history).values(
                    model_id=row.model_id,
                    alias=alias,
                    from_version_id=current,
                    to_version_id=row.id,
                    moved_by=acting_name(),
                    reason=reason,
                    forced=force,
                    moved_at=now,
                )
            )
        return self.alias_history(ref.split("@")[0], alias)[-1]

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one), oldest first."""
        with read(self._engine) as conn:
            model_id = self._model_id(conn, name, create=False)
            h = t.alias_history.c
            query = select(t.alias_history).where(h.model_id == model_id).order_by(h.id)
            if alias is not None:
                query = query.where(h.alias == alias)
            rows = conn.execute(query).all()
            number = dict(
                conn.execute(
                    select(t.model_versions.c.id, t.model_versions.c.version).where(
                        t.model_versions.c.model_id == model_id
                    )
                ).all()
            )
        return [
            AliasMove(
                alias=r.alias,
                from_version=number.get(r.from_version_id),
                to_version=number.get(r.to_version_id),
                moved_by=r.moved_by,
                reason=r.reason,
                forced=bool(r.forced),
                moved_at=timestamps.from_us(r.moved_at),
            )
            for r in rows
        ]


def _class_text(signature: formats.Signature, dataset: Dataset | None) -> list[str] | None:
    """The class order of a version's stored scores, as label text of its dataset."""
    if signature.classes is None:
        return None
    from trenches.patterns.inputs import label_to_text

    label_type = dataset.label_type if dataset is not None and dataset.label_type else "string"
    return label_to_text(np.asarray(signature.classes), label_type)
