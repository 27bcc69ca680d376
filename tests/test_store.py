"""Opening stores: locations, environment variables, migrations, schema versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import trenches
from trenches import config
from trenches.db import migrate
from trenches.db.schema import metadata


def test_open_creates_sqlite_store_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    with trenches.open(tmp_path / "s") as store:
        assert (tmp_path / "s" / "trenches.db").exists()
        assert (tmp_path / "s" / "artifacts").is_dir()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_default_store_is_dot_trenches_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    with trenches.open() as store:
        assert store.location.sqlite_path == tmp_path / ".trenches" / "trenches.db"
        assert Path(store.artifacts.root) == tmp_path / ".trenches" / "artifacts"


def test_environment_variables_override_the_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRENCHES_DB_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "blobs"))
    with trenches.open() as store:
        assert store.location.sqlite_path == tmp_path / "elsewhere.db"
        assert store.artifacts.root == str(tmp_path / "blobs")
    assert not (tmp_path / ".trenches").exists()


def test_open_without_create_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(trenches.NotFound, match="trenches init"):
        trenches.open(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_migrations_build_exactly_the_declared_schema(store: trenches.Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_the_head_constant_is_alembics_head() -> None:
    # Opening a current store trusts HEAD instead of reading the migration scripts.
    assert migrate.head_revision() == migrate.HEAD


def test_reopening_is_idempotent(store_url: str) -> None:
    with trenches.open(store_url) as a:
        a.datasets.create("d", task="regression", label="y")
    with trenches.open(store_url) as b:
        assert [d.name for d in b.datasets.list()] == ["d"]
        with b.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()


def test_a_store_with_a_newer_schema_is_refused(store_url: str) -> None:
    with trenches.open(store_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(trenches.SchemaTooNew, match="newer than this version"):
        trenches.open(store_url)


def test_url_forms_resolve(tmp_path: Path) -> None:
    assert config.resolve(tmp_path / "x.db").sqlite_path == tmp_path / "x.db"
    assert config.resolve(tmp_path / "folder").sqlite_path == tmp_path / "folder" / "trenches.db"
    pg = config.resolve("postgresql://u@h/db")
    assert pg.sqlite_path is None and pg.db_url == "postgresql://u@h/db"


def test_url_without_driver_uses_psycopg(postgres) -> None:  # type: ignore[no-untyped-def]
    name = postgres.create_database()
    try:
        url = postgres.url(name).replace("postgresql+psycopg://", "postgresql://")
        with trenches.open(url) as store:
            assert store.engine.dialect.driver == "psycopg"
    finally:
        postgres.drop_database(name)


# --- what is not a store ----------------------------------------------------------------


def _damaged(tmp_path: Path) -> Path:
    """A real store's database cut short, as a failed copy leaves it."""
    with trenches.open(tmp_path / "good") as store:
        ds = store.datasets.create("d", task="classification", label="y")
        ds.add(
            __import__("pandas").DataFrame({"x": range(3000), "y": ["a", "b"] * 1500}),
            source="expert",
        )
    whole = (tmp_path / "good" / "trenches.db").read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole[: len(whole) // 3])
    return cut


@pytest.mark.parametrize("create", [True, False], ids=["create", "open"])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: (p / "notes.db").write_text("hello, I am not SQLite\n") and p / "notes.db",
        lambda p: (p / "notes.txt").write_text("hello\n") and p / "notes.txt",
        lambda p: (p / "empty.csv").write_bytes(b"") or p / "empty.csv",
        lambda p: (p / "f.txt").write_text("x") and p / "f.txt" / "inside",
        lambda p: (p / "folder.db").mkdir() or p / "folder.db",
        _damaged,
    ],
    ids=["text-as-db", "text-file", "empty-file", "below-a-file", "folder-as-db", "truncated"],
)
def test_a_path_that_is_not_a_store_is_a_store_error_naming_it(
    tmp_path: Path, make: Any, create: bool
) -> None:
    path = make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises((trenches.StoreError, trenches.NotFound)) as e:
        trenches.open(path, create=create).close()
    message = str(e.value)
    named = next(p for p in (path, *path.parents) if p.exists())
    assert str(named) in message and "\n" not in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///"])
def test_an_in_memory_database_is_refused_it_would_forget_everything(url: str) -> None:
    with pytest.raises(trenches.StoreError, match="memory"):
        trenches.open(url)


def test_a_path_with_a_nul_character_is_invalid_input() -> None:
    with pytest.raises(trenches.InvalidInput, match="NUL"):
        trenches.open("a\x00b")


def test_a_server_that_does_not_answer_is_a_one_line_store_error() -> None:
    from conftest import dead_url

    port = dead_url().split(":")[2].split("/")[0]
    with pytest.raises(trenches.StoreError) as e:
        trenches.open(f"postgresql://nobody@127.0.0.1:{port}/x")
    assert "\n" not in str(e.value) and port in str(e.value)


def test_writers_of_one_process_take_turns_and_one_that_waits_too_long_is_told(
    tmp_path: Path,
) -> None:
    """Threads writing one SQLite store queue for its one write lock: every write lands,
    and one kept waiting past the busy timeout gets StoreBusy, changing nothing."""
    import threading

    from trenches.db.engine import make_engine, write

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}", busy_timeout=0.5)
    with write(engine) as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))

    def add(n: int) -> None:
        with write(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

    threads = [threading.Thread(target=add, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with write(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (-1)"))
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        with pytest.raises(trenches.StoreBusy, match=r"locked for over 0\.5 s by other writers"):
            add(100)
    finally:
        done.set()
        holder.join()
    add(101)  # the lock is free again
    with engine.connect() as conn:
        stored = sorted(n for (n,) in conn.execute(text("SELECT n FROM t")))
    assert stored == [-1, *range(40), 101]
    engine.dispose()
