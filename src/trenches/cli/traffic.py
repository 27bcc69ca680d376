"""``trenches traffic ...``: how a model's requests are shared between its versions."""

from __future__ import annotations

import typer
from rich.table import Table

from trenches.cli._output import console, open_store, print_json
from trenches.traffic.policies import FLOOR, TrafficPolicy

app = typer.Typer(
    help="Roll a version out on live traffic: shadow, canary, A/B, bandit. Every server "
    "of the model follows the policy within its next look at the store (2 s).",
    no_args_is_help=True,
)

_REASON = typer.Option(..., "--reason", help="Why; kept with the policy (and in the audit log).")


def _said(policy: TrafficPolicy, as_json: bool) -> None:
    if as_json:
        print_json(policy.to_json())
        return
    console.print(f"{policy.model}: policy {policy.id}, {policy.describe()}")


@app.command("shadow")
def shadow(
    ref: str = typer.Argument(..., help="The candidate: name@5."),
    reason: str = _REASON,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The candidate answers every request in the shadow of the version served: its
    answer is logged (compare it with `trenches compare --live`), never returned.

    Example: `trenches traffic shadow churn@5 --reason "first look at live traffic"`
    """
    with open_store() as store:
        _said(store.traffic.shadow(ref, reason=reason), as_json)


@app.command("canary")
def canary(
    ref: str = typer.Argument(..., help="The candidate: name@5."),
    share: float = typer.Option(..., "--share", help="Its share of requests: 0.05 is 5%."),
    reason: str = _REASON,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The candidate answers a share of requests (the same callers, when they send
    `x-caller-key`, as long as the share only grows); the `[guard]` of trenches.toml
    rolls it back when its live figures cross their bounds.

    Example: `trenches traffic canary churn@5 --share 0.1 --reason "shadow agreed 99%"`
    """
    with open_store() as store:
        _said(store.traffic.canary(ref, share=share, reason=reason), as_json)


@app.command("ab")
def ab(
    ref: str = typer.Argument(..., help="The version tried against the one served: name@5."),
    share: float = typer.Option(0.5, "--share", help="Its share of requests."),
    reason: str = _REASON,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A fixed split for an experiment, sticky per `x-caller-key`; not guarded.

    Example: `trenches traffic ab churn@5 --reason "pricing experiment 12"`
    """
    with open_store() as store:
        _said(store.traffic.ab(ref, share=share, reason=reason), as_json)


@app.command("bandit")
def bandit(
    refs: list[str] = typer.Argument(..., help="Versions tried with the one served: name@5 ..."),
    reason: str = _REASON,
    floor: float = typer.Option(FLOOR, "--floor", help="The least share of each arm."),
    rating_max: float = typer.Option(
        None, "--rating-max", help="A rating's best value; ratings then count as rewards."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Thompson sampling over the version served and the versions named: each request
    goes to the arm whose reward drawn from its feedback so far is highest (a label
    that is the answer given is a reward of 1, a wrong one 0; a rating r counts
    r / --rating-max), each arm keeping --floor of requests. Guarded like a canary.

    Example: `trenches traffic bandit churn@5 churn@6 --reason "pick the best on feedback"`
    """
    with open_store() as store:
        policy = store.traffic.bandit(refs, reason=reason, floor=floor, rating_max=rating_max)
        _said(policy, as_json)


@app.command("off")
def off(
    model: str = typer.Argument(..., help="A model name."),
    reason: str = _REASON,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The version served answers every request again.

    Example: `trenches traffic off churn --reason "experiment over"`
    """
    with open_store() as store:
        _said(store.traffic.off(model, reason=reason), as_json)


@app.command("show")
def show(
    model: str = typer.Argument(..., help="A model name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The model's policy now and every one before it: who set it, when and why.

    Example: `trenches traffic show churn`
    """
    with open_store() as store:
        history = store.traffic.history(model)
        now = store.traffic.policy(model)
    if as_json:
        print_json({"policy": now.to_json(), "history": [p.to_json() for p in history]})
        return
    _said(now, False)
    if not history:
        return
    table = Table("id", "when", "by", "policy", "reason")
    for p in reversed(history):
        when = p.created_at.strftime("%Y-%m-%d %H:%M:%S") if p.created_at else ""
        table.add_row(str(p.id), when, p.set_by, p.describe(), p.reason)
    console.print(table)
