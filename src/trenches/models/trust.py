"""Which names in a skops file trenches lets load without ``trusted=True``.

skops rebuilds an object from a file by looking up the names the file holds (classes
and functions); it refuses any name outside its own default list unless the caller
trusts it. A fitted tree holds ``sklearn.tree._tree.Tree``, a nearest-neighbours model a
``KDTree``: types skops does not trust by default but which only hold numbers. A
``FunctionTransformer`` can hold any callable, and ``functools.partial(builtins.eval,
CODE)`` runs CODE the first time the model predicts.

So trust is a fixed list, the same for every file and every store, never read from the
store (a shared store's rows are written by colleagues, and by anyone who can reach the
database):

- **classes** of scikit-learn, NumPy and SciPy: skops rebuilds them field by field,
  without calling them with anything from the file;
- **functions** only from the modules that compute on arrays: NumPy's own functions,
  ``sklearn.metrics`` (kernels and scores a model may hold as a parameter) and the
  score functions of ``sklearn.feature_selection``;
- and in none of these packages, what reads or writes files, loads libraries, downloads
  or calls C function pointers (``numpy.load``, ``numpy.memmap``, ``numpy.ctypeslib``,
  ``sklearn.datasets``, ``scipy.io``, ``scipy.LowLevelCallable``, ...).

Anything else (``builtins``, ``functools``, ``operator``, any other package) makes the
file load only with ``trusted=True``, exactly like a pickle. A name is resolved by
importing its module only when the module belongs to one of the three packages, so a
file cannot make trenches import anything else.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

#: The packages whose classes may load untrusted.
PACKAGES = ("sklearn", "numpy", "scipy")

#: The modules whose functions may load untrusted (and their submodules).
FUNCTION_MODULES = (
    "numpy",
    "sklearn.metrics",
    "sklearn.feature_selection._univariate_selection",
    "sklearn.feature_selection._mutual_info",
)

#: Modules of those packages that read or write files, load code, or exist for tests
#: and building: nothing from them loads untrusted.
DENIED_MODULES = (
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib._datasource",
    "numpy.lib.format",
    "numpy.lib._format_impl",
    "numpy.lib.utils",
    "numpy.lib._utils_impl",
    "numpy.ctypeslib",
    "numpy.lib.stride_tricks",
    "numpy.lib._stride_tricks_impl",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy._pytesttester",
    "numpy._core.memmap",
    "numpy.core.memmap",
    "numpy._core.records",
    "numpy.core.records",
    "numpy._core._internal",
    "numpy.core._internal",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils._show_versions",
    "sklearn._config",
    "sklearn._build_utils",
    "sklearn.conftest",
    "scipy.io",
    "scipy.datasets",
    "scipy._lib",
    "scipy.weave",
    "scipy.misc",
)

#: Names refused wherever they are defined (NumPy re-exports under several modules).
DENIED_NAMES = frozenset(
    {
        "load",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "loadtxt",
        "genfromtxt",
        "fromfile",
        "fromregex",
        "tofile",
        "memmap",
        "open_memmap",
        "DataSource",
        "LowLevelCallable",
        "load_library",
        "fromrecords",
        "set_printoptions",
        "setbufsize",
        "seterrcall",
        "as_strided",
    }
)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@cache
def _resolve(name: str) -> object | None:
    """The object ``name`` ("package.module.Qual.name") names, importing its module only
    when it belongs to one of ``PACKAGES``; None when it does not resolve."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        if _within(module_name, DENIED_MODULES):
            return None
        try:
            obj: object = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def safe(name: str) -> bool:
    """Whether a skops file may hold ``name`` and load without ``trusted=True``."""
    parts = name.split(".")
    if parts[0] not in PACKAGES or any(p in DENIED_NAMES for p in parts):
        return False
    obj = _resolve(name)
    if obj is None:
        return False
    defined_in = getattr(obj, "__module__", None) or ""
    if not _within(defined_in, PACKAGES) or _within(defined_in, DENIED_MODULES):
        return False
    if getattr(obj, "__name__", None) in DENIED_NAMES:
        return False
    if inspect.isclass(obj):
        return True
    import numpy as np

    if isinstance(obj, np.ufunc):
        return True
    return callable(obj) and _within(defined_in, FUNCTION_MODULES)


def needing_trust(names: list[str] | set[str]) -> list[str]:
    """Of ``names`` (what skops does not trust by default), those that make a file load
    only with ``trusted=True``, sorted."""
    return sorted(n for n in names if not safe(n))
