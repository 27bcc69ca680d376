"""Training: four model versions over the months, each a run tagged in a throw-away
git repository of the training code, registered; the March one goes to production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

import trenches
from trenches.demo.narration import say

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


def train_versions(
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

    say(
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
