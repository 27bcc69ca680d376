"""``store.monitoring``: drift of a production window against a version's reference,
stored with its alert; the history of reports; and the requests least like the
reference (outliers)."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotFound
from trenches.evaluation import classification_metrics, regression_metrics
from trenches.json_form import to_json
from trenches.monitoring import alerts as alerting
from trenches.monitoring import partitioned
from trenches.monitoring.drift import drift
from trenches.monitoring.reports import Monitored, alert_from_row, report_from_row
from trenches.monitoring.window import Current, describe, from_window, kinds_of, typed, types_of
from trenches.names import in_int64
from trenches.settings import given

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.compute import Cluster
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.monitoring.results import DriftReport
    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.patterns.snapshots import Snapshots
    from trenches.predictors import Predictors
    from trenches.requests.log import Requests
    from trenches.runs import Runs
    from trenches.settings import MonitorSettings, Settings

REFERENCE_SPLITS = ("train", "validation", "test", "all")


@dataclass(frozen=True)
class Parts:
    """What monitoring reads: the versions and their data, the predictions, the
    request log (``store.monitoring`` is given them)."""

    engine: Engine
    models: Models
    datasets: Datasets
    runs: Runs
    snapshots: Snapshots
    predictors: Predictors
    requests: Requests
    #: The Dask cluster a large window's parts are sketched on (None: this process).
    cluster: Callable[[], AbstractContextManager[Cluster | None]]


def _span(
    window: str | None, since: str | datetime | int | None, until: str | datetime | int | None
) -> tuple[int | None, int | None]:
    """The times a window of requests spans (µs; None: open)."""
    if window is not None:
        if since is not None:
            raise InvalidInput("give either --window or --since, not both")
        start = timestamps.parse(window, what="window")
        return start, timestamps.parse(until, what="until") or timestamps.now_us()
    return timestamps.parse(since, what="since"), timestamps.parse(until, what="until")


def _prediction_kind(dataset: Dataset) -> str:
    return "categorical" if dataset.task == "classification" else "numeric"


class Monitoring:
    """``store.monitoring``."""

    def __init__(self, parts: Parts, settings: Callable[[], Settings]) -> None:
        self._parts = parts
        self._settings = settings

    # --- drift -------------------------------------------------------------------------

    # The keyword options of a public method are its API (``store.monitoring.run``).
    def run(  # noqa: PLR0913
        self,
        ref: str,
        *,
        window: str | None = None,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        current: pd.DataFrame | str | Path | None = None,
        reference: str = "train",
        path: str | os.PathLike[str] | None = None,
        trusted: bool = False,
        keep: bool = True,
        settings: Settings | None = None,
    ) -> Monitored:
        """Compare a window of production inputs with ``ref``'s reference and store the
        report (``keep=False``: do not), raising an alert when drift is found.

        The window is the requests served by any version of the model in
        ``[since, until)`` (``window="24h"``: the last 24 hours; default: everything
        logged), or ``current``: a DataFrame, or a CSV / Parquet / JSON-lines file.
        ``reference``: ``train`` (default), ``validation``, ``test`` or ``all`` of the
        snapshot the version was trained on, or ``SNAPSHOT_ID[:split]``.
        The thresholds and the webhook are the ``[monitor]`` table of ``settings``, else
        of the trenches.toml at ``path``, else of the store's (``store.settings``).

        A window of :data:`~trenches.monitoring.partitioned.SKETCH_FROM` rows or more is
        read part by part and compared by the parts' merged sketches, on the Dask
        cluster of ``[compute] scheduler`` when one is set (see
        :mod:`trenches.monitoring.sketches` for how near that is to reading it whole).
        """
        thresholds = (given(settings, path) or self._settings()).monitor
        version = self._parts.models.get(ref)
        dataset = self._dataset(version)
        ref_frame, ref_ids, ref_text = self._reference(version, dataset, reference)
        kinds = kinds_of(dataset, list(ref_frame.columns))
        span = None if current is not None else _span(window, since, until)
        if (
            span is not None
            and self._parts.requests.window_rows(
                since=span[0], until=span[1], version=version.model
            )
            >= partitioned.SKETCH_FROM
        ):
            cur, report = self._sketched(
                version, dataset, ref_frame, ref_ids, kinds, span, thresholds, trusted=trusted
            )
        else:
            # The span as fixed above ("24h" is until the same now).
            asked = (window, since, until) if span is None else (None, *span)
            cur = self._current(
                version, dataset, *asked, current, trusted=trusted, numbers_apart=True
            )
            if not len(cur.frame):
                raise InvalidInput(f"nothing to compare: {cur.description}")
            ref_pred = self._reference_predictions(version, ref_ids, trusted=trusted)
            prediction = None
            if ref_pred is not None and cur.predictions is not None and len(cur.predictions):
                prediction = (ref_pred, cur.predictions)
            # A window's numbers are read a column at a time as each is compared.
            apart = set(cur.numbers.names) if cur.numbers is not None else set()
            present = len(cur.frame.columns) or apart
            kept = [c for c in ref_frame.columns if c not in apart]
            report = drift(
                ref_frame,
                cur.frame.reindex(columns=kept) if present else cur.frame,
                settings=thresholds.drift,
                kinds=kinds,
                prediction=prediction,
                prediction_kind=_prediction_kind(dataset),
                apart=cur.numbers,
            )
        metrics = self._metrics(version, dataset, ref_ids, ref_text, cur)
        now = timestamps.now_us()
        monitored = Monitored(
            id=None,
            version=version.ref,
            reference=ref_text,
            current=cur.description,
            since=timestamps.from_us(cur.since) if cur.since is not None else None,
            until=timestamps.from_us(cur.until) if cur.until is not None else None,
            report=report,
            metrics=metrics,
            alert=None,
            created_at=timestamps.from_us(now),
        )
        if not keep:
            return monitored
        body = {
            "columns": to_json(report.columns),
            "prediction": to_json(report.prediction),
            "metrics": metrics,
            "ignored": list(report.ignored),
            "extra": list(report.extra),
        }
        with write(self._parts.engine) as conn:
            report_id = int(
                conn.execute(
                    insert(t.drift_reports).values(
                        version_id=version.id,
                        reference=ref_text,
                        reference_rows=report.reference_rows,
                        current=cur.description,
                        current_rows=report.current_rows,
                        since=cur.since,
                        until=cur.until,
                        drifted=report.drifted,
                        drifted_columns=len(report.drifted_columns),
                        settings=orjson.dumps(to_json(thresholds.drift)).decode(),
                        body=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                        created_by=acting_name(),
                        created_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )
        alert = None
        if report.drifted:
            alert = alerting.raise_alert(self._parts.engine, report_id, monitored, thresholds)
        return Monitored(
            id=report_id,
            version=monitored.version,
            reference=monitored.reference,
            current=monitored.current,
            since=monitored.since,
            until=monitored.until,
            report=report,
            metrics=metrics,
            alert=alert,
            created_at=monitored.created_at,
        )

    # --- the two samples -------------------------------------------------------------

    def _dataset(self, version: ModelVersion) -> Dataset:
        if version.dataset is None:
            raise InvalidInput(
                f"{version.ref} was registered without a dataset: there is no reference to "
                "compare production with"
            )
        return self._parts.datasets.get(version.dataset)

    def _reference(
        self, version: ModelVersion, dataset: Dataset, reference: str
    ) -> tuple[pd.DataFrame, np.ndarray, str]:
        """The reference's model inputs, pattern ids, and what it is in words."""
        from trenches.predict import model_inputs

        text = reference.strip()
        snapshot_id: int | None = None
        split = text
        if text and text[0].isdigit():
            head, _, tail = text.partition(":")
            try:
                snapshot_id = int(head)
            except ValueError:
                raise InvalidInput(f"reference {reference!r}: not a snapshot id") from None
            if not in_int64(snapshot_id):
                raise InvalidInput(f"reference {reference!r}: no such snapshot")
            split = tail or "train"
        if split not in REFERENCE_SPLITS:
            raise InvalidInput(
                f"reference {reference!r} must be one of {', '.join(REFERENCE_SPLITS)}, or "
                "a snapshot id (SNAPSHOT or SNAPSHOT:split)"
            )
        if snapshot_id is None and version.run_id is not None:
            snapshot_id = self._parts.runs.get(version.run_id).snapshot_id
        chosen = None if split == "all" else split
        if snapshot_id is not None:
            snap = self._parts.snapshots.get(snapshot_id)
            if snap.dataset_id != dataset.id:
                raise InvalidInput(
                    f"snapshot {snapshot_id} is of dataset {snap.dataset!r}, but {version.ref} "
                    f"is a model of {dataset.name!r}"
                )
            frame, _ = snap.data(chosen, full_info=False)
            what = f"{split} split of snapshot {snapshot_id}"
        else:
            from trenches.patterns.frames import read_patterns

            frame, _ = read_patterns(dataset, split=chosen, full_info=False)
            what = f"{split} split of dataset {dataset.name} (the version has no snapshot)"
        if not len(frame):
            raise InvalidInput(f"the reference, the {what}, holds no patterns")
        ids = frame.index.to_numpy()
        return (
            model_inputs(version, dataset, frame).reset_index(drop=True),
            ids,
            (f"{what} ({len(frame):,} patterns)"),
        )

    def _current(
        self,
        version: ModelVersion,
        dataset: Dataset,
        window: str | None,
        since: str | datetime | int | None,
        until: str | datetime | int | None,
        current: pd.DataFrame | str | Path | None,
        *,
        trusted: bool,
        numbers_apart: bool = False,
    ) -> Current:
        import pandas as pd

        if current is not None:
            if window is not None or since is not None or until is not None:
                raise InvalidInput("give either a current file or a window of requests, not both")
            if isinstance(current, pd.DataFrame):
                frame, what = current.copy(), "a DataFrame"
            else:
                from trenches.patterns.ingest import read_file

                frame, what = read_file(current), f"file {Path(current).name}"
            frame = typed(dataset, frame, what)
            columns = list(version.signature.columns)
            missing = [c for c in columns if c not in frame.columns]
            predictions = None
            if not missing and len(frame):
                model = self._parts.models.load(
                    version.ref,
                    format="onnx" if "onnx" in version.formats else "native",
                    trusted=trusted,
                )
                predictions = np.asarray(model.predict(frame[columns]))
            labels = None
            if dataset.label_column in frame.columns:
                labels = frame.pop(dataset.label_column).to_numpy(dtype=object)
            return Current(
                frame,
                f"{what} ({len(frame):,} rows)",
                None,
                None,
                predictions,
                None,
                None,
                None,
                labels,
            )
        start, end = _span(window, since, until)
        logged = self._parts.requests.window(
            since=start, until=end, version=version.model, numbers_apart=numbers_apart
        )
        return from_window(dataset, version, logged, start, end)

    def _sketched(
        self,
        version: ModelVersion,
        dataset: Dataset,
        ref_frame: pd.DataFrame,
        ref_ids: np.ndarray,
        kinds: dict[str, str],
        span: tuple[int | None, int | None],
        thresholds: MonitorSettings,
        *,
        trusted: bool,
    ) -> tuple[Current, DriftReport]:
        """A window too large to read whole, compared part by part by the sketches of
        its parts (:mod:`trenches.monitoring.partitioned`), on the cluster if one is
        set."""
        start, end = span
        parts = self._parts.requests.window_parts(
            since=start, until=end, version=version.model, most=partitioned.PART_ROWS
        )
        ref_pred = self._reference_predictions(version, ref_ids, trusted=trusted)
        reference = partitioned.plan(
            ref_frame,
            thresholds.drift,
            kinds,
            None if ref_pred is None else (ref_pred, _prediction_kind(dataset)),
            version.id,
            types_of(dataset),
            parts.feedback,
        )
        with self._parts.cluster() as cluster:
            found = partitioned.sketch_window(self._parts.requests, parts, reference.plan, cluster)
        rows, served = (found.rows, found.served) if found is not None else (0, 0)
        description = describe(version, parts.requests, rows, served, start, end)
        if found is None or not rows:
            raise InvalidInput(f"nothing to compare: {description}")
        labelled = len(found.labels) > 0
        cur = Current(
            ref_frame.iloc[:0],
            description,
            start,
            end,
            found.answers if labelled else None,
            None,
            None,
            None,
            found.labels if labelled else None,
        )
        return cur, partitioned.drift_of(reference, found, parts.apart, thresholds.drift)

    def _reference_predictions(
        self, version: ModelVersion, ids: np.ndarray, *, trusted: bool
    ) -> np.ndarray | None:
        """The version's predictions on the reference patterns (stored once, made where
        missing), as labels or values."""
        from trenches import predictions as store_of
        from trenches.predict import predict

        predictor = self._parts.predictors.resolve(version)
        predict(self._parts.engine, self._parts.models, predictor, ids, trusted=trusted)
        with read(self._parts.engine) as conn:
            found = store_of.read(conn, predictor.id)
        rows = np.searchsorted(found.pattern_ids, ids)
        if found.labels is not None:
            return np.asarray(found.labels[rows], dtype=object)
        if found.values is not None:
            return found.values[rows]
        return None

    def _metrics(
        self,
        version: ModelVersion,
        dataset: Dataset,
        ref_ids: np.ndarray,
        ref_text: str,
        cur: Current,
    ) -> dict[str, Any] | None:
        """Real metrics of the window where feedback gave labels, next to the
        reference's."""
        import pandas as pd

        from trenches import predictions as store_of

        if cur.labels is None or cur.predictions is None:
            return None
        have = np.asarray(pd.notna(cur.labels), dtype=bool)
        if not have.any():
            return None
        predictor = self._parts.predictors.resolve(version)
        with read(self._parts.engine) as conn:
            found = store_of.read(conn, predictor.id)
        rows = np.searchsorted(found.pattern_ids, ref_ids)
        truth = np.asarray(cur.labels[have])
        said = np.asarray(cur.predictions[have])
        labelled = int(have.sum())
        ref_fig: dict[str, Any] | None = None
        if dataset.task == "classification":
            truth_text = np.array([str(v) for v in truth], dtype=object)
            said_text = np.array([str(v) for v in said], dtype=object)
            figures, _, _ = classification_metrics(
                truth_text, said_text, sorted(set(truth_text) | set(said_text))
            )
            window: dict[str, Any] = {"accuracy": figures["accuracy"], "labelled": labelled}
            if found.correct is not None:
                ref_fig = {"accuracy": float(found.correct[rows].mean()), "patterns": len(rows)}
        else:
            figures = regression_metrics(truth.astype(float), said.astype(float))
            window = {"mae": figures["mae"], "rmse": figures["rmse"], "labelled": labelled}
            if found.values is not None:
                ref_frame = dataset.patterns(ids=ref_ids.tolist())
                ref = regression_metrics(
                    ref_frame[dataset.label_column].to_numpy(dtype=float), found.values[rows]
                )
                ref_fig = {"mae": ref["mae"], "rmse": ref["rmse"], "patterns": len(rows)}
        return {"window": window, "reference": ref_fig, "reference_set": ref_text}

    # --- history -----------------------------------------------------------------------

    def history(self, model: str | None = None, *, limit: int | None = 50) -> list[Monitored]:
        """Stored drift reports, newest first: of one model (``name``) or version
        (``name@V``), or all. Each carries its alert and the retraining it set off."""
        d, m = t.drift_reports.c, t.models.c
        where = None
        if model is not None:
            if "@" in model:
                where = d.version_id == self._parts.models.get(model).id
            else:
                if model not in self._parts.models.names():
                    raise NotFound(f"no model named {model!r}")
                where = m.name == model
        return self._read(where, limit)

    def get(self, report_id: int) -> Monitored:
        """One stored report by id."""
        found = self._read(t.drift_reports.c.id == report_id, 1)
        if not found:
            raise NotFound(f"no drift report {report_id}")
        return found[0]

    def _read(self, where: Any, limit: int | None) -> list[Monitored]:
        d, v, m = t.drift_reports.c, t.model_versions.c, t.models.c
        query = (
            select(t.drift_reports, m.name.label("model_name"), v.version.label("number"))
            .join(t.model_versions, d.version_id == v.id)
            .join(t.models, v.model_id == m.id)
            .order_by(d.created_at.desc(), d.id.desc())
        )
        if where is not None:
            query = query.where(where)
        if limit is not None:
            query = query.limit(limit)
        with read(self._parts.engine) as conn:
            rows = conn.execute(query).all()
            ids = [r.id for r in rows]
            alerts = conn.execute(select(t.alerts).where(t.alerts.c.report_id.in_(ids))).all()
            r, rv = t.retrains.c, t.model_versions.alias("rv")
            retrains = conn.execute(
                select(r.id, r.report_id, r.status, r.reason, rv.c.version)
                .select_from(t.retrains.outerjoin(rv, r.version_id == rv.c.id))
                .where(r.report_id.in_(ids))
                .order_by(r.id)
            ).all()
        by_report = {a.report_id: alert_from_row(a) for a in alerts}
        follow: dict[int, builtins.list[dict[str, Any]]] = {}
        for x in retrains:
            follow.setdefault(x.report_id, []).append(
                {
                    "id": x.id,
                    "status": x.status,
                    "version": x.version,
                    "reason": x.reason,
                }
            )
        return [
            report_from_row(row, by_report.get(row.id), tuple(follow.get(row.id, ())))
            for row in rows
        ]

    # --- outliers ------------------------------------------------------------------------

    # The keyword options of a public method are its API.
    def outliers(  # noqa: PLR0913
        self,
        ref: str,
        *,
        window: str | None = None,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        current: pd.DataFrame | str | Path | None = None,
        reference: str = "train",
        top: int = 20,
        seed: int = 0,
        trusted: bool = False,
    ) -> pd.DataFrame:
        """The ``top`` logged rows least like the reference, most unusual first: an
        isolation forest fitted on the reference's inputs scores every row of the
        window. Columns: request_id, row, score (higher is stranger), received_at,
        unusual (the inputs that stand out, and how), inputs (the row as a dict)."""
        from trenches.monitoring.outliers import rank

        if top < 1:
            raise InvalidInput(f"--top {top} must be at least 1")
        version = self._parts.models.get(ref)
        dataset = self._dataset(version)
        ref_frame, _, _ = self._reference(version, dataset, reference)
        cur = self._current(version, dataset, window, since, until, current, trusted=trusted)
        kinds = kinds_of(dataset, list(ref_frame.columns))
        return rank(
            ref_frame,
            cur.frame.reindex(columns=ref_frame.columns),
            kinds,
            top=top,
            seed=seed,
            request_ids=cur.request_ids,
            rows=cur.rows,
            received_at=cur.received_at,
        )
