"""Start-up: the command line and the server load only what they use (a server must
answer within a second and a half of starting; every command used to pay for pandas,
Alembic and the whole package before parsing its arguments)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import trenches

HEAVY = ("pandas", "pyarrow", "alembic", "sklearn", "scipy", "skops", "matplotlib", "lime")


def _loaded(code: str, cwd: Path) -> list[str]:
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_command_line_loads_nothing_heavy_before_a_command_runs(tmp_path: Path) -> None:
    assert _loaded("import trenches, trenches.cli\ntrenches.cli.__getattr__('app')", tmp_path) == []


def test_a_server_of_an_onnx_model_loads_nothing_heavy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = np.where(X["a"] > 0, "yes", "no")
    with trenches.open(tmp_path / "store") as store:
        ds = store.datasets.create("d", task="classification", label="y")
        ds.add(X.assign(y=y), source="expert")
        version = store.models.register(LogisticRegression().fit(X, y), "m", X=X, dataset="d")
        assert "onnx" in version.formats
        store.models.promote(version.ref, "production", reason="test")
    code = f"""
        import trenches.cli
        trenches.cli._serve_app()
        from trenches.serving.app import Settings, create_app
        app = create_app(Settings(ref="m@production", store={str(tmp_path / "store")!r}))
        assert app.state.server.served.model.format == "onnx"
        """
    assert _loaded(code, tmp_path) == []
