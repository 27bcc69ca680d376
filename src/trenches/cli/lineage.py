"""``trenches lineage REF``: what data and code made a model version."""

from __future__ import annotations

import typer

from trenches.cli._output import console, open_store, print_json
from trenches.json_form import to_json


def lineage(
    ref: str = typer.Argument(..., help="A model version: name@3, name@production."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Walk a model version back to its run, code (commit, tag, dirty diff), data
    (snapshot, digest, patterns by source and split) and environment.

    Example: `trenches lineage cancer-clf@production`
    """

    with open_store() as store:
        found = store.lineage(ref)
    if as_json:
        print_json(to_json(found))
        return
    m = found.model
    console.print(
        f"[bold]{m['ref']}[/] registered {m['created_at']}"
        + (f", aliases {', '.join(m['aliases'])}" if m["aliases"] else "")
        + f", files {', '.join(m['formats'])}"
    )
    if found.run is None:
        console.print("  run: none recorded (registered outside a run)")
        return
    r = found.run
    console.print(
        f"  run {r['id']} {r['name']!r}: {r['status']}, {r['started_at']} - "
        f"{r['ended_at'] or 'running'}"
    )
    if r["params"]:
        console.print(
            "    params: " + ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
        )
    c = found.code or {}
    if c.get("state") == "none":
        console.print("  code: not in a git work tree")
    else:
        console.print(
            f"  code: commit {c.get('commit')} on {c.get('branch')} ({c.get('state')})"
            + (f", tag {c['tag']}" if c.get("tag") else "")
            + (f", dirty diff {c['dirty_diff_sha256']}" if c.get("dirty_diff_sha256") else "")
        )
    if found.snapshot is None:
        console.print("  data: no snapshot recorded")
    else:
        s = found.snapshot
        console.print(
            f"  data: snapshot {s['id']} of {s['dataset']} as of {s['as_of']}"
            + (f" from {', '.join(s['sources'])}" if s["sources"] else "")
            + f": {s['patterns']} patterns, digest {s['digest']}"
        )
        d = found.data or {}
        console.print("    by source: " + ", ".join(f"{k} {v}" for k, v in d["by_source"].items()))
        console.print("    by split:  " + ", ".join(f"{k} {v}" for k, v in d["by_split"].items()))
    if found.environment:
        e = found.environment
        console.print(
            f"  environment: {e['python']} on {e['platform']}, {e['packages']} packages ("
            + ", ".join(f"{k} {v}" for k, v in e["key_packages"].items())
            + ")"
        )
