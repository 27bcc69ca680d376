"""Top-level jobs on the store itself: ``init``, ``backup``, ``restore``, ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches import config
from trenches.cli._output import console, open_store, state


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("backup")(backup)
    app.command("restore")(restore)
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
