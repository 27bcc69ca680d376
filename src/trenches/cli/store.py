"""Top-level jobs on the store itself: ``init``, ``backup``, ``restore``, ``compact``,
``migrate``, ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches import config
from trenches.cli._output import console, open_store, print_json, state


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.command("compact")(compact)
    app.command("migrate")(migrate)
    app.command("demo")(demo)


def init() -> None:
    """Create a store here (.trenches/), or bring an existing one to this version's schema.

    Example: `trenches init`, or `TRENCHES_DB_URL=postgresql://me@db/trenches trenches init`
    """
    store = open_store(create=True)
    with store:
        console.print(f"store ready: {store.url}")
        console.print(f"artifacts:   {store.artifacts.root}")
        from trenches.db import migrate

        console.print(f"schema:      revision {migrate.head_revision()}")


def backup(
    dest: Path = typer.Argument(..., help="A new folder to write the backup into."),
) -> None:
    """Back up the embedded store (database and artifacts), consistent even while others
    write. The folder appears only when the backup is whole. For PostgreSQL use pg_dump
    (docs/deploying.md).

    Example: `trenches backup backups/2026-11-23`
    """
    from trenches import backup as backups

    result = backups.backup(config.resolve(state.store), dest)
    console.print(
        f"backed up {result.database_bytes / 1e6:.1f} MB of database and "
        f"{result.artifact_files} artifact files to {result.path}"
    )


def compact(
    older_than: str = typer.Option(
        "3d",
        "--older-than",
        help="Leave Iceberg snapshots replaced, and files written, less than this long "
        "ago (30m, 24h, 3d): a reader or writer still at work never loses a file.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Tidy the store's bulk facts: predictions kept in the database (small batches)
    and logged requests not moved yet go into the Iceberg tables, small files are
    merged, and Iceberg snapshots and files nobody needs any longer are removed. Safe
    while others read and write; a compaction that is stopped leaves what it finished.

    Example: `trenches compact`, or `trenches compact --older-than 1h`
    """
    from trenches.json_form import to_json

    store = open_store()
    with store:
        say = None if as_json else console.print
        done = store.compact(older_than=older_than, progress=say)
    if as_json:
        print_json(to_json(done))
        return
    if not done.tables and not done.predictions_moved and not done.requests_moved:
        console.print("nothing to compact: the store has no tables yet")
    for t in done.tables:
        console.print(
            f"{t.table}: {t.files_before} data files, now {t.files_after}; "
            f"{t.snapshots_expired} snapshots expired; {t.files_removed} files removed "
            f"({t.bytes_removed / 1e6:.1f} MB)"
        )


def migrate(
    as_json: bool = typer.Option(False, "--json", help="Print what was moved as JSON."),
) -> None:
    """Move what an earlier release of trenches kept as blobs in the database (pattern
    inputs, stored predictions, logged requests) into the store's Iceberg tables,
    nothing lost. Each step is one transaction: a migration that is stopped can be run
    again and goes on from there.
    Opening a store brings its schema up to date by itself; this moves the data.

    Example: `trenches migrate`
    """
    from trenches.json_form import to_json

    store = open_store()
    with store:
        done = store.migrate(progress=None if as_json else console.print)
    if as_json:
        print_json(to_json(done))
        return
    console.print(
        f"moved the inputs of {done.patterns_moved:,} patterns ({done.datasets_moved} "
        f"datasets), {done.predictions_moved:,} predictions and {done.requests_moved:,} "
        "logged requests into the tables"
    )


def restore(
    src: Path = typer.Argument(..., help="A folder written by `trenches backup`."),
    force: bool = typer.Option(False, "--force", help="Replace the store that is there."),
) -> None:
    """Restore the embedded store from a backup folder. Every file of the backup is
    checked before anything is replaced; a damaged backup is refused, naming the file.

    Example: `trenches restore backups/2026-11-23 --force`
    """
    from trenches import backup as backups

    result = backups.restore(src, config.resolve(state.store), force=force)
    console.print(f"restored {result.path} ({result.artifact_files} artifact files)")


def demo(
    folder: Path = typer.Option(
        Path("."), "--folder", help="Where to build the demo project (default: here)."
    ),
) -> None:
    """Build a small project from scikit-learn's breast-cancer data and tell its story.

    Example: `mkdir demo && cd demo && trenches demo`
    """
    from trenches.demo import run

    run(folder, console)
