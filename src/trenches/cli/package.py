"""``trenches package REF --out DIR``: a container build context for a model version."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches.cli._output import TRUSTED_HELP, console, open_store, print_json


def package(
    ref: str = typer.Argument(..., help="A model version: name@3, name@production."),
    out: Path = typer.Option(..., "--out", "-o", help="A new (or empty) folder to write."),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    base_image: str = typer.Option(
        None,
        "--base-image",
        help="Build on this image instead of python:<recorded version>-slim (or "
        "rocker/r-ver for R): one with the same tools, from a registry of your own.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a container build context for a version: a Dockerfile, the requirements
    pinned to the environment its run recorded, a store holding that version alone,
    and trenches itself as a wheel (from a source checkout); the image runs `trenches
    serve` on port 8080 as a user that is not root. For an endpoint version served
    from R, a Dockerfile on a rocker image with plumber and the service's own files
    (kept with the version by `models add-endpoint --source`).

    Example: `trenches package cancer-clf@production --out build/cancer && docker
    build -t cancer-clf build/cancer`
    """
    from trenches.packaging import describe
    from trenches.packaging import package as write

    with open_store() as store:
        found = write(store, ref, out, trusted=trusted, base_image=base_image)
    if as_json:
        print_json(describe(found))
        return
    console.print(
        f"wrote {len(found.files)} files to {found.folder} (pinned from {found.pinned_from})"
    )
    for name in found.files:
        console.print(f"  {name}", markup=False)
    console.print(f"build it: {found.build}", markup=False)
