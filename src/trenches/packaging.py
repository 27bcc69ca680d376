"""``trenches package``: a container build context for one model version.

For a version trenches predicts with itself, the context holds a store of its own with
that version alone (its files, signature and number), a Dockerfile on the Python of the
version's recorded environment, the requirements pinned to what that environment had,
trenches itself as a wheel (when it runs from a source checkout), and an entrypoint
running ``trenches serve`` as a user that is not root. For an endpoint version served
from R, a Dockerfile on a rocker image with plumber, running the service's own files
kept with the version.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trenches.errors import InvalidInput

if TYPE_CHECKING:
    from trenches.models.endpoints import Endpoint
    from trenches.models.versions import ModelVersion
    from trenches.store import Store

#: The rocker image an R service is built on: R with a dated CRAN snapshot, so the
#: packages it installs are pinned by the tag.
R_IMAGE = "rocker/r-ver:4.4.2"
#: The port a packaged server listens on.
PORT = 8080
#: Libraries a version's native file needs, by flavor (the extra that installs them).
_FLAVOR_PACKAGES = {
    "xgboost": ("xgboost-cpu", "xgboost"),
    "lightgbm": ("lightgbm",),
    "torch": ("torch",),
}


@dataclass(frozen=True)
class Package:
    """What ``trenches package`` wrote: the folder, its files, and how to build it."""

    folder: Path
    files: tuple[str, ...]
    image: str
    #: Where the pins came from: the version's run, or this machine.
    pinned_from: str

    @property
    def build(self) -> str:
        return f"docker build -t {self.image} {self.folder}"


def package(
    store: Store, ref: str, out: Path, *, trusted: bool = False, base_image: str | None = None
) -> Package:
    """Write the build context of version ``ref`` into ``out`` (new or empty).
    ``base_image``: the image to build on instead of the recorded Python's slim image
    (or rocker's, for R): one with the same tools, from a registry of one's own."""
    version = store.models.get(ref)
    if version.needs_trust and not trusted:
        raise InvalidInput(
            f"{version.ref} loads only with --trusted (" + ", ".join(version.needs_trust) + "); "
            "package it with --trusted to serve it trusted in the container"
        )
    endpoint = store.models.endpoint(version) if version.flavor == "endpoint" else None
    entry = _r_entry(version, endpoint) if endpoint is not None else None
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty; give a new folder (--out)")
    image = re.sub(r"[^a-z0-9_.-]", "-", version.model.lower()) + f":{version.version}"
    # Written beside it and renamed into place: a context is whole or absent.
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        if endpoint is not None and entry is not None:
            _r_service(store, version, endpoint, entry, work, base_image or R_IMAGE)
            source = "the rocker image's CRAN snapshot"
        else:
            source = _python_context(store, version, work, trusted, base_image)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return Package(out, tuple(written), image, source)


def _python_context(
    store: Store, version: ModelVersion, out: Path, trusted: bool, base_image: str | None
) -> str:
    """Write the context of a version trenches serves; where its pins came from."""
    python, pins, source = _pins(store, version)
    _copy_version(store, version, out / "store")
    wheel = _trenches_wheel(out / "wheels")
    requirements = [f"{name}=={pins[name]}" for name in sorted(pins, key=str.lower)]
    if wheel is None:
        requirements.insert(0, f"trenches=={importlib.metadata.version('trenches')}")
    header = f"# pinned from {source}; trenches itself: " + (
        f"wheels/{wheel}" if wheel else "the package index"
    )
    (out / "requirements.txt").write_text("\n".join([header, *requirements]) + "\n")
    base = base_image or f"python:{python}-slim"
    (out / "Dockerfile").write_text(_python_dockerfile(version, base, wheel, trusted))
    (out / ".dockerignore").write_text("**/__pycache__\n*.pyc\n")
    return source


# --- a version trenches serves ------------------------------------------------------------


def _pins(store: Store, version: ModelVersion) -> tuple[str, dict[str, str], str]:
    """The Python version, and trenches' requirements (and the version's library)
    pinned: to the versions the run that made it recorded, else to this machine's."""
    python, recorded = platform.python_version(), dict[str, str]()
    source = "this machine's environment (the version has no recorded run)"
    found = _recorded(store, version.run_id) if version.run_id is not None else None
    if found is not None:
        python, recorded, digest = found
        source = f"the environment run {version.run_id} recorded ({digest[:12]})"
    installed = {
        _canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    recorded = {_canonical(k): v for k, v in recorded.items()}
    wanted = [_named(r) for r in importlib.metadata.requires("trenches") or [] if "extra" not in r]
    wanted += [(n, "") for n in _FLAVOR_PACKAGES.get(version.flavor, ()) if n in installed]
    pins = {}
    for name, extras in dict.fromkeys(wanted):
        pinned = recorded.get(name, installed.get(name))
        if pinned is not None:
            pins[name + extras] = pinned
    return python, pins, source


def _recorded(store: Store, run_id: int) -> tuple[str, dict[str, str], str] | None:
    """The Python version, packages and digest of the environment run ``run_id``
    recorded, if it did."""
    from sqlalchemy import select

    from trenches.db import schema as t
    from trenches.db.engine import read

    e = t.environments.c
    with read(store.engine) as conn:
        row = conn.execute(
            select(e.python, e.packages, e.digest)
            .join(t.runs, t.runs.c.environment_id == e.id)
            .where(t.runs.c.id == run_id)
        ).first()
    if row is None:
        return None
    return str(row.python).split()[-1], dict(orjson.loads(row.packages)), str(row.digest)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _named(requirement: str) -> tuple[str, str]:
    """The distribution a requirement names and its extras (``uvicorn[standard]>=0.29``
    -> uvicorn, ``[standard]``): an extra left out leaves out what it installs."""
    found = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?", requirement)
    assert found is not None, requirement
    return _canonical(found[1]), (found[2] or "").replace(" ", "")


def _copy_version(store: Store, version: ModelVersion, folder: Path) -> None:
    """A new store in ``folder`` holding ``version`` alone, numbered as it is here."""
    import trenches

    with trenches.open(folder, create=True) as packed:
        packed.models.adopt(version, store.models.files(version))


def _trenches_wheel(folder: Path) -> str | None:
    """A wheel of the trenches running here, built from its source checkout (an
    editable install's) into ``folder``; None when it was installed from an index. A
    wheel built before in this process from the same sources is copied (a notebook that
    packages several versions builds it once)."""
    try:
        direct = importlib.metadata.distribution("trenches").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running trenches
        return None
    found = json.loads(direct) if direct else {}
    url = str(found.get("url", ""))
    if not url.startswith("file://") or "dir_info" not in found:
        return None
    source = url[7:]
    key = (source, _newest_change(Path(source)))
    built = _built_wheels.get(key)
    if built is None or not built.exists():
        built = _build_wheel(source)
        _built_wheels[key] = built
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, folder / built.name)
    return built.name


#: Wheels of trenches built in this process: (source folder, its newest change) -> wheel.
_built_wheels: dict[tuple[str, float], Path] = {}


def _newest_change(source: Path) -> float:
    """When the package's sources (and its pyproject.toml) last changed."""
    package = Path(__file__).parent
    times = [f.stat().st_mtime for f in package.rglob("*") if f.is_file()]
    project = source / "pyproject.toml"
    if project.exists():
        times.append(project.stat().st_mtime)
    return max(times, default=0.0)


def _build_wheel(source: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="trenches-wheel-"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), source],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(folder.glob("trenches-*.whl"))
    if built.returncode != 0 or not wheels:
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidInput(f"could not build a wheel of trenches from {source}: {built.stderr}")
    return wheels[-1]


def _python_dockerfile(version: ModelVersion, base: str, wheel: str | None, trusted: bool) -> str:
    install = "pip install --no-cache-dir -r /tmp/requirements.txt"
    copy_wheel = ""
    if wheel is not None:
        copy_wheel = f"COPY wheels/{wheel} /tmp/wheels/{wheel}\n"
        install += f" \\\n && pip install --no-cache-dir --no-deps /tmp/wheels/{wheel}"
    serve = ["trenches", "--store", "/srv/store", "serve", version.ref]
    serve += ["--host", "0.0.0.0", "--port", str(PORT)]
    if trusted:
        serve.append("--trusted")
    return f"""\
# {version.ref}, served by trenches; built by `trenches package`.
FROM {base}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt /tmp/requirements.txt
{copy_wheel}RUN {install} \\
 && rm -rf /tmp/requirements.txt /tmp/wheels \\
 && groupadd --gid 10001 trenches \\
 && useradd --create-home --uid 10001 --gid 10001 trenches

COPY --chown=10001:10001 store /srv/store
USER 10001:10001
WORKDIR /srv
EXPOSE {PORT}
HEALTHCHECK CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:{PORT}/ping')"]
ENTRYPOINT {json.dumps(serve)}
"""


# --- an R service ---------------------------------------------------------------------


def _r_entry(version: ModelVersion, endpoint: Endpoint) -> str:
    """The plumber file of an endpoint version's R service, kept with the version."""
    if (endpoint.language or "").lower() != "r":
        raise InvalidInput(
            f"{version.ref} calls a service in {endpoint.language or 'an unnamed language'}; "
            "trenches packages R services (on rocker with plumber): package the service "
            "with its own tooling"
        )
    if not version.sources:
        raise InvalidInput(
            f"{version.ref} keeps no files of its service; register it again with "
            "--source (its plumber file and model)"
        )
    scripts = [n for n in version.sources if n.lower().endswith(".r")]
    entry = next((n for n in scripts if n.lower() in ("plumber.r", "api.r")), None)
    entry = entry or (scripts[0] if len(scripts) == 1 else None)
    if entry is None:
        raise InvalidInput(
            f"{version.ref} keeps {', '.join(version.sources)}: which is the plumber file? "
            "name it plumber.R or api.R"
        )
    return entry


def _r_service(
    store: Store, version: ModelVersion, endpoint: Endpoint, entry: str, out: Path, base: str
) -> None:
    app = out / "app"
    app.mkdir()
    for name in version.sources:
        (app / name).write_bytes(store.models.file_bytes(version, f"source/{name}"))
    port = _port_of(endpoint.url)
    run = f"plumber::plumb('{entry}')$run(host = '0.0.0.0', port = {port}, docs = FALSE)"
    (out / "Dockerfile").write_text(
        f"""\
# {version.ref}: its R service (plumber), built by `trenches package`.
FROM {base}

RUN install2.r --error --skipinstalled plumber \\
 && groupadd --gid 10001 service \\
 && useradd --create-home --uid 10001 --gid 10001 service

COPY --chown=10001:10001 app /srv/app
USER 10001:10001
WORKDIR /srv/app
EXPOSE {port}
ENTRYPOINT ["Rscript", "-e", "{run}"]
"""
    )


def _port_of(url: str) -> int:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def describe(found: Package) -> dict[str, Any]:
    """The JSON form ``trenches package --json`` prints."""
    return {
        "folder": str(found.folder),
        "files": list(found.files),
        "image": found.image,
        "pinned_from": found.pinned_from,
        "build": found.build,
    }
