"""``trenches data ...``: datasets, patterns, snapshots and data quality."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from trenches import timestamps
from trenches.cli._files import named_files
from trenches.cli._output import (
    console,
    err_console,
    int64,
    open_store,
    print_json,
    progress_bar,
    quality_table,
)
from trenches.errors import CheckFailed, InvalidInput
from trenches.json_form import to_json
from trenches.names import QUALITY_KINDS as KINDS
from trenches.names import SPLITS

if TYPE_CHECKING:
    from trenches.patterns.diff import SnapshotDiff
    from trenches.patterns.imports import ImportResult

app = typer.Typer(
    help="Datasets and their patterns: import, relabel, snapshot, check.",
    no_args_is_help=True,
)


def _splits(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise InvalidInput(f"--splits {value!r} must be three numbers like 0.7,0.15,0.15") from None
    if len(parts) != 3:
        raise InvalidInput(f"--splits {value!r} must be three numbers like 0.7,0.15,0.15")
    return parts


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Dataset name, e.g. cancer."),
    task: str = typer.Option(..., "--task", help="classification or regression."),
    label: str = typer.Option(..., "--label", help="The column that holds the label."),
    text: str = typer.Option(None, "--text", help="A free-text input column."),
    schema: str = typer.Option(
        None,
        "--schema",
        help="Input columns and types, e.g. 'radius:number,grade:integer,site:string'. "
        "Default: inferred from the first import.",
    ),
    splits: str = typer.Option("0.7,0.15,0.15", "--splits", help="train,validation,test ratios."),
    description: str = typer.Option(None, "--description"),
    tolerance: str = typer.Option(
        None,
        "--tolerance",
        help="Regression: how near a prediction must come to its label to count as right: "
        "0.5 (absolute), 10% (of the label) or '0.5 or 10%' (the looser of both).",
    ),
) -> None:
    """Create a dataset.

    Example: `trenches data create cancer --task classification --label target`, or
    `trenches data create prices --task regression --label price --tolerance 10%`
    """
    with open_store() as store:
        ds = store.datasets.create(
            name,
            task=task,
            label=label,
            text=text,
            schema=schema,
            splits=_splits(splits),
            description=description,
            tolerance=tolerance,
        )
    console.print(
        f"created dataset [bold]{ds.name}[/] ({ds.task}, label {ds.label_column!r}"
        + (f", right within {ds.tolerance}" if ds.tolerance else "")
        + ")"
    )


@app.command("add")
def add(
    files: list[str] = typer.Argument(
        ...,
        help="A .csv, .parquet or .jsonl file of patterns; or several, or a glob of them "
        "(quote it: 'batches/*.parquet'), local or URLs (s3://...).",
        metavar="FILE",
    ),
    dataset: str = typer.Option(..., "--dataset", "-d", help="The dataset to add to."),
    source: str = typer.Option(
        ..., "--source", help="Where the labels come from: expert, crowd, production, ..."
    ),
    labelled_by: str = typer.Option(None, "--labelled-by", help="Who labelled them."),
    note: str = typer.Option(None, "--note", help="A note kept with the import."),
    created_at: str = typer.Option(
        None, "--created-at", help="When these patterns arrived (default now), ISO 8601."
    ),
    tag: list[str] = typer.Option([], "--tag", help="A tag for every pattern (repeatable)."),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Store only the rows the dataset does not hold yet (the same inputs, label and "
        "source count as held, active or not): importing a file again adds nothing twice.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Import patterns from a file: one transaction, all rows or none. A row the dataset
    holds already (the same inputs, label and source) is stored again, with a warning
    saying how many; `--skip-existing` stores only the new ones.

    Several files (or a glob) are one transaction too, an import batch a file, in the
    order given (a glob's in sorted order): a bad row in any of them stores nothing, and
    a row of a later file the same as one of an earlier file counts as held. With a Dask
    cluster (`[compute] scheduler`), each file is read and written by a worker.

    Example: `trenches data add batch1.csv --dataset cancer --source expert --labelled-by dr.who`
    """
    paths = named_files(files)
    with open_store() as store:
        ds = store.datasets.get(dataset)
        what = Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} files"
        with progress_bar(f"importing {what}", None) as advance:
            add = ds.add_file if len(paths) == 1 and "://" not in paths[0] else None
            results = (
                [
                    add(
                        paths[0],
                        source=source,
                        labelled_by=labelled_by,
                        note=note,
                        created_at=created_at,
                        tags=tag,
                        progress=advance,
                        skip_existing=skip_existing,
                    )
                ]
                if add is not None
                else ds.add_files(
                    paths,
                    source=source,
                    labelled_by=labelled_by,
                    note=note,
                    created_at=created_at,
                    tags=tag,
                    progress=advance,
                    skip_existing=skip_existing,
                )
            )
    held = sum(r.already_stored for r in results)
    if held and not skip_existing:
        total = sum(r.rows for r in results)
        was, are = ("was", "is") if held == 1 else ("were", "are")
        err_console.print(
            f"[yellow]warning:[/] {held} of these {total} patterns {was} in "
            f"{escape(ds.name)} already (the same inputs, label and source) and {are} "
            "now stored twice; `--skip-existing` stores only the new ones (`trenches data "
            "deactivate` takes copies out)"
        )
    if as_json:
        print_json(results[0].__dict__ if len(paths) == 1 else [r.__dict__ for r in results])
        return
    for result in results:
        _print_added(result)


def _print_added(result: ImportResult) -> None:
    file = result.file
    skipped = f"; {result.skipped} stored already, skipped" if result.skipped else ""
    if not result.rows:
        console.print(
            f"nothing added to [bold]{escape(result.dataset)}[/] from {escape(str(file))}: "
            f"all {result.skipped} patterns are stored already"
        )
        return
    splits = ", ".join(f"{k} {v}" for k, v in result.by_split.items())
    console.print(
        f"added {result.rows} patterns to [bold]{escape(result.dataset)}[/] from "
        f"{escape(str(file))} (ids {result.first_id}-{result.last_id}, import "
        f"{result.batch_id}; {splits}){skipped}"
    )


@app.command("relabel")
def relabel(
    pattern_id: int = typer.Argument(..., help="The pattern to relabel.", callback=int64),
    label: str = typer.Argument(..., help="The new label."),
    source: str = typer.Option(..., "--source", help="Who decided: expert, crowd, ..."),
    reason: str = typer.Option(..., "--reason", help="Why the label changes."),
    labelled_by: str = typer.Option(None, "--labelled-by"),
) -> None:
    """Give a pattern a new label. The old pattern is kept, deactivated, and the new one
    points back to it.

    Example: `trenches data relabel 42 malignant --source expert --reason "biopsy result"`
    """
    with open_store() as store:
        new = store.patterns.relabel(
            pattern_id, label, source=source, reason=reason, labelled_by=labelled_by
        )
    console.print(
        f"pattern {pattern_id} relabelled: new pattern {new.id} has label {new.label!r} "
        f"(split {new.split})"
    )


@app.command("deactivate")
def deactivate(
    pattern_ids: list[int] = typer.Argument(..., help="Pattern ids.", callback=int64),
    reason: str = typer.Option(..., "--reason", help="Why they leave the data."),
) -> None:
    """Take patterns out of later snapshots. They stay stored; earlier snapshots keep them.

    Example: `trenches data deactivate 17 18 --reason "duplicate of 16"`
    """
    with open_store() as store:
        n = store.patterns.deactivate(pattern_ids, reason=reason)
    console.print(f"deactivated {n} pattern{'s' if n != 1 else ''}")


@app.command("history")
def history(
    pattern_id: int = typer.Argument(..., help="Any version of the pattern.", callback=int64),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show every version of a pattern: labels, sources, times, and the reasons for changes.

    Example: `trenches data history 42`
    """
    with open_store() as store:
        h = store.patterns.history(pattern_id)
    reasons = {c.pattern_id: c for c in h.changes}
    if as_json:
        print_json(
            {
                "patterns": [
                    {
                        "id": p.id,
                        "label": p.label,
                        "source": p.source,
                        "labelled_by": p.labelled_by,
                        "split": p.split,
                        "created_at": timestamps.iso(timestamps.to_us(p.created_at)),
                        "deactivated_at": timestamps.iso(timestamps.to_us(p.deactivated_at))
                        if p.deactivated_at
                        else None,
                        "replaces_id": p.replaces_id,
                        "change": (
                            {
                                "kind": reasons[p.id].kind,
                                "reason": reasons[p.id].reason,
                                "by": reasons[p.id].changed_by,
                            }
                            if p.id in reasons
                            else None
                        ),
                    }
                    for p in h.patterns
                ],
            }
        )
        return
    first = h.patterns[0]
    console.print(f"[bold]dataset {first.dataset}[/], split {first.split}, inputs: {first.inputs}")
    table = Table("id", "label", "source", "labelled by", "created", "deactivated", "why")
    for p in h.patterns:
        change = reasons.get(p.id)
        table.add_row(
            str(p.id),
            str(p.label),
            p.source,
            p.labelled_by or "",
            p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.deactivated_at.strftime("%Y-%m-%d %H:%M:%S") if p.deactivated_at else "active",
            f"{change.kind}: {change.reason}" if change else "",
        )
    console.print(table)


@app.command("snapshot")
def snapshot(
    name: str = typer.Argument(..., help="The dataset."),
    as_of: str = typer.Option(None, "--as-of", help="Freeze the data as it was then."),
    sources: str = typer.Option(
        None, "--sources", help="Only these label sources, comma-separated: expert,crowd."
    ),
    note: str = typer.Option(None, "--note"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Freeze the active patterns into a snapshot with a content digest.

    Example: `trenches data snapshot cancer --as-of 2026-03-01 --sources expert`
    """
    with open_store() as store:
        ds = store.datasets.get(name)
        snap = ds.snapshot(
            as_of=as_of,
            sources=[s.strip() for s in sources.split(",") if s.strip()] if sources else None,
            note=note,
        )
    if as_json:
        print_json(to_json(snap))
        return
    console.print(
        f"snapshot [bold]{snap.id}[/] of {snap.dataset}: {snap.patterns} patterns as of "
        f"{snap.as_of:%Y-%m-%d %H:%M:%S}"
        + (f" from {', '.join(snap.sources)}" if snap.sources else "")
        + f"\ndigest {snap.digest}"
    )
    if snap.held_out:
        console.print(
            f"{len(snap.held_out)} patterns of open problems (and every copy of their inputs) "
            "are held out of its training data, so models fitted on it are scored on "
            "problems they did not see (`trenches problems edit SLUG --trainable` to train "
            "on a problem)"
        )


@app.command("tolerance")
def tolerance(
    name: str = typer.Argument(..., help="A regression dataset."),
    value: str = typer.Argument(
        None, help="0.5 (absolute), 10% (of the label) or '0.5 or 10%'; none: show it."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the tolerance."),
) -> None:
    """Show or set how near a regression prediction must come to its label to count as
    right, for problem scores, flips in `trenches compare` and problem gates. A
    prediction is right when |prediction - label| <= max(absolute, relative x |label|).
    Scores are worked out when read, so a new tolerance applies to every version, and
    each stored check records the tolerance it used.

    Example: `trenches data tolerance prices 10%`, `trenches data tolerance prices
    '0.5 or 10%'`
    """
    from trenches.errors import InvalidInput

    with open_store() as store:
        ds = store.datasets.get(name)
        if value is None and not clear:
            console.print(
                f"{ds.name}: right within {ds.tolerance}"
                if ds.tolerance
                else f"{ds.name} has no tolerance"
                + (
                    "; set one: trenches data tolerance NAME 10%"
                    if ds.task == "regression"
                    else f" ({ds.task}: a class is right or wrong as it is)"
                )
            )
            return
        if value is not None and clear:
            raise InvalidInput("give a tolerance or --clear, not both")
        set_to = ds.set_tolerance(None if clear else value)
    console.print(
        f"{ds.name}: right within {set_to}" if set_to else f"{ds.name}: the tolerance is cleared"
    )


@app.command("diff")
def diff(
    a: int = typer.Argument(
        ..., help="A snapshot id, e.g. the one version 3 trained on.", callback=int64
    ),
    b: int = typer.Argument(..., help="Another snapshot id of the same dataset.", callback=int64),
    limit: int = typer.Option(
        20,
        "--limit",
        min=0,
        callback=int64,
        help="Pattern ids listed per kind of change (the table only).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Every change and count, as JSON."),
) -> None:
    """What changed in the data from snapshot A to snapshot B: patterns added, removed
    (deactivated, outside B's sources, or after B) and relabelled, counted by source,
    labeller and import.

    Example: `trenches data diff 3 7 --limit 50`
    """
    with open_store() as store:
        result = store.snapshots.diff(a, b)
    if as_json:
        print_json(to_json(result))
        return
    console.print(
        f"[bold]{escape(result.a.dataset)}[/]: snapshot {a} ({result.a.patterns} patterns, "
        f"as of {result.a.as_of:%Y-%m-%d %H:%M:%S}) -> snapshot {b} ({result.b.patterns} "
        f"patterns, as of {result.b.as_of:%Y-%m-%d %H:%M:%S})"
    )
    if result.empty:
        console.print("no changes: both snapshots have the same patterns")
        return
    table = Table("change", "source", "labelled by", "import", "patterns")
    for row in result.summary().itertuples(index=False):
        table.add_row(
            row.change,
            escape(row.source),
            escape(row.labelled_by or ""),
            str(row.batch_id),
            str(row.patterns),
        )
    console.print(table)
    _print_changes(result, limit)


def _print_changes(result: SnapshotDiff, limit: int) -> None:
    """Up to ``limit`` pattern ids of each kind of change, with what a reader needs."""
    lines: dict[str, list[str]] = {
        "added": [
            f"{i}: {label}"
            for i, label in zip(result.added.index, result.added["label"], strict=True)
        ],
        "removed": [
            f"{i}: {why}" + (f" ({reason})" if reason else "")
            for i, why, reason in zip(
                result.removed.index, result.removed["why"], result.removed["reason"], strict=True
            )
        ],
        "relabelled": [
            f"{r.old_id} -> {r.new_id}: {r.old_label} -> {r.new_label} ("
            + ", ".join(str(x) for x in (r.labelled_by or r.source, r.reason) if x)
            + ")"
            for r in result.relabelled.itertuples(index=False)
        ],
        "held out in B, not A": [str(i) for i in result.held_out_added],
        "held out in A, not B": [str(i) for i in result.held_out_removed],
    }
    for kind, shown in lines.items():
        if not shown:
            continue
        more = f", the first {limit} shown" if len(shown) > limit else ""
        console.print(f"[bold]{kind}[/] ({len(shown)}{more}):")
        for line in shown[:limit]:
            console.print(f"  {escape(line)}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the datasets with their pattern counts.

    Example: `trenches data list`
    """
    with open_store() as store:
        summaries = [d.summary() for d in store.datasets.list()]
    if as_json:
        print_json(to_json(summaries))
        return
    if not summaries:
        console.print("no datasets yet; create one with `trenches data create`")
        return
    table = Table("dataset", "task", "label", "active", "inactive", *SPLITS, "sources", "snapshots")
    for s in summaries:
        table.add_row(
            s.name,
            s.task,
            s.label_column,
            str(s.active),
            str(s.inactive),
            *(str(s.by_split.get(k, 0)) for k in SPLITS),
            ", ".join(s.by_source),
            str(s.snapshots),
        )
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="The dataset."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Counts of a dataset's active patterns by split, source, label and month.

    Example: `trenches data show cancer`
    """
    with open_store() as store:
        ds = store.datasets.get(name)
        s = ds.summary()
        snaps = ds.snapshots()
    if as_json:
        out = to_json(s)
        out["snapshot_list"] = to_json(snaps)
        print_json(out)
        return
    console.print(
        f"[bold]{s.name}[/]: {s.task}, label {s.label_column!r}; {s.active} active patterns, "
        f"{s.inactive} inactive, {s.imports} imports, {s.snapshots} snapshots"
    )
    if s.schema:
        console.print("inputs: " + ", ".join(f"{c.name} ({c.type})" for c in s.schema.columns))
    if ds.task == "regression":
        console.print(
            f"right within {ds.tolerance}"
            if ds.tolerance
            else "no tolerance: problem scores need one (trenches data tolerance)"
        )
    for title, counts in (
        ("split", s.by_split),
        ("source", s.by_source),
        ("label", s.by_label),
        ("month", s.by_month),
    ):
        table = Table(title, "patterns", "share", title_justify="left")
        total = sum(counts.values()) or 1
        for k, v in counts.items():
            table.add_row(str(k), str(v), f"{v / total:.1%}")
        console.print(table)
    if snaps:
        table = Table("snapshot", "as of", "patterns", "held out", "sources", "digest")
        for x in snaps:
            table.add_row(
                str(x.id),
                f"{x.as_of:%Y-%m-%d %H:%M}",
                str(x.patterns),
                str(len(x.held_out)),
                ", ".join(x.sources) if x.sources else "all",
                x.digest[:16],
            )
        console.print(table)


@app.command("check")
def check(
    name: str = typer.Argument(..., help="The dataset."),
    snapshot: int = typer.Option(
        None, "--snapshot", callback=int64, help="Check this snapshot's patterns."
    ),
    fail_on: str = typer.Option(
        None,
        "--fail-on",
        help="Exit with status 1 when any of these kinds is found, comma-separated: "
        + ", ".join(k for k in KINDS if k != "source-mix")
        + ", or all.",
    ),
    precision: int = typer.Option(
        4,
        "--precision",
        callback=int64,
        help="Significant digits numbers are compared at for leakage (1 to 17).",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Report duplicates, conflicting labels, leakage across splits, missing values, class
    balance, the mix of label sources, and likely label errors, with the pattern ids.
    The label-error check's folds are fitted on the Dask cluster `[compute] scheduler`
    (or TRENCHES_DASK_SCHEDULER) names, if any, with the same result as in process.

    Example: `trenches data check cancer --fail-on leakage,conflicting-labels`
    """
    kinds: list[str] = []
    if fail_on:
        kinds = [k.strip() for k in fail_on.split(",") if k.strip()]
        if kinds == ["all"]:
            kinds = [k for k in KINDS if k != "source-mix"]
        unknown = [k for k in kinds if k not in KINDS or k == "source-mix"]
        if unknown:
            raise InvalidInput(
                f"--fail-on {unknown[0]!r} is not a kind; use "
                + ", ".join(k for k in KINDS if k != "source-mix")
            )
    with open_store() as store, err_console.status(f"checking {name}...") as status:

        def fitted(done: int, folds: int) -> None:
            status.update(f"checking {name}: label errors, {done} of {folds} folds fitted...")

        report = store.datasets.get(name).check(
            snapshot=snapshot, precision=precision, progress=fitted
        )
    found = report.found(kinds)
    if as_json:
        out = to_json(report)
        out["failed_on"] = found
        print_json(out)
    else:
        what = f"snapshot {snapshot}" if snapshot else "active patterns"
        console.print(f"[bold]{report.dataset}[/]: {report.patterns} {what}")
        console.print(quality_table(report))
    if found:
        raise CheckFailed(f"found {', '.join(found)} (--fail-on)")
