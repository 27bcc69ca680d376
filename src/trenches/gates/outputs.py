"""What a check writes for CI: JUnit XML (one test case per gate) and a Markdown
summary fit for a pull-request comment."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trenches.gates import Check
    from trenches.gates.check import GateResult


def figure_text(result: GateResult) -> str:
    f = result.figure
    if f is None or math.isnan(f):
        return "-"
    if result.kind == "no-break":
        return f"{int(f)} broken"
    return f"{f:.4f}"


def write_junit(check: Check, path: str | Path) -> Path:
    """Write the check's :func:`junit` XML to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(junit(check))
    return target


def junit(check: Check) -> bytes:
    """JUnit XML (UTF-8, with its declaration): a test suite for the check, a test case
    per gate; a failed gate is a ``<failure>``, a skipped one ``<skipped>``."""
    model = check.version.split("@")[0]
    failures = len(check.failed)
    skipped = len(check.skipped)
    attrs = {
        "name": f"trenches check {check.version}",
        "tests": str(len(check.results)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": "0",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(
        root, "testsuite", {**attrs, "timestamp": check.created_at.isoformat(timespec="seconds")}
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("version", check.version),
        ("check_id", str(check.id)),
        ("criteria_digest", check.criteria_digest),
        ("criteria_source", check.source or ""),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in check.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"trenches.gates.{model}", "name": r.gate, "time": "0"},
        )
        if r.status == "fail":
            failure = ET.SubElement(
                case,
                "failure",
                {"message": f"{figure_text(r)}, bound {r.bound}", "type": "GateFailed"},
            )
            failure.text = r.detail
        elif r.status == "skip":
            ET.SubElement(case, "skipped", {"message": r.detail})
        out = ET.SubElement(case, "system-out")
        out.text = r.detail
    ET.indent(root)
    text = io.BytesIO()
    ET.ElementTree(root).write(text, encoding="utf-8", xml_declaration=True)
    return text.getvalue()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(check: Check) -> str:
    """A summary for a pull-request comment: verdict, a table of gates, the criteria."""
    n = len(check.results)
    failed = len(check.failed)
    verdict = (
        f"✅ {check.version} passes {n - failed} of {n} gates"
        if check.passed
        else f"❌ {check.version} fails {failed} of {n} gates"
    )
    icon = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}
    lines = [
        f"### trenches check: {verdict}",
        "",
        "| gate | figure | bound | result | detail |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for r in check.results:
        lines.append(
            f"| {_cell(r.gate)} | {figure_text(r)} | {_cell(r.bound)} | {icon[r.status]} "
            f"| {_cell(r.detail)} |"
        )
    lines += [
        "",
        f"Criteria `{check.criteria_digest[:12]}` from `{check.source}`; check #{check.id} "
        f"at {check.created_at.isoformat(timespec='seconds')}"
        + (f" by {check.checked_by}" if check.checked_by else "")
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_markdown(check: Check, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown(check), encoding="utf-8")
    return target
