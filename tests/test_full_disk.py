"""A full disk under the store, its artifacts or a backup: a one-line error naming it,
exit 2, and nothing half-written (issue 13, item 7). Each test fills a real, tiny tmpfs
(``full_disk``; skipped without root)."""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import trenches
from trenches.errors import DiskFull

from conftest import full_disk, make_frame, run_cli


@pytest.fixture(autouse=True)
def _no_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` up to ``leave`` bytes free; returns the filler file."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave + 4096:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:  # full is where filling ends; anything else is not
                raise
    return filler


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def disk() -> Iterator[Path]:
    with full_disk(2048) as where:
        yield where


def _patterns(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # Every pattern stored is in one import's range.
        return int(con.execute("SELECT COALESCE(SUM(rows), 0) FROM import_batches").fetchone()[0])
    finally:
        con.close()


def test_an_import_onto_a_full_disk_is_refused_and_the_store_is_as_it_was(
    disk: Path, tmp_path: Path
) -> None:
    store = disk / "store"
    with trenches.open(store) as s:
        s.datasets.create("cancer", task="classification", label="label").add(
            make_frame(50), source="expert"
        )
    make_frame(30_000, seed=2).to_csv(tmp_path / "big.csv", index=False)
    filler = _fill(disk, leave=400_000)
    code, _, err = run_cli(
        "--store", store, "data", "add", tmp_path / "big.csv", "-d", "cancer", "--source", "crowd"
    )
    message = _one_line_error(code, err)
    assert "full" in message and str(store) in message
    filler.unlink()
    assert _patterns(store / "trenches.db") == 50
    with trenches.open(store, create=False) as s:
        assert s.datasets.get("cancer").summary().imports == 1


def test_a_store_on_a_disk_already_full_is_a_clear_error(disk: Path, tmp_path: Path) -> None:
    store = disk / "store"
    with trenches.open(store) as s:
        s.datasets.create("cancer", task="classification", label="label").add(
            make_frame(50), source="expert"
        )
    make_frame(10, seed=3).to_csv(tmp_path / "small.csv", index=False)
    filler = _fill(disk)
    code, _, err = run_cli(
        "--store", store, "data", "add", tmp_path / "small.csv", "-d", "cancer", "--source", "crowd"
    )
    assert "full" in _one_line_error(code, err)
    filler.unlink()
    assert _patterns(store / "trenches.db") == 50


def test_a_file_kept_onto_a_full_disk_is_refused_and_nothing_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with full_disk(64) as artifacts:
        monkeypatch.setenv("TRENCHES_ARTIFACTS", str(artifacts))
        big = tmp_path / "weights.bin"
        big.write_bytes(os.urandom(200_000))
        with (
            trenches.open(tmp_path / "store") as store,
            store.run("fit", capture_code=False) as run,
        ):
            with pytest.raises(DiskFull, match="no space left"):
                run.log_artifact(big)
            (tmp_path / "small.bin").write_bytes(b"fits")
            run.log_artifact(tmp_path / "small.bin")
        assert [p.name for p in artifacts.rglob("*") if p.is_file()] == [
            hashlib.sha256(b"fits").hexdigest()
        ]
        con = sqlite3.connect(tmp_path / "store" / "trenches.db")
        try:
            assert con.execute("SELECT COUNT(*) FROM artifacts").fetchone() == (1,)
        finally:
            con.close()


def _store_with_a_file(folder: Path, size: int) -> str:
    with trenches.open(folder) as store:
        store.datasets.create("cancer", task="classification", label="label").add(
            make_frame(200), source="expert"
        )
        (folder.parent / "model.bin").write_bytes(os.urandom(size))
        with store.run("fit", capture_code=False) as run:
            return run.log_artifact(folder.parent / "model.bin")


@pytest.mark.parametrize("room", [20_000, 300_000], ids=["database", "artifacts"])
def test_a_backup_onto_a_full_disk_leaves_nothing(disk: Path, tmp_path: Path, room: int) -> None:
    store = tmp_path / "store"
    _store_with_a_file(store, 1_000_000)
    filler = _fill(disk, leave=room)
    code, _, err = run_cli("--store", store, "backup", disk / "bk")
    message = _one_line_error(code, err)
    assert "no space left" in message
    assert [p.name for p in disk.iterdir()] == ["filler"]
    filler.unlink()
    code, _, err = run_cli("--store", store, "backup", disk / "bk")
    assert code == 0, err


@pytest.mark.parametrize("what", ["artifacts", "database", "tables"])
def test_a_restore_onto_a_full_disk_leaves_the_old_store(
    disk: Path, tmp_path: Path, what: str
) -> None:
    source = tmp_path / "source"
    if what == "artifacts":
        _store_with_a_file(source, 2_500_000)
    elif what == "database":
        # A small file that fits, and a database that does not: a run's many metrics.
        _store_with_a_file(source, 100_000)
        with trenches.open(source) as s, s.run("long", capture_code=False) as run:
            for step in range(0, 60_000, 1_000):
                run.log_metrics({f"m{i}": float(i) for i in range(1_000)}, step=step)
    else:
        # A small file that fits, and a dataset's table that does not.
        _store_with_a_file(source, 100_000)
        with trenches.open(source) as s:
            s.datasets.create("big", task="classification", label="label").add(
                make_frame(20_000), source="expert"
            )
    code, _, err = run_cli("--store", source, "backup", tmp_path / "bk")
    assert code == 0, err
    target = disk / "store"
    with trenches.open(target) as s:
        s.datasets.create("old", task="classification", label="label").add(
            make_frame(40), source="expert"
        )
    before = _files(target)
    code, _, err = run_cli("--store", target, "restore", tmp_path / "bk", "--force")
    assert "no space left" in _one_line_error(code, err)
    assert _files(target) == before
    with trenches.open(target, create=False) as s:
        assert [d.name for d in s.datasets.list()] == ["old"]
