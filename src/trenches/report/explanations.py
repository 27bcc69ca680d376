"""The report's explanations section: LIME explanations stored for problem patterns,
drawn as bars and listed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from trenches.report.parts import (
    MAX_EXPLANATIONS_DRAWN,
    _anchor,
    _code,
    _e,
    _empty,
    _num,
    _plot,
    _Raw,
    _Scope,
    _table,
    _when,
)

if TYPE_CHECKING:
    from trenches.explain import Explanation
    from trenches.store import Store


def _problem_explanations(store: Store, scope: _Scope) -> dict[str, list[Explanation]]:
    """The explanations stored for the problem patterns of each dataset, newest first,
    by the versions in the report."""
    refs = scope.refs
    out: dict[str, list[Explanation]] = {}
    for ds in scope.datasets:
        ids = sorted({i for p in store.problems.list(dataset=ds.name) for i in p.patterns()})
        if not ids:
            continue
        found = store.explanations.list(pattern_ids=ids, dataset=ds.name)
        out[ds.name] = sorted(
            (e for e in found if e.version in refs), key=lambda e: e.created_at, reverse=True
        )
    return out


def _weights(items: Iterable[Sequence[Any]], n: int = 3) -> str:
    shown = []
    for item in list(items)[:n]:
        feature, condition, weight = item[0], item[1], item[2]
        shown.append(f"{condition or feature} ({weight:+.3f})")
    return "; ".join(shown)


def _explanations(store: Store, scope: _Scope, found: dict[str, list[Explanation]]) -> str:
    parts: list[str] = []
    for index, ds in enumerate(scope.datasets, 1):
        problems = store.problems.list(dataset=ds.name)
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        if not problems:
            parts.append(_empty(f"no problem recorded for {_e(ds.name)}, so no problem pattern"))
            continue
        mine = found.get(ds.name, [])
        if not mine:
            newest = [
                vs[-1].ref for vs in scope.models.values() if vs and vs[-1].dataset == ds.name
            ]
            ref = newest[0] if newest else "NAME@V"
            parts.append(
                _empty(
                    "no explanation stored for a problem pattern yet: run "
                    f"{_code(f'trenches explain {ref} --problem {problems[0].slug}')}"
                )
            )
            continue
        member: dict[int, list[str]] = {}
        for p in problems:
            for i in p.positive:
                member.setdefault(i, []).append(f"{p.slug} (positive)")
            for i in p.negative:
                member.setdefault(i, []).append(f"{p.slug} (negative)")
        parts.append(
            f"<p>{len(mine)} explanation{'s' if len(mine) != 1 else ''} of "
            f"{len({e.pattern_id for e in mine})} problem patterns. A weight is how much "
            "the condition moves the local model toward (+) or against (−) the label "
            "explained (for regression: the value up or down); the fit is the local "
            "model's R² on its neighbourhood.</p>"
        )
        parts.append(
            _plot(_explanation_figure(mine[:MAX_EXPLANATIONS_DRAWN]), f"explanations-{index}")
        )
        if len(mine) > MAX_EXPLANATIONS_DRAWN:
            parts.append(
                f"<p class='muted'>The chart holds the newest {MAX_EXPLANATIONS_DRAWN}; "
                "the table holds them all.</p>"
            )
        rows = []
        seen: set[str] = set()
        for e in sorted(mine, key=lambda e: (e.pattern_id, e.version, e.method)):
            anchor = _anchor("expl", e.pattern_id, e.version)
            pid = _Raw(
                f"<span id='{anchor}'>{e.pattern_id}</span>"
                if anchor not in seen
                else str(e.pattern_id)
            )
            seen.add(anchor)
            probability = "" if e.probability is None else f" ({e.probability:.3f})"
            prediction = _num(e.prediction) if isinstance(e.prediction, float) else e.prediction
            rows.append(
                [
                    pid,
                    ", ".join(member.get(e.pattern_id, [])),
                    e.version,
                    e.method,
                    "" if e.label is None else e.label,
                    f"{prediction}{probability}",
                    e.score,
                    _weights(e.toward()),
                    _weights(e.against()),
                    _when(e.created_at),
                ]
            )
        parts.append(
            _table(
                [
                    "pattern",
                    "problems",
                    "version",
                    "method",
                    "label explained",
                    "prediction",
                    "fit",
                    "toward",
                    "against",
                    "when",
                ],
                rows,
            )
        )
    return "".join(parts) or _empty("no dataset in the store yet")


def _explanation_figure(explanations: list[Explanation]) -> Any:
    """One bar chart, a dropdown choosing which explanation it shows."""
    import plotly.graph_objects as go

    fig = go.Figure()
    titles = []
    for i, e in enumerate(explanations):
        weights = list(e.weights)[::-1]  # the largest on top
        fig.add_trace(
            go.Bar(
                x=[w[2] for w in weights],
                y=[w[1] or w[0] for w in weights],
                orientation="h",
                marker={"color": ["#1a7f37" if w[2] > 0 else "#cf222e" for w in weights]},
                visible=i == 0,
                name=f"pattern {e.pattern_id}",
                hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
            )
        )
        label = "" if e.label is None else f", label {e.label}"
        titles.append(f"pattern {e.pattern_id} by {e.version} ({e.method}{label})")
    buttons = [
        {
            "label": title,
            "method": "update",
            "args": [
                {"visible": [j == i for j in range(len(explanations))]},
                {"title": {"text": title}},
            ],
        }
        for i, title in enumerate(titles)
    ]
    fig.update_layout(
        title={"text": titles[0]},
        updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.18, "yanchor": "top"}]
        if len(buttons) > 1
        else [],
        xaxis={"title": "weight toward the label explained", "zeroline": True},
        yaxis={"automargin": True},
        height=460,
        margin={"t": 110},
        showlegend=False,
    )
    return fig
