"""``trenches demo``: a small project built from scikit-learn's breast-cancer data.

Patterns arrive over four simulated months from an expert and from a noisy crowd;
a few duplicates, conflicting labels and near-copies across splits are planted;
a snapshot freezes the data, and the quality report finds what was planted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import trenches
from trenches.cli._output import quality_table
from trenches.patterns.codec import splits_of

MONTHS = ["2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15"]


def _cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


def _say(console: Console, text: str) -> None:
    console.print(f"\n[bold cyan]>[/] {text}")


def run(folder: Path, console: Console) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    store = trenches.open(folder / ".trenches")
    if "cancer" in store.datasets:
        console.print(
            f"a demo project exists in {folder.resolve()} already; run the demo in an empty folder"
        )
        store.close()
        return
    rng = np.random.default_rng(7)
    frame = _cancer()
    order = rng.permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)

    _say(console, f"A store in {store.location.sqlite_path}: SQLite, WAL, with Alembic migrations.")
    # A fixed salt, so that the demo tells the same story (the same splits) every time.
    ds = store.datasets.create(
        "cancer", task="classification", label="diagnosis", salt="7472656e636865732d64656d6f2d3031"
    )
    console.print(
        "Created dataset [bold]cancer[/]: 30 numeric inputs, label 'diagnosis' "
        "(malignant / benign); the schema is inferred from the first import."
    )

    _say(console, "Patterns arrive over four months: most from an expert, some from a noisy crowd.")
    batches = np.array_split(np.arange(len(frame)), len(MONTHS))
    crowd_flipped: list[int] = []
    for month, rows in zip(MONTHS, batches, strict=True):
        part = frame.iloc[rows]
        n_crowd = len(part) // 4
        expert, crowd = part.iloc[n_crowd:], part.iloc[:n_crowd].copy()
        # The crowd gets about one label in eight wrong.
        flip = rng.random(len(crowd)) < 0.12
        crowd.loc[flip, "diagnosis"] = crowd.loc[flip, "diagnosis"].map(
            {"malignant": "benign", "benign": "malignant"}
        )
        when = datetime.fromisoformat(month).replace(tzinfo=UTC)
        r1 = ds.add(expert, source="expert", labelled_by="dr.house", created_at=when)
        r2 = ds.add(crowd, source="crowd", labelled_by="crowd-vendor", created_at=when)
        crowd_flipped += [r2.pattern_ids[int(i)] for i in np.flatnonzero(flip)]
        console.print(
            f"  {month}: {r1.rows} expert + {r2.rows} crowd patterns "
            f"(ids {r1.first_id}-{r2.last_id})"
        )

    _say(console, "Some mistakes creep in, as they do: we plant them to see them found.")
    planted_at = datetime.fromisoformat("2026-05-15").replace(tzinfo=UTC)
    # Rows 200-260 came from the expert in February (the crowd's share comes first).
    dupes = frame.iloc[200:204]
    conflicts = frame.iloc[210:213].copy()
    conflicts["diagnosis"] = conflicts["diagnosis"].map(
        {"malignant": "benign", "benign": "malignant"}
    )
    # Near-copies (the 9th significant digit differs) that the split hash sends to another
    # split than their original: leakage a plain duplicate check would miss.
    near = _near_copies_in_other_splits(ds, frame.iloc[220:400], want=3)
    ds.add(
        dupes,
        source="expert",
        labelled_by="dr.house",
        created_at=planted_at,
        note="re-sent by the hospital",
    )
    ds.add(conflicts, source="crowd", labelled_by="crowd-vendor", created_at=planted_at)
    ds.add(
        near, source="crowd", labelled_by="crowd-vendor", created_at=planted_at, note="re-measured"
    )
    console.print(
        f"  {len(dupes)} exact duplicates, {len(conflicts)} inputs with a conflicting label, "
        f"{len(near)} near-copies in another split"
    )

    _say(
        console,
        "The expert reviews one crowd label; patterns are immutable, so the old "
        "one is kept and the new one points back to it.",
    )
    info = ds.pattern_info()
    crowd_ids = info.index[info["source"] == "crowd"].to_numpy()
    pid = int(crowd_ids[0])
    old = store.patterns.get(pid)
    new_label = "benign" if old.label == "malignant" else "malignant"
    new = store.patterns.relabel(
        pid, new_label, source="expert", labelled_by="dr.house", reason="second opinion"
    )
    history = store.patterns.history(new.id)
    for p in history.patterns:
        state = "active" if p.active else f"deactivated {p.deactivated_at:%Y-%m-%d}"
        console.print(f"  pattern {p.id}: {p.label} by {p.source} ({state})")

    _say(console, "Snapshots freeze what a model trains on, with a content digest.")
    snap_all = ds.snapshot(note="all sources")
    snap_march = ds.snapshot(as_of="2026-03-31", sources=["expert"], note="expert, Q1")
    rebuilt = snap_march.verify()
    for s in (snap_all, snap_march):
        console.print(
            f"  snapshot {s.id}: {s.patterns} patterns as of {s.as_of:%Y-%m-%d}"
            f"{' from ' + ', '.join(s.sources) if s.sources else ''}, digest {s.digest[:16]}..."
        )
    console.print(
        f"  rebuilt from timestamps alone, snapshot {snap_march.id} gives the same "
        f"digest: {rebuilt}"
    )
    X, _y, w, ids = snap_all.training_data("train", weighting="exponential", half_life_days=60)
    months = ds.pattern_info().loc[ids, "created_at"].dt.strftime("%Y-%m").to_numpy()
    by_month = pd.Series(w).groupby(months).mean()
    console.print(
        f"  training data: X {X.shape[0]}x{X.shape[1]}; recency weights (half-life 60 days) "
        "by month of arrival: " + ", ".join(f"{m} {v:.2f}" for m, v in by_month.items())
    )

    summary = ds.summary()
    table = Table("split", "patterns", title="cancer, active patterns", title_justify="left")
    for k, v in summary.by_split.items():
        table.add_row(k, str(v))
    console.print(table)

    _say(console, f"The quality report on snapshot {snap_all.id} finds what was planted.")
    report = ds.check(snapshot=snap_all.id)
    console.print(quality_table(report))
    label_errors = set(report.finding("label-errors").pattern_ids)
    caught = len(label_errors & set(crowd_flipped))
    console.print(
        f"  confident learning caught {caught} of the {len(crowd_flipped)} labels the crowd "
        f"got wrong on purpose; {len(label_errors) - caught} more are worth a look"
    )
    _train_versions(store, ds, folder, console)
    _problems(store, ds, folder, console)
    production = _gates(store, folder, console)
    _explain(store, console)
    _serve(store, ds, folder, console)
    _review(store, ds, crowd_flipped, console)
    _monitor(store, ds, folder, console)
    _report(store, folder, console)
    _say(
        console,
        "Next: `trenches data show cancer`, `trenches data check cancer --json`, "
        f"`trenches data history {new.id}`, `trenches runs list`, `trenches models show "
        f"cancer-clf`, `trenches lineage {production}`, `trenches problems show "
        f"small-malignant`, `trenches check {production} --junit gates.xml`, "
        f"`trenches explain {production} --problem small-malignant`, `trenches serve "
        f"{production.split('@')[0]}@production`, `trenches requests list`, `trenches monitor "
        "history`, `trenches retrain cancer-clf --history`, `trenches compare "
        f"{production} cancer-clf@5`, `trenches predictions export {production} --patterns "
        "validation --out predictions.parquet`, open report.html, "
        f"in {folder.resolve()}",
    )
    store.close()


TRAIN_SCRIPT = """\
# The training code of the demo: each version of this file is a commit.
MODEL = {model!r}
PARAMS = {params!r}
"""


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=trenches demo", "-c", "user.email=demo@trenches.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _train_versions(
    store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console
) -> str:
    """Four model versions over the months, each a tagged run in a throw-away repo."""
    import os
    import shutil

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _say(
        console,
        "Models are trained month by month, each run tagged in the training code's "
        "git repository, and registered.",
    )
    repo = (folder / "training-code").resolve()
    has_git = shutil.which("git") is not None
    if has_git:
        repo.mkdir(exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
    else:
        console.print("  (git is not installed: the runs record that there was no git)")
    plan: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("2026-02-28", "logistic", {"C": 0.1}, "expert"),
        ("2026-03-31", "logistic", {"C": 1.0}, None),
        ("2026-04-30", "forest", {"n_estimators": 50}, None),
        ("2026-05-31", "forest", {"n_estimators": 200}, None),
    ]
    home = Path.cwd()
    scores = {}
    try:
        if has_git:
            os.chdir(repo)
        for i, (month, kind, params, sources) in enumerate(plan):
            if has_git:
                (repo / "train.py").write_text(TRAIN_SCRIPT.format(model=kind, params=params))
                _git(repo, "add", "train.py")
                _git(repo, "commit", "-q", "-m", f"train {kind} {params}")
                if i == len(plan) - 1:
                    # The last run starts with an edit not yet committed: a dirty tree.
                    (repo / "notes.md").write_text("try class weights next\n")
            snap = ds.snapshot(as_of=month, sources=[sources] if sources else None)
            X, y, w, _ = snap.training_data("train", weighting="exponential", half_life_days=90)
            Xv, yv, _, _ = snap.training_data("validation")
            if kind == "logistic":
                model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **params))
            else:
                model = RandomForestClassifier(random_state=0, **params)
            with store.run(
                f"{kind}-{month[:7]}",
                snapshot=snap,
                params={"model": kind, **params, "weighting": "exponential"},
            ) as run:
                model.fit(
                    X,
                    y,
                    **(
                        {"logisticregression__sample_weight": w}
                        if kind == "logistic"
                        else {"sample_weight": w}
                    ),
                )
                accuracy = accuracy_score(yv, model.predict(Xv))
                run.log_metrics({"val_accuracy": accuracy, "train_patterns": len(X)})
                version = run.log_model(model, "cancer-clf")
            scores[version.ref] = accuracy
            info = store.runs.get(run.id)
            console.print(
                f"  {version.ref}: {kind} {params} on snapshot {snap.id} ({snap.patterns} "
                f"patterns as of {month}), accuracy {accuracy:.3f} on that snapshot's "
                f"{len(yv)} validation patterns, "
                f"files {', '.join(version.formats)}, code "
                f"{(info.git_commit or 'none')[:8]} {info.git_state}"
                + (f", tag {info.git_tag}" if info.git_tag else "")
            )
    finally:
        os.chdir(home)
    # The March model went to production in March; the newer ones wait for the gates.
    first_live = list(scores)[1]
    store.models.promote(first_live, "production", reason="went live in March")
    console.print(f"  {first_live} went to production in March")
    found = store.lineage("cancer-clf@production")
    console.print("  lineage of cancer-clf@production:")
    assert found.run is not None and found.snapshot is not None and found.data is not None
    code = found.code or {}
    console.print(f"    run {found.run['id']} {found.run['name']!r} ({found.run['status']})")
    console.print(f"    code {code.get('commit')} ({code.get('state')}), tag {code.get('tag')}")
    console.print(
        f"    snapshot {found.snapshot['id']}, digest {found.snapshot['digest'][:16]}..., "
        + ", ".join(f"{k} {v}" for k, v in found.data["by_source"].items())
    )
    return first_live


def _near_copies_in_other_splits(
    ds: trenches.Dataset, candidates: pd.DataFrame, want: int
) -> pd.DataFrame:
    """Copies of candidates nudged in the 9th digit that the split hash puts elsewhere."""
    from trenches.patterns import codec
    from trenches.patterns import inputs as inp

    assert ds.schema is not None
    out = []
    for i in range(len(candidates)):
        row = candidates.iloc[[i]]
        copy = row.copy()
        copy["mean_radius"] = copy["mean_radius"] * (1 + 1e-8)
        keys = []
        for f in (row, copy):
            cols = {
                c.name: inp.coerce(f[c.name], c.type, file=None, offset=0, field=c.name)
                for c in ds.schema.columns
            }
            keys.append(codec.encode(ds.schema, cols, 1, ds.salt).keys[0])
        a, b = splits_of(keys, ds.split_ratios)
        if a != b:
            out.append(copy)
        if len(out) == want:
            break
    return pd.concat(out) if out else candidates.iloc[:0]


def _problems(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Three known failure modes, backfilled over every version; the per-problem table,
    a comparison of the last two versions, and the graph."""
    from trenches.backfill import backfill
    from trenches.comparison import compare
    from trenches.evaluation import split_set
    from trenches.report.problems import write_graph

    _say(
        console,
        "Known failure modes go into the problem database; every version is "
        "backfilled on their patterns.",
    )
    frame = ds.patterns()
    label = frame["diagnosis"]
    radius, texture = frame["mean_radius"], frame["worst_texture"]
    plans = [
        (
            "small-malignant",
            "Misses small malignant tumours",
            "high",
            frame.index[(label == "malignant") & (radius < 13.5)][:8],
            frame.index[(label == "benign") & (radius < 13.5)][:5],
        ),
        (
            "large-benign",
            "Calls large benign tumours malignant",
            "medium",
            frame.index[(label == "benign") & (radius > 15)][:8],
            frame.index[(label == "malignant") & (radius > 15)][:5],
        ),
        (
            "rough-texture",
            "Unsure on very rough textures",
            "low",
            frame.index[texture > texture.quantile(0.9)][:12],
            frame.index[:0],
        ),
    ]
    for slug, title, severity, positive, negative in plans:
        store.problems.create(slug, dataset="cancer", title=title, severity=severity)
        result = store.problems.add(slug, positive=list(positive), negative=list(negative))
        console.print(
            f"  {slug}: {len(positive)} positive and {len(negative)} negative patterns; "
            f"{result.predicted} predictions from {result.versions} versions"
        )
    done = backfill(store, dataset="cancer")
    console.print(
        f"  and on the validation and test splits: {done.computed} more predictions by "
        f"{done.versions} versions (`trenches backfill`), so every version stands on the "
        "same patterns"
    )
    _, validation = split_set(ds, "validation")
    table = store.problems.history("cancer")
    versions = list(dict.fromkeys(table.sort_values("created_at")["version"]))
    shown = Table(
        "problem",
        *versions,
        title="each problem's patterns right: all of them · held out (not trained on)",
        title_justify="left",
    )
    for slug, rows in table.groupby("problem", sort=False):
        by = {r.version: r for r in rows.itertuples()}
        shown.add_row(str(slug), *(_score_cell(by[v]) for v in versions))
    accuracy = table.drop_duplicates("version").set_index("version")["validation_accuracy"]
    shown.add_row(
        f"[dim]accuracy on cancer:validation ({len(validation)})[/]",
        *(f"{accuracy[v]:.1%}" for v in versions),
    )
    console.print(shown)
    newest = table[(table["version"] == versions[-1]) & (table["problem"] == "small-malignant")]
    row = newest.iloc[0]
    console.print(
        f"  {versions[-1]} trained on {int(row.trained_on)} of the {row.patterns} small-malignant "
        f"patterns: its {row.score:.0%} over all of them is partly memory. Gates measure the "
        "held-out ones, and new snapshots hold the open problems' patterns out of training, "
        "so the next model is scored on what it did not see."
    )
    versions = [v.ref for v in store.models.versions("cancer-clf")]
    diff = compare(store, versions[-2], versions[-1])
    console.print(
        f"  {versions[-2]} -> {versions[-1]} on {diff.overall.size} shared patterns: "
        f"{len(diff.fixed)} fixed, {len(diff.broken)} broken "
        f"(McNemar p = {diff.overall.p_value:.2g}); accuracy "
        f"{diff.deltas.get('accuracy', float('nan')):+.3f}"
    )
    for slug, flips in diff.problems.items():
        if flips.fixed or flips.broken:
            console.print(f"    {slug}: fixed {list(flips.fixed)}, broken {list(flips.broken)}")
    html = write_graph(store, folder / "problems.html", "cancer")
    png = write_graph(store, folder / "problems.png", "cancer")
    console.print(f"  the graph: {html.resolve()} (click a point) and {png.name}")


def _score_cell(row: Any) -> str:
    """``100% · 1/1``: the share right over all of a problem's patterns, and right of
    those held out (not trained on) by the version."""
    return f"{row.score:.0%} · {row.held_out_right}/{row.held_out}"


GATES = """\
# Sign-off criteria for cancer-clf, agreed before training (see docs/gates.md).

[[gates.cancer-clf]]
metric = "accuracy"
min = 0.92

[[gates.cancer-clf]]
metric = "recall[malignant]"
min = 0.84

[[gates.cancer-clf]]
problems = "open"
min-score = 0.85

[[gates.cancer-clf]]
problems = "open"
no-break = "production"

[[gates.cancer-clf]]
metric = "accuracy"
vs = "production"
tolerance = 0.01
"""


def _gates(store: trenches.Store, folder: Path, console: Console) -> str:
    """trenches.toml with gates; check the versions newer than production; promote the
    newest that passes, after showing that a failing one is refused."""
    from trenches.errors import CheckFailed

    _say(
        console,
        "Sign-off gates are written in trenches.toml; each version newer than production "
        "is checked against them.",
    )
    toml = (folder / "trenches.toml").resolve()
    toml.write_text(GATES, encoding="utf-8")
    console.print(f"  wrote {toml.name}: {GATES.count('[[gates.')} gates for cancer-clf")
    production = store.models.get("cancer-clf@production")
    newer = [v.ref for v in store.models.versions("cancer-clf") if v.version > production.version]
    passing = []
    failing = []
    for ref in newer:
        check = store.gates.check(ref, path=toml)
        n = len(check.results)
        if check.passed:
            passing.append(ref)
            console.print(f"  {ref}: [green]passes {n - len(check.skipped)} of {n} gates[/]")
        else:
            failing.append(ref)
            console.print(f"  {ref}: [bold red]fails {len(check.failed)} of {n} gates[/]")
        for r in check.results:
            if r.status == "fail":
                console.print(f"    [red]FAIL[/] {escape(r.gate)}: {escape(r.detail)}")
    for ref in failing:
        try:
            store.models.promote(ref, "production", reason="the newest model")
        except CheckFailed as e:
            console.print(f"  promoting {ref} is refused: {escape(str(e).split(';')[0])}")
    if passing:
        best = passing[-1]
        store.models.promote(best, "production", reason="passed every gate")
        console.print(f"  {best} passed every gate and is promoted to production")
        return best
    return production.ref


def _explain(store: trenches.Store, console: Console) -> None:
    """LIME explanations of two problem patterns by the production version."""
    _say(console, "Why does production call these problem patterns what it does? LIME explains.")
    version = store.models.get("cancer-clf@production")
    chosen = [store.problems.get("small-malignant").positive[0]]
    chosen.append(store.problems.get("large-benign").positive[0])
    for e in store.explanations.explain(version.ref, chosen, seed=0, num_samples=2000):
        toward = escape(", ".join(f"{c} ({w:+.2f})" for _, c, w in e.toward()[:3]))
        against = escape(", ".join(f"{c} ({w:+.2f})" for _, c, w in e.against()[:2]))
        prob = f" ({e.probability:.0%})" if e.probability is not None else ""
        console.print(f"  pattern {e.pattern_id}: {version.ref} says {e.prediction}{prob}")
        console.print(f"    toward: {toward}")
        if against:
            console.print(f"    against: {against}")


def _report(store: trenches.Store, folder: Path, console: Console) -> None:
    from trenches.report.html import write_report

    _say(console, "Everything above in one file that opens offline: the report.")
    path = write_report(store, folder / "report.html")
    console.print(
        f"  {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB, Plotly embedded): metric "
        "over time, problems with drill-down, gate checks, the two newest versions "
        "compared, explanations, data quality"
    )


@contextmanager
def _serving(store: trenches.Store) -> Iterator[str]:
    """Serve ``cancer-clf@production`` on a free loopback port in a thread; yield its
    URL; stop gracefully (the request log is written first)."""
    import socket
    import threading
    import time

    import uvicorn

    from trenches.serving.app import Settings, create_app

    assert store.location.sqlite_path is not None
    app = create_app(
        Settings(ref="cancer-clf@production", store=str(store.location.sqlite_path.parent))
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _serve(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Serve production for a few seconds on loopback, ask it in every protocol, post
    feedback on a wrong answer, and make that answer a problem pattern."""
    import httpx

    from trenches.evaluation import split_set

    _say(
        console,
        "Production is served over HTTP for a few seconds: the Open Inference Protocol, "
        "MLflow's /invocations and /predict; each request is logged.",
    )
    _, test = split_set(ds, "test")
    frame = ds.patterns(ids=test.tolist())
    truth = frame.pop("diagnosis")
    with _serving(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        five = frame.iloc[:5]
        tensors = [
            {"name": c, "shape": [5], "datatype": "FP64", "data": five[c].tolist()}
            for c in five.columns
        ]
        v2 = client.post("/v2/models/cancer-clf/infer", json={"inputs": tensors}).json()
        console.print(
            f"  V2 infer, 5 rows: {v2['outputs'][0]['data']} from "
            f"{v2['parameters']['model_version']}, request {v2['parameters']['request_id']}"
        )
        split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
        answer = client.post("/invocations", json={"dataframe_split": split}).json()
        predicted = answer["predictions"]
        console.print(
            f"  MLflow /invocations, {len(predicted)} test patterns in one request: "
            f"{sum(p == t for p, t in zip(predicted, truth, strict=True))} right, "
            f"request {answer['request_id']}"
        )
        one = client.post("/predict", json=frame.iloc[:1].to_dict(orient="records")).json()
        first = one["predictions"][0]
        scores = ", ".join(f"{c} {v:.3f}" for c, v in first["scores"].items())
        console.print(f"  /predict, 1 record: {first['label']} ({scores})")
        wrong = [i for i, (p, t) in enumerate(zip(predicted, truth, strict=True)) if p != t]
        if wrong:
            row = wrong[0]
            r = client.post(
                "/feedback",
                json={
                    "request_id": answer["request_id"],
                    "row": row,
                    "label": truth.iloc[row],
                    "comment": "biopsy result",
                },
            )
            console.print(
                f"  feedback on row {row}: the answer was {predicted[row]}, the biopsy "
                f"says {truth.iloc[row]} ({r.status_code} accepted)"
            )
    logged = store.requests.list()
    console.print(f"  stopped; the request log holds {len(logged)} requests")
    if wrong:
        store.problems.create(
            "production-misses",
            dataset="cancer",
            title="Wrong answers reported from production",
            severity="high",
        )
        made = store.requests.to_patterns([answer["request_id"]], problem="production-misses")
        created = made.created[0]
        console.print(
            f"  the wrong answer is now pattern {created.pattern_id} (source production) of "
            "problem production-misses; every version was backfilled on it:"
        )
        score = {s.predictor: s for s in store.problems.scores("production-misses")}
        console.print(
            "    "
            + ", ".join(f"{ref} {'right' if s.right else 'wrong'}" for ref, s in score.items())
        )


def _review(
    store: trenches.Store, ds: trenches.Dataset, crowd_flipped: list[int], console: Console
) -> None:
    """The expert reviews crowd labels that production learnt wrong; the corrected
    patterns make a trainable problem, so the next model may learn them."""
    _say(
        console,
        "The expert reviews crowd labels in the training data that production learnt "
        "as the crowd gave them:",
    )
    production = store.models.get("cancer-clf@production")
    info = ds.pattern_info()
    in_problems = {i for p in store.problems.list() for i in p.patterns()}
    candidates = [
        i
        for i in crowd_flipped
        if i in info.index and info.loc[i, "split"] == "train" and i not in in_problems
    ]
    frame = ds.patterns(ids=candidates)
    said = store.models.load(production.ref).predict(frame.drop(columns="diagnosis"))
    learnt = frame.index[said == frame["diagnosis"].to_numpy()][:3].tolist()
    corrected = []
    for pid in learnt:
        wrong = frame.loc[pid, "diagnosis"]
        right = "benign" if wrong == "malignant" else "malignant"
        new = store.patterns.relabel(
            pid, right, source="expert", labelled_by="dr.house", reason="biopsy review"
        )
        corrected.append(new.id)
        console.print(
            f"  pattern {pid}: the crowd said {wrong}, the biopsy {right}; {production.ref} "
            f"learnt {wrong}. Relabelled as pattern {new.id}"
        )
    if not corrected:
        console.print("  production learnt none of the crowd's wrong labels")
        return
    store.problems.create(
        "crowd-mistakes",
        dataset="cancer",
        title="Crowd labels the expert corrected",
        severity="medium",
        trainable=True,
    )
    store.problems.add("crowd-mistakes", positive=corrected)
    console.print(
        f"  they make problem crowd-mistakes, marked trainable: unlike the other open "
        f"problems, new snapshots keep its {len(corrected)} patterns in the training data, "
        "so the next model can learn the right labels"
    )


def _after_retrain(
    store: trenches.Store, production: str, candidate: str, console: Console
) -> None:
    """What changed in the data between production's snapshot and the candidate's, and
    which flipped problem patterns it explains."""
    from trenches.comparison import compare

    result = compare(store, production, candidate)
    data = result.data
    if data is None:
        return
    _say(
        console,
        f"What changed in the data between {production}'s snapshot and {candidate}'s? "
        f"(`trenches data diff {data.a.id} {data.b.id}`)",
    )
    counts = (
        data.summary().groupby(["change", "source", "labelled_by"], dropna=False)["patterns"].sum()
    )
    for (change, source, who), n in counts.items():
        by = f" by {who}" if isinstance(who, str) else ""
        console.print(f"  {n} {change} ({source}{by})")
    for r in data.relabelled.itertuples():
        console.print(
            f"    pattern {r.old_id} -> {r.new_id}: {r.old_label} -> {r.new_label} "
            f"({r.labelled_by}: {r.reason})"
        )
    console.print(
        f"  {len(data.b.held_out)} patterns of open problems are held out of {candidate}'s "
        f"training data ({len(data.a.held_out)} of {production}'s)"
    )
    _say(
        console,
        f"`trenches compare {production} {candidate}`: the flips of each problem, and which "
        "of them the data changes explain:",
    )
    for slug, flips in result.problems.items():
        notes = [flips.training_note(production, candidate), flips.change_note()]
        said = "; ".join(n for n in notes if n)
        console.print(
            f"  {slug}: {len(flips.fixed)} fixed, {len(flips.broken)} broken"
            + (f" ({escape(said)})" if said else "")
        )


MONITOR = """
# Drift monitoring (see docs/monitoring.md): the defaults, written out.
[monitor]
alpha = 0.05        # false discovery rate of the p-value tests, over all columns
wasserstein = 0.1   # normalised Wasserstein distance (large samples)
psi = 0.25

# The continuous-training loop (see docs/retraining.md).
[retrain.cancer-clf]
train = "retrain_cancer:fit"
weighting = "exponential"
half-life-days = 90
"""

TRAINING_MODULE = '''\
"""The demo's training function: trenches retrain calls it with a snapshot's training
data (X, y, sample_weight with recency weights, pattern_ids)."""

from sklearn.ensemble import RandomForestClassifier


def fit(data):
    model = RandomForestClassifier(n_estimators=200, random_state=0)
    return model.fit(data.X, data.y, sample_weight=data.sample_weight)
'''

#: A new imaging device reads textures a third higher than the old one did.
DRIFTED = ("mean_texture", "texture_error", "worst_texture")


def _monitor(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Monitor the quiet window; send drifted traffic; find the drift; label it; retrain
    with recency weights and let the gates decide."""
    import logging

    import httpx

    from trenches import timestamps
    from trenches.evaluation import split_set

    # The demo prints the alert itself; `trenches monitor` also logs it to stderr.
    logging.getLogger("trenches.monitoring").addHandler(logging.NullHandler())

    _say(
        console,
        "Is production drifting? The requests so far against the training data of the "
        "version that answered them:",
    )
    toml = (folder / "trenches.toml").resolve()
    with toml.open("a", encoding="utf-8") as f:
        f.write(MONITOR)
    (folder / "retrain_cancer.py").write_text(TRAINING_MODULE, encoding="utf-8")
    quiet = store.monitoring.run("cancer-clf@production", path=toml)
    console.print(
        f"  report #{quiet.id}: {quiet.current}; "
        + (
            "[green]no drift[/] in "
            f"{len(quiet.report.columns)} columns (tests: "
            + ", ".join(sorted({c.test for c in quiet.report.columns}))
            + ")"
            if not quiet.drifted
            else f"[red]drift in {', '.join(quiet.report.drifted_columns)}[/]"
        )
    )

    _say(
        console,
        "A new imaging device goes live: it reads textures a third higher. Its traffic, "
        "and the biopsy results a week later:",
    )
    _, ids = split_set(ds, "validation")
    frame = ds.patterns(ids=ids.tolist()).sample(frac=1.0, random_state=3)
    _, more = split_set(ds, "test")
    frame = pd.concat([frame, ds.patterns(ids=more.tolist())]).reset_index(drop=True)
    truth = frame.pop("diagnosis")
    for column in DRIFTED:
        frame[column] = frame[column] * 1.35
    since = timestamps.now_us()
    sent: list[str] = []
    with _serving(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(frame), 10):
            part = frame.iloc[start : start + 10]
            answer = client.post("/predict", json=part.to_dict(orient="records")).json()
            sent.append(answer["request_id"])
            for row, label in enumerate(truth.iloc[start : start + 10]):
                client.post(
                    "/feedback",
                    json={"request_id": answer["request_id"], "row": row, "label": label},
                )
    console.print(f"  {len(sent)} requests, {len(frame)} rows, each with its biopsy result")
    found = store.monitoring.run("cancer-clf@production", since=since, path=toml)
    report = found.report
    table = Table(
        "column",
        "test",
        "statistic",
        "bound",
        "PSI",
        title=f"report #{found.id}: drifted columns of {len(report.columns)}",
        title_justify="left",
    )
    for c in report.columns:
        if c.drifted:
            table.add_row(
                c.name,
                c.test,
                f"{c.statistic:.3g}"
                + (f" (p adj {c.p_adjusted:.2g})" if c.p_adjusted is not None else ""),
                f"p < {report.settings.alpha:g}" if c.p_value is not None else f"{c.threshold:g}",
                f"{c.psi:.3f}" if c.psi is not None else "-",
            )
    console.print(table)
    console.print(f"  {escape(report.columns[0].why)}")
    pred = report.prediction
    if pred is not None:
        console.print(
            f"  predictions: {'[red]drifted[/]' if pred.drifted else 'no drift'} "
            f"({pred.test} {pred.statistic:.3g})"
        )
    if found.metrics:
        window = found.metrics["window"]
        ref = found.metrics.get("reference") or {}
        on_train = ref.get("accuracy", float("nan"))
        console.print(
            f"  accuracy on the {window['labelled']} rows with biopsy results: "
            f"{window['accuracy']:.3f} (on its training data: {on_train:.3f})"
        )
    if found.alert is not None:
        console.print(f"  alert: {escape(found.alert.message)}")
    unusual = store.monitoring.outliers("cancer-clf@production", since=since, top=3)
    console.print("  the three least usual rows (trenches monitor outliers):")
    for r in unusual.itertuples():
        console.print(f"    {r.request_id} row {r.row}: {escape(r.unusual)}")

    _say(
        console,
        "The labelled drifted rows become patterns (source production); the loop retrains "
        "with recency weights (half-life 90 days), checks the gates and compares with "
        "production:",
    )
    made = store.requests.to_patterns(sent)
    console.print(f"  {len(made.created)} new production patterns in dataset cancer")
    import os

    home = Path.cwd()
    repo = folder / "training-code"
    try:
        # The run records (and tags) the training code's repository, not the folder the
        # demo was started from.
        if (repo / ".git").exists():
            os.chdir(repo)
        result = store.retrains.run("cancer-clf", report_id=found.id, path=toml)
    finally:
        os.chdir(home)
    held = (result.details.get("snapshot") or {}).get("held_out", 0)
    console.print(
        f"  retrain #{result.id} (set off by report #{found.id}): candidate "
        f"{result.candidate}, trained on snapshot {result.snapshot_id}"
        + (f", which holds out the {held} patterns of open problems" if held else "")
    )
    for g in result.gates:
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]skip[/]"}
        console.print(f"    {mark[g.status]} {escape(g.gate)}: {escape(g.detail)}")
    if result.figures is not None:
        console.print(f"  {escape(result.figures.why)}")
    if result.promoted:
        console.print(f"  [green]{result.candidate} passed and is better: it is production now[/]")
    else:
        console.print(
            f"  [yellow]{result.candidate} stays a candidate:[/] {escape(result.reason or '')}"
        )
    if result.candidate is not None and result.production is not None:
        _after_retrain(store, result.production, result.candidate, console)
