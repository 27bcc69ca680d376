"""The demo tells its story end to end on a fresh folder, through the public API only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import trenches
from webui import DemoRun

from conftest import chromium


@pytest.mark.slow
def test_the_demo_finds_what_it_planted_and_traces_its_models(demo_run: DemoRun) -> None:
    # The demo as `make demo` runs it (into a relative folder), run once for the
    # session: the web UI's tests copy its store.
    text = demo_run.text
    for kind in ("duplicates", "conflicting-labels", "leakage", "label-errors"):
        assert re.search(rf"{kind}\s.*found", text), kind
    assert "gives the same digest: True" in text
    with trenches.open(demo_run.folder / ".trenches", create=False) as store:
        _assert_versions_problems_and_gates(store)
        retrain = _assert_monitored_and_retrained(store)
        _assert_held_out_and_explained_by_the_data(store, retrain, text)
    _assert_files_and_charts(demo_run.folder, text)


def _assert_versions_problems_and_gates(store: trenches.Store) -> None:
    versions = store.models.versions("cancer-clf")
    # Four trained by month, the fifth by the retraining loop after the drift.
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]
    assert all("onnx" in v.formats for v in versions)
    runs = store.runs.list()
    assert len(runs) == 5 and all(r.status == "finished" for r in runs)
    production = store.lineage("cancer-clf@production")
    assert production.snapshot is not None and production.code is not None
    if production.code["state"] != "none":  # git is on the machine
        assert production.code["tag"] == f"trenches/run-{production.run['id']}"  # type: ignore[index]
    problems = {p.slug for p in store.problems.list()}
    assert problems == {
        "small-malignant",
        "large-benign",
        "rough-texture",
        "production-misses",  # made from a wrong answer of the server
        "crowd-mistakes",  # crowd labels the expert corrected (trainable)
    }
    # The backfill made the versions x problems x patterns table complete.
    assert all(s.missing == 0 for slug in problems for s in store.problems.scores(slug))
    # Gates: every version newer than March's was checked, one failed, and the
    # one that passed is production.
    checks = {v.ref: store.gates.latest(v.ref) for v in versions[2:4]}
    assert all(c is not None for c in checks.values())
    assert any(not c.passed for c in checks.values() if c is not None)
    promoted = store.models.alias_history("cancer-clf", "production")
    live = f"cancer-clf@{promoted[-1].to_version}"
    live_check = store.gates.latest(live)
    assert live_check is not None and live_check.passed
    # Two problem patterns are explained, by the production version.
    explained = store.explanations.list("cancer-clf@4")
    assert len(explained) == 2 and all(e.weights for e in explained)
    # Served: three requests logged, and a wrong answer became a problem pattern
    # that every version has a prediction for.
    misses = store.problems.get("production-misses")
    assert len(misses.positive) == 1
    assert all(s.missing == 0 for s in store.problems.scores("production-misses"))


def _assert_monitored_and_retrained(store: trenches.Store) -> trenches.Retrain:
    """The first window is quiet; the new device's traffic drifts in the texture
    columns, and only those; that report set off the retraining (returned)."""
    quiet, moved = reversed(store.monitoring.history("cancer-clf"))
    assert not quiet.drifted and quiet.report.current_rows > 100
    assert set(moved.report.drifted_columns) == {
        "mean_texture",
        "texture_error",
        "worst_texture",
    }
    assert moved.alert is not None and moved.metrics is not None
    [retrain] = store.retrains.history("cancer-clf")
    assert retrain.report_id == moved.id and retrain.candidate == "cancer-clf@5"
    assert retrain.status in ("promoted", "candidate") and retrain.reason
    assert [r["id"] for r in moved.retrains] == [retrain.id]
    return retrain


def _assert_held_out_and_explained_by_the_data(
    store: trenches.Store, retrain: trenches.Retrain, text: str
) -> None:
    # Held out: the table shows all and held-out scores; the versions trained month
    # by month saw most problem patterns, and the retraining snapshot held every open
    # problem's patterns out (the trainable crowd-mistakes kept in).
    assert "held out (not trained on)" in text and " · " in text
    scores = {s.predictor: s for s in store.problems.scores("small-malignant")}
    assert scores["cancer-clf@4"].trained_on >= 10
    assert scores["cancer-clf@5"].trained_on == 0
    fresh = store.snapshots.get(retrain.snapshot_id)
    open_ids = {
        i for p in store.problems.list(status="open") if not p.trainable for i in p.patterns()
    }
    assert set(fresh.held_out) == open_ids
    assert not set(fresh.training_data().pattern_ids) & open_ids
    crowd = store.problems.get("crowd-mistakes")
    assert crowd.trainable and set(crowd.positive) <= set(fresh.training_data().pattern_ids)

    # The data diff of production's snapshot and the candidate's lists the planted
    # relabels, and compare names them among the flips.
    production_snapshot = store.lineage("cancer-clf@4").snapshot
    assert production_snapshot is not None
    data = store.snapshots.diff(production_snapshot["id"], retrain.snapshot_id)
    relabels = data.relabelled
    assert set(relabels["labelled_by"]) == {"dr.house"}
    assert {"second opinion", "biopsy review"} == set(relabels["reason"])
    assert set(crowd.positive) <= set(relabels["new_id"])

    flips = store.compare("cancer-clf@4", "cancer-clf@5").problems["crowd-mistakes"]
    assert flips.fixed and "relabelled by dr.house (expert)" in flips.change_note()
    assert "relabelled by dr.house (expert) in imports" in text


def _assert_files_and_charts(demo: Path, text: str) -> None:
    assert (demo / "trenches.toml").exists()
    assert (demo / "report.html").stat().st_size > 1_000_000
    assert "is refused" in text and "passed every gate" in text
    assert "stays a candidate" in text or "it is production now" in text
    assert (demo / "problems.html").exists()
    assert (demo / "problems.png").exists()
    assert "shared patterns" in text and "fixed" in text
    # The demo's git repository is its own, not the one the tests run in.
    assert (demo / "training-code" / ".git").exists()
    # The report's charts have a point for every version, the retrained one included.
    metric, graph = _chart_points(demo / "report.html")
    assert metric == {"cancer-clf": 5}
    assert {k: v for k, v in graph.items() if "(all)" in k or "accuracy" in k} == {
        "small-malignant (all)": 5,
        "large-benign (all)": 5,
        "rough-texture (all)": 5,
        "production-misses (all)": 5,
        "crowd-mistakes (all)": 5,
        "validation accuracy": 5,
    }


def _chart_points(report: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The points of the metric chart and of the problem graph, per line, as drawn."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(report.resolve().as_uri())
        for div in ("metric-1", "problem-graph-1"):
            page.wait_for_selector(f"#{div} .scatterlayer .trace", timeout=30_000)
        counted = page.evaluate(
            """ids => ids.map(id => Object.fromEntries(
                document.getElementById(id).data.map(t =>
                    [t.name, t.y.filter(y => y !== null && y === y).length])))""",
            ["metric-1", "problem-graph-1"],
        )
    return counted[0], counted[1]


# --- only the public API ------------------------------------------------------------------


def private_uses(source: str, where: str) -> list[str]:
    """Each use in ``source`` of trenches beyond ``import trenches`` and the names of
    ``trenches.__all__``: an import of a trenches module other than the demo's own, a
    name imported from trenches that it does not export, or ``trenches.NAME`` for such a
    name (also through ``import trenches as alias``)."""
    public = set(trenches.__all__)
    found: list[str] = []
    aliases = {"trenches"}

    def own(module: str) -> bool:
        return module == "trenches.demo" or module.startswith("trenches.demo.")

    for node in ast.walk(ast.parse(source)):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "trenches":
                    aliases.add(alias.asname or "trenches")
                elif alias.name.startswith("trenches.") and not own(alias.name):
                    found.append(f"{at}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "trenches":
                found += [
                    f"{at}: from trenches import {a.name}"
                    for a in node.names
                    if a.name not in public
                ]
            elif node.module.startswith("trenches.") and not own(node.module):
                found.append(f"{at}: from {node.module} import ...")
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr not in public
            and node.attr != "demo"
        ):
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_demo_imports_only_what_trenches_exports() -> None:
    import trenches.demo

    folder = Path(trenches.demo.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) > 1, "the demo is a package of chapters"
    found = [u for f in files for u in private_uses(f.read_text(encoding="utf-8"), f.name)]
    assert found == []


def test_the_check_names_every_way_past_the_public_api() -> None:
    source = """
import trenches
import trenches as t
import trenches.evaluation
from trenches.cli._output import quality_table
from trenches import Store, timestamps
from trenches.demo.narration import say

def f(store: trenches.Store) -> None:
    trenches.open("x")
    trenches.timestamps.now_us()
    t.backfill.backfill(store)
"""
    assert private_uses(source, "bad.py") == [
        "bad.py:4: import trenches.evaluation",
        "bad.py:5: from trenches.cli._output import ...",
        "bad.py:6: from trenches import timestamps",
        "bad.py:11: trenches.timestamps",
        "bad.py:12: t.backfill",
    ]
