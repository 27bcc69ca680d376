"""Lineage: what data and code made a model version, as stored facts.

model version -> run -> commit, tag and dirty diff -> snapshot and its digest -> the
snapshot's patterns by source and split -> the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
from sqlalchemy import func, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.json_form import to_json
from trenches.names import SPLITS
from trenches.patterns.datasets import dataset_by_id
from trenches.patterns.frames import Members, membership
from trenches.patterns.members import member_rows
from trenches.patterns.snapshots import snapshot_by_id
from trenches.tables import arrays

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.versions import ModelVersion
    from trenches.patterns.snapshots import Snapshot
    from trenches.runs.search import Runs


@dataclass(frozen=True)
class Lineage:
    """Every link from a model version back to its code, data and environment.

    A link that was not recorded is ``None`` and says so; nothing is inferred.
    """

    model: dict[str, Any]
    run: dict[str, Any] | None
    code: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    data: dict[str, Any] | None
    environment: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The lineage as plain JSON values: ``trenches.to_json(lineage)``."""
        return cast(dict[str, Any], to_json(self))


def lineage(version: ModelVersion, *, engine: Engine, runs: Runs, data: bool = True) -> Lineage:
    """The lineage of ``version``: its run (read from ``runs``), code, snapshot, data
    (unless ``data`` is False: its patterns counted by source and split) and
    environment."""
    model = {
        "ref": version.ref,
        "version": version.version,
        "created_at": timestamps.iso(timestamps.to_us(version.created_at)),
        "dataset": version.dataset,
        "formats": list(version.formats),
        "aliases": list(version.aliases),
    }
    if version.run_id is None:
        return Lineage(model, None, None, None, None, None)
    run = runs.get(version.run_id)
    run_info = {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "started_at": timestamps.iso(timestamps.to_us(run.started_at)),
        "ended_at": timestamps.iso(timestamps.to_us(run.ended_at)) if run.ended_at else None,
        "params": run.params,
        "metrics": {k: (None if v != v else v) for k, v in run.metrics.items()},
    }
    code = {
        "state": run.git_state,
        "commit": run.git_commit,
        "branch": run.git_branch,
        "tag": run.git_tag,
        "dirty_diff_sha256": run.git_diff_sha256,
    }
    snapshot = counts = None
    if run.snapshot_id is not None:
        snap = snapshot_by_id(engine, run.snapshot_id)
        snapshot = {
            "id": snap.id,
            "dataset": snap.dataset,
            "as_of": timestamps.iso(timestamps.to_us(snap.as_of)),
            "sources": list(snap.sources) if snap.sources else None,
            "digest": snap.digest,
            "patterns": snap.patterns,
        }
    if snapshot is not None and data:
        counts = _counts(engine, snap)
    environment = None
    if run.environment_id is not None:
        with read(engine) as conn:
            env = conn.execute(
                select(t.environments).where(t.environments.c.id == run.environment_id)
            ).one()
        packages = orjson.loads(env.packages)
        environment = {
            "python": env.python,
            "platform": env.platform,
            "digest": env.digest,
            "packages": len(packages),
            "key_packages": {
                k: packages[k]
                for k in ("trenches", "scikit-learn", "numpy", "pandas", "skops", "onnxruntime")
                if k in packages
            },
        }
    return Lineage(model, run_info, code, snapshot, counts, environment)


def _counts(engine: Engine, snap: Snapshot) -> dict[str, Any]:
    """The snapshot's patterns counted by source, by split, and by both."""
    as_of = timestamps.to_us(snap.as_of)
    rows: Sequence[Any]
    if dataset_by_id(engine, snap.dataset_id).columnar:
        members = Members(as_of=as_of, max_id=snap.max_pattern_id, sources=snap.sources)
        rows = _columnar_counts(engine, snap.dataset_id, members)
    else:
        p = t.patterns.c
        where = membership(
            snap.dataset_id, as_of=as_of, max_id=snap.max_pattern_id, sources=snap.sources
        )
        with read(engine) as conn:
            rows = conn.execute(
                select(p.source, p.split, func.count()).where(*where).group_by(p.source, p.split)
            ).all()
    by_source: dict[str, int] = {}
    by_split: dict[str, int] = {}
    cells: dict[str, dict[str, int]] = {}
    for source, split, n in rows:
        by_source[source] = by_source.get(source, 0) + int(n)
        by_split[SPLITS[split]] = by_split.get(SPLITS[split], 0) + int(n)
        cells.setdefault(source, {})[SPLITS[split]] = int(n)
    return {"by_source": by_source, "by_split": by_split, "by_source_and_split": cells}


def _columnar_counts(
    engine: Engine, dataset_id: int, members: Members
) -> list[tuple[str, int, int]]:
    """(source, split code, patterns) of a columnar dataset's members, from its table,
    by source and split."""
    with read(engine) as conn:
        data = member_rows(conn, dataset_id, members, ["source", "split"], dictionary=("source",))
    if data is None or not data.num_rows:
        return []
    codes, sources = arrays.codes(data["source"])
    cell = codes.astype(np.int64) * len(SPLITS) + data["split"].to_numpy()
    counts = np.bincount(cell, minlength=len(sources) * len(SPLITS))
    cells = [
        (str(sources[c // len(SPLITS)]), c % len(SPLITS), int(counts[c]))
        for c in np.flatnonzero(counts).tolist()
    ]
    return sorted(cells)
