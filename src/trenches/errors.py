"""One exception hierarchy for trenches; every message says what to do next.

The CLI maps these to exit statuses: ``InvalidInput`` and ``NotFound`` and
``Conflict`` are the user's to fix (exit 2), ``CheckFailed`` means a check ran
and found something (exit 1).
"""

from __future__ import annotations


class TrenchesError(Exception):
    """Root of every error trenches raises on purpose."""

    exit_code = 2

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled whole (a Dask worker's error travels to the client pickled): what an
        # error names (file, row, field, ...) is kept, not only its message.
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(
    kind: type[TrenchesError], args: tuple[object, ...], state: dict[str, object]
) -> TrenchesError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


# --- the user asked for something that is not there, or not possible --------


class NotFound(TrenchesError):
    """A dataset, pattern, snapshot or store that was named does not exist."""


class Conflict(TrenchesError):
    """The request contradicts what is stored (a name taken, a pattern already inactive)."""


# --- who is asking -----------------------------------------------------------


class NotAuthenticated(TrenchesError):
    """A name and password, or a token, lets no one in: unknown, wrong, revoked, expired
    or of a disabled user, all alike, so that the message tells nothing of which."""


class Forbidden(TrenchesError):
    """A signed-in user asked for what their roles do not allow."""


class NotOfferedRemotely(TrenchesError):
    """A store opened over the team server (``trenches.open("https://...")``) was asked
    for what the server does not offer; the message says what to do instead."""


# --- input ------------------------------------------------------------------


class InvalidInput(TrenchesError):
    """Input data or arguments are malformed; nothing was stored.

    ``file``, ``row`` (1-based, as a person counts data rows) and ``field``
    locate the problem when it is in a file or table.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if file is not None:
            where.append(file)
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f'column "{field}"')
        super().__init__(", ".join(where) + ": " + message if where else message)


class InvalidConfig(InvalidInput):
    """``trenches.toml`` cannot be read, or a setting in it is malformed; names the
    file, and the line and the key when there are (``trenches.toml, line 5:
    monitor.alpha: 2 must be between 1e-12 and 1``)."""

    def __init__(
        self, message: str, *, file: str, key: str | None = None, line: int | None = None
    ) -> None:
        self.key = key
        self.line = line
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.file = file


# --- the store ----------------------------------------------------------------


class StoreError(TrenchesError):
    """The database or artifact store cannot be used as it is."""


class SchemaTooNew(StoreError):
    """The store was written by a newer trenches; this version must not touch it."""


class StoreBusy(StoreError):
    """The database stayed locked by another process longer than the busy timeout."""


class ArtifactCorrupted(StoreError):
    """A stored file's bytes no longer match the SHA-256 it is stored under."""


class DiskFull(StoreError):
    """A write found no space left on its disk (or quota); what it was writing is not kept."""


class ComputeUnavailable(TrenchesError):
    """The Dask cluster that heavy work is sent to cannot be reached (or started);
    names its address and the setting that chose it."""


# --- models -----------------------------------------------------------------


class UntrustedModel(TrenchesError):
    """A model file in a format that runs code on load, loaded without ``trusted=True``."""


# --- checks -----------------------------------------------------------------


class CheckFailed(TrenchesError):
    """A check ran to the end and found what it was told to fail on."""

    exit_code = 1
