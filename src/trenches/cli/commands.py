"""Every command of ``trenches``, assembled into one Typer app (see ``trenches.cli``)."""

from __future__ import annotations

import typer

from trenches.cli import check as check_cli
from trenches.cli import compare as compare_cli
from trenches.cli import data as data_cli
from trenches.cli import evaluate as evaluate_cli
from trenches.cli import explain as explain_cli
from trenches.cli import lineage as lineage_cli
from trenches.cli import models as models_cli
from trenches.cli import monitor as monitor_cli
from trenches.cli import package as package_cli
from trenches.cli import predict as predict_cli
from trenches.cli import predictions as predictions_cli
from trenches.cli import problems as problems_cli
from trenches.cli import replay as replay_cli
from trenches.cli import report as report_cli
from trenches.cli import requests as requests_cli
from trenches.cli import retrain as retrain_cli
from trenches.cli import runs as runs_cli
from trenches.cli import serve as serve_cli
from trenches.cli import server as server_cli
from trenches.cli import store as store_cli
from trenches.cli import team as team_cli
from trenches.cli import traffic as traffic_cli
from trenches.cli._root import HELP, SETTINGS, root

app = typer.Typer(help=HELP, **SETTINGS)


app.callback()(root)


app.add_typer(data_cli.app, name="data")
app.add_typer(runs_cli.app, name="runs")
app.add_typer(models_cli.app, name="models")
app.command("lineage")(lineage_cli.lineage)
app.command("evaluate")(evaluate_cli.evaluate)
app.command("predict")(predict_cli.predict)
app.add_typer(predictions_cli.app, name="predictions")
app.command("explain")(explain_cli.explain)
app.add_typer(problems_cli.app, name="problems")
app.command("backfill")(problems_cli.backfill)
app.command("compare")(compare_cli.compare)
app.command("check")(check_cli.check)
app.add_typer(report_cli.app, name="report")
app.add_typer(requests_cli.app, name="requests")
app.command("serve")(serve_cli.serve)
app.add_typer(traffic_cli.app, name="traffic")
app.command("replay")(replay_cli.replay)
app.command("package")(package_cli.package)
app.command("server")(server_cli.server)
app.add_typer(monitor_cli.app, name="monitor")
app.command("retrain")(retrain_cli.retrain)
store_cli.register(app)
app.add_typer(team_cli.users_app, name="users")
app.add_typer(team_cli.tokens_app, name="tokens")
app.add_typer(team_cli.grants_app, name="grants")
app.command("audit")(team_cli.audit)
