"""The web UI: server-rendered pages over the team server's store, where people who are
not at a terminal see and act on models, problems and data.

Pages are Jinja2 templates; the interactive parts use htmx, the charts Plotly. There is
no build step and no CDN: every script and style is served by trenches itself
(:mod:`trenches.web.assets`), and the pages' content security policy allows nothing else.
Every page route declares its rule as the API's routes do
(:class:`trenches.api.access.Allow`), and a page that declares none stops the app from
starting. A page hides the controls its viewer may not use; the action behind each one
checks the rule again.
"""

from trenches.web.app import create_app

__all__ = ["create_app"]
