"""Many writers of one store at once, each its own process: four importing into one
dataset, and two request-log writers (the ones ``trenches serve`` runs) logging
requests and moving them into the tables as they go. Nothing is lost, nothing stored
twice, no writer fails; on SQLite with a local folder, and on PostgreSQL with object
storage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import trenches
from trenches.db.engine import read
from trenches.requests import stored

from conftest import make_frame

IMPORTS = 4  # per importer
ROWS = 60  # per import
REQUESTS = 300  # per logger

_IMPORTER = textwrap.dedent(
    """
    import sys

    import trenches
    from conftest import make_frame

    who, imports, rows = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with trenches.open(sys.argv[1], create=False) as store:
        ds = store.datasets["d"]
        for k in range(imports):
            frame = make_frame(rows, seed=1000 * int(who) + k)
            ds.add(frame, source=f"importer-{who}")
    """
)

_LOGGER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from trenches import timestamps
    from trenches.serving.requestlog import LoggedFeedback, LoggedRequest, RequestLog

    url, who, version, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = RequestLog(url, Path(sys.argv[5]), batch=20, interval=0.02, move_rows=100)
    log.start()
    for i in range(n):
        data = [[10.0 + i % 7, 20.0 - i % 5]]
        log.put(
            LoggedRequest(
                f"s{who}-{i}", version, "predict", 1,
                lambda data=data: {"columns": ["radius", "texture"], "data": data},
                {"labels": ["benign"], "scores": None, "values": None},
                500, timestamps.now_us(),
            )
        )
        if i % 10 == 0:
            log.put(LoggedFeedback(f"s{who}-{i}", 0, "malignant", None, None, timestamps.now_us()))
    log.stop()
    stats = log.stats
    assert stats["dropped"] == stats["rejected"] == 0, stats
    print("moved", stats["moved"])
    """
)


@pytest.mark.slow
def test_four_importers_and_two_request_logs_at_once_lose_nothing(
    store_env: str, tmp_path: Path
) -> None:
    with trenches.open(store_env) as store:
        ds = store.datasets.create("d", task="classification", label="label")
        ds.add(make_frame(40), source="expert")
        X = ds.patterns()[["radius", "texture"]]
        version = store.models.register(
            LogisticRegression().fit(X, ds.patterns()["label"]), "clf", X=X, dataset="d"
        )
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _IMPORTER, store_env, str(k), str(IMPORTS), str(ROWS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(4)
    ] + [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LOGGER,
                store_env,
                str(k),
                str(version.id),
                str(REQUESTS),
                str(tmp_path / f"spool-{k}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(2)
    ]
    outputs = [child.communicate(timeout=600) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    moved_by_loggers = sum(
        int(line.split()[1])
        for out, _ in outputs[4:]
        for line in out.splitlines()
        if line.startswith("moved ")
    )

    with trenches.open(store_env, create=False) as store:
        ds = store.datasets["d"]
        info = ds.pattern_info()
        assert len(info) == 40 + 4 * IMPORTS * ROWS
        assert info["source"].value_counts().to_dict() == {
            "expert": 40,
            **{f"importer-{k}": IMPORTS * ROWS for k in range(4)},
        }
        assert info.index.is_unique
        assert ds.snapshot().verify()

        listed = store.requests.list()
        expected = {f"s{who}-{i}" for who in range(2) for i in range(REQUESTS)}
        assert len(listed) == len(expected) and set(listed["request_id"]) == expected
        assert moved_by_loggers > 0, "the loggers moved requests into the tables as they went"
        window = store.requests.window()
        assert len(window) == 2 * REQUESTS
        assert sum(label == "malignant" for label in window.label) == 2 * REQUESTS // 10
        # Whatever the loggers left staged, compact moves; the log reads the same.
        with read(store.engine) as conn:
            left = stored.staged(conn)
        assert store.compact(older_than="1h").requests_moved == left
        assert store.requests.list().equals(listed)
