"""``trenches models ...``: the registry: versions, aliases, promotion."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from trenches import timestamps
from trenches.cli._output import console, open_store, print_json

app = typer.Typer(help="The model registry: versions, files, aliases.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the models with their newest version and aliases.

    Example: `trenches models list`
    """
    with open_store() as store:
        rows = [(name, store.models.versions(name)) for name in store.models.names()]
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "versions": len(vs),
                    "latest": vs[-1].version if vs else None,
                    "aliases": {a: v.version for v in vs for a in v.aliases},
                }
                for name, vs in rows
            ]
        )
        return
    if not rows:
        console.print("no models yet; register one with run.log_model(model, name)")
        return
    table = Table("model", "versions", "latest", "aliases")
    for name, vs in rows:
        aliases = ", ".join(f"{a} -> {v.version}" for v in vs for a in v.aliases)
        table.add_row(name, str(len(vs)), str(vs[-1].version) if vs else "", aliases)
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="A model name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a model's versions (run, dataset, formats, aliases), which of them load
    only with --trusted and why, and the history of its aliases.

    Example: `trenches models show cancer-clf`
    """
    with open_store() as store:
        versions = store.models.versions(name)
        history = store.models.alias_history(name)
    if as_json:
        print_json(
            {
                "name": name,
                "versions": [
                    {
                        "version": v.version,
                        "run": v.run_id,
                        "dataset": v.dataset,
                        "task": v.task,
                        "flavor": v.flavor,
                        "formats": list(v.formats),
                        "onnx_error": v.onnx_error,
                        "needs_trust": list(v.needs_trust),
                        "aliases": list(v.aliases),
                        "inputs": [{"name": n, "type": t} for n, t in v.signature.inputs],
                        "classes": list(v.signature.classes)
                        if v.signature.classes is not None
                        else None,
                        "created_at": timestamps.iso(timestamps.to_us(v.created_at)),
                    }
                    for v in versions
                ],
                "alias_history": [
                    {
                        "alias": m.alias,
                        "from": m.from_version,
                        "to": m.to_version,
                        "by": m.moved_by,
                        "reason": m.reason,
                        "forced": m.forced,
                        "at": timestamps.iso(timestamps.to_us(m.moved_at)),
                    }
                    for m in history
                ],
            }
        )
        return
    table = Table(
        "version",
        "created",
        "run",
        "dataset",
        "formats",
        "aliases",
        "inputs",
        title=name,
        title_justify="left",
    )
    for v in versions:
        table.add_row(
            str(v.version),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            str(v.run_id or ""),
            v.dataset or "",
            ", ".join(v.formats)
            + ("" if "onnx" in v.formats or not v.onnx_error else " (no onnx)"),
            ", ".join(v.aliases),
            str(len(v.signature.inputs)),
        )
    console.print(table)
    for v in versions:
        if v.needs_trust:
            console.print(
                f"{v.ref} loads only with --trusted (it can run code): " + ", ".join(v.needs_trust),
                markup=False,
            )
    if history:
        moves = Table(
            "alias", "from", "to", "when", "who", "why", title="alias history", title_justify="left"
        )
        for m in history:
            moves.add_row(
                m.alias,
                str(m.from_version or "-"),
                str(m.to_version),
                f"{m.moved_at:%Y-%m-%d %H:%M}",
                m.moved_by or "",
                m.reason + (" (forced)" if m.forced else ""),
            )
        console.print(moves)


@app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="The version: name@3 (or name@alias, name@latest)."),
    alias: str = typer.Argument(..., help="The alias to point at it, e.g. production."),
    reason: str = typer.Option(..., "--reason", help="Why; kept in the alias history."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Promote even though the version's latest `trenches check` failed; the "
        "force and the reason are recorded.",
    ),
) -> None:
    """Point an alias at a version; the move is kept with who, when and why.

    A version whose latest gate check failed is refused (exit 1) for every alias but
    `candidate`, unless `--force`.

    Example: `trenches models promote cancer-clf@3 production --reason "passed review"`
    """
    with open_store() as store:
        move = store.models.promote(ref, alias, reason=reason, force=force)
    console.print(
        f"{alias}: {move.from_version if move.from_version else '(none)'} -> "
        f"{move.to_version} ({ref.split('@')[0]})"
    )


@app.command("add-baseline")
def add_baseline(
    name: str = typer.Argument(..., help="A name for the baseline, e.g. human-labellers."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="The dataset its patterns are in."),
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        help="CSV, Parquet or JSONL with pattern_id and prediction (and optionally "
        "proba_<class> for every class).",
    ),
    description: str = typer.Option(None, "--description"),
) -> None:
    """Import the predictions of a system not trained here (people, a rule engine), so
    it can be compared like any model version.

    Example: `trenches models add-baseline radiologists --dataset cancer --predictions
    reads.csv`
    """
    with open_store() as store:
        baseline = store.baselines.add(
            name, dataset=dataset, predictions=predictions, description=description
        )
        table = store.baselines.predictions(name)
    right = table["correct"].dropna()
    summary = (
        f"; right on {int(right.sum())} of {len(right)} ({right.mean():.1%})" if len(right) else ""
    )
    console.print(
        f"baseline [bold]{baseline.name}[/] on {baseline.dataset}: "
        f"{baseline.predictions} predictions{summary}"
    )
