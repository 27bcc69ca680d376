"""The training function a ``[retrain.MODEL]`` table names, imported from the folder of
its ``trenches.toml``."""

from __future__ import annotations

import contextlib
import importlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from trenches.patterns.snapshots import TrainingData
    from trenches.settings.retrain import RetrainSettings


def load_function(settings: RetrainSettings) -> Callable[[TrainingData], Any]:
    """Import the training function ``module:function``, with the folder of
    trenches.toml first on ``sys.path``.

    A module of that folder is imported afresh on every call, so a long-running
    ``trenches monitor --retrain`` trains with the code as it is now, not as it was
    when the process started.
    """
    module_name, function_name = settings.train.split(":")
    folder = Path(settings.file).resolve().parent
    top = module_name.split(".")[0]
    if (folder / f"{top}.py").is_file() or (folder / top).is_dir():
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise settings.error(
            "train", f"cannot import {module_name!r} (looked in {folder} first): {e}"
        ) from None
    except Exception as e:
        where = "".join(traceback.format_exception_only(type(e), e)).strip()
        raise settings.error("train", f"importing {module_name!r} failed: {where}") from None
    finally:
        with contextlib.suppress(ValueError):  # the module took it off itself
            sys.path.remove(str(folder))
    function = getattr(module, function_name, None)
    if function is None:
        raise settings.error(
            "train", f"module {module_name!r} ({module.__file__}) has no {function_name!r}"
        )
    if not callable(function):
        raise settings.error(
            "train", f"{settings.train} is a {type(function).__name__}, not a function"
        )
    return cast("Callable[[TrainingData], Any]", function)
