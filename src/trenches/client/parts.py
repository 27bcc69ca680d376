"""The parts of a remote store: ``store.datasets``, ``store.problems``, ... over the team
server, each method the library method of the same name, answering the same types
(read back from their JSON form with :func:`trenches.json_form.from_json`).

What the server does not offer is refused by :class:`Part` with
:class:`~trenches.errors.NotOfferedRemotely`, naming what to do instead, never an
``AttributeError``.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from trenches.errors import InvalidInput, NotOfferedRemotely
from trenches.json_form import from_json, to_json

if TYPE_CHECKING:
    import os

    import numpy as np
    import pandas as pd

    from trenches.client.http import Server
    from trenches.models.versions import AliasMove, ModelVersion
    from trenches.patterns import ImportResult, Pattern, PatternHistory, TrainingData
    from trenches.patterns.datasets import DatasetSummary
    from trenches.problems import AddResult, Problem
    from trenches.problems.scores import ProblemScore
    from trenches.runs import RunInfo

PARQUET = "application/vnd.apache.parquet"


def segment(text: str | int) -> str:
    """``text`` as one path segment (a name may hold ``/`` or ``?``)."""
    return quote(str(text), safe="")


def split_ref(ref: str) -> tuple[str, str]:
    """``name@3`` or ``name@production`` as (model, version or alias)."""
    if not isinstance(ref, str) or "@" not in ref:
        raise InvalidInput(f"{ref!r} is not a version: write name@3 or name@production")
    model, _, version = ref.rpartition("@")
    if not model or not version:
        raise InvalidInput(f"{ref!r} is not a version: write name@3 or name@production")
    return model, version


def version_path(ref: str) -> str:
    model, version = split_ref(ref)
    return f"/models/{segment(model)}/versions/{segment(version)}"


def not_offered(what: str, instead: str) -> NotOfferedRemotely:
    return NotOfferedRemotely(f"{what} is not offered over the team server; {instead}")


class Part:
    """One part of a remote store. Asked for a name its local counterpart has but the
    server does not offer, it says so."""

    #: The part's name on the store (``store.<name>``), and its local class's methods.
    name: ClassVar[str]
    local: ClassVar[str] = ""

    def __init__(self, server: Server) -> None:
        self._server = server

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise not_offered(
            f"store.{self.name}.{attribute}",
            "run it where the store is (on the server's machine, or with its database "
            "URL), or ask for a route",
        )

    def __repr__(self) -> str:
        return f"<remote {self.name} of {self._server.url}>"


# --- data ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RemoteDataset:
    """A dataset of a remote store: what ``store.datasets.get`` hands out, over HTTP."""

    name: str
    task: str
    label_column: str
    label_type: str | None
    description: str | None
    created_at: datetime
    tolerance: str | None
    _server: Server

    @property
    def _path(self) -> str:
        return f"/datasets/{segment(self.name)}"

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r} {self.task} label={self.label_column!r} (remote)>"

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise not_offered(f"Dataset.{attribute}", "run it where the store is")

    # The keyword options are those of ``Dataset.add_file``.
    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | None = None,
        format: str | None = None,
        skip_existing: bool = False,
    ) -> ImportResult:
        """Import a CSV, Parquet or JSON-lines file: uploaded, then imported on the
        server in one transaction (a bad row names the file, row and column)."""
        from pathlib import Path

        file = Path(path)
        with file.open("rb") as data:
            return self._upload(
                file.name,
                data,
                source=source,
                labelled_by=labelled_by,
                note=note,
                created_at=created_at,
                format=format,
                skip_existing=skip_existing,
            )

    def add(
        self,
        frame: pd.DataFrame,
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | None = None,
        skip_existing: bool = False,
    ) -> ImportResult:
        """Import a DataFrame of inputs and labels (sent as Parquet)."""
        data = io.BytesIO()
        frame.to_parquet(data, index=False)
        data.seek(0)
        return self._upload(
            "frame.parquet",
            data,
            source=source,
            labelled_by=labelled_by,
            note=note,
            created_at=created_at,
            format="parquet",
            skip_existing=skip_existing,
            from_frame=True,
        )

    def _upload(self, name: str, data: Any, **fields: Any) -> ImportResult:
        from trenches.patterns import ImportResult

        when = fields.pop("created_at")
        form = {k: str(v) for k, v in fields.items() if v is not None}
        if when is not None:
            form["created_at"] = when.isoformat() if isinstance(when, datetime) else str(when)
        made = self._server.post(f"{self._path}/imports", data=form, files={"file": (name, data)})
        return from_json(ImportResult, made)

    def summary(self) -> DatasetSummary:
        from trenches.patterns.datasets import DatasetSummary

        return from_json(DatasetSummary, self._server.get(self._path))

    def patterns(self, *, split: str | None = None) -> pd.DataFrame:
        """The active patterns (of one split) by ``pattern_id``: inputs and label."""
        import pandas as pd

        rows = list(self._server.pages(f"{self._path}/patterns", {"split": split}))
        frame = pd.DataFrame.from_records(rows)
        return frame.set_index("pattern_id") if len(frame) else frame

    def pattern_ids(self, split: str | None = None) -> np.ndarray:
        import numpy as np

        ids: np.ndarray = self.patterns(split=split).index.to_numpy(dtype=np.int64)
        return ids

    def snapshot(
        self,
        *,
        as_of: str | datetime | None = None,
        sources: Sequence[str] | None = None,
        note: str | None = None,
    ) -> RemoteSnapshot:
        when = as_of.isoformat() if isinstance(as_of, datetime) else as_of
        body = {"as_of": when, "sources": list(sources) if sources else None, "note": note}
        made = self._server.post(f"{self._path}/snapshots", body)
        return RemoteSnapshot.of(made, self._server)

    def snapshots(self) -> list[RemoteSnapshot]:
        found = self._server.get(f"{self._path}/snapshots")
        return [RemoteSnapshot.of(s, self._server) for s in found]


@dataclass(frozen=True, eq=False)
class RemoteSnapshot:
    """A snapshot of a remote store, with its training data read over HTTP."""

    id: int
    dataset: str
    as_of: datetime
    sources: tuple[str, ...] | None
    patterns: int
    digest: str
    max_pattern_id: int
    held_out: tuple[int, ...]
    note: str | None
    _server: Server

    @classmethod
    def of(cls, data: dict[str, Any], server: Server) -> RemoteSnapshot:
        return cls(
            id=int(data["id"]),
            dataset=str(data["dataset"]),
            as_of=from_json(datetime, data["as_of"]),
            sources=tuple(data["sources"]) if data.get("sources") else None,
            patterns=int(data["patterns"]),
            digest=str(data["digest"]),
            max_pattern_id=int(data["max_pattern_id"]),
            held_out=tuple(int(i) for i in data.get("held_out") or ()),
            note=data.get("note"),
            _server=server,
        )

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise not_offered(
            f"Snapshot.{attribute}", "training_data() is offered; run the rest where the store is"
        )

    def training_data(
        self,
        split: str | None = "train",
        *,
        weighting: str = "none",
        half_life_days: float = 30.0,
        age_offset_days: float = 1.0,
        include_held_out: bool = False,
    ) -> TrainingData:
        """``X, y, sample_weight, pattern_ids``, as ``Snapshot.training_data`` gives them
        on the server (read as Parquet)."""
        import pandas as pd

        from trenches.patterns import TrainingData

        params = {
            "split": split or "all",
            "weighting": weighting,
            "half_life_days": half_life_days,
            "age_offset_days": age_offset_days,
            "include_held_out": include_held_out,
        }
        path = f"/datasets/{segment(self.dataset)}/snapshots/{self.id}/training-data"
        answer = self._server.call("GET", path, params=params)
        frame = pd.read_parquet(io.BytesIO(answer.content))
        label = answer.headers.get("x-label-column") or frame.columns[-2]
        weights = frame.pop("sample_weight").to_numpy()
        y = frame.pop(label).to_numpy()
        return TrainingData(frame, y, weights, frame.index.to_numpy())


class RemoteDatasets(Part):
    name = "datasets"

    def list(self) -> builtins.list[RemoteDataset]:
        return [self._dataset(d) for d in self._server.get("/datasets")]

    def get(self, name: str) -> RemoteDataset:
        # The list holds what the show route's summary does not: the label type.
        found = [d for d in self.list() if d.name == name]
        if not found:
            self._server.get(f"/datasets/{segment(name)}")  # raises the server's refusal
            raise NotOfferedRemotely(f"dataset {name!r} is not listed for you")
        return found[0]

    # The keyword options are those of ``store.datasets.create``.
    def create(  # noqa: PLR0913
        self,
        name: str,
        *,
        task: str,
        label: str,
        text: str | None = None,
        schema: str | None = None,
        splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
        description: str | None = None,
        tolerance: str | float | None = None,
        salt: str | None = None,
    ) -> RemoteDataset:
        body = {
            "salt": salt,
            "task": task,
            "label": label,
            "text": text,
            "schema": schema,
            "splits": list(splits),
            "description": description,
            "tolerance": tolerance,
        }
        return self._dataset(self._server.post(f"/datasets/{segment(name)}", body))

    def _dataset(self, data: dict[str, Any]) -> RemoteDataset:
        return RemoteDataset(
            name=data["name"],
            task=data["task"],
            label_column=data["label_column"],
            label_type=data.get("label_type"),
            description=data.get("description"),
            created_at=from_json(datetime, data["created_at"]),
            tolerance=data.get("tolerance"),
            _server=self._server,
        )


class RemotePatterns(Part):
    name = "patterns"

    def get(self, pattern_id: int) -> Pattern:
        return self.history(pattern_id).current

    def relabel(
        self,
        pattern_id: int,
        label: Any,
        *,
        source: str,
        reason: str,
        labelled_by: str | None = None,
    ) -> Pattern:
        """Give a pattern a new label (recorded as the signed-in user's)."""
        from trenches.patterns import Pattern

        if labelled_by is not None:
            raise not_offered("relabel(labelled_by=)", "the server records who you are")
        body = {"label": to_json(label), "reason": reason, "source": source}
        return from_json(Pattern, self._server.post(f"/patterns/{int(pattern_id)}/relabel", body))

    def deactivate(
        self, pattern_ids: Sequence[int], *, reason: str, dataset: str | None = None
    ) -> int:
        if dataset is None:
            raise InvalidInput("over the team server, deactivate(..., dataset=NAME) names it")
        body = {"ids": [int(i) for i in pattern_ids], "reason": reason}
        done = self._server.post(f"/datasets/{segment(dataset)}/patterns/deactivate", body)
        return int(done["deactivated"])

    def history(self, pattern_id: int) -> PatternHistory:
        from trenches.patterns import PatternHistory

        return from_json(PatternHistory, self._server.get(f"/patterns/{int(pattern_id)}/history"))


class RemoteSnapshots(Part):
    name = "snapshots"

    def get(self, snapshot_id: int) -> RemoteSnapshot:
        return RemoteSnapshot.of(self._server.get(f"/snapshots/{int(snapshot_id)}"), self._server)


# --- the problem database ---------------------------------------------------------


class RemoteProblems(Part):
    name = "problems"

    def list(
        self, *, dataset: str | None = None, status: str | None = None
    ) -> builtins.list[Problem]:
        from trenches.problems import Problem

        found = self._server.get("/problems", {"dataset": dataset, "status": status})
        return [from_json(Problem, p) for p in found]

    def get(self, slug: str) -> Problem:
        from trenches.problems import Problem

        return from_json(Problem, self._server.get(f"/problems/{segment(slug)}"))

    # The keyword options are those of ``store.problems.create``.
    def create(
        self,
        slug: str,
        *,
        dataset: str,
        title: str,
        description: str | None = None,
        severity: str = "medium",
        tolerance: str | float | None = None,
        trainable: bool = False,
    ) -> Problem:
        from trenches.problems import Problem

        body = {
            "slug": slug,
            "title": title,
            "description": description,
            "severity": severity,
            "tolerance": tolerance,
            "trainable": trainable,
        }
        made = self._server.post(f"/datasets/{segment(dataset)}/problems", body)
        return from_json(Problem, made)

    def add(
        self,
        slug: str,
        *,
        positive: Sequence[int] = (),
        negative: Sequence[int] = (),
        backfill: bool = True,
    ) -> AddResult:
        """Add patterns to the problem; the server backfills every version of its
        dataset, as ``store.problems.add`` does."""
        from trenches.problems import AddResult

        if not backfill:
            raise not_offered("problems.add(backfill=False)", "the server always backfills")
        body = {"positive": [int(i) for i in positive], "negative": [int(i) for i in negative]}
        return from_json(AddResult, self._server.post(f"/problems/{segment(slug)}/patterns", body))

    def close(self, slug: str, *, reason: str) -> Problem:
        from trenches.problems import Problem

        closed = self._server.post(f"/problems/{segment(slug)}/close", {"reason": reason})
        return from_json(Problem, closed)

    def scores(self, slug: str) -> builtins.list[ProblemScore]:
        from trenches.problems.scores import ProblemScore

        found = self._server.get(f"/problems/{segment(slug)}/scores")
        return [
            from_json(
                ProblemScore,
                {
                    **score,
                    "problem": slug,
                    "positive_right": score["positive"][0],
                    "positive_total": score["positive"][1],
                    "negative_right": score["negative"][0],
                    "negative_total": score["negative"][1],
                },
            )
            for score in found
        ]


# --- runs and models -----------------------------------------------------------------


def run_info(data: dict[str, Any]) -> RunInfo:
    """A run from its JSON form, whose ``git`` object holds the code state's fields."""
    from trenches.runs import RunInfo

    git = data.get("git") or {}
    fields = {f"git_{k}": git.get(k) for k in ("state", "commit", "branch", "tag", "diff_sha256")}
    return from_json(RunInfo, {**data, **fields})


class RemoteRuns(Part):
    name = "runs"

    def get(self, run_id: int) -> RunInfo:

        return run_info(self._server.get(f"/runs/{int(run_id)}"))

    def list(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
    ) -> builtins.list[RunInfo]:

        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        params = {"filter": filter, "order_by": orders or None}
        out: builtins.list[RunInfo] = []
        for item in self._server.pages("/runs", params):
            if limit is not None and len(out) >= limit:
                break
            out.append(run_info(item))
        return out


class RemoteModels(Part):
    name = "models"

    def names(self) -> builtins.list[str]:
        return [str(n) for n in self._server.get("/models")]

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        from trenches.models import ModelVersion

        found = self._server.get(f"/models/{segment(name)}/versions")
        return [from_json(ModelVersion, v) for v in found]

    def get(self, ref: str) -> ModelVersion:
        from trenches.models import ModelVersion

        return from_json(ModelVersion, self._server.get(version_path(ref)))

    def file_bytes(self, ref: str | ModelVersion, format: str) -> bytes:
        """The stored file of the version in ``format`` (skops, onnx; pickle: admins)."""
        text = ref if isinstance(ref, str) else ref.ref
        answer = self._server.call("GET", f"{version_path(text)}/file", params={"format": format})
        return answer.content

    def load(
        self, ref: str | ModelVersion, *, format: str = "native", trusted: bool = False
    ) -> Any:
        """The scikit-learn object of the version, loaded here from its skops file
        (with trenches' fixed list of trusted names unless ``trusted``)."""
        from trenches.models import formats

        if format != "native":
            raise not_offered(
                f"models.load(format={format!r})",
                "file_bytes(ref, 'onnx') gives the ONNX file; run ONNX Runtime on it",
            )
        return formats.from_skops(self.file_bytes(ref, "skops"), trusted)

    def add_endpoint(self, name: str, endpoint: Any, **given: Any) -> ModelVersion:
        """Not over the team server: the server would call the service, and register
        it, as whoever runs it."""
        raise not_offered(
            "models.add_endpoint",
            "run `trenches models add-endpoint` where the store is (its server's host)",
        )

    def register(
        self,
        model: Any,
        name: str,
        *,
        X: pd.DataFrame | None = None,
        run: Any = None,
        dataset: str | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register a scikit-learn ``model`` as the next version of ``name``: sent as a
        skops file (never a pickle), with ``X``'s first rows as the input example; the
        server converts it to ONNX and records ``run``."""
        import skops.io

        from trenches.models import ModelVersion

        files: dict[str, Any] = {"file": ("model.skops", skops.io.dumps(model))}
        if X is not None:
            sample = io.BytesIO()
            X.head(100).to_parquet(sample, index=False)
            files["sample"] = ("sample.parquet", sample.getvalue())
        form = {
            "run_id": None if run is None else str(run.id),
            "dataset": dataset,
            "description": description,
        }
        made = self._server.post(
            f"/models/{segment(name)}/versions",
            data={k: v for k, v in form.items() if v is not None},
            files=files,
        )
        return from_json(ModelVersion, made)

    def promote(self, ref: str, alias: str, *, reason: str, force: bool = False) -> AliasMove:
        from trenches.models.versions import AliasMove

        model, version = split_ref(ref)
        if not version.isdigit():
            version = str(self.get(ref).version)
        moved = self._server.post(
            f"/models/{segment(model)}/aliases/{segment(alias)}",
            {"version": int(version), "reason": reason},
            params={"force": "true"} if force else None,
        )
        return from_json(AliasMove, moved)
