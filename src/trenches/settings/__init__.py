"""``trenches.toml``: one loader, one typed and frozen :class:`Settings`, checked against
the declaration of every key (``trenches.settings.keys``).

Library code never looks for the file on its own: the edges do. ``trenches.open()``
finds the nearest ``trenches.toml`` (or takes ``settings=`` a path or a
:class:`Settings`), the store keeps it as ``store.settings``, and each part is handed
the piece it needs (the gates of a model, the drift thresholds, the error costs).

``python -m trenches.settings --markdown`` prints the reference of every key, as
``docs/configuration.md`` holds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trenches.errors import InvalidConfig, InvalidInput
from trenches.settings.document import Document
from trenches.settings.gates import Criteria, GateSpec, criteria, toml_key
from trenches.settings.guard import GuardSettings, guarding
from trenches.settings.keys import default
from trenches.settings.monitor import ColumnSettings, DriftSettings, MonitorSettings, monitoring
from trenches.settings.retrain import RetrainSettings, retraining

__all__ = [
    "FILE_NAME",
    "ColumnSettings",
    "Costs",
    "Criteria",
    "DriftSettings",
    "GateSpec",
    "GuardSettings",
    "MonitorSettings",
    "RetrainSettings",
    "Settings",
    "Source",
    "find",
    "given",
    "load",
    "parse",
]

FILE_NAME = "trenches.toml"

#: The cost of each kind of error: true class -> predicted class -> cost.
Costs = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Settings:
    """What one ``trenches.toml`` says, checked: the gates of each model, the
    retraining of each model, the drift thresholds, the error costs, and whether runs
    tag their commit. ``Settings()`` is every default (no file)."""

    #: The file it was read from; None for the defaults.
    file: str | None = None
    gates: Mapping[str, Criteria] = field(default_factory=dict)
    retrain: Mapping[str, RetrainSettings] = field(default_factory=dict)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    #: ``[guard]``: the bounds a rollout's arms are rolled back on.
    guard: GuardSettings = field(default_factory=GuardSettings)
    #: ``[evaluation.cost]``; None when it is not given (no cost metrics).
    costs: Costs | None = None
    git_tag: bool = default("runs", "git_tag")
    #: ``[compute] scheduler``: where heavy work runs (see :mod:`trenches.compute`).
    scheduler: str = default("compute", "scheduler")

    def criteria(self, model: str) -> Criteria:
        """The gates of ``model``; their absence is an error saying what to write."""
        head = f"[[gates.{toml_key(model)}]]"
        if self.file is None:
            raise InvalidInput(
                f"no {FILE_NAME} here or in a folder above: write the gates of {model!r} "
                f"there as {head} tables (see docs/gates.md)"
            )
        if not self.gates:
            raise InvalidConfig(
                f"there are no gates; add {head} tables", file=self.file, key="gates"
            )
        found = self.gates.get(model)
        if found is None:
            known = ", ".join(sorted(self.gates))
            raise InvalidConfig(
                f"no gates for model {model!r} (gates are written for: {known}); add {head} tables",
                file=self.file,
                key=f"gates.{model}",
            )
        return found

    def retraining(self, model: str) -> RetrainSettings:
        """The ``[retrain.MODEL]`` table of ``model``; its absence is an error saying
        what to write."""
        if self.file is None:
            raise InvalidInput(
                f"no {FILE_NAME} here or in a folder above: write a [retrain.{model}] table "
                'there with train = "module:function" (see docs/retraining.md)'
            )
        found = self.retrain.get(model)
        if found is None:
            known = ", ".join(sorted(self.retrain)) or "none"
            raise InvalidConfig(
                f"no [retrain.{model}] table (tables are written for: {known}); add one with "
                'train = "module:function"',
                file=self.file,
                key=f"retrain.{model}",
            )
        return found


def find(start: str | os.PathLike[str]) -> Path | None:
    """The nearest ``trenches.toml`` in the folder ``start`` or a folder above it."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidConfig(f"not UTF-8 text ({e.reason})", file=file) from None
    except OSError as e:
        raise InvalidConfig(f"cannot read it: {e.strerror or e}", file=file) from None


def _toml(text: str, file: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = re.search(r" \(at line (\d+), column (\d+)\)$", message)
        if at is None:
            raise InvalidConfig(message, file=file) from None
        reason = f"{message[: at.start()]} (column {at[2]})"
        raise InvalidConfig(reason, file=file, line=int(at[1])) from None


def parse(text: str, file: str) -> Settings:
    """The settings in ``text``, the content of ``file``, checked against the
    declaration; a mistake is an :class:`InvalidConfig` naming the file, line and key."""
    data = _toml(text, file)
    doc = Document(file, text, data)
    doc.check()
    gates = criteria(doc, data.get("gates", {}))
    cost = data.get("evaluation", {}).get("cost")
    return Settings(
        file=file,
        gates=gates,
        retrain=retraining(doc, data.get("retrain", {}), gates),
        monitor=monitoring(data.get("monitor", {}), file),
        guard=guarding(data.get("guard", {})),
        costs=None
        if cost is None
        else {str(t): {str(p): float(c) for p, c in row.items()} for t, row in cost.items()},
        git_tag=data.get("runs", {}).get("git_tag", default("runs", "git_tag")),
        scheduler=data.get("compute", {}).get("scheduler", default("compute", "scheduler")),
    )


def load(path: str | os.PathLike[str]) -> Settings:
    """The settings of the ``trenches.toml`` at ``path``, checked. Whatever keeps it
    from being read (no such file, a folder, not UTF-8, not TOML) or a mistake in it is
    an :class:`InvalidConfig` naming the file (and the line and key, when there are)."""
    file = os.fspath(path)
    return parse(_read(file), file)


def given(
    settings: Settings | None = None, path: str | os.PathLike[str] | None = None
) -> Settings | None:
    """The settings a call was given: ``settings``, else those of the trenches.toml at
    ``path``, else None (the caller then uses its own, such as ``store.settings``)."""
    if settings is not None:
        return settings
    return load(path) if path is not None else None


class Source:
    """Where a store's settings come from: given :class:`Settings`, a file, or the
    nearest ``trenches.toml`` to the folder the store was opened in.

    A file is loaded once and kept; it is loaded again only when its content changes
    (or, for the nearest, a nearer one appears), so a notebook or a long-running
    process sees an edited ``trenches.toml`` as a new command would.
    """

    def __init__(
        self,
        given: Settings | str | os.PathLike[str] | None,
        start: str | os.PathLike[str] | None = None,
    ) -> None:
        """``given`` settings or the path of a file; None: the nearest trenches.toml to
        the folder ``start``."""
        self._fixed = given if isinstance(given, Settings) else None
        self._file = (
            None if given is None or isinstance(given, Settings) else os.path.abspath(given)
        )
        self._start = Path(start).resolve() if start is not None else None
        self._last: tuple[str, str, Settings] | None = None

    def current(self) -> Settings:
        """The settings as the file says now (read once per change of its content)."""
        if self._fixed is not None:
            return self._fixed
        found = self._file or (find(self._start) if self._start is not None else None)
        if found is None:
            return _DEFAULTS
        file = str(found)
        text = _read(file)
        last = self._last
        if last is not None and last[0] == file and last[1] == text:
            return last[2]
        settings = parse(text, file)
        self._last = (file, text, settings)
        return settings


_DEFAULTS = Settings()
