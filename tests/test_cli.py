"""The ``trenches`` command line, run for real.

Most tests call ``trenches.cli.main(argv)`` in this process (the function the console
script calls; about a millisecond a call instead of two seconds of imports). Those about
what a process shows its caller (exit status, stderr, no traceback) run the installed
console script in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer

import trenches
from trenches.cli import app, main

from conftest import PostgresServer, make_frame

_ENV_VARS = ("TRENCHES_DB_URL", "TRENCHES_ARTIFACTS")


def _console_script() -> str:
    beside = Path(sys.executable).parent / "trenches"
    if beside.exists():
        return str(beside)
    found = shutil.which("trenches")
    assert found, "the trenches console script is not installed"
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_trenches(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The installed console script in a subprocess, as a user's shell or CI runs it."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in (*_ENV_VARS, "COLUMNS", "LINES", "FORCE_COLOR")
    }
    proc = subprocess.run(
        [_console_script(), *map(str, args)],
        cwd=cwd,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,  # no terminal anywhere: output as when piped
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``trenches ARGS...`` in this process, in ``tmp_path``, with no store settings."""
    monkeypatch.chdir(tmp_path)
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)

    def run(*args: str | Path | int) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code: int
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            else:
                code = 0
        return Result(code, out.getvalue(), err.getvalue())

    return run


def numeric_frame(n: int, seed: int) -> pd.DataFrame:
    """make_frame without its string column: radius, texture, grade, label."""
    return make_frame(n, seed=seed).drop(columns=["site"])


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def cancer(cli: Any, tmp_path: Path) -> pd.DataFrame:
    """A store here with dataset ``cancer`` holding 60 expert patterns from January."""
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "label").code == 0
    frame = numeric_frame(60, seed=1)
    r = cli(
        "data",
        "add",
        write_csv(tmp_path / "jan.csv", frame),
        "--dataset",
        "cancer",
        "--source",
        "expert",
        "--labelled-by",
        "dr.a",
        "--created-at",
        "2026-01-10",
    )
    assert r.code == 0, r.err
    return frame


def _show(cli: Any, name: str = "cancer") -> dict[str, Any]:
    r = cli("data", "show", name, "--json")
    assert r.code == 0, r.err
    out: dict[str, Any] = r.json()
    return out


def _flat(text: str) -> str:
    """Text with every run of white space made one space (Rich wraps long lines)."""
    return " ".join(text.split())


# --- init and finding the store ---------------------------------------------------------


def test_init_creates_the_store_in_dot_trenches(tmp_path: Path) -> None:
    r = run_trenches("init", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (tmp_path / ".trenches" / "trenches.db").is_file()
    assert "store ready" in r.out


def test_a_command_without_a_store_exits_2_and_says_to_run_init(tmp_path: Path) -> None:
    r = run_trenches("data", "list", cwd=tmp_path)
    assert r.code == 2
    assert "trenches init" in _flat(r.err)
    assert "Traceback" not in r.err
    assert not (tmp_path / ".trenches").exists(), "a failed command must not create a store"


def test_init_twice_is_harmless(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "y").code == 0
    r = cli("init")
    assert r.code == 0, r.err
    assert [d["name"] for d in cli("data", "list", "--json").json()] == ["cancer"]


def test_store_option_names_another_folder(cli: Any, tmp_path: Path) -> None:
    assert cli("--store", "elsewhere", "init").code == 0
    assert (tmp_path / "elsewhere" / "trenches.db").is_file()
    assert not (tmp_path / ".trenches").exists()
    r = cli("--store", "elsewhere", "data", "list", "--json")
    assert r.code == 0 and r.json() == []


def test_env_var_names_the_store(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRENCHES_DB_URL", f"sqlite:///{tmp_path / 'env' / 'team.db'}")
    assert cli("init").code == 0
    assert (tmp_path / "env" / "team.db").is_file()


# --- data create / add / list / show ------------------------------------------------


def test_data_list_on_an_empty_store_says_how_to_start(cli: Any) -> None:
    assert cli("init").code == 0
    r = cli("data", "list")
    assert r.code == 0
    assert "trenches data create" in _flat(r.out)
    assert cli("data", "list", "--json").json() == []


def test_data_create_then_list_shows_the_dataset(cli: Any) -> None:
    assert cli("init").code == 0
    r = cli("data", "create", "cancer", "--task", "classification", "--label", "label")
    assert r.code == 0, r.err
    assert "cancer" in r.out
    (listed,) = cli("data", "list", "--json").json()
    assert listed["name"] == "cancer"
    assert listed["task"] == "classification"
    assert listed["active"] == 0


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ("radius:number,grade:integer,radius:integer", "column 'radius' appears twice"),
        ("radius:number,:string", "':string' names no column"),
        ("radius:number, :integer", "':integer' names no column"),
    ],
)
def test_data_create_refuses_a_schema_with_a_twice_named_or_unnamed_column(
    cli: Any, schema: str, said: str
) -> None:
    assert cli("init").code == 0
    r = cli("data", "create", "d", "--task", "classification", "--label", "y", "--schema", schema)
    assert r.code == 2 and said in r.err, r.err
    assert cli("data", "list", "--json").json() == []


def test_a_schema_object_with_a_twice_named_column_is_refused() -> None:
    from trenches.patterns.inputs import InputColumn, InputSchema

    with pytest.raises(trenches.InvalidInput, match="'x' appears twice"):
        InputSchema((InputColumn("x", "number"), InputColumn("x", "string")))


def test_data_create_a_taken_name_exits_2(cli: Any) -> None:
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "y").code == 0
    r = cli("data", "create", "cancer", "--task", "regression", "--label", "y")
    assert r.code == 2
    assert "exists already" in r.err


def test_data_add_reports_rows_ids_and_splits(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "label").code == 0
    csv = write_csv(tmp_path / "batch.csv", numeric_frame(80, seed=2))
    r = cli("data", "add", csv, "-d", "cancer", "--source", "crowd", "--json")
    assert r.code == 0, r.err
    result = r.json()
    assert result["rows"] == 80
    assert result["last_id"] - result["first_id"] + 1 == 80
    assert sum(result["by_split"].values()) == 80
    assert set(result["by_split"]) == {"train", "validation", "test"}
    assert result["source"] == "crowd"
    human = cli("data", "add", csv, "-d", "cancer", "--source", "crowd")
    assert human.code == 0
    assert "added 80 patterns" in _flat(human.out)


def test_data_add_of_a_file_imported_before_warns_and_skip_existing_adds_nothing(
    cli: Any, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    # `cancer` imported jan.csv (60 rows) from expert; some of it comes again, with news.
    again = pd.concat([cancer.iloc[:25], numeric_frame(5, seed=7)], ignore_index=True)
    path = write_csv(tmp_path / "again.csv", again)
    twice = cli("data", "add", path, "-d", "cancer", "--source", "expert")
    assert twice.code == 0
    assert "warning: 25 of these 30 patterns were in cancer already" in _flat(twice.err)
    assert "--skip-existing" in twice.err
    assert _show(cli)["active"] == 90
    skipped = cli("data", "add", path, "-d", "cancer", "--source", "expert", "--skip-existing")
    assert skipped.code == 0 and "warning" not in skipped.err
    assert "nothing added to cancer" in _flat(skipped.out) and "all 30" in _flat(skipped.out)
    fresh = write_csv(tmp_path / "fresh.csv", pd.concat([again, numeric_frame(3, seed=8)]))
    some = cli("data", "add", fresh, "-d", "cancer", "--source", "expert", "--skip-existing")
    assert "added 3 patterns" in _flat(some.out) and "30 stored already, skipped" in some.out
    assert _show(cli)["active"] == 93


def test_data_add_of_several_files_and_a_glob_is_one_transaction(
    cli: Any, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    # `cancer` holds jan.csv (60 rows); feb repeats 10 of them, mar 5 of feb's news.
    folder = tmp_path / "more"
    folder.mkdir()
    feb = pd.concat([cancer.iloc[:10], numeric_frame(20, seed=11)], ignore_index=True)
    write_csv(folder / "feb.csv", feb)
    mar = pd.concat([feb.iloc[10:15], numeric_frame(7, seed=12)], ignore_index=True)
    mar.to_parquet(folder / "mar.parquet", index=False)
    bad = numeric_frame(4, seed=13).astype({"radius": object})
    bad.loc[1, "radius"] = "oops"
    write_csv(tmp_path / "bad.csv", bad)
    refused = cli(
        "data", "add", folder / "feb.csv", "bad.csv", "-d", "cancer", "--source", "expert"
    )
    assert refused.code == 2
    assert 'bad.csv, row 2, column "radius"' in _flat(refused.err)
    assert _show(cli)["active"] == 60 and _show(cli)["imports"] == 1
    r = cli("data", "add", "more/*", "-d", "cancer", "--source", "expert", "--skip-existing")
    assert r.code == 0, r.err
    out = _flat(r.out)
    assert "added 20 patterns to cancer from more/feb.csv (ids 61-80, import 2;" in out
    assert "10 stored already, skipped" in out
    assert "added 7 patterns to cancer from more/mar.parquet (ids 81-87, import 3;" in out
    assert "5 stored already, skipped" in out
    again = cli(
        "data",
        "add",
        "more/*.csv",
        "more/mar.parquet",
        "-d",
        "cancer",
        "--source",
        "expert",
        "--json",
    )
    assert again.code == 0, again.err
    results = again.json()
    assert [(x["rows"], x["already_stored"]) for x in results] == [(30, 30), (12, 12)]
    assert "warning: 42 of these 42 patterns were in cancer already" in _flat(again.err)
    none = cli("data", "add", "more/*.txt", "-d", "cancer", "--source", "expert")
    assert none.code == 2 and "no file matches it" in none.err


def test_data_add_csv_with_a_string_column(cli: Any, tmp_path: Path) -> None:
    """A CSV with a categorical column (``site``) imports; the strings come back as is."""
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "label").code == 0
    frame = make_frame(30, seed=3)
    r = cli(
        "data",
        "add",
        write_csv(tmp_path / "sites.csv", frame),
        "-d",
        "cancer",
        "--source",
        "expert",
    )
    assert r.code == 0, r.err
    with trenches.open(tmp_path / ".trenches", create=False) as store:
        got = store.datasets.get("cancer").patterns()
    assert list(got["site"]) == list(frame["site"])


def test_data_show_json_counts_by_split_source_label_and_month(
    cli: Any, cancer: pd.DataFrame, tmp_path: Path
) -> None:
    feb = numeric_frame(25, seed=2)
    mar = numeric_frame(15, seed=3)
    added = []
    for frame, source, when, name in (
        (feb, "crowd", "2026-02-14", "feb.csv"),
        (mar, "expert", "2026-03-01T08:00:00Z", "mar.csv"),
    ):
        r = cli(
            "data",
            "add",
            write_csv(tmp_path / name, frame),
            "-d",
            "cancer",
            "--source",
            source,
            "--created-at",
            when,
            "--json",
        )
        assert r.code == 0, r.err
        added.append(r.json())
    s = _show(cli)
    assert s["active"] == 100 and s["inactive"] == 0 and s["imports"] == 3
    assert s["by_source"] == {"crowd": 25, "expert": 75}
    assert s["by_month"] == {"2026-01": 60, "2026-02": 25, "2026-03": 15}
    labels = pd.concat([cancer, feb, mar])["label"].value_counts().to_dict()
    assert s["by_label"] == labels
    assert sum(s["by_split"].values()) == 100
    for split in ("validation", "test"):
        assert s["by_split"].get(split, 0) >= sum(a["by_split"][split] for a in added)
    assert [c["name"] for c in s["schema"]] == ["radius", "texture", "grade"]


def test_data_show_human_output(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "show", "cancer")
    assert r.code == 0, r.err
    assert "60 active patterns" in _flat(r.out)


def test_an_unknown_dataset_exits_2_and_names_it(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "show", "cancr")
    assert r.code == 2
    assert "cancr" in r.err and "cancer" in r.err


# --- relabel, history, deactivate ------------------------------------------------------


def test_relabel_then_history_shows_the_chain_and_the_reasons(
    cli: Any, cancer: pd.DataFrame
) -> None:
    first = cancer["label"].iloc[4]
    other = "malignant" if first == "benign" else "benign"
    r = cli(
        "data",
        "relabel",
        5,
        other,
        "--source",
        "expert",
        "--reason",
        "biopsy result",
        "--labelled-by",
        "dr.b",
    )
    assert r.code == 0, r.err
    new_id = int(re.search(r"new pattern (\d+)", r.out).group(1))  # type: ignore[union-attr]
    r = cli("data", "relabel", new_id, first, "--source", "crowd", "--reason", "second opinion")
    assert r.code == 0, r.err

    h = cli("data", "history", 5, "--json").json()["patterns"]
    assert [p["label"] for p in h] == [first, other, first]
    assert h[0]["id"] == 5 and h[1]["id"] == new_id
    assert [p["replaces_id"] for p in h] == [None, 5, new_id]
    assert h[0]["deactivated_at"] is not None and h[1]["deactivated_at"] is not None
    assert h[2]["deactivated_at"] is None
    assert h[0]["change"]["kind"] == "relabel"
    assert h[0]["change"]["reason"] == "biopsy result"
    assert h[1]["change"]["reason"] == "second opinion"
    assert h[2]["change"] is None
    assert {p["split"] for p in h} == {h[0]["split"]}
    # Any version of the pattern gives the same history.
    assert cli("data", "history", h[2]["id"], "--json").json()["patterns"] == h
    s = _show(cli)
    assert s["active"] == 60 and s["inactive"] == 2


def test_relabel_without_a_reason_is_a_usage_error(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "relabel", 5, "benign", "--source", "expert")
    assert r.code == 2
    assert "--reason" in r.err


def test_history_human_output_shows_the_reason(cli: Any, cancer: pd.DataFrame) -> None:
    other = "malignant" if cancer["label"].iloc[0] == "benign" else "benign"
    assert cli("data", "relabel", 1, other, "--source", "expert", "--reason", "typo").code == 0
    r = cli("data", "history", 1)
    assert r.code == 0
    assert "typo" in r.out


def test_deactivate_takes_patterns_out_of_the_counts(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "deactivate", 3, 4, "--reason", "duplicate of 2")
    assert r.code == 0, r.err
    assert "deactivated 2 patterns" in r.out
    s = _show(cli)
    assert s["active"] == 58 and s["inactive"] == 2
    h = cli("data", "history", 3, "--json").json()["patterns"]
    assert h[0]["change"] == {
        "kind": "deactivate",
        "reason": "duplicate of 2",
        "by": h[0]["change"]["by"],
    }


def test_deactivate_is_all_or_nothing(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "deactivate", 3, 999_999, "--reason", "oops")
    assert r.code == 2
    assert "999999" in r.err
    assert _show(cli)["active"] == 60
    assert cli("data", "deactivate", 3, "--reason", "first").code == 0
    again = cli("data", "deactivate", 3, "--reason", "twice")
    assert again.code == 2
    assert "inactive already" in again.err


# --- snapshots ------------------------------------------------------------------------


def test_snapshot_as_of_with_sources_json(cli: Any, cancer: pd.DataFrame, tmp_path: Path) -> None:
    for frame, source, when, name in (
        (numeric_frame(20, seed=5), "crowd", "2026-01-20", "crowd.csv"),
        (numeric_frame(10, seed=6), "expert", "2026-03-05", "late.csv"),
    ):
        r = cli(
            "data",
            "add",
            write_csv(tmp_path / name, frame),
            "-d",
            "cancer",
            "--source",
            source,
            "--created-at",
            when,
        )
        assert r.code == 0, r.err
    r = cli("data", "snapshot", "cancer", "--as-of", "2026-02-01", "--sources", "expert", "--json")
    assert r.code == 0, r.err
    snap = r.json()
    assert snap["patterns"] == 60
    assert re.fullmatch(r"[0-9a-f]{64}", snap["digest"])
    assert snap["sources"] == ["expert"]
    assert snap["as_of"] == "2026-02-01T00:00:00Z"
    # The same freeze taken again has the same digest; a wider one does not.
    again = cli(
        "data", "snapshot", "cancer", "--as-of", "2026-02-01", "--sources", "expert", "--json"
    ).json()
    assert again["digest"] == snap["digest"] and again["id"] != snap["id"]
    wider = cli("data", "snapshot", "cancer", "--as-of", "2026-02-01", "--json").json()
    assert wider["patterns"] == 80 and wider["digest"] != snap["digest"]
    with trenches.open(tmp_path / ".trenches", create=False) as store:
        stored = store.snapshots.get(snap["id"])
        assert stored.digest == snap["digest"]
        assert stored.verify()
    listed = _show(cli)["snapshot_list"]
    assert [x["digest"] for x in listed] == [snap["digest"], snap["digest"], wider["digest"]]


def test_snapshot_of_nothing_exits_2(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "snapshot", "cancer", "--as-of", "2025-12-31")
    assert r.code == 2
    assert "no active patterns" in _flat(r.err)


# --- data check ------------------------------------------------------------------------


def test_check_finds_planted_duplicates_and_fails_on_them(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "label").code == 0
    frame = numeric_frame(60, seed=7)
    frame.iloc[10] = frame.iloc[3]  # an exact copy: same inputs, same label
    added = cli(
        "data",
        "add",
        write_csv(tmp_path / "d.csv", frame),
        "-d",
        "cancer",
        "--source",
        "expert",
        "--json",
    ).json()
    copies = [added["first_id"] + 3, added["first_id"] + 10]

    r = cli("data", "check", "cancer", "--fail-on", "duplicates", "--json")
    assert r.code == 1, r.err
    report = r.json()
    assert report["failed_on"] == ["duplicates"]
    dup = next(f for f in report["findings"] if f["kind"] == "duplicates")
    assert dup["found"] is True
    assert dup["groups"] == [copies]

    human = cli("data", "check", "cancer", "--fail-on", "duplicates")
    assert human.code == 1
    assert "duplicates" in human.err


def test_check_passes_on_clean_data(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "check", "cancer", "--fail-on", "duplicates,conflicting-labels", "--json")
    assert r.code == 0, r.err
    report = r.json()
    assert report["patterns"] == 60
    assert report["failed_on"] == []
    kinds = {f["kind"]: f for f in report["findings"]}
    assert kinds["duplicates"]["found"] is False


@pytest.mark.parametrize("precision", ["0", "-3", "18"])
def test_check_refuses_a_precision_a_float_cannot_have(
    cli: Any, cancer: pd.DataFrame, precision: str
) -> None:
    r = cli("data", "check", "cancer", f"--precision={precision}")
    assert r.code == 2 and "precision" in r.err and "17" in r.err


def test_check_refuses_an_unknown_kind(cli: Any, cancer: pd.DataFrame) -> None:
    r = cli("data", "check", "cancer", "--fail-on", "dupes")
    assert r.code == 2
    assert "dupes" in r.err and "duplicates" in r.err


# --- bad input and bad usage ----------------------------------------------------------

_HEADER = "radius,texture,grade,label\n"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "nan.csv",
            _HEADER + "1.5,20.1,1,benign\n2.5,20.2,2,benign\n3.5,x7,3,malignant\n",
            ["nan.csv", "row 3", 'column "texture"'],
        ),
        (
            "nolabel.csv",
            _HEADER + "1.5,20.1,1,benign\n2.5,20.2,2,\n",
            ["nolabel.csv", "row 2", 'column "label"'],
        ),
        (
            "extra.csv",
            "radius,texture,grade,colour,label\n1.5,20.1,1,red,benign\n",
            ["extra.csv", 'column "colour"'],
        ),
        (
            "ragged.csv",
            _HEADER + "1.5,20.1,1,benign\n2.5,20.2,2,benign,oops\n",
            ["ragged.csv", "row 2"],
        ),
        (
            "grade.csv",
            _HEADER + "1.5,20.1,1,benign\n2.5,20.2,2.5,benign\n",
            ["grade.csv", "row 2", 'column "grade"'],
        ),
        ("notes.txt", _HEADER + "1.5,20.1,1,benign\n", ["notes.txt", ".txt"]),
        ("missing.csv", None, ["missing.csv", "no such file"]),
    ],
)
def test_bad_input_exits_2_naming_file_row_and_field_and_changes_nothing(
    cli: Any,
    cancer: pd.DataFrame,
    tmp_path: Path,
    name: str,
    content: str | None,
    expected: list[str],
) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    r = cli("data", "add", name, "-d", "cancer", "--source", "expert")
    assert r.code == 2
    assert r.out == ""
    for part in expected:
        assert part in r.err
    s = _show(cli)
    assert s["active"] == 60 and s["imports"] == 1


def _store_with_schema(folder: Path) -> None:
    """A store in ``folder``/.trenches with an empty dataset ``cancer`` of known inputs."""
    with trenches.open(folder / ".trenches") as store:
        store.datasets.create(
            "cancer",
            task="classification",
            label="label",
            schema="radius:number,texture:number,grade:integer",
        )


def test_bad_input_in_a_real_process_is_one_line_without_traceback(tmp_path: Path) -> None:
    _store_with_schema(tmp_path)
    (tmp_path / "bad.csv").write_text(_HEADER + "1.5,20.1,1,benign\n2.5,wide,2,benign\n")
    r = run_trenches("data", "add", "bad.csv", "-d", "cancer", "--source", "expert", cwd=tmp_path)
    assert r.code == 2
    assert "Traceback" not in r.err
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith('error: bad.csv, row 2, column "texture"')


def test_an_unexpected_exception_is_one_line_calling_itself_a_bug_with_status_70(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort: a bug (here planted in the run search) is not a user's mistake,
    so it is neither a traceback nor exit 2; --debug shows the traceback."""
    from trenches.runs.search import Runs

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("division by zero\nsecond line")

    assert cli("init").code == 0
    monkeypatch.setattr(Runs, "list", broken)
    r = cli("runs", "list")
    assert r.code == 70 and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "ZeroDivisionError: division by zero second line" in r.err and "bug" in r.err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "runs", "list"])


def test_an_error_naming_a_long_path_stays_on_one_line(tmp_path: Path) -> None:
    """Scripts read the error line by line: it must not be wrapped at 80 columns."""
    _store_with_schema(tmp_path)
    folder = tmp_path / "projects" / "breast-cancer-screening" / "data" / "incoming" / "2026-11"
    folder.mkdir(parents=True)
    bad = folder / "batch-0042.csv"
    bad.write_text(_HEADER + "1.5,20.1,1,benign\n2.5,twenty,2,benign\n")
    r = run_trenches("data", "add", bad, "-d", "cancer", "--source", "expert", cwd=tmp_path)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert str(bad) in lines[0] and "row 2" in lines[0] and 'column "texture"' in lines[0]


def test_a_missing_required_option_is_a_usage_error(tmp_path: Path) -> None:
    r = run_trenches("data", "create", "cancer", cwd=tmp_path)
    assert r.code == 2
    assert "--task" in r.err
    assert "Traceback" not in r.err


def test_a_bad_option_value_exits_2(cli: Any) -> None:
    assert cli("init").code == 0
    r = cli(
        "data",
        "create",
        "cancer",
        "--task",
        "classification",
        "--label",
        "y",
        "--splits",
        "0.5,0.5",
    )
    assert r.code == 2
    assert "--splits" in r.err


# --- help -----------------------------------------------------------------------------


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path


@pytest.mark.parametrize("command", list(_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(cli: Any, command: tuple[str, ...]) -> None:
    r = cli(*command, "--help")
    assert r.code == 0, r.err
    text = _flat(r.out)
    assert "Example" in text
    assert f"trenches {' '.join(command)}" in text


@pytest.mark.parametrize("group", [(), ("data",)], ids=["trenches", "data"])
def test_group_help_lists_the_commands(cli: Any, group: tuple[str, ...]) -> None:
    r = cli(*group, "--help")
    assert r.code == 0
    assert ("create" if group else "init") in r.out


def test_help_in_a_real_process(tmp_path: Path) -> None:
    r = run_trenches("data", "add", "--help", cwd=tmp_path)
    assert r.code == 0
    assert "Example" in r.out and "trenches data add" in _flat(r.out)


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


def test_cli_on_postgresql_with_the_store_option(cli: Any, pg_url: str, tmp_path: Path) -> None:
    r = cli("--store", pg_url, "init")
    assert r.code == 0, r.err
    assert "postgresql" in r.out
    assert (
        cli(
            "--store",
            pg_url,
            "data",
            "create",
            "cancer",
            "--task",
            "classification",
            "--label",
            "label",
        ).code
        == 0
    )
    frame = numeric_frame(40, seed=8)
    r = cli(
        "--store",
        pg_url,
        "data",
        "add",
        write_csv(tmp_path / "a.csv", frame),
        "-d",
        "cancer",
        "--source",
        "expert",
        "--created-at",
        "2026-04-02",
    )
    assert r.code == 0, r.err
    s = cli("--store", pg_url, "data", "show", "cancer", "--json").json()
    assert s["active"] == 40
    assert s["by_month"] == {"2026-04": 40}
    assert s["by_label"] == frame["label"].value_counts().to_dict()
    assert not (tmp_path / ".trenches" / "trenches.db").exists()


def test_a_postgresql_database_without_a_store_says_to_run_init(cli: Any, pg_url: str) -> None:
    r = cli("--store", pg_url, "data", "list")
    assert r.code == 2
    assert "trenches init" in _flat(r.err)


@pytest.mark.slow
def test_cli_on_postgresql_from_the_environment(
    cli: Any, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRENCHES_DB_URL names the server, for a real process (init, show) and in-process."""
    env = {"TRENCHES_DB_URL": pg_url}
    r = run_trenches("init", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    monkeypatch.setenv("TRENCHES_DB_URL", pg_url)
    assert cli("data", "create", "cancer", "--task", "classification", "--label", "label").code == 0
    frame = numeric_frame(50, seed=9)
    r = cli(
        "data",
        "add",
        write_csv(tmp_path / "a.csv", frame),
        "-d",
        "cancer",
        "--source",
        "crowd",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["rows"] == 50
    r = run_trenches("data", "show", "cancer", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    s = r.json()
    assert s["active"] == 50 and s["by_source"] == {"crowd": 50}
    assert not (tmp_path / ".trenches" / "trenches.db").exists()
    with trenches.open(pg_url, create=False) as store:
        got = store.datasets.get("cancer").patterns()
    assert len(got) == 50
    assert sorted(got["label"]) == sorted(frame["label"])


# --- runs --------------------------------------------------------------------


def test_runs_list_filters_orders_and_shows_json(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    with trenches.open(tmp_path / ".trenches") as store:
        for model, acc in [("lr", 0.91), ("rf", 0.99), ("lr", 0.95)]:
            with store.run(model, params={"model": model}, capture_code=False) as run:
                run.log_metric("acc", acc)
    result = cli(
        "runs",
        "list",
        "--filter",
        "params.model = 'lr' and metrics.acc > 0.9",
        "--order-by",
        "metrics.acc DESC",
        "--json",
    )
    assert result.code == 0, result.err
    runs = json.loads(result.out)
    assert [r["metrics"]["acc"] for r in runs] == [0.95, 0.91]
    shown = json.loads(cli("runs", "show", runs[0]["id"], "--json").out)
    assert shown["params"] == {"model": "lr"} and shown["status"] == "finished"
    table = cli("runs", "list")
    assert table.code == 0 and "rf" in table.out


def test_runs_bad_filter_and_unknown_run_exit_2(cli: Any) -> None:
    assert cli("init").code == 0
    bad = cli("runs", "list", "--filter", "accuracy is good")
    assert bad.code == 2 and "cannot read the filter" in bad.err
    missing = cli("runs", "show", "999")
    assert missing.code == 2 and "no run with id 999" in missing.err


# --- models ------------------------------------------------------------------


def test_models_list_show_and_promote(cli: Any, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    assert cli("init").code == 0
    frame = make_frame(60, seed=3)
    X = frame[["radius", "texture"]]
    with trenches.open(tmp_path / ".trenches") as store:
        for c in (0.5, 2.0):
            store.models.register(LogisticRegression(C=c).fit(X, frame["label"]), "clf", X=X)
    listed = json.loads(cli("models", "list", "--json").out)
    assert listed == [{"name": "clf", "versions": 2, "latest": 2, "aliases": {}}]
    moved = cli("models", "promote", "clf@2", "production", "--reason", "better")
    assert moved.code == 0 and "-> 2" in moved.out
    shown = json.loads(cli("models", "show", "clf", "--json").out)
    assert shown["versions"][1]["aliases"] == ["production"]
    assert shown["alias_history"][0]["reason"] == "better"
    again = cli("models", "promote", "clf@2", "production", "--reason", "again")
    assert again.code == 2 and "already" in again.err
    assert cli("models", "show", "nope").code == 2


def _trained(tmp_path: Path, rows: int, seed: int, cs: tuple[float, ...] = (1.0,)) -> Any:
    """Dataset "d" of ``rows`` patterns, a snapshot, and one "clf" version per C."""
    from sklearn.linear_model import LogisticRegression

    with trenches.open(tmp_path / ".trenches") as store:
        ds = store.datasets.create("d", task="classification", label="label")
        ds.add(make_frame(rows, seed=seed).drop(columns=["site"]), source="expert")
        snap = ds.snapshot()
        X, y, _, _ = snap.training_data("train")
        for c in cs:
            with store.run("fit", snapshot=snap, capture_code=False) as run:
                run.log_model(LogisticRegression(C=c, max_iter=500).fit(X, y), "clf")
    return snap


def test_lineage_command_prints_the_chain(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    snap = _trained(tmp_path, 80, seed=2)
    out = json.loads(cli("lineage", "clf@1", "--json").out)
    assert out["snapshot"]["digest"] == snap.digest
    assert out["data"]["by_source"] == {"expert": 80}
    text = cli("lineage", "clf@latest")
    assert text.code == 0 and snap.digest in _flat(text.out)
    assert cli("lineage", "clf@9").code == 2


def test_models_add_baseline(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    frame = make_frame(30, seed=5)
    write_csv(tmp_path / "p.csv", frame)
    assert cli("data", "create", "t", "--task", "classification", "--label", "label").code == 0
    assert cli("data", "add", "p.csv", "--dataset", "t", "--source", "expert").code == 0
    reads = tmp_path / "reads.csv"
    pd.DataFrame({"pattern_id": range(1, 11), "prediction": ["benign"] * 10}).to_csv(
        reads, index=False
    )
    result = cli("models", "add-baseline", "rule", "--dataset", "t", "--predictions", reads)
    assert result.code == 0, result.err
    assert "10 predictions" in result.out and "right on" in result.out
    bad = tmp_path / "bad.csv"
    bad.write_text("pattern_id,prediction\n1,benign\n999,benign\n")
    refused = cli("models", "add-baseline", "rule2", "--dataset", "t", "--predictions", bad)
    assert refused.code == 2 and "row 2" in refused.err and "pattern_id" in refused.err


# --- evaluate ----------------------------------------------------------------


def test_evaluate_predicts_once_and_reports_metrics_over_the_split(
    cli: Any, tmp_path: Path
) -> None:
    assert cli("init").code == 0
    (tmp_path / "trenches.toml").write_text(
        "[evaluation.cost]\nmalignant = { benign = 10.0 }\nbenign = { malignant = 1.0 }\n"
    )
    _trained(tmp_path, 200, seed=4)
    first = cli("evaluate", "clf@1", "--json")
    assert first.code == 0, first.err
    out = json.loads(first.out)
    assert out["pattern_set"] == "d:validation" and out["computed"] == out["size"] > 0
    confusion = out["confusion"]
    expected_cost = 10.0 * confusion["malignant"]["benign"] + confusion["benign"]["malignant"]
    assert out["metrics"]["cost"] == pytest.approx(expected_cost)
    again = cli("evaluate", "clf@1")
    assert again.code == 0 and "nothing to predict" in again.err
    assert "accuracy" in again.out and "d:validation" in _flat(again.out)
    assert cli("evaluate", "clf@1", "--split", "nope").code == 2


def test_compare_command_lists_flips(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    _trained(tmp_path, 150, seed=6, cs=(0.001, 10.0))
    assert cli("evaluate", "clf@1").code == 0
    assert cli("evaluate", "clf@2").code == 0
    out = json.loads(cli("compare", "clf@1", "clf@2", "--json").out)
    assert out["size"] > 0 and 0 <= out["overall"]["mcnemar_p"] <= 1
    assert set(out["overall"]) >= {"fixed", "broken"}
    text = cli("compare", "clf@1", "clf@2")
    assert text.code == 0 and "McNemar" in _flat(text.out)
    assert cli("compare", "clf@1", "nope").code == 2


def test_evaluate_also_predicts_every_problems_patterns(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    snap = _trained(tmp_path, 120, seed=8)
    with trenches.open(tmp_path / ".trenches") as store:
        train_ids = store.snapshots.get(snap.id).pattern_ids("train")
        store.problems.create("p", dataset="d", title="Training cases")
        store.problems.add("p", positive=train_ids[:4], backfill=False)
    out = json.loads(cli("evaluate", "clf@1", "--json").out)
    assert out["computed"] == out["size"] + 4  # the split and the problem's 4 patterns
    with trenches.open(tmp_path / ".trenches") as store:
        assert [s.missing for s in store.problems.scores("p")] == [0]


# --- numbers beyond the store's 64-bit integers --------------------------------------

BEYOND = str(2**63)


def _parameters(command: tuple[str, ...]) -> list[Any]:
    found: Any = typer.main.get_command(app)
    for word in command:
        found = found.commands[word]
    return list(found.params)


def _is_integer(param: Any) -> bool:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is not None:
        return annotation is int or annotation == list[int]
    return getattr(getattr(param, "type", None), "name", "") in ("integer", "integer range")


@pytest.mark.parametrize("command", list(_commands()), ids=" ".join)
def test_every_integer_parameter_is_bounded_to_64_bits(command: tuple[str, ...]) -> None:
    from trenches.cli._output import int64
    from trenches.names import INT64_MAX

    for param in _parameters(command):
        if _is_integer(param):
            bound = getattr(param, "max", None)
            callback = getattr(param.callback, "__wrapped__", param.callback)
            assert callback is int64 or (bound is not None and bound <= INT64_MAX), (
                f"trenches {' '.join(command)} {param.name}: bound it with callback=int64"
            )


@pytest.mark.parametrize(
    "args",
    [
        ("data", "history", BEYOND),
        ("data", "relabel", BEYOND, "benign", "--source", "expert", "--reason", "r"),
        ("data", "deactivate", "1", BEYOND, "--reason", "r"),
        ("data", "diff", "1", BEYOND),
        ("data", "diff", "1", "1", "--limit", BEYOND),
        ("data", "check", "d", "--snapshot", BEYOND),
        ("data", "check", "d", "--precision", BEYOND),
        ("runs", "show", BEYOND),
        ("data", "check", "d", "--snapshot", f"-{2**63 + 1}"),
        ("runs", "list", "--limit", BEYOND),
        ("monitor", "history", "--limit", BEYOND),
        ("monitor", "outliers", "clf@1", "--top", BEYOND),
        ("monitor", "outliers", "clf@1", "--seed", BEYOND),
        ("predictions", "show", "clf@1", "--limit", BEYOND),
        ("explain", "clf@1", BEYOND),
        ("explain", "clf@1", "1", "--samples", BEYOND),
        ("evaluate", "clf@1", "--batch-size", BEYOND),
        ("requests", "feedback", "r-1", "--row", BEYOND, "--rating", "1"),
        ("retrain", "clf", "--report", BEYOND),
    ],
    ids=lambda a: " ".join(w for w in a if w != BEYOND),
)
def test_an_integer_beyond_64_bits_is_a_usage_error_naming_the_parameter(
    cli: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert cli("init").code == 0
    _trained(tmp_path, 60, seed=1)
    r = cli(*args)
    assert r.code == 2, r.err
    said = _flat(r.err)
    assert "Traceback" not in said and ("out of range" in said or "less than or equal" in said)


@pytest.mark.parametrize(
    "args",
    [
        ("lineage", f"clf@{BEYOND}"),
        ("models", "promote", f"clf@{BEYOND}", "production", "--reason", "r"),
        ("evaluate", f"clf@{2**64}"),
        ("predictions", "show", "clf@1", "--patterns", f"1,{BEYOND}"),
        ("problems", "add", "p", "--positive", f"1,{BEYOND}"),
        ("monitor", "drift", "clf@1", "--reference", f"{BEYOND}:train"),
    ],
    ids=lambda a: " ".join(w.replace(BEYOND, "2^63").replace(str(2**64), "2^64") for w in a),
)
def test_an_id_beyond_64_bits_in_a_reference_or_list_exits_2_with_a_message(
    cli: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert cli("init").code == 0
    _trained(tmp_path, 60, seed=1)
    assert cli("problems", "create", "p", "--dataset", "d", "--title", "P").code == 0
    r = cli(*args)
    assert r.code == 2, r.err
    assert r.err.startswith("error:") and "Traceback" not in r.err


# --- trenches.toml that cannot be read ------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        ("missing.toml", None),
        ("folder.toml", "folder"),
        ("latin1.toml", b"[monitor]\nalpha = 0.05 # \xe9\n"),
        ("broken.toml", b"[[gates.clf]\nmetric =\n"),
    ],
    ids=["missing", "a-folder", "not-utf8", "not-toml"],
)
def test_a_config_that_cannot_be_read_exits_2_naming_it(
    cli: Any, tmp_path: Path, config: tuple[str, Any]
) -> None:
    assert cli("init").code == 0
    _trained(tmp_path, 60, seed=1)
    name, content = config
    if content == "folder":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    for command in (("check", "clf@1"), ("retrain", "clf"), ("monitor", "drift", "clf@1")):
        r = cli(*command, "--config", name)
        assert r.code == 2, r.err
        assert r.err.startswith("error:") and name in r.err and len(r.err.splitlines()) == 1


# --- long text fields -------------------------------------------------------------------

LONG = "a long report " * (200 * 1024 // 14)


def test_every_file_import_reads_a_200_kib_text_field(cli: Any, tmp_path: Path) -> None:
    """data add, problems add --from-file, models add-baseline and monitor --current all
    read files through one reader; the csv module's 128 KiB field limit stopped each."""
    assert cli("init").code == 0
    _trained(tmp_path, 60, seed=1)
    notes = tmp_path / "notes.csv"
    pd.DataFrame({"note": [LONG, "short"], "label": ["a", "b"]}).to_csv(notes, index=False)
    assert cli("data", "create", "notes", "--task", "classification", "--label", "label").code == 0
    added = cli("data", "add", notes, "--dataset", "notes", "--source", "expert")
    assert added.code == 0, added.err
    with trenches.open(tmp_path / ".trenches") as store:
        assert LONG in set(store.datasets.get("notes").patterns()["note"])
    assert cli("problems", "create", "long", "--dataset", "notes", "--title", "Long").code == 0
    problem = cli("problems", "add", "long", "--from-file", notes)
    assert problem.code == 0, problem.err
    predictions = tmp_path / "predictions.csv"
    pd.DataFrame(
        {"pattern_id": [1, 2], "prediction": ["benign", "benign"], "comment": [LONG, ""]}
    ).to_csv(predictions, index=False)
    baseline = cli("models", "add-baseline", "rule", "--dataset", "d", "--predictions", predictions)
    assert baseline.code == 0, baseline.err
    current = tmp_path / "current.csv"
    make_frame(40, seed=9).drop(columns=["site", "label"]).assign(comment=LONG).to_csv(
        current, index=False
    )
    for command in ("drift", "outliers"):
        r = cli("monitor", command, "clf@1", "--current", current)
        assert r.code in (0, 1) and not r.err.startswith("error"), r.err


def test_a_progress_bar_on_a_terminal_shows_how_many_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long work (predicting, on a cluster a part at a time) shows done/total and the
    rate; the bar is left out when stderr is not a terminal."""
    import io

    from rich.console import Console

    from trenches.cli import _output

    screen = io.StringIO()
    monkeypatch.setattr(
        _output, "err_console", Console(file=screen, force_terminal=True, width=150)
    )
    with _output.progress_bar("predicting validation", 4000, unit="rows") as advance:
        for _ in range(4):
            time.sleep(0.02)
            advance(1000)
    shown = screen.getvalue()
    assert "4000/4000" in shown and " rows/s" in shown
    piped = io.StringIO()
    monkeypatch.setattr(_output, "err_console", Console(file=piped, force_terminal=False))
    with _output.progress_bar("predicting", 10) as advance:
        advance(10)
    assert piped.getvalue() == ""
