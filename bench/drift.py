"""Data drift: trenches' ``drift()`` against Evidently and NannyML on the peers' workload.

What it measures
----------------
The workload of ``shared/bench-peers/drift_evidently.py`` and ``drift_nannyml.py``: a
reference and a current frame of N rows each (``--rows``, default 100,000 and
1,000,000), 20 numeric columns and 5 categorical ones (pandas ``Categorical``), from the
peers' own generator (copied here verbatim, same seed, same output; checked against the
peers' copy at start), the current frame shifted in 5 columns (num_0..num_3, cat_0).

Each tool runs in a fresh process of its own, so its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``: interpreter, imports, the data and the work) is
comparable:

- **trenches**: this script with ``--child`` in the project's environment; it imports
  ``trenches.monitoring`` (timed apart: ``import, s``), builds the frames, and times
  ``drift(reference, current)`` on the in-memory DataFrames;
- **Evidently**: the peers' ``drift_evidently.py``, unchanged, in their venv: times
  ``Report([DataDriftPreset()]).run`` (and ``snapshot.dict()``);
- **NannyML**: the peers' ``drift_nannyml.py``, unchanged: times
  ``UnivariateDriftCalculator`` fit + calculate + ``to_df``. It flags a column when any
  method alerts in any of its 10 chunks (``drifted_column_names``), which finds 13-15
  columns here; with alerts in a majority of chunks it finds the 5. Both are shown.

The peers run in their virtual environment (``$PEERS_VENV``, default
``$TMPDIR/peers-venv``; see ``shared/bench-peers/README.md``) with ``--budget``
seconds each (Evidently at 1,000,000 rows takes ~100 s). One round runs trenches,
Evidently and NannyML one after another; ``--repeats`` rounds give medians.

Targets at 1,000,000 rows: trenches flags exactly the 5 shifted columns; it is at least
20x faster than Evidently and faster than NannyML; its peak RSS is at most half of
Evidently's.

    python bench/drift.py                        # 100,000 and 1,000,000 rows, ~5 minutes
    python bench/drift.py --rows 100000          # ~35 s
    python bench/drift.py --repeats 2 --json     # medians of two rounds (~9 min), then JSON
    python bench/drift.py --skip-peers           # trenches only
    python bench/drift.py --child --rows 1000000 --profile   # one trenches run, cProfile
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import measured_code, number  # bench/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "bench-peers"
PEER_SCRIPTS = {"evidently": "drift_evidently.py", "nannyml": "drift_nannyml.py"}
TOOLS = ("trenches", "evidently", "nannyml")

N_NUM, N_CAT = 20, 5
CAT_SIZES = [3, 5, 8, 12, 20]
SHIFTED = ["num_0", "num_1", "num_2", "num_3", "cat_0"]

#: The targets, trenches against the peers, at TARGET_ROWS.
TARGET_ROWS = 1_000_000
FASTER_THAN_EVIDENTLY = 20.0
FASTER_THAN_NANNYML = 1.0
PEAK_OF_EVIDENTLY = 0.5


def make_drift_data(n_rows, seed=0):
    """The peers' generator, verbatim (drift_evidently.py / drift_nannyml.py).

    Returns (reference, current)."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1, 1, N_NUM)
    scales = rng.uniform(0.5, 2.0, N_NUM)
    cat_probs = [rng.dirichlet(np.ones(k) * 2.0) for k in CAT_SIZES]

    def frame(shift):
        cols = {}
        for i in range(N_NUM):
            mu, sd = means[i], scales[i]
            if shift and i == 0:
                mu += 0.5 * sd  # mean shift
            elif shift and i == 1:
                mu -= 0.5 * sd
            elif shift and i == 2:
                sd *= 1.6  # spread change
            elif shift and i == 3:
                mu += 0.3 * sd
            cols[f"num_{i}"] = rng.normal(mu, sd, n_rows)
        for j, k in enumerate(CAT_SIZES):
            p = cat_probs[j][::-1] if (shift and j == 0) else cat_probs[j]
            codes = rng.choice(k, size=n_rows, p=p)
            cols[f"cat_{j}"] = pd.Categorical.from_codes(codes, [f"c{c}" for c in range(k)])
        return pd.DataFrame(cols)

    return frame(False), frame(True)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --------------------------------------------------------------------------- the child


def child(rows: int, profile: bool) -> None:
    """One trenches run in this (fresh) process; prints one JSON line like the peers'."""
    out: dict[str, Any] = {
        "workload": "drift_trenches",
        "tool": "trenches",
        "rows": rows,
        "columns": {"numeric": N_NUM, "categorical": N_CAT},
        "shifted_columns": len(SHIFTED),
    }
    t0 = time.perf_counter()
    try:
        from trenches.monitoring import drift
    except ImportError as e:
        out.update(completed=False, seconds=None, error=f"cannot import the drift API: {e!r}")
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
        print(json.dumps(out), flush=True)
        sys.exit(3)
    out["import_s"] = round(time.perf_counter() - t0, 3)
    import trenches

    out["versions"] = {
        "trenches": trenches.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }
    t = time.perf_counter()
    ref, cur = make_drift_data(rows)
    out["datagen_s"] = round(time.perf_counter() - t, 3)
    out["rss_after_data_mib"] = round(rss_mib(), 1)

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    modules = set(sys.modules)
    t = time.perf_counter()
    cpu = time.process_time()
    report = drift(ref, cur)
    out["seconds"] = round(time.perf_counter() - t, 4)
    out["cpu_s"] = round(time.process_time() - cpu, 3)
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    # What the first call imported (lazily, so it is in "seconds"), and a second call
    # on the same frames in the same process, for reference only.
    new = sorted({m.split(".")[0] for m in set(sys.modules) - modules})
    out["first_call_imported"] = {"modules": len(set(sys.modules) - modules), "packages": new}
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)

    t = time.perf_counter()
    drift(ref, cur)
    out["second_call_s"] = round(time.perf_counter() - t, 4)
    flagged = sorted(str(c) for c in report.drifted_columns)
    out["completed"] = True
    out["drifted_columns"] = len(flagged)
    out["drifted_column_names"] = flagged
    out["methods"] = sorted({str(c.test) for c in report.columns})
    out["detected_expected"] = flagged == sorted(SHIFTED)
    out["rows_per_s"] = round(2 * rows / out["seconds"], 1)  # ref + cur rows
    out["per_column"] = [
        {
            "name": str(c.name),
            "test": str(c.test),
            "statistic": _num(c.statistic),
            "threshold": _num(c.threshold),
            "psi": _num(getattr(c, "psi", None)),
            "drifted": bool(c.drifted),
            "reasons": [str(x) for x in getattr(c, "reasons", ())],
        }
        for c in report.columns
    ]
    out["python"] = platform.python_version()
    out["cpus"] = os.cpu_count()
    print(json.dumps(out), flush=True)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return round(float(v), 6)
    except (TypeError, ValueError):
        return None


# -------------------------------------------------------------------------- the parent


def peers_venv() -> Path:
    return Path(os.environ.get("PEERS_VENV", Path(tempfile.gettempdir()) / "peers-venv"))


def same_data_as_peers(rows: int = 2_000) -> str:
    """Whether this copy of the generator gives the peers' frames (checked on a few rows)."""
    path = PEERS / PEER_SCRIPTS["evidently"]
    spec = importlib.util.spec_from_file_location("_peer_drift_evidently", path)
    if spec is None or spec.loader is None:
        return f"not checked (no {path})"
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # the module silences warnings when imported
        spec.loader.exec_module(module)
    for theirs, mine in zip(module.make_drift_data(rows), make_drift_data(rows), strict=True):
        pd.testing.assert_frame_equal(theirs, mine)
    return f"identical to the peers' generator ({rows:,}-row check)"


def cpu_ticks() -> tuple[float, float]:
    """The machine's busy CPU seconds (all cores, every process) and hypervisor steal."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq) / hz, steal / hz


def run(cmd: list[str], timeout: float) -> tuple[dict[str, Any] | None, str, dict[str, float]]:
    """Run one benchmark process; its JSON line, its stderr, and its whole-process wall and
    CPU seconds (imports included) from this process's children's rusage."""
    load = os.getloadavg()[0]
    busy0, steal0 = cpu_ticks()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        return None, f"timed out after {timeout:.0f} s\n{err or ''}", {}
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, steal1 = cpu_ticks()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    whole = {
        "load_1min_before": round(load, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        # CPU the rest of the machine used meanwhile (this process's own waiting included),
        # and the hypervisor's steal time: a busy or stolen machine slows every tool.
        "other_cpu_s": round(max(busy1 - busy0 - cpu, 0.0), 2),
        "steal_s": round(steal1 - steal0, 2),
    }
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    if result is not None:
        result["whole_process"] = whole
    if proc.returncode != 0:
        return result, f"exit {proc.returncode}\n{proc.stderr[-3000:]}", whole
    return result, proc.stderr, whole


COLD_IMPORT = (
    "import sys, time; t = time.perf_counter(); import trenches.monitoring; "
    "print(time.perf_counter() - t, 'pandas' in sys.modules, 'scipy' in sys.modules)"
)


def cold_import(times: int = 3) -> dict[str, Any] | None:
    """``import trenches.monitoring`` in a fresh interpreter (nothing imported before it),
    median of ``times``; and whether it brings in pandas or SciPy."""
    seconds, line = [], ""
    for _ in range(times):
        proc = subprocess.run(
            [sys.executable, "-c", COLD_IMPORT], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            return None
        line = proc.stdout.split()
        seconds.append(float(line[0]))
    return {
        "seconds": statistics.median(seconds),
        "imports_pandas": line[1] == "True",
        "imports_scipy": line[2] == "True",
    }


def run_trenches(rows: int, budget: float) -> dict[str, Any]:
    """The child, in this interpreter's environment: its JSON line, or one saying why not."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--rows", str(rows)]
    result, err, _ = run(cmd, timeout=budget + 300)
    if result is None or not result.get("completed"):
        result = result or {}
        result["completed"] = False
        result["error"] = result.get("error") or err.strip()[-2000:]
    return result


def run_peer(tool: str, rows: int, budget: float) -> dict[str, Any] | None:
    python = peers_venv() / "bin" / "python"
    cmd = [str(python), str(PEERS / PEER_SCRIPTS[tool])]
    cmd += ["--rows", str(rows), "--budget", f"{budget:g}"]
    result, err, _ = run(cmd, timeout=budget + 300)
    if result is None:
        print(f"{tool} at {rows:,} rows failed, left out:\n{err[-2000:]}", file=sys.stderr)
    return result


def median(results: list[dict[str, Any]], *keys: str) -> float | None:
    values = []
    for r in results:
        v: Any = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is None:
            return None
        values.append(float(v))
    return statistics.median(values) if values else None


def spread(results: list[dict[str, Any]], *keys: str) -> str:
    """``median`` or, over several runs, ``median [min-max]``."""
    m = median(results, *keys)
    if m is None:
        return "-"
    if len(results) < 2:
        return number(m)
    values = []
    for r in results:
        v: Any = r
        for k in keys:
            v = v[k]
        values.append(float(v))
    return f"{number(m)} [{number(min(values))}-{number(max(values))}]"


def found(results: list[dict[str, Any]], tool: str) -> str:
    """The drifted columns found, as counts and names (the same in every run, or each)."""
    if not results:
        return "-"
    seen = []
    for r in results:
        if not r.get("completed"):
            seen.append("did not complete" + (f" ({r['note']})" if r.get("note") else ""))
            continue
        names = r.get("drifted_column_names") or []
        ok = "yes" if sorted(names) == sorted(SHIFTED) else "no"
        text = f"{len(names)} ({', '.join(names)}); expected 5: {ok}"
        if tool == "nannyml":
            text = f"any chunk: {text}; majority of chunks: " + (
                f"{r.get('drifted_columns_majority_of_chunks')}, expected 5: "
                + ("yes" if r.get("detected_expected_majority") else "no")
            )
        seen.append(text)
    if len(set(seen)) == 1:
        return seen[0]
    return " | ".join(f"run {i + 1}: {s}" for i, s in enumerate(seen))


def compare(rows: int, res: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Ratios (medians against medians) and the targets, for one size."""
    done = {t: [r for r in res[t] if r.get("completed")] for t in TOOLS}
    ours_s = median(done["trenches"], "seconds")
    ours_peak = median(done["trenches"], "peak_rss_mib")
    ev_s = median(done["evidently"], "seconds") if done["evidently"] else None
    nm_s = median(done["nannyml"], "seconds") if done["nannyml"] else None
    ev_peak = median(done["evidently"], "peak_rss_mib") if done["evidently"] else None
    ratios = {
        "evidently_s_over_trenches_s": ev_s / ours_s if ev_s and ours_s else None,
        "nannyml_s_over_trenches_s": nm_s / ours_s if nm_s and ours_s else None,
        "trenches_peak_over_evidently_peak": ours_peak / ev_peak if ev_peak and ours_peak else None,
    }
    exact = all(r["detected_expected"] for r in done["trenches"]) if done["trenches"] else None
    targets = [
        {
            "target": "exactly the 5 shifted columns",
            "value": None,
            "holds": exact,
        },
        {
            "target": f">= {FASTER_THAN_EVIDENTLY:g}x faster than Evidently",
            "value": ratios["evidently_s_over_trenches_s"],
            "holds": _at_least(ratios["evidently_s_over_trenches_s"], FASTER_THAN_EVIDENTLY),
        },
        {
            "target": "faster than NannyML",
            "value": ratios["nannyml_s_over_trenches_s"],
            "holds": _above(ratios["nannyml_s_over_trenches_s"], FASTER_THAN_NANNYML),
        },
        {
            "target": f"peak RSS <= {PEAK_OF_EVIDENTLY:g} x Evidently's",
            "value": ratios["trenches_peak_over_evidently_peak"],
            "holds": (
                None
                if ratios["trenches_peak_over_evidently_peak"] is None
                else ratios["trenches_peak_over_evidently_peak"] <= PEAK_OF_EVIDENTLY
            ),
        },
    ]
    return {"rows": rows, "ratios": ratios, "targets": targets}


def _at_least(v: float | None, target: float) -> bool | None:
    return None if v is None else v >= target


def _above(v: float | None, target: float) -> bool | None:
    return None if v is None else v > target


def print_size(rows: int, res: dict[str, list[dict[str, Any]]], cmp: dict[str, Any]) -> None:
    n = max(len(v) for v in res.values())
    how = f"median [min-max] of {n} runs" if n > 1 else "one run"
    print(f"\n{rows:,} rows (reference) + {rows:,} rows (current), {how}:\n")
    head = ("tool", "seconds", "peak RSS MiB", "RSS after data", "import, s", "whole process s")
    width = 22 if n > 1 else 10
    print(
        f"  {head[0]:<10} {head[1]:>{width}} {head[2]:>{width}} {head[3]:>{width}} "
        f"{head[4]:>9} {head[5]:>16}  drifted columns found"
    )
    for tool in TOOLS:
        rs = res[tool]
        if not rs:
            print(f"  {tool:<10} {'(not run)':>{width}}")
            continue
        done = [r for r in rs if r.get("completed")]
        whole = median(rs, "whole_process", "wall_s")
        cpu = median(rs, "whole_process", "cpu_s")
        print(
            f"  {tool:<10} {spread(done, 'seconds') if done else '-':>{width}} "
            f"{spread(rs, 'peak_rss_mib'):>{width}} {spread(rs, 'rss_after_data_mib'):>{width}} "
            f"{number(median(rs, 'import_s')):>9} "
            f"{number(whole) + ' (cpu ' + number(cpu) + ')':>16}  {found(rs, tool)}"
        )
    ours = [r for r in res["trenches"] if r.get("completed")]
    if ours:
        first = ours[0]["first_call_imported"]
        print(
            f"\n  trenches' tests: {', '.join(ours[0]['methods'])}; its first drift() call "
            f"imported {first['modules']} modules ({', '.join(first['packages']) or 'none'}); "
            f"a second call on the same frames: {spread(ours, 'second_call_s')} s"
        )
    for tool in ("evidently", "nannyml"):
        if res[tool] and res[tool][0].get("methods"):
            print(f"  {tool}'s tests: {', '.join(res[tool][0]['methods'])}")
    nm = [r for r in res["nannyml"] if r.get("completed")]
    if nm:
        print(
            f"  nannyml: fit {number(median(nm, 'fit_s'))} s, calculate "
            f"{number(median(nm, 'calculate_s'))} s, to_df {number(median(nm, 'to_df_s'))} s"
        )
    print("  the machine during each run (CPU of all other processes, hypervisor steal):")
    for tool in TOOLS:
        for i, r in enumerate(res[tool]):
            w = r.get("whole_process")
            if w:
                print(
                    f"    {tool} run {i + 1}: {w['wall_s']:.1f} s, others {w['other_cpu_s']:.1f} "
                    f"CPU s, steal {w['steal_s']:.1f} s, load {w['load_1min_before']:.2f} at start"
                )
    r = cmp["ratios"]

    def x(v: float | None, fmt: str = "{:.1f}x") -> str:
        return "-" if v is None else fmt.format(v)

    print(
        f"\n  Evidently s / trenches s: {x(r['evidently_s_over_trenches_s'])}   "
        f"NannyML s / trenches s: {x(r['nannyml_s_over_trenches_s'])}   "
        f"trenches peak / Evidently peak: {x(r['trenches_peak_over_evidently_peak'], '{:.2f}')}"
    )
    binding = rows == TARGET_ROWS
    print(
        "  targets"
        + (
            ""
            if binding
            else f" (the issue sets them at {TARGET_ROWS:,} rows; shown for reference)"
        )
        + ":"
    )
    for t in cmp["targets"]:
        verdict = "-" if t["holds"] is None else "holds" if t["holds"] else "MISSED"
        value = "" if t["value"] is None else f" ({number(t['value'])})"
        print(f"    {t['target']}{value}: {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="rows of each frame"
    )
    ap.add_argument("--repeats", type=int, default=1, help="rounds of all three (medians)")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds per peer run")
    ap.add_argument("--skip-peers", action="store_true", help="trenches only")
    ap.add_argument(
        "--json", action="store_true", help="also print everything as one JSON object, last"
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help="with --child: cProfile to stderr")
    args = ap.parse_args()
    if args.child:
        child(args.rows[0], args.profile)
        return

    peers = not args.skip_peers
    check = _check_peers(peers)
    code = measured_code()
    raw, failed = _measure(args.rows, args.repeats, args.budget, peers)
    _print_setting(raw, code, check)
    cold = cold_import()
    if cold is not None:
        print(
            f"  import trenches.monitoring in a fresh interpreter: {cold['seconds']:.3f} s "
            f"(median of 3; pandas {'imported' if cold['imports_pandas'] else 'not imported'}, "
            f"SciPy {'imported' if cold['imports_scipy'] else 'not imported'}); the tables' "
            "import column is each tool's import after numpy and pandas"
        )
    print(
        "  timed: trenches drift(reference, current) on in-memory DataFrames; Evidently "
        "Report.run + snapshot.dict(); NannyML fit + calculate + to_df. Peak RSS: the whole "
        "process (interpreter, imports, data, work); whole process s: wall (and CPU) of the "
        "process from launch, imports and data included"
    )
    comparisons = []
    for rows in args.rows:
        cmp = compare(rows, raw[rows])
        comparisons.append(cmp)
        print_size(rows, raw[rows], cmp)
    if failed:
        print(
            "\ntrenches did not run: "
            + "; ".join(failed)
            + f"\n  the API measured is `from trenches.monitoring import drift` (in "
            f"{sys.executable}): drift(reference, current) -> a report with .drifted_columns "
            "and .columns"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "code": code,
                    "trenches_failed": failed,
                    "data": check,
                    "cold_import": cold,
                    "comparisons": comparisons,
                    "runs": {str(rows): per for rows, per in raw.items()},
                }
            )
        )
    if failed:
        sys.exit(1)


def _check_peers(peers: bool) -> str:
    """Stop when the peers are wanted and their venv is missing, or when this copy of
    the data differs from theirs; what the data check found."""
    python = peers_venv() / "bin" / "python"
    if peers and not python.exists():
        sys.exit(
            f"no peers venv at {peers_venv()} (Evidently and NannyML run there): make it with\n"
            f"  python3 -m venv {peers_venv()} && {peers_venv()}/bin/pip install "
            f"-r {PEERS / 'requirements-observed.txt'}\n"
            "or run trenches alone with --skip-peers"
        )
    try:
        return same_data_as_peers()
    except FileNotFoundError:
        return f"not checked (no {PEERS / PEER_SCRIPTS['evidently']})"
    except AssertionError as e:
        sys.exit(f"this copy of make_drift_data differs from the peers': {e}")


def _measure(
    sizes: list[int], repeats: int, budget: float, peers: bool
) -> tuple[dict[int, dict[str, list[dict[str, Any]]]], list[str]]:
    """Each tool's runs by size, and why trenches failed where it did."""
    failed: list[str] = []
    raw: dict[int, dict[str, list[dict[str, Any]]]] = {
        rows: {t: [] for t in TOOLS} for rows in sizes
    }
    for rows in sizes:
        for i in range(repeats):
            # One of each per round, so a slow spell of the machine hits all three.
            for tool in TOOLS if peers else ("trenches",):
                print(
                    f"{rows:,} rows, round {i + 1}/{repeats}: {tool}", file=sys.stderr, flush=True
                )
                if tool == "trenches":
                    result = run_trenches(rows, budget)
                    if not result.get("completed"):
                        failed.append(f"{rows:,} rows: {result.get('error')}")
                        print(f"trenches failed, left out: {result['error']}", file=sys.stderr)
                        continue
                else:
                    got = run_peer(tool, rows, budget)
                    if got is None:
                        continue
                    result = got
                raw[rows][tool].append(result)
    return raw, failed


def _print_setting(raw: dict[int, dict[str, list[dict[str, Any]]]], code: str, check: str) -> None:
    """The versions measured, the machine and the data check."""

    def version(tool: str, package: str) -> str:
        for per_size in raw.values():
            for r in per_size[tool]:
                if package in r.get("versions", {}):
                    return str(r["versions"][package])
        return "(not run)"

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"\ndata drift, 20 numeric + 5 categorical columns, 5 shifted: trenches "
        f"{version('trenches', 'trenches')} ({code}) against Evidently "
        f"{version('evidently', 'evidently')} and NannyML {version('nannyml', 'nannyml')}"
    )
    print(
        f"  python {platform.python_version()}, cpu_count {os.cpu_count()}, {mem:.0f} GiB RAM, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; pandas "
        f"{version('trenches', 'pandas')} / numpy {version('trenches', 'numpy')} (trenches), "
        f"pandas {version('evidently', 'pandas')} / numpy {version('evidently', 'numpy')} "
        f"(peers' venv, {peers_venv()})"
    )
    print(f"  data: {check}")


if __name__ == "__main__":
    main()
