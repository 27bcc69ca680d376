"""Fetch one file of a package from the npm registry, checked against the registry's
integrity digest, into ``.cache/npm/``: how the browser tests get axe-core (the
accessibility checker they inject into each page) without Node.js installed.

Usage: ``python tests/tools/npm_fetch.py PACKAGE VERSION SHA512-INTEGRITY FILE``; prints
the path of the file. Run by ``make test`` (nothing is fetched when the file is there).
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "npm"
REGISTRY = "https://registry.npmjs.org"


def where(package: str, version: str, member: str) -> Path:
    """Where the file ``member`` of ``package@version`` is kept."""
    return CACHE / f"{package}-{version}" / member


def fetch(package: str, version: str, integrity: str, member: str) -> Path:
    """The file ``member`` (a path inside the package) of ``package@version``."""
    out = where(package, version, member)
    if out.exists():
        return out
    url = f"{REGISTRY}/{package}/-/{package.split('/')[-1]}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read()
    algorithm, _, expected = integrity.partition("-")
    found = base64.b64encode(hashlib.new(algorithm, body).digest()).decode()
    if found != expected:
        raise SystemExit(f"{url}: its {algorithm} digest is {found}, not {expected}")
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        data = tar.extractfile(f"package/{member}")
        if data is None:
            raise SystemExit(f"{url} holds no file {member}")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        partial.write_bytes(data.read())
        partial.replace(out)
    return out


if __name__ == "__main__":
    print(fetch(*sys.argv[1:5]))
