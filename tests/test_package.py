"""``trenches package``: the build context's contents, its Dockerfiles linted by
hadolint, and the packaged store served by a real server."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import trenches
from test_endpoints import Service
from test_serving import LiveServer
from trenches.errors import InvalidInput
from trenches.serving.settings import Settings

from conftest import run_cli

HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint on ``dockerfile``, failing on any finding (info and up)."""
    return subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def fitted(sqlite_store: trenches.Store) -> tuple[trenches.Store, LogisticRegression]:
    """clf@1 and clf@2, logged in runs (which record their environment)."""
    store = sqlite_store
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    model = LogisticRegression(max_iter=3000).fit(X, y)
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        run.log_model(LogisticRegression(max_iter=50).fit(X, y), "clf")
        run.log_model(model, "clf")
    return store, model


def test_a_version_is_packaged_with_its_pins_a_store_of_its_own_and_trenches(
    fitted: tuple[trenches.Store, LogisticRegression], tmp_path: Path
) -> None:
    store, model = fitted
    out = tmp_path / "context"
    found = trenches_package(store, "clf@2", out)
    assert found.image == "clf:2"
    assert {"Dockerfile", "requirements.txt", "store/trenches.db", ".dockerignore"} <= set(
        found.files
    )
    wheels = [f for f in found.files if f.startswith("wheels/trenches-")]
    assert len(wheels) == 1 and wheels[0].endswith(".whl")

    # Every runtime requirement of trenches, pinned to what the run recorded.
    pins = dict(
        line.split("==")
        for line in (out / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    )
    for requirement in importlib.metadata.requires("trenches") or []:
        if "extra" in requirement:
            continue
        name = requirement.split(">")[0].split("<")[0].split("=")[0].lower()  # with [extras]
        assert name in pins, name
        assert pins[name] == importlib.metadata.version(name.split("[")[0]), name
    assert (out / "requirements.txt").read_text().startswith("# pinned from the environment run")

    dockerfile = (out / "Dockerfile").read_text()
    python = ".".join(map(str, sys.version_info[:3]))
    assert f"FROM python:{python}-slim" in dockerfile
    assert "USER 10001:10001" in dockerfile
    entry = json.loads(dockerfile.split("ENTRYPOINT ", 1)[1].splitlines()[0])
    assert entry == [
        "trenches", "--store", "/srv/store", "serve", "clf@2", "--host", "0.0.0.0", "--port",
        "8080",
    ]  # fmt: skip
    lint = hadolint(out / "Dockerfile")
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The packaged store holds clf@2 alone, numbered as here, and serves it.
    with trenches.open(out / "store") as packed:
        assert packed.models.names() == ["clf"]
        assert [v.version for v in packed.models.versions("clf")] == [2]
    X = load_breast_cancer(as_frame=True).data.iloc[:40]
    settings = Settings(
        ref="clf@2", store=str(out / "store"), spool_dir=str(tmp_path / "spool"),
        log_requests=False,
    )  # fmt: skip
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as c:
        r = c.post("/predict", json=X.to_dict(orient="records"))
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == "clf@2"
    got = np.array([a["scores"]["1"] for a in r.json()["predictions"]])
    assert np.abs(got - model.predict_proba(X)[:, 1]).max() < 1e-6


def trenches_package(store: trenches.Store, ref: str, out: Path, **kw: bool) -> object:
    from trenches.packaging import package

    return package(store, ref, out, **kw)


def test_an_r_endpoint_is_packaged_on_rocker_with_its_own_files(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    store = sqlite_store
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    sources = {"api.R": b"#* @post /predict\nfunction(req) 1\n", "model.rds": b"\x1f\x8bRDS"}
    with Service(lambda rows: [0] * len(rows)) as service:
        endpoint = trenches.Endpoint(url=service.url, protocol="json", language="r")
        store.models.add_endpoint("cancer-r", endpoint, dataset="cancer", sources=sources)
        port = service.url.split(":")[2].split("/")[0]
    out = tmp_path / "r"
    found = trenches_package(store, "cancer-r@1", out)
    assert set(found.files) == {"Dockerfile", "app/api.R", "app/model.rds"}
    assert (out / "app" / "model.rds").read_bytes() == sources["model.rds"]
    dockerfile = (out / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1].startswith("FROM rocker/r-ver:")
    assert "install2.r --error --skipinstalled plumber" in dockerfile
    assert f"plumber::plumb('api.R')$run(host = '0.0.0.0', port = {port}" in dockerfile
    assert "USER 10001:10001" in dockerfile
    lint = hadolint(out / "Dockerfile")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_what_cannot_be_packaged_is_refused_and_writes_nothing(
    fitted: tuple[trenches.Store, LogisticRegression], tmp_path: Path
) -> None:
    store, _ = fitted
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="is not empty"):
        trenches_package(store, "clf@1", full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]

    with Service(lambda rows: [0] * len(rows)) as service:
        bare = trenches.Endpoint(url=service.url, protocol="json", language="r")
        store.models.add_endpoint("r-bare", bare, dataset="cancer")
        python = trenches.Endpoint(url=service.url, protocol="json", language="python")
        store.models.add_endpoint("py-remote", python, dataset="cancer", sources={"a.py": b""})
    with pytest.raises(InvalidInput, match="keeps no files of its service"):
        trenches_package(store, "r-bare@1", tmp_path / "a")
    with pytest.raises(InvalidInput, match="packages R services"):
        trenches_package(store, "py-remote@1", tmp_path / "b")

    class Rule:
        def predict(self, X: object) -> np.ndarray:
            return np.zeros(len(X))  # type: ignore[arg-type]

    X = load_breast_cancer(as_frame=True).data
    store.models.register(Rule(), "rule", X=X)
    with pytest.raises(InvalidInput, match="loads only with --trusted"):
        trenches_package(store, "rule@1", tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_the_cli_prints_the_context_as_json(
    fitted: tuple[trenches.Store, LogisticRegression], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        "--store",
        str(tmp_path / "store"),
        "package",
        "clf@1",
        "--out",
        str(tmp_path / "ctx"),
        "--base-image",
        "registry.internal/python:3.11-slim",
        "--json",
    )
    assert code == 0, err
    found = json.loads(out)
    assert found["image"] == "clf:1" and "Dockerfile" in found["files"]
    assert found["build"] == f"docker build -t clf:1 {tmp_path / 'ctx'}"
    dockerfile = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "\nFROM registry.internal/python:3.11-slim\n" in dockerfile


def test_a_context_cut_short_leaves_nothing_behind(
    fitted: tuple[trenches.Store, LogisticRegression],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trenches import packaging

    def no_wheel(folder: Path) -> str:
        raise InvalidInput("could not build a wheel of trenches")

    monkeypatch.setattr(packaging, "_trenches_wheel", no_wheel)
    store, _ = fitted
    with pytest.raises(InvalidInput, match="could not build a wheel"):
        trenches_package(store, "clf@1", tmp_path / "builds" / "clf")
    assert list((tmp_path / "builds").iterdir()) == []


def test_a_second_context_in_one_process_copies_the_wheel_built_for_the_first(
    fitted: tuple[trenches.Store, LogisticRegression],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trenches import packaging

    builds: list[str] = []
    build = packaging._build_wheel
    monkeypatch.setattr(packaging, "_build_wheel", lambda s: builds.append(s) or build(s))
    store, _ = fitted
    trenches_package(store, "clf@1", tmp_path / "first")
    trenches_package(store, "clf@2", tmp_path / "second")
    assert len(builds) <= 1  # none when an earlier test of this process built it
    first = next((tmp_path / "first" / "wheels").iterdir())
    second = next((tmp_path / "second" / "wheels").iterdir())
    assert first.name == second.name and first.read_bytes() == second.read_bytes()
