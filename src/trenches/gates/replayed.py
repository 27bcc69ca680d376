"""Gates on a version's newest replay on the request log (``trenches replay``):
``replay-agreement``, the share of callers' rows it answers as they were answered, and
``replay-accuracy``, the share of labelled rows it answers right."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def replayed(engine: Engine, version_id: int, metric: str) -> tuple[float | None, str]:
    """The figure ``metric`` of the version's newest replay, and in words where it
    comes from (or why there is none)."""
    r = t.replays.c
    with read(engine) as conn:
        row = conn.execute(
            select(t.replays).where(r.version_id == version_id).order_by(r.id.desc()).limit(1)
        ).first()
    if row is None:
        return None, "no replay of this version yet: run `trenches replay` first"
    when = timestamps.iso(row.created_at)
    if metric == "replay-agreement":
        if not row.rows:
            return None, f"replay {row.id} ({when}) compared no rows"
        figure = row.agreed / row.rows
        return figure, (
            f"replay-agreement = {figure:.4f}: {row.agreed} of {row.rows} rows answered as "
            f"callers were, in replay {row.id} ({when})"
        )
    if not row.labelled:
        return None, f"replay {row.id} ({when}) had no row with a feedback label"
    figure = row.candidate_right / row.labelled
    return figure, (
        f"replay-accuracy = {figure:.4f}: {row.candidate_right} of {row.labelled} labelled rows "
        f"right (production: {row.production_right}), in replay {row.id} ({when})"
    )
