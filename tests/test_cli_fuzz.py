"""Every ``trenches`` command under generated arguments ends with exit 0, 1 or 2 and a
one-line message, never a traceback.

The commands are read from the Typer app itself, so a new command is fuzzed without a
change here (``EXCLUDED`` says which are left out, and why). Each example runs in this
process (``trenches.cli.main``, as the console script) on a fresh copy of one small
project made once per session by the library: three datasets, two model versions with
aliases, a baseline, a problem, evaluations, a gate check, logged requests with
feedback, a drift report, a trenches.toml with gates, monitoring and a retraining
function, and files to name (good imports, a 200 KiB text field, a text file, an empty
file, a folder, a file that is not a store, a store cut short, broken TOML).

A command line is drawn whole: every parameter as a careful user would give it (so that
the command gets to do its work), every one wild (ids, refs and names that do not exist,
numbers huge, negative and not numbers, paths, odd unicode, a --store that is not one),
or, most often, careful ones with a wild one here and there. The examples are
derandomised, so a run is repeatable; ``TRENCHES_FUZZ_EXAMPLES`` (default 25 a command)
asks for more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trenches
from trenches.cli.commands import app

from conftest import log_requests, run_cli, tumours

#: Commands left out, and why.
EXCLUDED = {
    # Runs a server until it is stopped; its arguments are covered by test_serving.
    ("serve",),
    # Runs the team server until it is stopped; test_api covers it and its arguments.
    ("server",),
    # Builds a whole project (half a minute); test_demo runs it.
    ("demo",),
}

GATES = """\
[[gates.clf]]
metric = "accuracy"
min = 0.5

[[gates.clf]]
problems = "open"
min-score = 0.1

[[gates.clf]]
metric = "accuracy"
vs = "production"
tolerance = 0.5

[monitor]
alpha = 0.05

[retrain.clf]
train = "fit_clf:fit"
"""

FIT_MODULE = """\
from sklearn.linear_model import LogisticRegression


def fit(data):
    return LogisticRegression(max_iter=200).fit(data.X, data.y, sample_weight=data.sample_weight)
"""


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


COMMANDS = {
    path: command for path, command in _walk(typer.main.get_command(app)) if path not in EXCLUDED
}


# --- the store ---------------------------------------------------------------------------


def _build(folder: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    (folder / "trenches.toml").write_text(GATES, encoding="utf-8")
    (folder / "fit_clf.py").write_text(FIT_MODULE, encoding="utf-8")
    store = trenches.open(folder / ".trenches")
    try:
        ds = store.datasets.create("tumours", task="classification", label="label")
        frame = tumours(160, seed=0)
        ds.add(frame, source="expert", labelled_by="dr.a", created_at="2026-01-01")
        prices = store.datasets.create("prices", task="regression", label="price", tolerance="10%")
        prices.add(
            pd.DataFrame({"area": np.arange(1.0, 41.0), "price": np.arange(40.0) * 3 + 1}),
            source="expert",
        )
        notes = store.datasets.create("notes", task="classification", label="label")
        notes.add(
            pd.DataFrame({"note": ["short", "longer note"] * 5, "label": ["a", "b"] * 5}),
            source="crowd",
        )
        ids = ds.pattern_ids().tolist()
        store.patterns.relabel(ids[0], "benign", source="expert", reason="biopsy")
        store.patterns.deactivate([ids[1]], reason="duplicate")
        snap = ds.snapshot(note="all")
        X, y, _, _ = snap.training_data("train")
        runs = []
        for name, model in (
            ("logistic", LogisticRegression(max_iter=200)),
            ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ):
            with store.run(name, snapshot=snap, capture_code=False, params={"m": name}) as run:
                model.fit(X, y)
                run.log_metrics({"acc": 0.8 if name == "tree" else 0.7})
                run.log_model(model, "clf")
            runs.append(run.id)
        store.models.promote("clf@1", "production", reason="first")
        store.models.promote("clf@2", "candidate", reason="second")
        validation = ds.pattern_ids("validation").tolist()
        store.baselines.add(
            "always-benign",
            dataset="tumours",
            predictions=pd.DataFrame(
                {"pattern_id": validation, "prediction": ["benign"] * len(validation)}
            ),
        )
        store.problems.create("small", dataset="tumours", title="Small tumours", severity="high")
        store.problems.add("small", positive=validation[:4], negative=validation[4:7])
        for ref in ("clf@1", "clf@2"):
            code, _, err = run_cli("evaluate", ref)
            assert code == 0, err
        store.gates.check("clf@2", path=folder / "trenches.toml")
        version = store.models.get("clf@production")
        requests = log_requests(
            store,
            version,
            tumours(60, seed=1),
            ["radius", "texture", "grade"],
            label="label",
        )
        report = store.monitoring.run("clf@production", path=folder / "trenches.toml")
        # What SANE calls for is there: patterns 3, 4 and 9 of tumours, snapshot 1, runs 1
        # and 2, drift report 1, requests r-0 and r-5.
        assert {3, 4, 9} <= set(ids) and snap.id == 1 and runs == [1, 2] and report.id == 1
        assert {"r-0", "r-5"} <= set(requests)
    finally:
        store.close()


def _files(folder: Path) -> None:
    """Files a user could name: good and bad imports, configs, a folder, a non-store."""
    f = folder / "files"
    f.mkdir()
    good = tumours(12, seed=5)
    good.to_csv(f / "more.csv", index=False)
    good.to_parquet(f / "more.parquet")
    good.to_json(f / "more.jsonl", orient="records", lines=True)
    long_text = pd.DataFrame({"note": ["x" * (200 * 1024), "y"], "label": ["a", "b"]})
    long_text.to_csv(f / "long-field.csv", index=False)
    pd.DataFrame({"pattern_id": [1, 2], "prediction": ["benign", "benign"]}).to_csv(
        f / "predictions.csv", index=False
    )
    pd.DataFrame({"pattern_id": [3, 4]}).to_csv(f / "ids.csv", index=False)
    (f / "text.txt").write_text("hello\n", encoding="utf-8")
    (f / "text.csv").write_text("a,b\n1\n\x00\x01,2,3\n", encoding="utf-8")
    (f / "empty.csv").write_bytes(b"")
    (f / "not-a-store.db").write_text("hello, I am not SQLite\n", encoding="utf-8")
    (f / "bad.toml").write_text("[[gates.clf]\nmetric=\n", encoding="utf-8")
    (f / "odd.toml").write_text('[[gates.clf]]\nmetric = "nonsense"\nmin = "x"\n', encoding="utf-8")
    (f / "folder").mkdir()
    db = folder / ".trenches" / "trenches.db"
    (f / "truncated.db").write_bytes(db.read_bytes()[: 3 * 4096])


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project folder, made once per session (per worker)."""
    folder = tmp_path_factory.mktemp("fuzz-project")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS"):
            mp.delenv(var, raising=False)  # everything goes into the folder, to be copied
        mp.chdir(folder)
        _build(folder)
        _files(folder)
    return folder


@contextmanager
def _copy(made: Path) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="trenches-fuzz-"))
    try:
        shutil.copytree(made, where, dirs_exist_ok=True, symlinks=True)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


# --- the arguments -----------------------------------------------------------------------

HUGE = [2**63 - 1, 2**63, 2**64, 10**30, -(2**63), -(2**63) - 1, -1, 0]
ODD_TEXT = ["", " ", "é", "名前", "\u202e", "a\u0000b", "x" * 300, "-", "--", "@", "%", "'", "\n"]
FLOATS = ["nan", "inf", "-inf", "1e400", "-0", "0.5", "1.2.3", "1e-400", "2", "-3"]
REFS = [
    "clf@1",
    "clf@2",
    "clf@production",
    "clf@candidate",
    "clf",
    "always-benign",
    "clf@9223372036854775807",
    "clf@9223372036854775808",
    "clf@-1",
    "clf@0",
    "clf@x",
    "clf@",
    "@1",
    "clf@1@2",
    "nope@1",
]
TIMES = [
    "2026-01-01",
    "1960-01-01",
    "0001-01-01",
    "9999-12-31T23:59:59",
    "2026-13-45",
    "24h",
    "0h",
    "-1h",
    "99999999999h",
    "1e9d",
    "3d",
    "yesterday",
]
FILES = [
    "files/more.csv",
    "files/more.parquet",
    "files/more.jsonl",
    "files/long-field.csv",
    "files/predictions.csv",
    "files/ids.csv",
    "files/text.txt",
    "files/text.csv",
    "files/empty.csv",
    "files/not-a-store.db",
    "files/truncated.db",
    "files/folder",
    "no-such-file.csv",
    "/",
    "/dev/null",
]
OUTPUTS = ["out.html", "out.parquet", "out.xml", "out.md", "out.csv", "no/such/folder/out.x"]
CONFIGS = ["trenches.toml", "files/bad.toml", "files/odd.toml", "no-such.toml", "files/folder"]
STORES = [
    ".trenches",
    "files/not-a-store.db",
    "files/truncated.db",
    "files/empty.csv",
    "files/text.txt",
    "files/folder",
    "no-store-here",
    "sqlite://",
    "nope://x",
    "postgresql://nobody@127.0.0.1:1/x",
]

#: Values a parameter's name calls for (besides any value at all, drawn less often).
BY_NAME: dict[str, list[str]] = {
    "ref": REFS,
    "a": REFS,
    "b": REFS,
    "version": REFS,
    "name": ["tumours", "prices", "notes", "clf", "nope", "new-one"],
    "model": ["clf", "nope"],
    "dataset": ["tumours", "prices", "notes", "nope"],
    "slug": ["small", "nope", "new-problem"],
    "problem": ["small", "nope", "new-problem"],
    "alias": ["production", "candidate", "staging", "9"],
    "source": ["expert", "crowd", "production", "bad source"],
    "sources": ["expert", "expert,crowd", ",", "nope"],
    "label": ["benign", "malignant", "a", "1.5"],
    "task": ["classification", "regression", "nope"],
    "severity": ["low", "medium", "high", "critical", "nope"],
    "status": ["open", "closed", "nope"],
    "polarity": ["positive", "negative", "nope"],
    "split": ["train", "validation", "test", "all", "nope"],
    "patterns": ["validation", "test", "all", "problem:small", "problem:nope", "1,2,3", "3"],
    "reference": ["train", "validation", "all", "1", "1:test", "9223372036854775808:train", "x"],
    "filter": [
        "metrics.acc > 0.5",
        "metrics.acc > 1.2.3",
        "params.m = 'tree'",
        "params.m == tree",
        "attributes.status = 'finished'",
        "metrics.acc >",
        "metrics.acc > 1e400",
        "metrics.acc > 99999999999999999999999",
        "name ~ x",
    ],
    "order_by": ["metrics.acc DESC", "metrics.acc", "start_time", "nope ASC", "metrics.acc UP"],
    "schema": [
        "radius:number,texture:number,grade:integer",
        "radius:number,radius:number",
        "radius:number,:string",
        " :number",
        "a:integer,",
        "a:nope",
    ],
    "splits": ["0.7,0.15,0.15", "1,0,0", "0.5,0.5", "-1,1,1", "nan,0,1"],
    "tolerance": ["0.5", "10%", "0.5 or 10%", "x%", "-1", "inf", "nan"],
    "value": ["0.5", "10%", "0.5 or 10%", "x%", "-1"],
    "fail_on": ["all", "leakage", "duplicates,conflicting-labels", "leakage,nope"],
    "window": TIMES,
    "since": TIMES,
    "until": TIMES,
    "as_of": TIMES,
    "created_at": TIMES,
    "file": FILES,
    "predictions": FILES,
    "current": FILES,
    "from_file": FILES,
    "token_file": FILES,
    "config": CONFIGS,
    "out": OUTPUTS,
    "output": OUTPUTS,
    "junit": OUTPUTS,
    "markdown": OUTPUTS,
    "dest": OUTPUTS,
    "folder": ["demo-here", "files/folder", "files/text.txt"],
    "request_id": ["r-0", "r-5", "nope", "r-999"],
    "request_ids": ["r-0", "r-5", "nope", "r-999"],
}


#: What a careful user would type for a parameter of this name, on this project: drawn
#: for every parameter of a "sane" command line, so that commands get past their first
#: check and do their work (where further faults hide).
SANE: dict[str, list[str]] = {
    "ref": ["clf@1", "clf@2", "clf@production", "clf@candidate"],
    "a": ["clf@1", "clf@2", "always-benign", "1"],
    "b": ["clf@2", "clf@1", "1"],
    "version": ["clf@1", "clf"],
    "name": ["tumours", "prices", "notes", "clf", "new-one"],
    "model": ["clf"],
    "dataset": ["tumours", "notes", "prices"],
    "slug": ["small", "new-problem"],
    "problem": ["small"],
    "alias": ["production", "candidate", "staging"],
    "source": ["expert", "crowd", "production", "contrived"],
    "sources": ["expert", "expert,crowd"],
    "label": ["benign", "malignant", "a"],
    "task": ["classification", "regression"],
    "severity": ["low", "medium", "high"],
    "status": ["open", "closed"],
    "polarity": ["positive", "negative"],
    "split": ["validation", "test", "train", "all"],
    "patterns": ["validation", "test", "problem:small", "3,4,5"],
    "reference": ["train", "validation", "1:test"],
    "filter": ["metrics.acc > 0.5", "params.m = 'tree'"],
    "order_by": ["metrics.acc DESC", "attributes.started_at"],
    "schema": ["radius:number,texture:number,grade:integer", "note:string"],
    "splits": ["0.7,0.15,0.15", "0.5,0.25,0.25"],
    "tolerance": ["0.5", "10%", "0.5 or 10%"],
    "value": ["0.5", "10%"],
    "fail_on": ["all", "leakage"],
    "window": ["3d", "24h"],
    "since": ["2026-01-01", "3d"],
    "until": ["2099-01-01", "1h"],
    "as_of": ["2099-01-01", "1960-01-01"],
    "created_at": ["2026-01-01", "1960-01-01"],
    "file": ["files/more.csv", "files/more.parquet", "files/more.jsonl", "files/long-field.csv"],
    "predictions": ["files/predictions.csv"],
    "current": ["files/more.csv", "files/more.parquet"],
    "from_file": ["files/more.csv", "files/long-field.csv"],
    "config": ["trenches.toml"],
    "out": ["out.parquet", "out.csv", "out.jsonl"],
    "output": ["out.html", "out.png"],
    "junit": ["out.xml"],
    "markdown": ["out.md"],
    "request_id": ["r-0", "r-5"],
    "request_ids": ["r-0", "r-5"],
    "pattern_id": ["3", "4", "9"],
    "pattern_ids": ["3", "4", "9"],
    "run_id": ["1", "2"],
    "snapshot": ["1"],
    "report": ["1"],
    "limit": ["5", "0"],
    "top": ["3"],
    "seed": ["0", "7"],
    "samples": ["20", "50"],
    "features": ["3"],
    "batch_size": ["7", "1000"],
    "row": ["0", "3"],
    "rating": ["1", "4.5"],
    "precision": ["4", "2"],
}


def _numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-3, 12).map(str),
        st.sampled_from(HUGE).map(str),
        st.sampled_from(FLOATS),
    )


def _anything() -> st.SearchStrategy[str]:
    """Any value at all: names, refs, files, numbers, unicode."""
    every = sorted({v for vs in (*BY_NAME.values(), *SANE.values()) for v in vs})
    return st.one_of(
        st.sampled_from(every), _numbers(), st.sampled_from(ODD_TEXT), st.text(max_size=10)
    )


def _kind(param: Any) -> str:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return str(annotation if annotation is not None else getattr(param, "type", "")).lower()


def _value(param: Any, sane: bool) -> st.SearchStrategy[str]:
    """A value for one parameter: on a sane line what a careful user types; otherwise
    mostly what its name and type call for, good or bad, and now and then anything."""
    name = param.name or ""
    numeric = "int" in _kind(param) or "float" in _kind(param)
    if sane:
        if name in SANE:
            return st.sampled_from(SANE[name])
        return st.sampled_from(["1", "2"]) if numeric else st.sampled_from(["x", "a note"])
    fitting: list[st.SearchStrategy[str]] = []
    if name in BY_NAME:
        fitting.append(st.sampled_from(BY_NAME[name]))
    if name in SANE:
        fitting.append(st.sampled_from(SANE[name]))
    if numeric:
        fitting.append(_numbers())
    if not fitting:
        fitting.append(_anything())
    return st.one_of(*fitting, *fitting, *fitting, _anything())


def _words(param: Any, sane: bool) -> st.SearchStrategy[list[str]]:
    """The words one parameter adds to the command line, or none."""
    if getattr(param, "is_flag", False):
        return st.sampled_from([[], [param.opts[0]]])
    many = getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1
    values = st.lists(_value(param, sane), min_size=1, max_size=3 if many else 1)
    if param.opts[0].startswith("-"):
        option = values.map(lambda vs: [w for v in vs for w in (param.opts[0], v)])
        return option if param.required else st.one_of(st.just([]), option, option)
    return values if param.required else st.one_of(st.just([]), values)


@st.composite
def _command_line(draw: Any, path: tuple[str, ...]) -> list[str]:
    """A whole command line: every parameter sane, every one drawn wild, or (most
    often) sane ones with a wild one here and there, which gets deepest."""
    mode = draw(st.sampled_from(["sane", "mixed", "mixed", "wild"]))
    words: list[str] = []
    if mode == "wild" and draw(st.integers(0, 5)) == 0:
        words += ["--store", draw(st.sampled_from(STORES))]
    words += list(path)
    for param in COMMANDS[path].params:
        sane = mode == "sane" or (mode == "mixed" and draw(st.integers(0, 3)) > 0)
        words += draw(_words(param, sane))
    return words


# --- the property ------------------------------------------------------------------------


@pytest.fixture
def no_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)


def run_on_a_copy(made: Path, args: list[str]) -> tuple[int, str, str]:
    """``trenches ARGS`` in this process, in a fresh copy of the project."""
    home = Path.cwd()
    with _copy(made) as where:
        os.chdir(where)
        try:
            return run_cli(*args)
        finally:
            os.chdir(home)


def _traceback(made: Path, args: list[str]) -> str:
    """The traceback of a failing command line, run again with --debug."""
    import traceback

    try:
        run_on_a_copy(made, ["--debug", *args])
    except Exception as e:
        return "".join(traceback.format_exception(e))
    return "(no exception with --debug)"


EXAMPLES = int(os.environ.get("TRENCHES_FUZZ_EXAMPLES", "25"))


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_a_command_under_generated_arguments_exits_0_1_or_2_without_a_traceback(
    path: tuple[str, ...], made: Path, no_store_settings: None
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=_command_line(path))
    def check(args: list[str]) -> None:
        code, out, err = run_on_a_copy(made, args)
        shown = f"trenches {' '.join(map(repr, args))}\nexit {code}\n{err[-3000:]}"
        if code not in (0, 1, 2):
            shown += "\n" + _traceback(made, args)
        assert code in (0, 1, 2), shown
        assert "Traceback" not in err + out, shown
        if "error:" in err:  # our own messages are one line (Typer's usage box is not ours)
            assert "\n" not in err[err.index("error:") :].rstrip("\n"), shown

    check()
