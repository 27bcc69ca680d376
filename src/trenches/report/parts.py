"""What every section of the report is built with: the page's CSS and CSP, table
cells, escaping, Plotly figures, and the scope (which datasets and models)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.store import Store

#: Nothing but the page itself: inline scripts and styles, data: and blob: images
#: (Plotly's "download as PNG" draws through them). No fetch, font, frame or image
#: from anywhere else.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
)
#: Plotly's configuration for every figure: no logo linking to plotly.com, no cloud.
PLOTLY_CONFIG = {"displaylogo": False, "showSendToCloud": False}
#: Explanations drawn in the bar chart of a dataset (newest first); all are listed.
MAX_EXPLANATIONS_DRAWN = 60

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1f2328; background: #fff; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem;
     margin-top: 2.4rem; } h3 { margin-bottom: .4rem; }
nav ol { columns: 2; } code, .ids { font-family: ui-monospace, Menlo, Consolas, monospace;
     font-size: .9em; } .ids { word-break: break-word; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.skip, .muted { color: #656d76; } tr.wrong { background: #fff0f0; }
.found { color: #9a6700; font-weight: 600; } .empty { color: #656d76; font-style: italic; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
details { margin: .4rem 0; } summary { cursor: pointer; }
.plot { margin: .5rem 0 1rem; }
"""


@dataclass(frozen=True)
class _Scope:
    """What the report covers: datasets, and each model's versions (oldest first)."""

    datasets: list[Dataset]
    models: dict[str, list[ModelVersion]]

    @property
    def refs(self) -> set[str]:
        return {v.ref for versions in self.models.values() for v in versions}


class _Raw(str):
    """A table cell that is HTML already."""


class _Change(float):
    """A table cell that is a difference, shown with its sign."""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, _Raw):
        return f"<td>{value}</td>"
    if isinstance(value, _Change):
        return f"<td class='num'>{value:+.4g}</td>"
    if isinstance(value, float):
        return f"<td class='num'>{_num(value)}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class='num'>{value}</td>"
    return f"<td>{_e('' if value is None else value)}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.{digits}g}"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _empty(text: str) -> str:
    """A section (or part) with nothing to show says so, and what would fill it."""
    return f"<p class='empty'>{text}</p>"


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _ids(ids: Iterable[int]) -> str:
    shown = list(ids)
    return f"<span class='ids'>{_e(' '.join(map(str, shown)))}</span>" if shown else "none"


def _anchor(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(str(p) for p in parts))


def _plot(fig: Any, div_id: str, post_script: str | None = None) -> str:
    """A figure as a div and its script; Plotly's JavaScript is in the page's head."""
    body = fig.to_html(
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=div_id,
        config=PLOTLY_CONFIG,
        post_script=post_script,
    )
    return f"<div class='plot'>{body}</div>"


# --- scope -----------------------------------------------------------------------


def _scope(store: Store, dataset: str | None, model: str | None) -> _Scope:
    names = [model] if model is not None else store.models.names()
    models: dict[str, list[ModelVersion]] = {}
    for name in names:
        versions = store.models.versions(name)
        if dataset is not None:
            versions = [v for v in versions if v.dataset == dataset]
        if versions or model is not None:
            models[name] = versions
    if dataset is not None:
        datasets = [store.datasets.get(dataset)]
    elif model is not None:
        used = sorted({v.dataset for v in models[model] if v.dataset is not None})
        datasets = [store.datasets.get(d) for d in used]
    else:
        datasets = store.datasets.list()
    return _Scope(datasets, models)
