"""Predictors resolved once: rows made at registration, reads that never write, and
``evaluate name@production`` resolving its version once, one write per stored batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import delete, event, select
from sqlalchemy.engine import Connection

import trenches
from trenches.db import migrate
from trenches.db import schema as t

from conftest import tumours

INPUTS = ["radius", "texture", "grade"]


@dataclass
class Traffic:
    """The SQL a block of code sent."""

    statements: list[str] = field(default_factory=list)
    write_transactions: int = 0

    def changes(self) -> list[str]:
        verbs = ("INSERT", "UPDATE", "DELETE")
        return [s for s in self.statements if s.lstrip().upper().startswith(verbs)]


@contextmanager
def traffic(store: trenches.Store) -> Iterator[Traffic]:
    seen = Traffic()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(statement)

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("trenches_write"):
            seen.write_transactions += 1

    event.listen(store.engine, "before_cursor_execute", on_execute)
    event.listen(store.engine, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", on_execute)
        event.remove(store.engine, "begin", on_begin)


@pytest.fixture
def version(store: trenches.Store) -> trenches.ModelVersion:
    """A classifier of tumours, in production, that has predicted nothing."""
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(tumours(300, seed=0), source="expert")
    frame = ds.patterns()
    model = LogisticRegression().fit(frame[INPUTS], frame["label"])
    v = store.models.register(model, "clf", X=frame[INPUTS], dataset="tumours")
    store.models.promote(v.ref, "production", reason="the first")
    return v


def test_registering_a_version_makes_its_predictor_row_with_its_classes(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    with store.engine.connect() as conn:
        classes = conn.execute(
            select(t.predictors.c.classes).where(t.predictors.c.version_id == version.id)
        ).scalar_one()
    assert orjson.loads(classes) == ["benign", "malignant"]
    found = store.predictors.resolve("clf@production")
    assert found.classes == ("benign", "malignant")
    assert found.version is not None and found.version.id == version.id
    assert found.dataset.name == "tumours" and not found.is_baseline


def test_reading_predictions_and_comparing_write_nothing(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    # Before, the first reader of a version's predictions made its predictor row.
    store.evaluate("clf@production")
    with traffic(store) as seen:
        store.predictions("clf@1", "validation")
        store.flips("clf@1", "clf@production")
        store.predictors.resolve("clf@production")
    assert seen.changes() == []
    assert seen.write_transactions == 0


def test_evaluate_resolves_the_version_once_and_writes_one_transaction_per_batch(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    wanted = len(store.datasets.get("tumours").pattern_ids("validation"))
    batch = 17
    with traffic(store) as seen:
        result = store.evaluate("clf@production", batch_size=batch)
    assert result.predicted.computed == wanted
    assert result.evaluation.predictor == "clf@1" and result.evaluation.size == wanted
    # The alias is looked up once, not once per room it passes through.
    by_alias = [s for s in seen.statements if "JOIN aliases" in s]
    assert len(by_alias) == 1, by_alias
    # One write transaction per stored batch, and nothing else written.
    batches = -(-wanted // batch)
    assert seen.write_transactions == batches
    inserts = [s for s in seen.changes() if "prediction_blocks" in s]
    assert len(inserts) == batches
    assert all("prediction_blocks" in s for s in seen.changes())


def test_evaluating_again_predicts_nothing_and_writes_nothing(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    store.evaluate("clf@1", "all")
    with traffic(store) as seen:
        again = store.evaluate("clf@1", "all")
    assert again.predicted.computed == 0
    assert seen.write_transactions == 0


def test_with_problems_predicts_every_problems_patterns_too(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    ds = store.datasets.get("tumours")
    train = ds.pattern_ids("train")
    store.problems.create("big", dataset="tumours", title="Big ones")
    # Adding backfills; a second version registered afterwards has predicted nothing.
    store.problems.add("big", positive=train[:5], negative=train[5:8])
    frame = ds.patterns()
    model = LogisticRegression(C=0.1).fit(frame[INPUTS], frame["label"])
    store.models.register(model, "clf", X=frame[INPUTS], dataset="tumours")
    without = store.evaluate("clf@2", with_problems=False)
    assert without.predicted.requested == len(ds.pattern_ids("validation"))
    with_them = store.evaluate("clf@2")
    assert with_them.predicted.computed == 8  # the problem's train patterns


def _downgrade(conn: Connection, revision: str) -> None:
    """Take the schema back to ``revision`` with the migrations' own downgrades."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


def test_an_older_store_gets_its_versions_predictor_rows_when_upgraded(
    store_url: str,
) -> None:
    with trenches.open(store_url) as store:
        store.datasets.create("tumours", task="classification", label="label")
        # Its patterns as that release kept them: inputs packed in their rows.
        with store.engine.begin() as conn:
            conn.execute(t.datasets.update().values(columnar=False))
        ds = store.datasets.get("tumours")
        ds.add(tumours(100, seed=1), source="expert")
        frame = ds.patterns()
        model = LogisticRegression().fit(frame[INPUTS], frame["label"])
        v = store.models.register(model, "clf", X=frame[INPUTS], dataset="tumours")
        # As a store of schema 0009 left it: no predictor row until first read, and none
        # of the tables of later revisions (each migration's downgrade takes them out).
        with store.engine.begin() as conn:
            conn.execute(delete(t.predictors).where(t.predictors.c.version_id == v.id))
            _downgrade(conn, "0009")
    with trenches.open(store_url) as store:
        found = store.predictors.resolve("clf@1")
        assert found.classes == ("benign", "malignant")
        assert store.evaluate("clf@1").evaluation.size > 0


def test_a_version_predictions_on_some_patterns_and_the_ones_it_got_wrong(
    store: trenches.Store, version: trenches.ModelVersion
) -> None:
    store.evaluate("clf@production")
    every = store.predictions("clf@1", "validation")
    ids = every.index.to_numpy()
    some = store.predictors.predictions_of("clf@1", [int(ids[3]), int(ids[0]), 10**9])
    assert list(some.pattern_ids) == sorted([int(ids[0]), int(ids[3])])
    wrong = store.predictors.wrong("clf@production")
    expected = sorted(int(i) for i, right in zip(ids, every["right"], strict=True) if not right)
    assert wrong.tolist() == expected
