"""The files a command's arguments name: paths, URLs and globs of them."""

from __future__ import annotations

import glob
from pathlib import Path

from trenches.errors import InvalidInput


def named_files(files: list[str]) -> list[str]:
    """The files the arguments name: a glob its matches, in sorted order (local ones
    as the glob spells them)."""
    from trenches.scoring.inputs import matching

    named: list[str] = []
    for f in files:
        if not glob.has_magic(f):
            named.append(f)
        elif "://" in f:
            named += matching(f)
        else:
            found = sorted(p for p in glob.glob(f) if Path(p).is_file())
            if not found:
                raise InvalidInput("no file matches it", file=f)
            named += found
    return named
