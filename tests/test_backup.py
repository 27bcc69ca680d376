"""``trenches backup`` and ``trenches restore`` of the embedded store."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trenches
from trenches.cli import main

from conftest import PostgresServer, assert_id_ranges_hold, baseline_predictor, make_frame


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``trenches ARGS...`` in this process, in ``tmp_path``, with no store settings."""
    monkeypatch.chdir(tmp_path)
    for var in ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str | Path) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code: int
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            else:
                code = 0
        return Result(code, out.getvalue(), err.getvalue())

    return run


def _state(store: trenches.Store) -> dict[str, Any]:
    """Everything a restore must bring back, in comparable form."""
    out: dict[str, Any] = {}
    for ds in store.datasets.list():
        out[ds.name] = (
            ds.patterns(include_inactive=True),
            ds.pattern_info(include_inactive=True),
            [(s.id, s.digest, s.patterns) for s in ds.snapshots()],
        )
    return out


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name][0], b[name][0])
        pd.testing.assert_frame_equal(a[name][1], b[name][1])
        assert a[name][2] == b[name][2]


@pytest.fixture
def here(cli: Any, tmp_path: Path) -> Path:
    """A store in ./.trenches with a dataset, a relabel, a deactivation and a snapshot."""
    folder = tmp_path / ".trenches"
    with trenches.open(folder) as store:
        ds = store.datasets.create("cancer", task="classification", label="label")
        ds.add(make_frame(120, seed=1), source="expert", created_at="2026-01-05")
        ds.add(make_frame(40, seed=2), source="crowd", created_at="2026-02-05")
        p = store.patterns.get(7)
        store.patterns.relabel(
            7,
            "benign" if p.label == "malignant" else "malignant",
            source="expert",
            reason="biopsy",
        )
        store.patterns.deactivate([9, 10], reason="blurred")
        ds.snapshot(as_of="2026-03-01", sources=["expert"], note="v1")
    return folder


def test_backup_then_restore_brings_the_store_back(cli: Any, here: Path, tmp_path: Path) -> None:
    with trenches.open(here, create=False) as store:
        before = _state(store)
        snap_id = store.datasets.get("cancer").snapshots()[0].id
    r = cli("backup", "backups/one")
    assert r.code == 0, r.err
    backup = tmp_path / "backups" / "one"
    assert {p.name for p in backup.iterdir()} == {
        "trenches.db",
        "artifacts",
        "tables",
        "manifest.json",
    }
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["schema_revision"] and len(manifest["database_sha256"]) == 64

    # Life goes on after the backup ...
    with trenches.open(here, create=False) as store:
        ds = store.datasets.get("cancer")
        ds.add(make_frame(30, seed=3), source="crowd")
        store.patterns.deactivate([1, 2, 3], reason="later")
        ds.snapshot()
        assert _state(store)["cancer"][0].shape != before["cancer"][0].shape

    # ... and the restore takes the store back to the moment of the backup.
    r = cli("restore", "backups/one", "--force")
    assert r.code == 0, r.err
    with trenches.open(here, create=False) as store:
        _assert_same_state(_state(store), before)
        snap = store.snapshots.get(snap_id)
        assert snap.verify()
        assert snap.digest == before["cancer"][2][0][1]
        # The restored store takes new work.
        store.datasets.get("cancer").add(make_frame(5, seed=4), source="expert")


def _keep_a_file(store_folder: Path, data: bytes, name: str = "weights.bin") -> str:
    """Keep ``data`` as a file of a run in the store (an artifact); returns its SHA-256."""
    src = store_folder.parent / name
    src.write_bytes(data)
    with (
        trenches.open(store_folder, create=False) as store,
        store.run("fit", capture_code=False) as run,
    ):
        return run.log_artifact(src)


def _blob(folder: Path, sha: str) -> Path:
    return folder / "artifacts" / "sha256" / sha[:2] / sha[2:4] / sha


def test_backup_copies_the_artifacts(cli: Any, here: Path, tmp_path: Path) -> None:
    sha = _keep_a_file(here, b"model bytes")
    r = cli("backup", "bk")
    assert r.code == 0, r.err
    assert _blob(tmp_path / "bk", sha).read_bytes() == b"model bytes"
    assert json.loads((tmp_path / "bk" / "manifest.json").read_text())["artifacts"] == [sha]
    target = tmp_path / "restored"
    assert cli("--store", target, "restore", "bk").code == 0
    assert _blob(target, sha).read_bytes() == b"model bytes"
    with trenches.open(target, create=False) as store:
        assert store.artifacts.get_bytes(sha) == b"model bytes"


def test_restore_into_an_empty_place_needs_no_force(cli: Any, here: Path, tmp_path: Path) -> None:
    assert cli("backup", "bk").code == 0
    r = cli("--store", tmp_path / "fresh", "restore", "bk")
    assert r.code == 0, r.err
    with trenches.open(here, create=False) as a, trenches.open(tmp_path / "fresh") as b:
        _assert_same_state(_state(a), _state(b))


def test_restore_refuses_to_replace_a_store_without_force(
    cli: Any, here: Path, tmp_path: Path
) -> None:
    assert cli("backup", "bk").code == 0
    with trenches.open(here, create=False) as store:
        store.datasets.get("cancer").add(make_frame(10, seed=5), source="crowd")
        after = _state(store)
    r = cli("restore", "bk")
    assert r.code == 2
    assert "--force" in r.err
    with trenches.open(here, create=False) as store:
        _assert_same_state(_state(store), after)


def test_restore_refuses_a_damaged_backup(cli: Any, here: Path, tmp_path: Path) -> None:
    assert cli("backup", "bk").code == 0
    with trenches.open(here, create=False) as store:
        before = _state(store)
    db = tmp_path / "bk" / "trenches.db"
    data = bytearray(db.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    db.write_bytes(bytes(data))
    r = cli("restore", "bk", "--force")
    assert r.code == 2
    assert "damaged" in " ".join(r.err.split())
    with trenches.open(here, create=False) as store:
        _assert_same_state(_state(store), before)


def test_restore_refuses_a_folder_that_is_not_a_backup(
    cli: Any, here: Path, tmp_path: Path
) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    r = cli("restore", "junk", "--force")
    assert r.code == 2
    assert "not a trenches backup" in " ".join(r.err.split())


def test_backup_refuses_a_folder_that_holds_files(cli: Any, here: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    r = cli("backup", "full")
    assert r.code == 2
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "full" / "trenches.db").exists()


def test_backup_without_a_store_exits_2(cli: Any, tmp_path: Path) -> None:
    r = cli("backup", "bk")
    assert r.code == 2
    assert "no store" in r.err


# --- a restore checks the whole backup before it replaces anything ---------------------


def _fingerprint(store_folder: Path) -> dict[str, str]:
    """Every file of a store and the SHA-256 of its bytes."""
    import hashlib

    return {
        str(p.relative_to(store_folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store_folder.rglob("*"))
        if p.is_file()
    }


def _one_line_error(r: Result) -> str:
    assert r.code == 2, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return lines[0]


@pytest.fixture
def backed_up(cli: Any, here: Path, tmp_path: Path) -> tuple[Path, str]:
    """``here`` with a kept file, backed up to ./bk; returns (backup folder, file SHA-256)."""
    sha = _keep_a_file(here, bytes(range(256)) * 400)
    assert cli("backup", "bk").code == 0
    return tmp_path / "bk", sha


def test_restore_refuses_a_backup_with_a_flipped_bit_in_an_artifact(
    cli: Any, here: Path, backed_up: tuple[Path, str]
) -> None:
    bk, sha = backed_up
    blob = _blob(bk, sha)
    data = bytearray(blob.read_bytes())
    data[5000] ^= 0x04
    blob.write_bytes(bytes(data))
    before = _fingerprint(here)
    message = _one_line_error(cli("restore", "bk", "--force"))
    assert sha in message and "damaged" in message
    assert _fingerprint(here) == before


def test_restore_refuses_a_backup_missing_an_artifact(
    cli: Any, here: Path, backed_up: tuple[Path, str]
) -> None:
    bk, sha = backed_up
    _blob(bk, sha).unlink()
    before = _fingerprint(here)
    message = _one_line_error(cli("restore", "bk", "--force"))
    assert "counts 1 artifact files" in message
    # Fixing up the count does not help: the database and the manifest name the file.
    manifest = json.loads((bk / "manifest.json").read_text())
    manifest["artifact_files"] = 0
    (bk / "manifest.json").write_text(json.dumps(manifest))
    message = _one_line_error(cli("restore", "bk", "--force"))
    assert f"artifact {sha}" in message and "missing" in message
    assert _fingerprint(here) == before


def test_restore_refuses_a_stray_file_among_the_artifacts(
    cli: Any, here: Path, backed_up: tuple[Path, str]
) -> None:
    bk, _ = backed_up
    (bk / "artifacts" / "notes.txt").write_text("mine")
    before = _fingerprint(here)
    message = _one_line_error(cli("restore", "bk", "--force"))
    assert "notes.txt is not an artifact" in message
    assert _fingerprint(here) == before


def test_restore_refuses_a_store_in_use_and_takes_back_what_it_brought(
    cli: Any, here: Path, backed_up: tuple[Path, str], tmp_path: Path
) -> None:
    _, sha = backed_up
    target = tmp_path / "target"
    with trenches.open(target) as store:
        store.datasets.create("other", task="classification", label="label").add(
            make_frame(20, seed=3), source="crowd"
        )
        # A process (a server, say) has the store open while the restore runs.
        message = _one_line_error(cli("--store", target, "restore", "bk", "--force"))
        assert "in use by another process" in message
        assert not _blob(target, sha).exists()
        assert [d.name for d in store.datasets.list()] == ["other"]
    assert cli("--store", target, "restore", "bk", "--force").code == 0
    assert _blob(target, sha).exists()


def test_restore_mends_an_artifact_a_killed_copy_cut_short(
    cli: Any, here: Path, backed_up: tuple[Path, str]
) -> None:
    _, sha = backed_up
    blob = _blob(here, sha)
    whole = blob.read_bytes()
    # What an older restore killed half way left under the file's name.
    blob.write_bytes(whole[:1000])
    r = cli("restore", "bk", "--force")
    assert r.code == 0, r.err
    assert blob.read_bytes() == whole
    with trenches.open(here, create=False) as store:
        assert store.artifacts.get_bytes(sha) == whole


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object, found list"),
        ('{"artifact_files": 1}', '"database_sha256" must be a SHA-256'),
        ("DB_SHA_COUNT_TEXT", '"artifact_files" must be a count'),
        ("DB_SHA_BAD_LIST", '"artifacts" must be a list'),
        ("\udcff", "not JSON"),
    ],
)
def test_restore_refuses_a_bad_manifest_naming_it(
    cli: Any, here: Path, backed_up: tuple[Path, str], manifest: str, says: str
) -> None:
    bk, _ = backed_up
    good = json.loads((bk / "manifest.json").read_text())
    sha = good["database_sha256"]
    text = {
        "DB_SHA_COUNT_TEXT": json.dumps({"database_sha256": sha, "artifact_files": "1"}),
        "DB_SHA_BAD_LIST": json.dumps(
            {"database_sha256": sha, "artifact_files": 1, "artifacts": ["x"]}
        ),
    }.get(manifest, manifest)
    (bk / "manifest.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    before = _fingerprint(here)
    message = _one_line_error(cli("restore", "bk", "--force"))
    assert "manifest.json" in message and says in message
    assert _fingerprint(here) == before


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_manifest_restores_or_is_refused_in_one_line(
    cli: Any, here: Path, backed_up: tuple[Path, str], data: st.DataObject
) -> None:
    bk, blob_sha = backed_up
    # Examples share the backup: the first keeps its manifest aside.
    kept = bk.parent / "manifest.json.orig"
    if not kept.exists():
        kept.write_bytes((bk / "manifest.json").read_bytes())
    real = json.loads(kept.read_text())
    value = st.sampled_from([real["database_sha256"], blob_sha, 1, 0, [blob_sha]]) | _JSON
    keys = st.sampled_from(["database_sha256", "artifact_files", "artifacts", "schema_revision"])
    manifest = data.draw(
        st.dictionaries(keys, value).map(json.dumps).map(str.encode)
        | _JSON.map(json.dumps).map(str.encode)
        | st.binary(max_size=200)
    )
    (bk / "manifest.json").write_bytes(manifest)
    before = _fingerprint(here)
    r = cli("restore", "bk", "--force")
    if r.code != 0:
        _one_line_error(r)
        assert _fingerprint(here) == before


def test_restore_from_nowhere_or_a_file_is_a_clear_error(
    cli: Any, here: Path, tmp_path: Path
) -> None:
    before = _fingerprint(here)
    assert "no backup at" in _one_line_error(cli("restore", "nowhere", "--force"))
    (tmp_path / "a-file").write_text("hello")
    assert "is a file" in _one_line_error(cli("restore", "a-file", "--force"))
    assert _fingerprint(here) == before


def test_backup_onto_an_existing_file_is_refused(cli: Any, here: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    message = _one_line_error(cli("backup", "taken"))
    assert "is a file" in message
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_backup_of_a_damaged_artifact_is_refused_and_leaves_nothing(
    cli: Any, here: Path, tmp_path: Path
) -> None:
    sha = _keep_a_file(here, b"the real model")
    _blob(here, sha).write_bytes(b"the fake model")
    message = _one_line_error(cli("backup", "bk"))
    assert sha in message
    assert sorted(p.name for p in tmp_path.iterdir() if "bk" in p.name) == []


def _artifacts_whole(store_folder: Path) -> list[str]:
    """The blobs of a store: each must hold the bytes its name says. Returns their names."""
    import hashlib

    names = []
    for p in (store_folder / "artifacts" / "sha256").rglob("*"):
        if p.is_file() and not p.name.endswith(".tmp"):
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"{p} is cut short"
            names.append(p.name)
    return sorted(names)


def test_a_restore_killed_mid_copy_leaves_the_old_store_and_a_rerun_the_new(
    cli: Any, here: Path, tmp_path: Path
) -> None:
    # The backup: the store of `here`, with a large model file (long enough to copy that
    # a kill lands in the middle of it).
    big = _keep_a_file(here, os.urandom(48 << 20), name="big.bin")
    with trenches.open(here, create=False) as store:
        backed_up = _state(store)
    assert cli("backup", "bk").code == 0
    # The store it replaces: other data, and not that file.
    target = tmp_path / "target"
    with trenches.open(target) as store:
        ds = store.datasets.create("other", task="classification", label="label")
        ds.add(make_frame(30, seed=8), source="crowd")
        ds.snapshot()
        old = _state(store)
    small = _keep_a_file(target, b"the old store's model", name="old.bin")
    env = {
        k: v for k, v in os.environ.items() if k not in ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trenches", "--store", str(target), "restore", "bk", "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )

    def copying() -> list[Path]:
        """The large file on its way: written aside, or (as restore once did) in place."""
        return [
            p
            for p in (target / "artifacts").rglob("*")
            if p.is_file() and (p.name.endswith(".tmp") or p.name == big)
        ]

    deadline = time.monotonic() + 120
    while not copying() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the restore ended before the kill: {err!r}"
    assert any(p.name.endswith(".tmp") or p.stat().st_size < 48 << 20 for p in copying()), (
        "the kill landed after the copy of the large file"
    )
    # Killed in the middle of the copy: the old store, whole, and no file cut short under
    # a name.
    assert big not in _artifacts_whole(target)
    with trenches.open(target, create=False) as store:
        _assert_same_state(_state(store), old)
        assert store.artifacts.get_bytes(small) == b"the old store's model"
    # Run again, the restore brings the backup in whole.
    r = cli("--store", target, "restore", "bk", "--force")
    assert r.code == 0, r.err
    assert big in _artifacts_whole(target)
    with trenches.open(target, create=False) as store:
        _assert_same_state(_state(store), backed_up)
        assert len(store.artifacts.get_bytes(big)) == 48 << 20


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


def test_backup_of_a_postgresql_store_points_to_pg_dump(
    cli: Any, pg_url: str, tmp_path: Path
) -> None:
    assert cli("--store", pg_url, "init").code == 0
    r = cli("--store", pg_url, "backup", "bk")
    assert r.code == 2
    assert "pg_dump" in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "bk").exists()


def test_restore_into_a_postgresql_store_points_to_pg_restore(
    cli: Any, here: Path, pg_url: str
) -> None:
    assert cli("backup", "bk").code == 0
    r = cli("--store", pg_url, "restore", "bk", "--force")
    assert r.code == 2
    assert "pg_dump" in r.err


# --- a backup while another process writes ----------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import pandas as pd

    import trenches

    store = trenches.open(sys.argv[1], create=False)
    stop = Path(sys.argv[2])
    ds = store.datasets.get("stream")
    rng = np.random.default_rng(0)
    done = 0
    while not stop.exists() and done < 20_000:
        n = int(rng.integers(1, 300))
        ds.add(
            pd.DataFrame(
                {"x": rng.normal(size=n), "y": rng.normal(size=n),
                 "label": rng.choice(["a", "b"], n)}
            ),
            source="production",
        )
        done += 1
        if done == 10:
            print("writing", flush=True)
    print("done", done, flush=True)
    """
)


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
            if line == "":
                break
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"the writer never printed {prefix!r}; stderr:\n{err}")


def _whole_imports_only(cli: Any, backup: Path, tmp_path: Path) -> int:
    """Check a backup: sound, and every import in it complete (each batch's range is the
    patterns its dataset's table holds of it). Returns the imports."""
    con = sqlite3.connect(backup / "trenches.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        imports = int(con.execute("SELECT COUNT(*) FROM import_batches").fetchone()[0])
    finally:
        con.close()
    copy = tmp_path / f"check-{backup.name}"  # restored, the backup stays as taken
    assert cli("--store", copy, "restore", backup).code == 0
    with trenches.open(copy, create=False) as store:
        assert_id_ranges_hold(store)
    return imports


@pytest.mark.slow
def test_a_backup_taken_while_another_process_imports_holds_whole_imports(
    cli: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "live"
    with trenches.open(folder) as store:
        ds = store.datasets.create("stream", task="classification", label="label")
        ds.add(
            pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "label": ["a", "b"]}), source="expert"
        )
    stop = tmp_path / "stop"
    env = {k: v for k, v in os.environ.items() if k not in ("TRENCHES_DB_URL",)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(folder), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for_line(writer, "writing", timeout=120)
        imports = []
        for i in range(4):
            r = cli("--store", folder, "backup", tmp_path / f"bk{i}")
            assert r.code == 0, r.err
            imports.append(_whole_imports_only(cli, tmp_path / f"bk{i}", tmp_path))
            time.sleep(0.3)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    written = int(out.split("done")[1])
    assert written > 10
    # The backups were taken while the writer ran, not before nor after it.
    assert 10 < imports[0] <= imports[-1] < written + 1
    assert imports == sorted(imports)

    # A backup taken mid-stream restores into a working store.
    restored = tmp_path / "restored"
    assert cli("--store", restored, "restore", tmp_path / "bk1").code == 0
    with trenches.open(restored, create=False) as store:
        ds = store.datasets.get("stream")
        assert ds.summary().imports == imports[1]
        ds.add(pd.DataFrame({"x": [5.0], "y": [5.0], "label": ["a"]}), source="expert")


def _predictions_in_the_table(store_folder: Path, ids: range, name: str) -> int:
    """Store a baseline's predictions on ``ids`` as rows of the Iceberg table; returns
    its predictor."""
    import numpy as np

    from trenches import predictions
    from trenches.db.engine import write

    with trenches.open(store_folder, create=False) as store, write(store.engine) as conn:
        predictor = baseline_predictor(conn, name, 1)
        n = len(ids)
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                np.array(ids),
                label_index=np.arange(n, dtype=np.int32) % 2,
                scores=np.linspace(0, 1, 2 * n).reshape(n, 2),
                correct=np.arange(n) % 3 == 0,
            ),
        )
        return predictor


def _read_predictions(store_folder: Path, predictor: int) -> list[Any]:
    from trenches import predictions
    from trenches.db.engine import read

    with trenches.open(store_folder, create=False) as store, read(store.engine) as conn:
        found = predictions.read(conn, predictor)
    return [found.pattern_ids.tolist(), found.label_index.tolist(), found.scores.tolist()]  # type: ignore[union-attr]


def test_backup_and_restore_carry_the_tables(
    cli: Any, here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trenches import predictions

    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    first = _predictions_in_the_table(here, range(1, 101), "one")
    before = _read_predictions(here, first)
    assert cli("backup", "bk").code == 0
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    files = manifest["table_files"]
    assert any(f.endswith(".parquet") for f in files)
    assert all((tmp_path / "bk" / f).is_file() for f in files)

    # Into a new place: the tables come with the database.
    target = tmp_path / "elsewhere"
    assert cli("--store", target, "restore", "bk").code == 0
    assert _read_predictions(target, first) == before

    # Over the store, after more was written: back to the moment of the backup.
    second = _predictions_in_the_table(here, range(1, 51), "two")
    assert cli("restore", "bk", "--force").code == 0
    assert _read_predictions(here, first) == before
    with trenches.open(here, create=False) as store:
        assert "two" not in {b.name for b in store.baselines.list()}
    assert second != first


def test_restore_refuses_a_backup_whose_table_file_is_damaged(
    cli: Any, here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trenches import predictions

    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    _predictions_in_the_table(here, range(1, 101), "one")
    assert cli("backup", "bk").code == 0
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    data = next(tmp_path / "bk" / f for f in manifest["table_files"] if f.endswith(".parquet"))
    data.write_bytes(data.read_bytes()[:-10] + b"0123456789")
    r = cli("--store", tmp_path / "fresh", "restore", "bk")
    assert r.code != 0
    assert "damaged" in r.err and data.name in r.err
    assert not (tmp_path / "fresh" / "trenches.db").exists()
