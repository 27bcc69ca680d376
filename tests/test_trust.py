"""A model file runs no code without ``trusted=True``: a pipeline whose
``FunctionTransformer`` holds ``functools.partial(builtins.eval, CODE)`` is refused, with
the names that forced it, on every path that loads a model (evaluate, backfill, check,
explain, serve, retrain, monitor, report), and CODE never runs; the same file loads and
runs when the caller says they trust it. Trust is trenches' fixed list, never what the
store recorded."""

from __future__ import annotations

import builtins
import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sqlalchemy import update

import trenches
from trenches.db import schema as t
from trenches.db.engine import write
from trenches.errors import UntrustedModel
from trenches.models import trust

from conftest import _free_port, run_cli

SALT = "74727573742d74657374732d30303031"
FORCING = ("builtins.eval", "functools.partial")


def evil(marker: Path) -> FunctionTransformer:
    """A transformer that touches ``marker`` and passes its input on, by ``eval``."""
    code = (
        f"(__import__('pathlib').Path({str(marker)!r}).touch(), "
        "__import__('sys')._getframe(0).f_locals)[1]"
    )
    return FunctionTransformer(functools.partial(builtins.eval, code, {}))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def evil_store(sqlite_store: trenches.Store, marker: Path) -> trenches.Store:
    """A store whose cancer@1 (production) is a pipeline that runs code when it predicts,
    with a problem and the validation split to predict."""
    store = sqlite_store
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snapshot = ds.snapshot()
    X, y, _, ids = snapshot.training_data("train")
    model = make_pipeline(evil(marker), StandardScaler(), LogisticRegression()).fit(X, y)
    # eval filled the globals dict it ran in with every builtin: store a fresh one.
    model.steps[0] = ("functiontransformer", evil(marker))
    with store.run("a colleague's model", snapshot=snapshot, capture_code=False) as run:
        version = run.log_model(model, "cancer")
    store.models.promote(version.ref, "production", reason="first")
    store.problems.create("small", dataset="cancer", title="small tumours")
    store.problems.add("small", positive=[int(i) for i in ids[:3]])
    marker.unlink(missing_ok=True)  # registering and fitting ran it: the author's own machine
    return store


def refused(text: str) -> bool:
    return all(name in text for name in FORCING) and "--trusted" in text


def test_the_registry_names_what_forces_trust_and_load_refuses_it(
    evil_store: trenches.Store, marker: Path
) -> None:
    version = evil_store.models.get("cancer@1")
    assert version.needs_trust == FORCING
    with pytest.raises(UntrustedModel) as caught:
        evil_store.models.load("cancer@1")
    assert refused(str(caught.value))
    assert not marker.exists()

    code, out, _ = run_cli("--store", evil_store.location.db_url, "models", "show", "cancer")
    assert code == 0 and "cancer@1 loads only with --trusted" in out and "builtins.eval" in out
    code, out, _ = run_cli(
        "--store", evil_store.location.db_url, "models", "show", "cancer", "--json"
    )
    assert orjson.loads(out)["versions"][0]["needs_trust"] == list(FORCING)


def test_trusted_loads_it_and_the_code_runs(evil_store: trenches.Store, marker: Path) -> None:
    """The file really is dangerous: trusting it runs CODE (so the refusals above are
    what keeps it from running)."""
    model = evil_store.models.load("cancer@1", trusted=True)
    X = load_breast_cancer(as_frame=True).frame.drop(columns="target").iloc[:5]
    assert len(model.predict(X)) == 5
    assert marker.exists()


def test_what_the_store_recorded_as_trusted_is_not_trusted(
    evil_store: trenches.Store, marker: Path
) -> None:
    """Earlier versions recorded every name skops refused as trusted for that file; a row
    saying so (or one a colleague edited) lets nothing load."""
    with write(evil_store.engine) as conn:
        conn.execute(
            update(t.model_files)
            .where(t.model_files.c.format == "skops")
            .values(details=orjson.dumps({"trusted_types": list(FORCING)}).decode())
        )
    assert evil_store.models.get("cancer@1").needs_trust == FORCING
    with pytest.raises(UntrustedModel):
        evil_store.models.load("cancer@1")
    assert not marker.exists()


def project(tmp_path: Path) -> None:
    """trenches.toml with a gate and a retraining function, and the function's module."""
    (tmp_path / "training.py").write_text(
        textwrap.dedent(
            """
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            def fit(data):
                return make_pipeline(StandardScaler(), LogisticRegression()).fit(data.X, data.y)
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "trenches.toml").write_text(
        '[[gates.cancer]]\nmetric = "accuracy"\nmin = 0.5\n\n'
        '[retrain.cancer]\ntrain = "training:fit"\n',
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "cancer@1"],
        ["backfill"],
        ["check", "cancer@1"],
        ["explain", "cancer@1", "--problem", "small"],
        ["monitor", "cancer@production", "--current", "current.csv"],
        ["retrain", "cancer"],
    ],
    ids=lambda a: a[0],
)
def test_every_command_that_loads_a_model_refuses_it_and_runs_nothing(
    evil_store: trenches.Store, marker: Path, tmp_path: Path, args: list[str]
) -> None:
    project(tmp_path)
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    frame.iloc[:40].to_csv(tmp_path / "current.csv", index=False)
    code, out, err = run_cli("--store", evil_store.location.db_url, *args)
    assert code in (1, 2), (code, out, err)
    assert "builtins.eval" in out + err, out + err
    assert not marker.exists()


def test_serve_refuses_it_before_answering_anything(
    evil_store: trenches.Store, marker: Path
) -> None:
    serve = ["serve", "cancer@production", "--port", str(_free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "trenches", "--store", evil_store.location.db_url, *serve],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert refused(done.stderr) and "Traceback" not in done.stderr
    assert not marker.exists()


def test_the_report_loads_no_model(
    evil_store: trenches.Store, marker: Path, tmp_path: Path
) -> None:
    where = evil_store.location.db_url
    code, _, err = run_cli("--store", where, "report", "-o", tmp_path / "r.html")
    assert code == 0, err
    assert not marker.exists()


@pytest.mark.parametrize(
    "model",
    [
        make_pipeline(StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=3),
        KNeighborsClassifier(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_everyday_models_load_without_trust(sqlite_store: trenches.Store, model: object) -> None:
    """Trees, boosted trees and neighbours hold types skops does not trust by default
    (``sklearn.tree._tree.Tree``, ``KDTree``): on the fixed list, they load untrusted."""
    frame = load_breast_cancer(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    version = sqlite_store.models.register(model.fit(X, y), "m", X=X)  # type: ignore[attr-defined]
    assert version.needs_trust == ()
    loaded = sqlite_store.models.load(version.ref)
    assert (loaded.predict(X) == model.predict(X)).all()  # type: ignore[attr-defined]


NOT_ON_THE_LIST = [
    "builtins.eval",
    "builtins.exec",
    "builtins.__import__",
    "builtins.getattr",
    "builtins.open",
    "functools.partial",
    "operator.methodcaller",
    "operator.attrgetter",
    "os.system",
    "subprocess.Popen",
    "pickle.loads",
    "importlib.import_module",
    "numpy.load",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.lib.stride_tricks.as_strided",
    "numpy.ctypeslib.load_library",
    "numpy.savetxt",
    "numpy.lib.npyio.load",
    "scipy.LowLevelCallable",
    "scipy.io.loadmat",
    "sklearn.datasets.fetch_openml",
    "sklearn.datasets._svmlight_format_io.dump_svmlight_file",
    "sklearn.base.clone",
    "sklearn.utils._testing.assert_allclose",
]


@pytest.mark.parametrize("name", NOT_ON_THE_LIST)
def test_what_runs_code_or_reads_files_is_not_on_the_list(name: str) -> None:
    assert not trust.safe(name)


@given(
    root=st.sampled_from(["builtins", "functools", "operator", "os", "posix", "sys", "io"]),
    rest=st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True), max_size=3),
)
def test_nothing_outside_the_three_packages_is_trusted(root: str, rest: list[str]) -> None:
    assert not trust.safe(".".join([root, *rest]))


@given(st.text(max_size=60))
def test_any_name_at_all_is_answered_without_an_error(name: str) -> None:
    """A file's names are the attacker's: odd ones are refused, never crash the check."""
    assert trust.safe(name) in (True, False)
