"""trenches.toml: one declaration of every key, one loader, one error naming the file,
the line and the key; the reference in docs/ made from the declaration; and library
code that reads only the settings it is given, never the working directory."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import trenches
from trenches.errors import InvalidConfig
from trenches.evaluation import evaluate
from trenches.patterns.sets import PatternSet, split
from trenches.settings import Settings, load, parse
from trenches.settings import keys as declared
from trenches.settings.lines import line_of, locate
from trenches.settings.reference import BEGIN, END, rewrite, section

from conftest import make_frame
from conftest import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def write(text: str, name: str = "trenches.toml") -> Path:
    path = Path(name).resolve()
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the reference in docs/ ---------------------------------------------------------------


def test_the_configuration_reference_is_generated_and_current() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert section() in page, (
        "docs/configuration.md is stale: run `make docs` "
        "(python -m trenches.settings --markdown docs/configuration.md)"
    )
    for table in declared.TABLES:
        assert f"### `{table.header}`" in page
    for key in declared.KEYS:
        assert f"| `{key.name}` |" in page


def test_rewriting_the_reference_keeps_the_rest_of_the_page() -> None:
    page = f"# Title\n\nwritten by hand\n\n{BEGIN}\nSTALE TEXT\n{END}\n\nafter\n"
    new = rewrite(page)
    assert new.startswith("# Title\n\nwritten by hand\n\n") and new.endswith(f"{END}\n\nafter\n")
    assert "### `[monitor]`" in new and "STALE TEXT" not in new
    assert rewrite(new) == new
    with pytest.raises(ValueError, match="markers"):
        rewrite("# no markers")


def test_the_module_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    from trenches.settings.__main__ import main

    assert main(["--markdown"]) == 0
    assert "### `[[gates.MODEL]]`" in capsys.readouterr().out


def _doc_examples() -> list[tuple[str, str]]:
    found = []
    for page in DOCS:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```toml\n(.*?)```", text, re.S):
            found.append((page.name, block))
    return found


def test_every_key_the_docs_write_is_declared_and_their_examples_load() -> None:
    """Each ```toml block of docs/ and the README loads as it is (the loader refuses a
    key it does not declare); each `key = value` in their prose is a declared key (or
    a row of [evaluation.cost]); each key of the table in docs/retraining.md too."""
    examples = _doc_examples()
    assert {page for page, _ in examples} >= {
        "gates.md",
        "monitoring.md",
        "retraining.md",
        "evaluation.md",
        "runs.md",
    }
    for page, block in examples:
        parse(block, page)
    names = {k.name for k in declared.KEYS}
    for page in DOCS:
        for mention in re.findall(r"`([a-z_][a-z_-]* = [^`]+)`", page.read_text("utf-8")):
            name = mention.split(" = ")[0]
            assert name in names or parse(f"[evaluation.cost]\n{mention}", page.name).costs
    retraining = (ROOT / "docs" / "retraining.md").read_text(encoding="utf-8")
    table = retraining.split("## Settings", 1)[1].split("## ", 1)[0]
    written = re.findall(r"^\| `([a-z-]+)` \|", table, re.M)
    assert set(written) == {k.name for k in declared.keys_of("retrain.MODEL")}


def test_every_page_that_mentions_trenches_toml_links_the_reference() -> None:
    for page in DOCS:
        text = page.read_text(encoding="utf-8")
        if "trenches.toml" in text and page.name != "configuration.md":
            assert "configuration.md" in text, page.name


# --- one error: file, line, key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "line", "says"),
    [
        ("[[gates.clf]]\nmetric = 'accuracy'\nmin = 'high'\n", "gates.clf[1].min", 3, "a number"),
        (
            "[retrain.clf]\ntrain = 'fit:fit'\n\nweighting = 'linear'\n",
            "retrain.clf.weighting",
            4,
            "must be one of none, exponential, inverse-age",
        ),
        ("# thresholds\n[monitor]\nalpha = 2\n", "monitor.alpha", 3, "2 must be between"),
        (
            '[monitor.columns."mean.radius"]\npsi = -1\n',
            "monitor.columns.mean.radius.psi",
            2,
            "0 or more",
        ),
        (
            "[monitor]\nwebhook = 'ftp://hooks'\n",
            "monitor.webhook",
            2,
            "http:// or https://",
        ),
        (
            "[evaluation.cost]\nmalignant = { benign = 'ten' }\n",
            "evaluation.cost.malignant.benign",
            2,
            "a number",
        ),
        ("[evaluation.cost]\nmalignant = 10\n", "evaluation.cost.malignant", 2, "a table"),
        ("[runs]\ngit_tag = 'no'\n", "runs.git_tag", 2, "true or false"),
    ],
    ids=["gates", "retrain", "monitor", "column", "webhook", "cost", "cost-row", "runs"],
)
def test_a_malformed_value_anywhere_names_file_line_and_key(
    text: str, key: str, line: int, says: str
) -> None:
    path = write(text)
    with pytest.raises(InvalidConfig) as caught:
        load(path)
    e = caught.value
    assert (e.file, e.key, e.line) == (str(path), key, line)
    assert str(e).startswith(f"{path}, line {line}: {key}: ") and says in str(e)
    assert isinstance(e, trenches.InvalidInput)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("[monitr]\nalpha = 0.05\n", "monitr", 1),
        ("[evaluation]\ncosts = { a = { b = 1 } }\n", "evaluation.costs", 2),
        ("[runs]\ngit_tags = false\n", "runs.git_tags", 2),
    ],
)
def test_a_table_or_key_that_was_silently_ignored_is_now_named(
    text: str, key: str, line: int
) -> None:
    """A misspelt table or key did nothing before; now it says where it is and what is
    known there."""
    with pytest.raises(InvalidConfig, match="unknown") as caught:
        load(write(text))
    assert (caught.value.key, caught.value.line) == (key, line)


def test_a_file_that_is_not_toml_names_its_line() -> None:
    with pytest.raises(InvalidConfig, match=r"trenches.toml, line 2: .*\(column \d+\)") as e:
        load(write('[[gates.clf]]\nmetric = "accuracy\n'))
    assert e.value.line == 2 and e.value.key is None


@pytest.mark.parametrize("content", [None, "folder", b"[monitor]\nalpha = 0.05 # \xe9\n"])
def test_a_file_that_cannot_be_read_is_named(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "x.toml"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidConfig, match=r"^.*x\.toml: (cannot read it|not UTF-8)"):
        load(path)


# Any key of any table, written with a valid value among others in any layout, then
# spoiled: the one error names that key and the line it is on.

_MODELS = ["clf", "cancer-clf", "my model"]
_COLUMNS = ["radius", "mean.radius", "grade"]
_CLASSES = ["malignant", "class 1"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | list):
        return json.dumps(value)
    return repr(value)


def _name(part: str) -> str:
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)


def _valid(key: declared.Key) -> Any:
    if key.choices:
        return key.choices[-1]
    return {
        "boolean": False,
        "integer": int(key.low or 0) + 1,
        "number": (key.low or 0) + (0.5 if key.high is None else (key.high - (key.low or 0)) / 2),
        "string": "x",
        "strings": ["expert"],
        "string or strings": ["a", "b"],
        "URL": "https://hooks.example.com/t",
    }[key.type]


def _spoiled(key: declared.Key) -> Any:
    return {
        "boolean": "yes",
        "integer": 2.5,
        "number": "lots",
        "string": 3,
        "strings": "expert",
        "string or strings": 7,
        "URL": "hooks.example.com",
    }[key.type]


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, str, int]:
    """A trenches.toml with one spoiled value: (text, the key an error names, its line)."""
    table = draw(st.sampled_from([t for t in declared.TABLES]))
    names = {
        "MODEL": draw(st.sampled_from(_MODELS)),
        "COLUMN": draw(st.sampled_from(_COLUMNS)),
        "TRUE": draw(st.sampled_from(_CLASSES)),
    }
    parts = [names.get(p, p) for p in table.name.split(".")]
    keys = list(declared.keys_of(table.name))
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=6, unique=True))
    bad = draw(st.sampled_from(chosen))
    lines = draw(st.sampled_from([[], ["# settings", ""], ["[evaluation.cost.x]", "y = 1", ""]]))
    before = draw(st.integers(0, 2)) if table.array else 0
    header = ".".join(_name(p) for p in parts)
    for _ in range(before):
        lines += [f"[[{header}]]", "# an earlier table", ""]
    lines.append(f"[[{header}]]" if table.array else f"[{header}]")
    where = 0
    for key in chosen:
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# a comment", "   "])))
        name = (
            draw(st.sampled_from(["PRED", "other class"])) if key.name == "PREDICTED" else key.name
        )
        value = _spoiled(key) if key is bad else _valid(key)
        lines.append(f"{_name(name)} = {_toml(value)}" + draw(st.sampled_from(["", "  # why"])))
        if key is bad:
            where, bad_name = len(lines), name
    text = "\n".join(lines) + "\n"
    named = ".".join(parts) + (f"[{before + 1}]" if table.array else "") + f".{bad_name}"
    return text, named, where


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_a_spoiled_value_of_any_key_is_named_with_its_line(document: tuple[str, str, int]) -> None:
    text, key, line = document
    with pytest.raises(InvalidConfig) as caught:
        parse(text, "t.toml")
    assert (caught.value.key, caught.value.line) == (key, line), text


def test_every_default_loads_and_reads_back() -> None:
    """Each key written with its declared default gives the same settings as none at all."""
    empty = parse("", "t.toml")
    assert empty.monitor.drift == trenches.DriftSettings()
    assert empty.costs is None and empty.git_tag is True and not empty.gates
    lines = ["[monitor]"] + [
        f"{k.name} = {_toml(k.default)}"
        for k in declared.keys_of("monitor")
        if k.default is not None
    ]
    assert parse("\n".join(lines), "t.toml").monitor == parse("", "t.toml").monitor


# --- the locator -------------------------------------------------------------------------


def test_the_locator_finds_every_key_however_it_is_written() -> None:
    text = textwrap.dedent(
        '''\
        # top
        [monitor]
        alpha = 0.05
        note = """
        fake = 1
        [not.a.header]
        """
        list = [
          "a = 1",
          [1, 2],
        ]
        columns.age.psi = 0.3

        [ monitor . columns . "mean.radius" ]  # spaced and quoted
        'psi' = 0.2

        [[gates."my model"]]
        metric = "accuracy"
        [[gates."my model"]]
        min = 1
        '''
    )
    found = locate(text)
    assert found[("monitor",)] == 2 and found[("monitor", "alpha")] == 3
    assert ("monitor", "fake") not in found and ("not",) not in found
    assert found[("monitor", "columns", "age", "psi")] == 12
    assert found[("monitor", "columns", "mean.radius", "psi")] == 15
    assert found[("gates", "my model", 0, "metric")] == 18
    assert found[("gates", "my model", 1)] == 19 and found[("gates", "my model", 1, "min")] == 20
    assert line_of(found, ("gates", "my model", 1, "max")) == 19
    assert line_of(found, ("retrain", "x")) is None


# --- loaded once, passed down; never read from the working directory -------------------------


def _version(store: trenches.Store) -> tuple[str, np.ndarray, str]:
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(make_frame(200, seed=3).drop(columns="site"), source="expert")
    X, y, _, _ = ds.snapshot().training_data("train")
    store.models.register(LogisticRegression().fit(X, y), "clf", X=X.iloc[:20], dataset="tumours")
    chosen = split(ds, "validation")
    name, ids = chosen.name, chosen.ids
    store.predict("clf@1", ids)
    return "clf@1", ids, name


COSTS = "[evaluation.cost]\nmalignant = { benign = 10.0 }\nbenign = { malignant = 1.0 }\n"


def test_evaluate_uses_the_costs_it_is_given_not_the_working_directory(
    store: trenches.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, ids, name = _version(store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "trenches.toml").write_text("[evaluation.cost]\nmalignant = 'broken'\n")
    monkeypatch.chdir(elsewhere)
    clf = store.predictors.resolve(ref)
    assert "cost" not in evaluate(store.engine, clf, PatternSet(name, ids)).metrics
    costs = load(write(COSTS, str(tmp_path / "costs.toml"))).costs
    result = evaluate(store.engine, clf, PatternSet(name, ids), costs=costs)
    confusion = result.confusion
    assert confusion is not None
    expected = 10.0 * confusion.loc["malignant", "benign"] + confusion.loc["benign", "malignant"]
    assert result.metrics["cost"] == pytest.approx(expected)
    assert result.metrics["cost_per_pattern"] == pytest.approx(expected / len(ids))
    # The store found no trenches.toml where it was opened; the broken one here is not read.
    assert store.settings == Settings()


def test_a_store_keeps_the_settings_of_where_it_was_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "trenches.toml").write_text(COSTS)
    monkeypatch.chdir(project / "notebooks")
    with trenches.open(tmp_path / "store") as store:
        first = store.settings
        assert first.file == str(project / "trenches.toml") and first.costs is not None
        monkeypatch.chdir(tmp_path)
        assert store.settings is first  # read once while the file is unchanged
        (project / "trenches.toml").write_text("[runs]\ngit_tag = false\n")
        assert store.settings.costs is None and store.settings.git_tag is False
    given = Settings(git_tag=False)
    with trenches.open(tmp_path / "store", settings=given) as store:
        assert store.settings is given
    with trenches.open(tmp_path / "store", settings=project / "trenches.toml") as store:
        assert store.settings.git_tag is False


def test_explicit_settings_win_over_a_broken_file_nearby(
    store: trenches.Store, tmp_path: Path
) -> None:
    ref, _, _ = _version(store)
    write("[[gates.clf]]\nmetric = 'accuracy'\nmin = 'high'\n")
    with pytest.raises(InvalidConfig, match=r"line 3: gates\.clf\[1\]\.min"):
        store.gates.check(ref)
    good = write("[[gates.clf]]\nmetric = 'accuracy'\nmin = 0.0\n", str(tmp_path / "good.toml"))
    assert store.gates.check(ref, path=good).passed
    assert store.gates.check(ref, settings=load(good)).source == str(good)


def test_the_cli_reads_the_config_it_is_given(sqlite_store: trenches.Store) -> None:
    _version(sqlite_store)
    where = str(sqlite_store.location.sqlite_path)
    write("[monitor]\nalpha = 2\n")
    good = write("[[gates.clf]]\nmetric = 'accuracy'\nmin = 0.0\n", "good.toml")
    code, _, err = run("--store", where, "check", "clf@1")
    assert code == 2 and "trenches.toml, line 2: monitor.alpha" in " ".join(err.split())
    code, out, err = run("--store", where, "check", "clf@1", "--config", good, "--json")
    assert code == 0, err
    assert json.loads(out)["source"] == str(good)
    code, _, err = run("--store", where, "evaluate", "clf@1")
    assert code == 2 and "monitor.alpha" in err
