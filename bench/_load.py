"""The team server's write load: 20 clients, each with a token of its own, looping over
an import of new patterns, a feedback on a logged request and a run (created, a few
metrics, ended), on loopback.

Shared by ``bench/server.py``, which measures it (and MLflow's tracking server on the
same run writes), and ``tests/test_api_load.py``, which checks that every acknowledged
write is in the store exactly once. Every write carries a marker of its client and
iteration (``load-07/12``: in the patterns' ``site`` input, the feedback's comment, the
run's name) and an ``X-Request-Id`` of its own, so that it can be found in the store and
in the audit log afterwards.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

PREFIX = "/api/v1"
#: Clients at once, each with one request in flight at most.
CLIENTS = 20
#: How long the load lasts by default, in seconds (the test's figure; the bench can raise it).
SECONDS = 60.0
#: Rows in each imported file.
ROWS_PER_IMPORT = 3
#: Feedback targets (logged request rows) made per client per second of load: far more
#: iterations than a server on this machine gives, so that no two feedbacks share a row.
TARGETS_PER_SECOND = 10
INPUTS = ["radius", "texture", "grade"]
#: The roles the clients' users hold on the dataset and the model, in turn: each may
#: import patterns and give feedback (labeller) and make runs (maintainer).
ROLES = ("maintainer", "approver")
#: The params, tags and metric points of every run, on both tools.
PARAMS = {"optimizer": "adam", "layers": "3"}
METRICS = [("loss", 0.9, 0), ("loss", 0.5, 1), ("loss", 0.3, 2), ("accuracy", 0.8, 2)]
#: The audit log's action for each kind of trenches write (every write to a run is a
#: ``runs.create``: the run is made by its start, its points and its end).
ACTIONS = {
    "import": "patterns.add",
    "feedback": "feedback.add",
    "run.create": "runs.create",
    "run.metrics": "runs.create",
    "run.end": "runs.create",
}


@dataclass(frozen=True)
class Writer:
    """One client: its user, its token (none for MLflow), the (request, row) pairs its
    feedbacks go to, one per iteration."""

    user: str
    token: str | None = None
    targets: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Write:
    """A write the server acknowledged."""

    kind: str
    user: str
    marker: str
    request_id: str
    answer: Any


@dataclass
class Tally:
    """What the clients saw: acknowledged writes, latencies per kind, failures."""

    done: list[Write] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(
        self, client: httpx.Client, kind: str, user: str, marker: str, url: str, **kw: Any
    ) -> Any:
        """POST ``url``; the answer's JSON if it is a 2xx (an acknowledged write), else
        None with the failure noted (a 429 or a 5xx is a failure like any other)."""
        request_id = uuid.uuid4().hex
        t = time.perf_counter()
        try:
            answer = client.post(url, headers={"X-Request-Id": request_id}, **kw)
        except httpx.HTTPError as e:
            self.fail(f"{kind} {marker}: {type(e).__name__} {e}")
            return None
        took = time.perf_counter() - t
        if not answer.is_success:
            self.fail(f"{kind} {marker}: {answer.status_code} {answer.text[:300]}")
            return None
        body = answer.json() if answer.content else None
        with self._lock:
            self.latencies[kind].append(took)
            self.done.append(Write(kind, user, marker, request_id, body))
        return body

    def took(self, kind: str, seconds: float) -> None:
        """A latency that is not one request's (a whole run: its three writes)."""
        with self._lock:
            self.latencies[kind].append(seconds)

    def fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)

    def of(self, kind: str) -> list[Write]:
        return [w for w in self.done if w.kind == kind]

    def figures(self) -> dict[str, dict[str, float]]:
        """Per kind: writes acknowledged, writes/s over the load, p50 and p99 in ms."""
        out = {}
        for kind, seen in sorted(self.latencies.items()):
            p50, p99 = np.percentile(np.asarray(seen) * 1000, [50, 99])
            out[kind] = {
                "writes": len(seen),
                "per_s": len(seen) / self.seconds if self.seconds else 0.0,
                "p50_ms": float(p50),
                "p99_ms": float(p99),
            }
        return out


#: One iteration of a client: (client, writer, iteration, tally) -> whether to go on.
Iteration = Callable[[httpx.Client, Writer, int, Tally], bool]


def drive(url: str, writers: Sequence[Writer], seconds: float, iteration: Iteration) -> Tally:
    """Each writer a thread with its own connection, looping ``iteration`` until
    ``seconds`` have passed (the iteration under way is finished): at most one request
    of each in flight, so at most ``len(writers)`` at once."""
    tally = Tally()
    ready = threading.Barrier(len(writers) + 1)
    deadline = [math.inf]

    def loop(writer: Writer) -> None:
        auth = {"Authorization": f"Bearer {writer.token}"} if writer.token else {}
        with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
            ready.wait()
            i = 0
            try:
                while time.monotonic() < deadline[0] and iteration(client, writer, i, tally):
                    i += 1
            except Exception:
                tally.fail(f"{writer.user} iteration {i}: {traceback.format_exc()}")

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    t = time.perf_counter()
    ready.wait()
    for thread in threads:
        thread.join()
    tally.seconds = time.perf_counter() - t
    return tally


# --- trenches: the writes ---------------------------------------------------------------


def _csv(marker: str, i: int) -> bytes:
    """``ROWS_PER_IMPORT`` new patterns, their ``site`` the marker and the row."""
    lines = ["radius,texture,grade,site,label"]
    for r in range(ROWS_PER_IMPORT):
        label = "malignant" if (i + r) % 2 else "benign"
        lines.append(f"{8 + (i % 50) / 10:.1f},{20 + r},{1 + r},{marker}/{r},{label}")
    return ("\n".join(lines) + "\n").encode()


def add_patterns(client: httpx.Client, writer: Writer, i: int, tally: Tally, dataset: str) -> None:
    marker = f"{writer.user}/{i}"
    tally.post(
        client,
        "import",
        writer.user,
        marker,
        f"{PREFIX}/datasets/{dataset}/imports",
        files={"file": (f"{writer.user}-{i}.csv", _csv(marker, i), "text/csv")},
        data={"source": "load"},
    )


def give_feedback(client: httpx.Client, writer: Writer, i: int, tally: Tally) -> None:
    marker = f"{writer.user}/{i}"
    request_id, row = writer.targets[i]
    tally.post(
        client,
        "feedback",
        writer.user,
        marker,
        f"{PREFIX}/requests/{request_id}/feedback",
        json={"row": row, "label": "benign" if i % 2 else "malignant", "comment": marker},
    )


def make_run(
    client: httpx.Client, writer: Writer, marker: str, tally: Tally, snapshot_id: int | None
) -> None:
    """A run named ``marker``: created with its params and tags, its points, ended."""
    t = time.perf_counter()
    made = tally.post(
        client,
        "run.create",
        writer.user,
        marker,
        f"{PREFIX}/runs",
        json={
            "name": marker,
            "snapshot_id": snapshot_id,
            "params": PARAMS,
            "tags": {"by": "load"},
            # Where the run runs, as a client says it (as trenches' own client does).
            "host": f"load {writer.user}",
            "pid": os.getpid(),
        },
    )
    if made is None:
        return
    points = [{"key": k, "value": v, "step": s, "timestamp": None} for k, v, s in METRICS]
    logged = tally.post(
        client,
        "run.metrics",
        writer.user,
        marker,
        f"{PREFIX}/runs/{made['id']}/metrics",
        json={"metrics": points},
    )
    ended = tally.post(
        client,
        "run.end",
        writer.user,
        marker,
        f"{PREFIX}/runs/{made['id']}/end",
        json={"status": "finished", "error": None},
    )
    if logged is not None and ended is not None:
        tally.took("run", time.perf_counter() - t)


def _mixed(
    client: httpx.Client, writer: Writer, i: int, tally: Tally, dataset: str, snapshot_id: int
) -> bool:
    if i >= len(writer.targets):
        tally.exhausted.append(writer.user)
        return False
    add_patterns(client, writer, i, tally, dataset)
    give_feedback(client, writer, i, tally)
    make_run(client, writer, f"{writer.user}/{i}", tally, snapshot_id)
    return True


def mixed(dataset: str, snapshot_id: int) -> Iteration:
    """The load of the issue: an import, a feedback and a run per iteration."""
    return partial(_mixed, dataset=dataset, snapshot_id=snapshot_id)


def _runs_only(
    client: httpx.Client, writer: Writer, i: int, tally: Tally, snapshot_id: int
) -> bool:
    make_run(client, writer, f"{writer.user}/runs/{i}", tally, snapshot_id)
    return True


def runs_only(snapshot_id: int) -> Iteration:
    """Runs alone, named apart from the mixed load's: the writes MLflow is given too."""
    return partial(_runs_only, snapshot_id=snapshot_id)


# --- trenches: the house the load writes into ------------------------------------------


def tumours(n: int, seed: int) -> pd.DataFrame:
    """Three numeric inputs, a string one (``site``) and a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "radius": rng.normal(10, 2, n),
            "texture": rng.normal(20, 4, n),
            "grade": rng.integers(1, 4, n),
            "site": rng.choice(["left", "right", "centre"], n),
            "label": rng.choice(["benign", "malignant"], n),
        }
    )


@dataclass(frozen=True)
class House:
    """What the load writes into: the dataset, its snapshot's id, and the writers."""

    dataset: str
    snapshot_id: int
    writers: list[Writer]


def house(store: Any, spool: Path, *, clients: int = CLIENTS, seconds: float = SECONDS) -> House:
    """``tumours`` with a snapshot and a model ``clf`` fitted on it; requests ``clf@1``
    answered, enough for every feedback of the load to have a row of its own; one user
    per client (maintainer or approver on ``tumours`` and ``clf``), each with a token."""
    from sklearn.linear_model import LogisticRegression

    frame = tumours(300, seed=0)
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    with store.run("train", snapshot=snap, capture_code=False) as run:
        model = LogisticRegression(max_iter=500).fit(frame[INPUTS], frame["label"])
        version = run.log_model(model, "clf", X=frame[INPUTS])
    per_client = math.ceil(seconds * TARGETS_PER_SECOND)
    rows = served_rows(store, version, clients * per_client, spool)
    writers = []
    for k in range(clients):
        user = store.accounts.create(f"load-{k:02d}")
        for namespace in ("tumours", "clf"):
            store.grants.grant(user, ROLES[k % len(ROLES)], namespace)
        token = store.tokens.create(user, "load", expires_in=None).secret
        mine = tuple(rows[k * per_client : (k + 1) * per_client])
        writers.append(Writer(user.name, token, mine))
    return House("tumours", snap.id, writers)


def served_rows(store: Any, version: Any, n: int, spool: Path) -> list[tuple[str, int]]:
    """``n`` rows answered by ``version`` in requests of 5 rows, through the real
    request log: their (request id, row)."""
    from trenches import timestamps
    from trenches.serving.requestlog import LoggedRequest, RequestLog

    frame = tumours(n, seed=1)[INPUTS]
    said = list(store.models.load(version.ref).predict(frame))
    data = frame.to_numpy().tolist()
    log = RequestLog(store.location.db_url, spool)
    log.start()
    out = []
    for k in range(0, n, 5):
        part = data[k : k + 5]
        rid = f"q-{k // 5}"
        log.put(
            LoggedRequest(
                request_id=rid,
                version_id=version.id,
                endpoint="predict",
                n=len(part),
                inputs=lambda part=part: {"columns": INPUTS, "data": part},
                outputs={"labels": said[k : k + 5], "scores": None, "values": None},
                latency_us=900,
                received_at=timestamps.now_us(),
            )
        )
        out += [(rid, row) for row in range(len(part))]
    log.stop()
    return out


# --- trenches: what the store holds afterwards ------------------------------------------


def check(store: Any, house: House, tally: Tally) -> list[str]:
    """Every acknowledged write in the store exactly once and audited once, as its
    user's: what is wrong, or nothing."""
    wrong = _check_patterns(store, house.dataset, tally)
    wrong += _check_feedback(store, tally)
    wrong += _check_runs(store, tally)
    wrong += _check_audit(store, house, tally)
    return wrong


def _check_patterns(store: Any, dataset: str, tally: Tally) -> list[str]:
    frame = store.datasets.get(dataset).patterns()
    sites = frame["site"]
    loaded = sites[sites.str.startswith("load-")]
    wrong = [f"pattern {s!r} stored {n} times" for s, n in Counter(loaded).items() if n > 1]
    by_marker = defaultdict(list)
    for pattern_id, site in loaded.items():
        by_marker[site.rpartition("/")[0]].append(int(pattern_id))
    for w in tally.of("import"):
        ids = sorted(by_marker.get(w.marker, []))
        expected = list(range(w.answer["first_id"], w.answer["last_id"] + 1))
        if w.answer["rows"] != ROWS_PER_IMPORT or ids != expected:
            wrong.append(f"import {w.marker}: acknowledged {expected}, stored {ids}")
    return wrong


def _rows(store: Any, query: Any) -> list[Any]:
    from trenches.db.engine import read

    with read(store.engine) as conn:
        return list(conn.execute(query))


def _check_feedback(store: Any, tally: Tally) -> list[str]:
    from sqlalchemy import select

    from trenches.db import schema as t

    f = t.feedback.c
    rows = _rows(store, select(f.request_id, f.row, f.comment).where(f.comment.like("load-%")))
    seen = defaultdict(list)
    for r in rows:
        seen[r.comment].append((r.request_id, r.row))
    wrong = [f"feedback {c} stored {len(at)} times" for c, at in seen.items() if len(at) > 1]
    for w in tally.of("feedback"):
        at = (w.answer["request_id"], w.answer["row"])
        if seen.get(w.marker) != [at]:
            wrong.append(f"feedback {w.marker}: acknowledged on {at}, stored {seen.get(w.marker)}")
    return wrong


def _check_runs(store: Any, tally: Tally) -> list[str]:
    from sqlalchemy import func, select

    from trenches.db import schema as t

    r, m, p = t.runs.c, t.metric_points.c, t.run_params.c
    runs = {x.id: x for x in _rows(store, select(r.id, r.name, r.status))}
    points = dict(_rows(store, select(m.run_id, func.count()).group_by(m.run_id)))
    params = dict(_rows(store, select(p.run_id, func.count()).group_by(p.run_id)))
    names = Counter(x.name for x in runs.values() if x.name.startswith("load-"))
    wrong = [f"run {name} stored {n} times" for name, n in names.items() if n > 1]
    made = {w.marker: w.answer["id"] for w in tally.of("run.create")}
    for marker, run_id in made.items():
        if run_id not in runs or runs[run_id].name != marker:
            wrong.append(f"run {marker}: acknowledged as {run_id}, not stored")
        elif params.get(run_id) != len(PARAMS):
            wrong.append(f"run {marker}: {params.get(run_id)} params stored")
    for w in tally.of("run.metrics"):
        if points.get(made[w.marker]) != len(METRICS):
            wrong.append(f"run {w.marker}: {points.get(made[w.marker])} metric points stored")
    for w in tally.of("run.end"):
        if runs[made[w.marker]].status != "finished":
            wrong.append(f"run {w.marker}: ended, stored as {runs[made[w.marker]].status}")
    return wrong


def _check_audit(store: Any, house: House, tally: Tally) -> list[str]:
    """One row per acknowledged change, with its user and its action; none besides."""
    from sqlalchemy import select

    from trenches.db import schema as t

    a = t.audit_log.c
    users = [w.user for w in house.writers]
    rows = _rows(store, select(a.request_id, a.actor, a.action).where(a.actor.in_(users)))
    logged = defaultdict(list)
    for row in rows:
        logged[row.request_id].append((row.actor, row.action))
    wrong = []
    for w in tally.done:
        got = logged.pop(w.request_id, None)
        if got != [(w.user, ACTIONS[w.kind])]:
            wrong.append(f"{w.kind} {w.marker}: audited as {got}")
    wrong += [f"audit rows for no acknowledged write: {rid} {e}" for rid, e in logged.items()]
    return wrong
