"""The HTML report: its sections on a real store, that it refers to nothing outside
itself, the command, and the page in headless Chromium making no network request."""

from __future__ import annotations

import io
import re
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import trenches
from trenches import timestamps
from trenches.cli import main
from trenches.patterns.sets import PatternSet, split

from conftest import chromium, dead_url, log_requests, tumours

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: A problem title with markup in it: the report must show it as text.
TITLE = "Misses <b>small</b> & 'odd' tumours"


def _cancer() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


def build(store: trenches.Store, *, versions: int = 3, problems: bool = True) -> trenches.Dataset:
    """Breast cancer, ``versions`` versions of ``clf`` trained in runs on one snapshot
    and evaluated on the validation split, and two problems (backfilled)."""
    ds = store.datasets.create("cancer", task="classification", label="diagnosis")
    ds.add(_cancer(), source="expert", labelled_by="dr.a", created_at="2026-01-01")
    snap = ds.snapshot(note="everything")
    X, y, _, _ = snap.training_data("train")
    models = [
        make_pipeline(StandardScaler(), LogisticRegression(C=0.001, max_iter=2000)),
        make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
        DecisionTreeClassifier(max_depth=3, random_state=0),
    ]
    for i, model in enumerate(models[:versions], 1):
        with store.run(f"train-{i}", snapshot=snap, capture_code=False) as run:
            run.log_model(model.fit(X, y), "clf")
    validation = split(ds, "validation").ids
    for v in store.models.versions("clf"):
        store.predict(v.ref, validation)
    if problems:
        info = ds.pattern_info()
        ids = info.index[info["split"] == "test"].tolist()
        store.problems.create("small", dataset="cancer", title=TITLE, severity="high")
        store.problems.add("small", positive=ids[:6], negative=ids[6:9])
        store.problems.create("large", dataset="cancer", title="Large ones")
        store.problems.add("large", positive=ids[20:25])
    return ds


def write_gates(*bodies: str) -> None:
    """trenches.toml here (the test's folder), one [[gates.clf]] per body."""
    text = "".join(f"[[gates.clf]]\n{textwrap.dedent(b).strip()}\n\n" for b in bodies)
    Path("trenches.toml").write_text(text, encoding="utf-8")


def section(page: str, sid: str) -> str:
    found = re.search(rf"<section id='{sid}'>(.*?)</section>", page, re.S)
    assert found, f"the report has no section {sid!r}"
    return found.group(1)


def text_of(fragment: str) -> str:
    """The text of an HTML fragment, tags dropped, white space made single."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


# --- content, on SQLite and PostgreSQL ---------------------------------------------------


def test_the_report_shows_every_section_from_the_store(
    store: trenches.Store, tmp_path: Path
) -> None:
    ds = build(store)
    write_gates('metric = "accuracy"\nmin = 0.5', 'metric = "accuracy"\nmin = 0.9999')
    store.gates.check("clf@3")
    small = store.problems.get("small")
    (explained,) = store.explanations.explain("clf@3", [small.positive[0]], num_samples=300)

    page = trenches.write_report(store, tmp_path / "report.html").read_text(encoding="utf-8")

    chosen = split(ds, "validation")

    set_name, validation = chosen.name, chosen.ids
    metrics = section(page, "metrics")
    assert f"{set_name}</code>, the current validation split ({len(validation)} patterns)" in (
        metrics
    )
    for v in store.models.versions("clf"):
        found = store.evaluate(v.ref, PatternSet(set_name, validation), predict=False)
        accuracy = found.evaluation.metrics["accuracy"]
        assert f"<td>{v.ref}</td>" in metrics and f"{accuracy:.4g}" in metrics
    assert 'id="metric-1"' in metrics

    problems = text_of(section(page, "problems"))
    assert TITLE in problems and "large" in problems
    assert 'id="problem-graph-1"' in page and "id='problem-graph-1-drill'" in page

    gates = section(page, "gates")
    assert "accuracy &gt;= 0.5 on cancer:validation" in gates
    assert "<span class='fail'>failed</span>" in gates
    assert "no gate check yet: run <code>trenches check clf@2</code>" in gates

    diff = store.compare("clf@2", "clf@3")
    shown = text_of(section(page, "comparison"))
    assert f"clf@2 → clf@3 over cancer: patterns both predicted ({diff.overall.size} patterns)" in (
        shown
    )
    assert f"{len(diff.fixed)} fixed" in shown and f"{len(diff.broken)} broken" in shown
    assert f"fixed: {' '.join(map(str, diff.fixed)) or 'none'}" in shown
    assert f"p = {diff.overall.p_value:.3g}" in shown

    explanations = section(page, "explanations")
    pid = explained.pattern_id
    assert f"<span id='expl-{pid}-clf-3'>{pid}</span>" in explanations
    top = explained.weights[0]
    assert text_of(top[1] or top[0]) in text_of(explanations)
    assert 'id="explanations-1"' in explanations
    # The graph's drill-down links that pattern to its explanation.
    assert f'\\"explained\\":\\"expl-{pid}-clf-3\\"' in page

    quality = text_of(section(page, "quality"))
    assert "Snapshot 1 (the newest of 1)" in quality
    for kind in ("duplicates", "conflicting-labels", "leakage", "label-errors"):
        assert kind in quality


def test_a_stored_string_is_shown_as_text_never_as_markup(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    build(sqlite_store, versions=2)
    page = trenches.write_report(sqlite_store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Misses &lt;b&gt;small&lt;/b&gt; &amp; &#x27;odd&#x27; tumours" in page
    assert TITLE not in page


def test_sections_with_nothing_to_show_say_so(sqlite_store: trenches.Store, tmp_path: Path) -> None:
    store = sqlite_store
    empty = trenches.write_report(store, tmp_path / "empty.html").read_text(encoding="utf-8")
    for sid in ("metrics", "problems", "quality", "explanations"):
        assert "no dataset in the store yet" in section(empty, sid)
    for sid in ("gates", "comparison", "production"):
        assert "no model in the store yet" in section(empty, sid)

    ds = store.datasets.create("cancer", task="classification", label="diagnosis")
    ds.add(_cancer(), source="expert", created_at="2026-01-01")
    X = ds.patterns().drop(columns="diagnosis")
    y = ds.patterns()["diagnosis"]
    store.models.register(
        DecisionTreeClassifier(max_depth=2).fit(X, y), "clf", X=X.iloc[:50], dataset="cancer"
    )
    page = trenches.write_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "clf@1: clf@1 has predictions for 0 of the" in text_of(section(page, "metrics"))
    assert "no problem recorded for cancer" in section(page, "problems")
    assert (
        "no gate check of a version of clf yet: run <code>trenches check clf@1</code>"
        in section(page, "gates")
    )
    assert "clf has 1 version: a comparison needs two" in section(page, "comparison")
    production = section(page, "production")
    assert (
        "no drift report of clf yet: <code>trenches monitor clf@1 --window 24h</code> has "
        "not been run" in production
    )
    assert "no retraining pass of clf yet" in production and "<table" not in production
    assert "no problem recorded for cancer, so no problem pattern" in section(page, "explanations")
    assert "no snapshot of cancer yet: <code>trenches data snapshot cancer</code>" in section(
        page, "quality"
    )

    store.problems.create("odd", dataset="cancer", title="odd ones")
    store.problems.add("odd", positive=[1, 2, 3])
    page = trenches.write_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert (
        "no explanation stored for a problem pattern yet: run "
        "<code>trenches explain clf@1 --problem odd</code>" in section(page, "explanations")
    )


def test_the_report_covers_only_the_model_and_dataset_asked(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    store = sqlite_store
    ds = build(store, versions=2)
    X = ds.patterns().drop(columns="diagnosis")
    store.models.register(
        DecisionTreeClassifier(max_depth=1).fit(X, ds.patterns()["diagnosis"]),
        "other",
        X=X.iloc[:50],
        dataset="cancer",
    )
    extra = store.datasets.create("extra", task="regression", label="y")
    extra.add(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0]}), source="s")

    everything = trenches.write_report(store, tmp_path / "all.html").read_text(encoding="utf-8")
    assert "<h3>other</h3>" in section(everything, "gates")
    assert "<h3>extra</h3>" in section(everything, "quality")

    page = trenches.write_report(store, tmp_path / "clf.html", model="clf").read_text(
        encoding="utf-8"
    )
    assert "other" not in text_of(page.split("<section", 1)[1])
    assert "<h3>extra</h3>" not in page
    assert "clf@1" in section(page, "metrics")

    page = trenches.write_report(store, tmp_path / "extra.html", dataset="extra").read_text(
        encoding="utf-8"
    )
    assert "<h3>cancer</h3>" not in page and "<h3>extra</h3>" in section(page, "quality")
    assert "no model in the store yet" in section(page, "gates")

    with pytest.raises(trenches.NotFound):
        trenches.write_report(store, tmp_path / "x.html", model="nope")
    with pytest.raises(trenches.InvalidInput, match=r"FILE\.html"):
        trenches.write_report(store, tmp_path / "x.pdf")


TRAINING = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(data):
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(data.X, data.y)
"""


def test_production_shows_the_drift_reports_the_drifted_columns_and_the_retraining(
    store: trenches.Store, tmp_path: Path
) -> None:
    ds = store.datasets.create(
        "tumours", task="classification", label="label", salt="00112233445566778899aabbccddeeff"
    )
    ds.add(tumours(400, 0), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("lr", snapshot=snap, capture_code=False) as run:
        v = run.log_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), "clf")
    store.models.promote(v.ref, "production", reason="first")
    Path("train_report_clf.py").write_text(TRAINING, encoding="utf-8")
    toml = Path("trenches.toml")
    toml.write_text(
        f'[monitor]\nwebhook = "{dead_url()}"\nwebhook-retries = 0\n\n'
        '[retrain.clf]\ntrain = "train_report_clf:fit"\n\n'
        '[[gates.clf]]\nmetric = "accuracy"\nmin = 0.5\n\n'
        '[[gates.clf]]\nmetric = "accuracy"\nmin = 0.9999\n',
        encoding="utf-8",
    )
    columns = ["radius", "texture", "grade"]
    log_requests(store, v, tumours(150, 1), columns, prefix="quiet", label="label")
    quiet = store.monitoring.run("clf@production", path=toml)
    since = timestamps.now_us()
    log_requests(store, v, tumours(150, 2, shift=3.0), columns, prefix="moved")
    moved = store.monitoring.run("clf@production", since=since, path=toml)
    assert not quiet.drifted and moved.report.drifted_columns == ["radius"]
    assert moved.alert is not None and moved.alert.delivered is False
    retrain = store.retrains.run("clf", path=toml, report_id=moved.id)
    assert retrain.status == "candidate" and retrain.candidate == "clf@2"

    page = trenches.write_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.index("<section id='quality'>") < page.index("<section id='production'>")
    assert "Production: drift and retraining" in page.split("<section", 1)[0]  # in the contents
    production = section(page, "production")
    timeline = production.split("</table>", 1)[0]
    rows = [text_of(r) for r in timeline.split("<tr>")[2:]]
    assert [r.split()[0] for r in rows] == [f"#{moved.id}", f"#{quiet.id}"]  # newest first
    new, old = rows
    accuracy = quiet.metrics and quiet.metrics["window"]["accuracy"]
    assert "clf@1 150 none no accuracy" in old and old.endswith(" reference none")
    assert f"accuracy {accuracy:.3g} on 150 labelled vs" in old
    assert "clf@1 150 radius yes" in new
    assert "not delivered after 1 attempt: ConnectError" in new
    assert f"#{retrain.id} candidate @2: failed 1 of 2 gates" in new
    assert "<span class='fail'>radius</span>" in timeline

    # The report that found drift, column by column: the drifted one first and marked.
    assert f"<b>Report #{moved.id}</b>, the newest report that found drift" in production
    detail = production.split("</table>", 2)[1]
    body = [text_of(r) for r in detail.split("<tr>")[2:]]
    assert body[0].startswith("radius drifted numeric ks")
    assert "ks p = " in body[0] and "p < 0.05" in body[0]
    assert [r.split()[1] for r in body[1:]] == ["ok", "ok", "drifted"]  # predictions drifted
    assert body[-1].startswith("(predictions) drifted")
    assert "<td><span class='fail'>radius</span></td>" in detail
    assert '<div id="drift-chart-1" class="plotly-graph-div"' in production

    # The retraining pass, set off by that report (linked to its row).
    passes = text_of(production.split("Retraining passes of clf", 1)[1])
    assert f"#{retrain.id}" in passes and f"report #{moved.id} clf@2 candidate" in passes
    assert retrain.figures is not None and retrain.figures.why in passes
    assert f"href='#drift-report-{moved.id}'" in production
    assert f"<span id='drift-report-{moved.id}'>" in production


# --- offline: nothing outside the file -----------------------------------------------------

#: What makes a browser load something: an element's src / href / data / poster / srcset,
#: CSS @import and url(), a meta refresh. Plotly's bundled JavaScript holds URLs in strings
#: (links in its own comments and error messages); those load nothing, so the check is for
#: references in a loading position, not for "http" anywhere.
_LOADING = [
    re.compile(
        r"<(?:script|img|iframe|embed|source|audio|video|track|input)\b[^>]*\bsrc\s*=", re.I
    ),
    re.compile(r"<link\b", re.I),
    re.compile(r"<(?:object)\b[^>]*\bdata\s*=", re.I),
    re.compile(r"\bposter\s*=|\bsrcset\s*=", re.I),
    re.compile(r"@import\b", re.I),
    re.compile(r"url\(\s*['\"]?\s*(?:https?:)?//", re.I),
    re.compile(r"http-equiv\s*=\s*['\"]?refresh", re.I),
    re.compile(r"<base\b", re.I),
]


def test_the_file_refers_to_nothing_outside_itself(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    from plotly.offline import get_plotlyjs

    build(sqlite_store, versions=2)
    page = trenches.write_report(sqlite_store, tmp_path / "r.html").read_text(encoding="utf-8")
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1, "Plotly's JavaScript is embedded once"
    ours = page.replace(bundle, "")
    for pattern in _LOADING:
        hit = pattern.search(page)
        assert hit is None, f"a reference that would load: {page[hit.start() : hit.end() + 80]!r}"
    # Outside Plotly's bundle there is no URL at all (the store's is not http).
    assert not re.search(r"https?://", ours), re.search(r".{60}https?://.{60}", ours)
    assert "Content-Security-Policy" in ours and "default-src 'none'" in ours


# --- the command -------------------------------------------------------------------------


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


def test_the_command_writes_the_report_and_keeps_report_problems(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    build(sqlite_store, versions=2)
    where = str(tmp_path / "store")
    code, out, err = run_cli("--store", where, "report", "--out", tmp_path / "r.html")
    assert code == 0, err
    assert "wrote" in out and "opens offline" in out
    assert 'id="problem-graph-1"' in (tmp_path / "r.html").read_text(encoding="utf-8")

    code, out, err = run_cli(
        "--store", where, "report", "-o", tmp_path / "m.html", "--model", "clf", "-d", "cancer"
    )
    assert code == 0, err

    code, _, err = run_cli("--store", where, "report", "problems", "--out", tmp_path / "g.png")
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"

    code, _, err = run_cli("--store", where, "report", "--dataset", "cancer")
    assert code == 2 and "--out report.html" in err
    code, _, err = run_cli("--store", where, "report", "--out", tmp_path / "r.pdf")
    assert code == 2 and "FILE.html" in err
    code, out, _ = run_cli("report", "--help")
    assert code == 0 and "trenches report --out report.html" in out and "problems" in out


# --- every version on the same footing ------------------------------------------------------


def grown(store: trenches.Store) -> trenches.Dataset:
    """:func:`build`, then new patterns: the validation split grows, and no version has
    predicted its new patterns."""
    ds = build(store)
    before = split(ds, "validation").ids
    more = _cancer().iloc[:150].copy()
    more["mean_radius"] *= 1.01  # new inputs, so new patterns
    ds.add(more, source="expert", labelled_by="dr.b", created_at="2026-02-01")
    after = split(ds, "validation").ids
    assert len(after) > len(before)
    return ds


def test_versions_lacking_predictions_are_named_not_dropped(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    store = sqlite_store
    ds = grown(store)
    chosen = split(ds, "validation")
    set_name, validation = chosen.name, chosen.ids

    metrics = text_of(
        section(
            trenches.write_report(store, tmp_path / "r.html").read_text(encoding="utf-8"), "metrics"
        )
    )

    assert f"no version has predicted all of {set_name} yet" in metrics
    assert "Not measured (they have not predicted the whole set):" in metrics
    for n in (1, 2, 3):
        assert f"clf@{n}: clf@{n} has predictions for " in metrics
        assert f"of the {len(validation)} patterns of {set_name}" in metrics

    store.backfill()
    metrics = section(
        trenches.write_report(store, tmp_path / "r.html").read_text(encoding="utf-8"), "metrics"
    )
    assert "Not measured" not in metrics
    assert all(f"<td>clf@{n}</td>" in metrics for n in (1, 2, 3))


@pytest.mark.slow
def test_after_a_backfill_the_charts_have_a_point_for_every_version(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    store = sqlite_store
    grown(store)
    assert store.backfill().skipped == ()
    versions = [v.ref for v in store.models.versions("clf")]
    assert len(versions) == 3
    url = trenches.write_report(store, tmp_path / "report.html").as_uri()

    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        for div in ("metric-1", "problem-graph-1"):
            page.wait_for_selector(f"#{div} .scatterlayer .trace", timeout=20_000)
        traces = page.evaluate(
            """ids => Object.fromEntries(ids.map(id => [id,
                document.getElementById(id).data.map(t => ({
                    name: t.name,
                    points: t.x.filter((x, i) => t.y[i] !== null).length,
                    text: t.text || null}))]))""",
            ["metric-1", "problem-graph-1"],
        )
        drawn = page.locator("#metric-1 .scatterlayer .trace path.point").count()

    (metric,) = traces["metric-1"]
    assert metric["points"] == 3 and metric["text"] == versions
    assert drawn == 3
    points = {t["name"]: t["points"] for t in traces["problem-graph-1"]}
    # Every version is a point of each problem's line over all its patterns (the held-out
    # line has none where a version trained on all of them).
    assert {k: v for k, v in points.items() if "held out" not in k} == {
        "small (all)": 3,
        "large (all)": 3,
        "validation accuracy": 3,
    }
    assert set(points) >= {"small (held out)", "large (held out)"}


# --- in a browser ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_report_opens_in_chromium_draws_the_problem_graph_and_drift_and_requests_nothing(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    from playwright.sync_api import Request, Route

    store = sqlite_store
    ds = build(store)
    small = store.problems.get("small")
    store.explanations.explain("clf@3", [small.positive[0]], num_samples=300)
    # Production: requests whose mean radius grew by half, for the drift chart.
    v = store.models.get("clf@3")
    served = ds.patterns().drop(columns="diagnosis").iloc[:200].copy()
    served["mean_radius"] *= 1.5
    log_requests(store, v, served, list(v.signature.columns), prefix="moved")
    monitored = store.monitoring.run(v.ref)
    assert "mean_radius" in monitored.report.drifted_columns
    path = trenches.write_report(store, tmp_path / "report.html")
    url = path.as_uri()

    requests: list[str] = []
    refused: list[str] = []
    problems_in_console: list[str] = []

    def route(r: Route, request: Request) -> None:
        if request.url == url or request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            refused.append(request.url)
            r.abort()

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on(
            "console",
            lambda m: (
                problems_in_console.append(m.text) if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda e: problems_in_console.append(str(e)))
        page.goto(url)
        graph = "#problem-graph-1"
        page.wait_for_selector(f"{graph} .scatterlayer .trace", timeout=20_000)
        names = page.evaluate(
            "id => document.getElementById(id).data.map(t => t.name)", "problem-graph-1"
        )
        assert names == [
            "small (held out)",
            "small (all)",
            "large (held out)",
            "large (all)",
            "validation accuracy",
        ]
        assert page.locator(f"{graph} .scatterlayer .trace").count() == 5
        # Every figure of the report is drawn.
        assert page.locator(".js-plotly-plot").count() == 5
        _assert_drift_chart(page, len(v.signature.columns), monitored.report.drifted_columns)
        _assert_drill_down(page, graph, small, url)

    assert refused == [], f"the report tried to load {refused}"
    assert requests == [url], f"requests other than the file itself: {requests}"
    assert problems_in_console == [], problems_in_console


def _assert_drift_chart(page: Page, columns: int, drifted: list[str]) -> None:
    """A bar per column and one for the predictions, the drifted red."""
    page.wait_for_selector("#drift-chart-1 .barlayer .trace", timeout=20_000)
    bars = page.evaluate(
        "id => { const t = document.getElementById(id).data[0];"
        " return {y: t.y, color: t.marker.color}; }",
        "drift-chart-1",
    )
    assert len(bars["y"]) == columns + 1
    assert bars["y"][0] in drifted
    red = {y for y, c in zip(bars["y"], bars["color"], strict=True) if c == "#cf222e"}
    assert red >= set(drifted)
    assert page.locator("#drift-chart-1 .barlayer .point").count() == len(bars["y"])


def _assert_drill_down(page: Page, graph: str, small: trenches.Problem, url: str) -> None:
    """Hide the other lines (their points can sit on small's), as a reader would
    through the legend, then click the newest version's point on "small", held out:
    its patterns are listed, each linking to its explanation in the page."""
    for i in (1, 2, 3, 4):
        page.locator(f"{graph} .legend .traces").nth(i).click()
        page.wait_for_function(
            "([id, i]) => document.getElementById(id).data[i].visible === 'legendonly'",
            arg=["problem-graph-1", i],
        )
    point = page.locator(f"{graph} .scatterlayer .trace").nth(0).locator("path.point")
    assert point.count() == 3
    point.nth(2).scroll_into_view_if_needed()
    box = point.nth(2).bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    drill = page.locator(f"{graph}-drill")
    drill.locator("h3").wait_for(timeout=5_000)
    assert drill.locator("h3").inner_text().startswith("small on clf@3:")
    rows = drill.locator("tr")
    assert rows.count() == 1 + len(small.patterns())
    first = rows.nth(1).inner_text().split("\t")
    assert first[0] == str(small.positive[0]) and first[1] == "positive"
    assert rows.nth(1).locator("a").get_attribute("href") == (f"#expl-{small.positive[0]}-clf-3")
    # The link stays in the page.
    rows.nth(1).locator("a").click()
    assert page.url == f"{url}#expl-{small.positive[0]}-clf-3"
