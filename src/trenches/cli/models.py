"""``trenches models ...``: the registry: versions, aliases, promotion."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from trenches import timestamps
from trenches.cli._output import console, open_store, print_json
from trenches.json_form import to_json

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
        endpoints = {
            v.version: store.models.endpoint(v) for v in versions if v.flavor == "endpoint"
        }
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
                        "endpoint": to_json(endpoints[v.version])
                        if v.version in endpoints
                        else None,
                        "sources": list(v.sources),
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
            + ("" if "onnx" in v.formats or v.flavor == "endpoint" else " (no onnx)"),
            ", ".join(v.aliases),
            str(len(v.signature.inputs)),
        )
    console.print(table)
    for v in versions:
        if v.version in endpoints:
            e = endpoints[v.version]
            kept = f"; kept with it: {', '.join(v.sources)}" if v.sources else ""
            console.print(f"{v.ref} predicts by calling {e.url} ({e.protocol}){kept}", markup=False)
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


@app.command("add-endpoint")
def add_endpoint(
    name: str = typer.Argument(..., help="The model's name (a new version of it is made)."),
    url: str = typer.Option(
        ...,
        "--url",
        help="Where to POST rows: the full URL, e.g. http://host:8000/predict, "
        "http://host/invocations or http://host/v2/models/NAME/infer.",
    ),
    protocol: str = typer.Option(
        ...,
        "--protocol",
        help="v2 (Open Inference, a tensor a column), mlflow ({'dataframe_split': ...}) "
        "or json (a list of records; the answer a list, or {'predictions': [...]}).",
    ),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="The dataset it predicts the patterns of."
    ),
    columns: str = typer.Option(
        None, "--columns", help="The inputs it takes, comma-separated (default: all)."
    ),
    classes: str = typer.Option(
        None,
        "--classes",
        help="Its classes in the order of its probabilities, comma-separated (default: "
        "the dataset's labels, sorted).",
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for one call."),
    retries: int = typer.Option(
        3,
        "--retries",
        min=0,
        max=100,
        help="Calls made again after a timeout, a refused connection, 429, 5xx.",
    ),
    batch_rows: int = typer.Option(
        1000, "--batch-rows", min=1, max=1_000_000, help="Rows sent in one call."
    ),
    token_env: str = typer.Option(
        None,
        "--token-env",
        help="An environment variable holding a bearer token for the service (never stored).",
    ),
    language: str = typer.Option(
        None, "--language", help="The service's language (r, python, ...), for packaging."
    ),
    source: list[Path] = typer.Option(
        None,
        "--source",
        help="A file of the service (its code, its model) kept with the version, for "
        "`trenches package`; repeat for several.",
    ),
    description: str = typer.Option(None, "--description"),
) -> None:
    """Register a model that runs elsewhere (R, Java, another Python) as a version that
    predicts by calling it: evaluated, backfilled, gated, compared, monitored and served
    like any other, each prediction asked once and then read from the store.

    The service is asked about a few of the dataset's patterns first; one that fails or
    answers something that is not one prediction a row is not registered.

    Example: `trenches models add-endpoint churn-r --url http://127.0.0.1:8000/predict
    --protocol json --dataset churn --language r --source plumber.R --source model.rds`
    """
    from trenches.models.endpoints import Endpoint

    endpoint = Endpoint(
        url=url,
        protocol=protocol,
        timeout=timeout,
        retries=retries,
        batch_rows=batch_rows,
        token_env=token_env,
        language=language,
    )
    sources = {}
    for path in source or []:
        try:
            sources[path.name] = path.read_bytes()
        except OSError as e:
            raise typer.BadParameter(
                f"cannot read {path}: {e.strerror}", param_hint="--source"
            ) from None
    with open_store() as store:
        version = store.models.add_endpoint(
            name,
            endpoint,
            dataset=dataset,
            columns=_listed(columns),
            classes=_listed(classes),
            sources=sources,
            description=description,
        )
    console.print(
        f"registered [bold]{version.ref}[/]: predicts by calling {url} ({protocol}); "
        f"evaluate it with `trenches evaluate {version.ref}`"
    )


def _listed(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None
