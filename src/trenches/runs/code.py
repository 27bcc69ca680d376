"""What code and environment a run ran with: git state, dirty diff, tag; Python,
platform and installed packages."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import orjson

#: Untracked files larger than this are named in the diff but not included.
_UNTRACKED_MAX_BYTES = 1 << 20
_UNTRACKED_MAX_FILES = 200


@dataclass(frozen=True)
class CodeState:
    """The git state of the working directory when a run started."""

    state: str  # clean | dirty | none | unknown
    commit: str | None = None
    branch: str | None = None
    root: str | None = None
    diff: bytes | None = None
    detail: str | None = None


def _git(args: list[str], cwd: Path | str, *, binary: bool = False) -> bytes:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
    ).stdout


_git_roots: dict[str, str | None] = {}


def _git_root(here: Path) -> str | None:
    """The work tree around ``here`` (looked up once per folder and process)."""
    key = str(here.resolve())
    if key not in _git_roots:
        try:
            _git_roots[key] = _git(["rev-parse", "--show-toplevel"], here).decode().strip()
        except (FileNotFoundError, subprocess.CalledProcessError):
            _git_roots[key] = None
    return _git_roots[key]


def capture_git(cwd: Path | None = None) -> CodeState:
    """Commit, branch, dirty flag and diff of the git work tree around ``cwd``."""
    here = cwd or Path.cwd()
    try:
        root = _git_root(here)
        if root is None:
            return CodeState("none", detail="not inside a git work tree (or no git)")
        # One call gives the commit, the branch and whether anything changed.
        status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=all"], root)
    except subprocess.TimeoutExpired:
        return CodeState("unknown", detail="git did not answer")
    except subprocess.CalledProcessError as e:
        return CodeState("unknown", detail=e.stderr.decode(errors="replace").strip()[:500])
    commit = branch = None
    changes = []
    for line in status.splitlines():
        if line.startswith(b"# branch.oid "):
            commit = line[len(b"# branch.oid ") :].decode()
        elif line.startswith(b"# branch.head "):
            branch = line[len(b"# branch.head ") :].decode()
        elif not line.startswith(b"#"):
            changes.append(line)
    if commit is None or commit == "(initial)":
        return CodeState("unknown", root=root, detail="the repository has no commit yet")
    if not changes:
        return CodeState("clean", commit, branch, root)
    diff = _git(["diff", "HEAD", "--binary"], root)
    untracked = [line[2:].decode(errors="replace") for line in changes if line.startswith(b"? ")]
    for name in untracked[:_UNTRACKED_MAX_FILES]:
        path = Path(root) / name
        if path.is_file() and path.stat().st_size <= _UNTRACKED_MAX_BYTES:
            # `git diff --no-index` exits 1 when the files differ, which they do.
            result = subprocess.run(
                ["git", "diff", "--no-index", "--binary", "--", "/dev/null", name],
                cwd=root,
                capture_output=True,
                timeout=60,
            )
            diff += result.stdout
        else:
            diff += f"# untracked, not included: {name}\n".encode()
    return CodeState("dirty", commit, branch, root, diff)


def tag_run(root: str, commit: str, run_id: int, message: str) -> str | None:
    """Create the annotated tag ``trenches/run-<id>`` on ``commit``; None if git refuses."""
    name = f"trenches/run-{run_id}"
    args = ["tag", "-a", name, "-m", message, commit]
    try:
        _git(args, root)
    except subprocess.CalledProcessError as e:
        if b"tell me who you are" not in e.stderr and b"identity" not in e.stderr:
            return None
        # No git identity configured here (a CI box): tag in trenches' name.
        try:
            _git(["-c", "user.name=trenches", "-c", "user.email=trenches@localhost", *args], root)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return None
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    return name


@dataclass(frozen=True)
class Environment:
    """Python, platform and installed packages, with a digest that names them."""

    python: str
    platform: str
    packages: dict[str, str]

    @property
    def digest(self) -> str:
        return hashlib.sha256(
            self.packages_json().encode() + self.python.encode() + self.platform.encode()
        ).hexdigest()

    def packages_json(self) -> str:
        return orjson.dumps(self.packages, option=orjson.OPT_SORT_KEYS).decode()


@lru_cache(maxsize=1)
def capture_environment() -> Environment:
    """The running interpreter's environment (read once per process)."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    return Environment(
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        platform=platform.platform(),
        packages=dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it split cleanly.
    return stat[stat.rindex(")") + 2 :].split()


def process_started(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (Linux), to tell a reused pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc here: a live pid is all we can tell
    if fields[0] in ("Z", "X"):
        return False  # exited, not yet reaped by its parent
    # A different start time means the pid was reused by another process.
    return started is None or int(fields[19]) == started
