"""JUnit XML for CI systems: one ``testsuite`` per scenario directory run, one ``testcase`` per scenario."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from flowengine.testing.runner import ScenarioResult, format_failure


def junit_xml(results: Sequence[ScenarioResult], *, suite: str = "flowengine scenarios") -> str:
    """The results as a JUnit XML document (the flavour GitHub, GitLab and Jenkins read)."""
    failures = sum(1 for r in results if not r.passed)
    total_time = sum(r.wall_seconds for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)), failures=str(failures))
    element = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total_time:.3f}",
    )
    for result in results:
        scenario = result.scenario
        case = ET.SubElement(
            element,
            "testcase",
            classname=_classname(scenario.path),
            name=scenario.name,
            file=scenario.path,
            line=str(scenario.pos.line),
            time=f"{result.wall_seconds:.3f}",
        )
        if result.failure is not None:
            failure = result.failure
            where = f"{failure.step.pos}: " if failure.step is not None else ""
            node = ET.SubElement(case, "failure", message=f"{where}{failure.message}", type="ScenarioFailure")
            node.text = format_failure(result)
        if result.transcript:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(result.transcript)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(path: str) -> str:
    stem = os.path.splitext(os.path.relpath(path) if os.path.isabs(path) else path)[0]
    return stem.replace(os.sep, ".").lstrip(".")
