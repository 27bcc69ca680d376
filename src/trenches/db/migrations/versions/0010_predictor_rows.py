"""Every model version has its predictor row from registration on: made here for the
versions registered before, which had theirs made lazily on first use (so reading
predictions, or drawing a report, no longer writes).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import time

import numpy as np
import orjson
import sqlalchemy as sa
from alembic import op

from trenches.patterns.inputs import label_to_text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    versions = sa.table(
        "model_versions",
        sa.column("id", sa.Integer),
        sa.column("dataset_id", sa.Integer),
        sa.column("signature", sa.Text),
    )
    datasets = sa.table("datasets", sa.column("id", sa.Integer), sa.column("label_type"))
    predictors = sa.table(
        "predictors",
        sa.column("kind", sa.String),
        sa.column("version_id", sa.Integer),
        sa.column("baseline_id", sa.Integer),
        sa.column("classes", sa.Text),
        sa.column("created_at", sa.BigInteger),
    )
    label_types = dict(conn.execute(sa.select(datasets.c.id, datasets.c.label_type)).all())
    have = set(
        conn.execute(
            sa.select(predictors.c.version_id).where(predictors.c.version_id.is_not(None))
        ).scalars()
    )
    now = time.time_ns() // 1000
    rows = []
    for version_id, dataset_id, signature in conn.execute(
        sa.select(versions.c.id, versions.c.dataset_id, versions.c.signature)
    ):
        if version_id in have:
            continue
        classes = orjson.loads(signature).get("classes")
        if classes is not None:
            # As registration writes them: the label text of the version's dataset.
            classes = label_to_text(np.asarray(classes), label_types.get(dataset_id) or "string")
        rows.append(
            {
                "kind": "version",
                "version_id": version_id,
                "baseline_id": None,
                "classes": None if classes is None else orjson.dumps(classes).decode(),
                "created_at": now,
            }
        )
    if rows:
        conn.execute(sa.insert(predictors), rows)


def downgrade() -> None:
    """The rows stay: a predictor row made early is one the old code would make anyway."""
