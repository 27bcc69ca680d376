"""Rendering a page: the Jinja2 templates of ``templates/`` (escaped by default), the
layout's navigation, and the pages' content security policy.

A page allows scripts, styles, images and connections from its own origin only. Styles
may also be inline: Plotly styles the charts it draws; scripts may not, so a page holds
no script of its own and passes data to ``trenches.js`` in ``application/json`` blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jinja2
import orjson
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from trenches.api.access import CSRF_COOKIE
from trenches.team.roles import ACTIONS, includes, role_at
from trenches.web import assets

if TYPE_CHECKING:
    from fastapi import Request

    from trenches.api.access import Caller

#: The content security policy of every page.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: What htmx may do on the pages: no eval, no scripts from answers, no other origin;
#: a refusal (4xx) is shown where the answer was to go.
HTMX_CONFIG = orjson.dumps(
    {
        "includeIndicatorStyles": False,
        "allowEval": False,
        "allowScriptTags": False,
        "selfRequestsOnly": True,
        "historyCacheSize": 0,
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "4..", "swap": True, "error": False},
            {"code": "...", "swap": False, "error": True},
        ],
    }
).decode()

#: The main navigation: (label, path, the action a user needs to see it, or None).
NAV = (
    ("Home", "/", None),
    ("Problems", "/problems", "problems.read"),
    ("Patterns", "/patterns", "patterns.read"),
    ("Labelling", "/queue", "patterns.relabel"),
    ("Models", "/models", "models.read"),
    ("Production", "/production", "monitoring.read"),
    ("Data quality", "/quality", "snapshots.read"),
    ("Audit", "/audit", "audit.read"),
)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.0f}%"


def _json(value: Any) -> Markup:
    """``value`` as JSON to put in a ``<script type="application/json">`` block: ``<``,
    ``>`` and ``&`` are escaped, so no text in it can end the block."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trenches.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, num=_num, pct=_pct, json=_json)
    env.globals.update(asset=assets.url, htmx_config=HTMX_CONFIG)
    return env


ENV = _environment()


class Rights:
    """What the viewer of a page may do, from their grants read once: which controls
    the page shows. (Each action behind a control checks its rule again.)"""

    def __init__(self, caller: Caller | None) -> None:
        self.admin = caller is not None and caller.user.admin
        self.active = caller is not None and not caller.user.disabled
        grants = [] if caller is None else caller.store.grants.list(caller.user)
        self._grants = [(g.role, g.namespace) for g in grants]

    def may(self, action: str, namespace: str = "*") -> bool:
        """Whether the viewer may do ``action`` on ``namespace``."""
        required = ACTIONS.get(action)
        if required is None or not self.active:
            return False
        if self.admin:
            return True
        role = role_at(self._grants, namespace)
        return role is not None and includes(role, required)

    def anywhere(self, action: str) -> bool:
        """Whether the viewer may do ``action`` on some namespace (the audit log:
        on the whole store)."""
        if action == "audit.read":
            return self.may(action, "*")
        return self.admin or any(self.may(action, ns) for _, ns in self._grants)


def nav(rights: Rights, here: str) -> list[dict[str, Any]]:
    """The links of the main navigation the viewer may follow, ``here`` marked."""
    if not rights.active:
        return []
    links = []
    for label, href, action in NAV:
        if action is not None and not rights.anywhere(action):
            continue
        current = href == here or (href != "/" and here.startswith(href + "/"))
        links.append({"label": label, "href": href, "current": current})
    return links


def html(
    request: Request,
    caller: Caller | None,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``caller``: a whole page, or (asked by htmx) the
    template alone when it is a fragment."""
    rights = Rights(caller)
    page = ENV.get_template(template).render(
        request=request,
        user=None if caller is None else caller.user,
        may=rights.may,
        rights=rights,
        csrf=request.cookies.get(CSRF_COOKIE, ""),
        nav=nav(rights, request.url.path),
        htmx=is_htmx(request),
        **context,
    )
    answer = HTMLResponse(page, status_code=status, headers=dict(headers or {}))
    answer.headers["content-security-policy"] = PAGE_POLICY
    answer.headers["vary"] = "HX-Request"
    return answer


def is_htmx(request: Request) -> bool:
    """Whether htmx asked (for a fragment), not the browser (for a page)."""
    return request.headers.get("hx-request") == "true"
