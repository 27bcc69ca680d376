"""The problem graph and its table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import trenches


@pytest.fixture
def scored(sqlite_store: trenches.Store) -> trenches.Store:
    store = sqlite_store
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    X = ds.patterns().drop(columns="target")
    y = ds.patterns()["target"]
    for c in (0.0005, 1.0):
        store.models.register(
            LogisticRegression(C=c, max_iter=5000).fit(X, y),
            "clf",
            X=X.iloc[:300],
            dataset="cancer",
        )
    ids = ds.pattern_info().index.to_numpy()
    store.problems.create("first", dataset="cancer", title="First ten")
    store.problems.add("first", positive=ids[:6], negative=ids[6:10])
    store.problems.create("second", dataset="cancer", title="Next five")
    store.problems.add("second", positive=ids[10:15])
    return store


def test_history_has_a_row_per_problem_and_version(scored: trenches.Store) -> None:
    table = scored.problems.history()
    assert list(table["problem"]) == ["first", "first", "second", "second"]
    assert list(table["version"]) == ["clf@1", "clf@2", "clf@1", "clf@2"]
    for _, row in table.iterrows():
        score = next(
            s for s in scored.problems.scores(row["problem"]) if s.predictor == row["version"]
        )
        assert row["score"] == pytest.approx(score.score)
        assert len(row["right"]) == score.right
        assert len(row["right"]) + len(row["wrong"]) == row["predicted"] == row["patterns"]


def test_the_graph_is_written_as_png_and_as_offline_html(
    scored: trenches.Store, tmp_path: Path
) -> None:
    png = trenches.write_problem_graph(scored, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = trenches.write_problem_graph(scored, tmp_path / "g.html").read_text()
    assert "plotly_click" in page and "first" in page and "second" in page
    # Plotly's JavaScript is embedded: the page loads nothing from the network.
    assert not re.search(r"<script[^>]+src=[\"']https?://", page)
    with pytest.raises(trenches.InvalidInput, match=r"\.png or \.html"):
        trenches.write_problem_graph(scored, tmp_path / "g.svg")
