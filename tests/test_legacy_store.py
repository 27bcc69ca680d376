"""A store written by an earlier release (``tests/fixtures/store-0013``, made by
``tests/tools/legacy_store.py`` at schema revision 0013, before bulk facts leave the
SQL tables) opens with today's code, is upgraded in place, and reads back every pattern,
stored prediction and logged request row exactly as that release read them
(``manifest.json``); its models still load and predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

import trenches
from tools.legacy_store import MODEL, manifest

from conftest import assert_id_ranges_hold

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-0013"


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trenches.Store:
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    return trenches.open(tmp_path / "store", create=False)


def test_an_earlier_releases_store_reads_back_whole(legacy: trenches.Store) -> None:
    expected = orjson.loads((FIXTURE / "manifest.json").read_bytes())
    found = orjson.loads(orjson.dumps(manifest(legacy)))
    assert len(expected["patterns"]) == 301 and len(expected["requests"]) == 40
    assert found["patterns"] == expected["patterns"]
    assert found["predictions"] == expected["predictions"]
    assert found["requests"] == expected["requests"]
    # The upgrade filled in each batch's range of ids and each change's dataset.
    assert_id_ranges_hold(legacy)


def test_an_earlier_releases_models_still_predict_what_they_stored(
    legacy: trenches.Store,
) -> None:
    table = legacy.predictions(f"{MODEL}@production", "validation")
    inputs = table[["radius", "texture", "grade", "site"]]
    said = legacy.models.load(f"{MODEL}@production").predict(inputs)
    assert list(said) == table["prediction"].tolist()
    # Nothing is left to predict: the upgrade kept every stored prediction.
    assert legacy.evaluate(f"{MODEL}@1").evaluation.size > 0


def test_migrate_moves_an_earlier_releases_patterns_predictions_and_requests_into_the_tables(
    legacy: trenches.Store,
) -> None:
    from sqlalchemy import func, select

    from trenches.db import schema as t
    from trenches.db.engine import read

    expected = orjson.loads((FIXTURE / "manifest.json").read_bytes())
    assert not legacy.datasets["tumours"].columnar
    listed = legacy.requests.list()
    done = legacy.migrate()
    assert done.requests_moved == len(listed) > 0
    assert done.predictions_moved == sum(len(v) for v in expected["predictions"].values())
    assert (done.datasets_moved, done.patterns_moved) == (1, len(expected["patterns"]))
    assert legacy.datasets["tumours"].columnar
    with read(legacy.engine) as conn:
        left = conn.execute(select(func.count()).select_from(t.prediction_blocks)).scalar()
    assert left == 0, "every block left the database"
    found = orjson.loads(orjson.dumps(manifest(legacy)))
    assert found["patterns"] == expected["patterns"]
    assert found["predictions"] == expected["predictions"]
    assert found["requests"] == expected["requests"]
    assert legacy.requests.list().equals(listed)
    # Run again: nothing more to move, nothing changed.
    again = legacy.migrate()
    assert (again.datasets_moved, again.predictions_moved, again.requests_moved) == (0, 0, 0)
    assert orjson.loads(orjson.dumps(manifest(legacy)))["predictions"] == expected["predictions"]
    # And the upgraded store takes new work: nothing is left to predict.
    assert legacy.evaluate(f"{MODEL}@1").predicted.computed == 0
