"""``flowengine validate PATH...``: check flow files and directories, reporting every problem in one run.

Exit codes: 0 when nothing is wrong (warnings allowed unless ``--strict``), 1 when any file has an error,
2 for usage errors and paths that do not exist or cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TextIO

from flowengine.errors import Diagnostic
from flowengine.flow.pipeline import FileReport, check_directory, check_file, flow_files
from flowengine.flow.schema import flow_schema

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="flow files, or directories searched for *.yaml and *.yml"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (path:line:col: severity: message), json, or github (workflow commands for Actions)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--print-schema",
        action="store_true",
        help="print the flow JSON Schema (for editors: save it and point yaml-language-server at it)",
    )


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    if args.print_schema:
        stdout.write(json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not args.paths:
        stderr.write("flowengine validate: error: the following arguments are required: PATH\n")
        return EXIT_USAGE
    usage_problem = False
    reports: list[FileReport] = []
    cross: list[Diagnostic] = []
    seen_files: set[str] = set()
    for raw in args.paths:
        path = Path(raw)
        if path.is_dir():
            files = flow_files(path)
            if not files:
                stderr.write(f"flowengine validate: no *.yaml or *.yml files in {raw!r}\n")
                usage_problem = True
                continue
            group = [_check(file, seen_files) for file in files]
            reports.extend(r for r in group if r is not None)
            cross.extend(check_directory([r for r in group if r is not None]))
        elif path.is_file():
            report = _check(path, seen_files)
            if report is not None:
                reports.append(report)
        else:
            reason = "does not exist" if not path.exists() else "is not a file or directory"
            stderr.write(f"flowengine validate: {raw!r} {reason}\n")
            usage_problem = True
    scenarios = [r for r in reports if r.is_scenario]
    reports = [r for r in reports if not r.is_scenario]
    diagnostics = _unique([d for report in reports for d in report.diagnostics] + cross)
    if args.strict:
        diagnostics = [_strict(d) for d in diagnostics]
    write = {"text": _write_text, "json": _write_json, "github": _write_github}[args.format]
    write(diagnostics, len(reports), stdout)
    if scenarios and args.format == "text":
        stderr.write(
            f"skipped {_plural(len(scenarios), 'scenario file')} (run them with `flowengine test`)\n"
        )
    if any(d.code == "io" for d in diagnostics):
        usage_problem = True
    if usage_problem:
        return EXIT_USAGE
    return EXIT_FAILURE if any(d.is_error for d in diagnostics) else EXIT_OK


def _check(path: Path, seen: set[str]) -> FileReport | None:
    key = os.path.realpath(path)
    if key in seen:
        return None
    seen.add(key)
    return check_file(path)


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    # A fragment's problem is found once on its own and once per flow that includes it.
    found: dict[tuple[str, int, int, str, str], Diagnostic] = {}
    for d in diagnostics:
        found.setdefault((d.path, d.line, d.column, d.severity, d.message), d)
    return sorted(found.values())


def _strict(d: Diagnostic) -> Diagnostic:
    return d if d.is_error else Diagnostic(d.path, d.line, d.column, "error", d.message, d.code)


def _counts(diagnostics: list[Diagnostic]) -> tuple[int, int]:
    errors = sum(1 for d in diagnostics if d.is_error)
    return errors, len(diagnostics) - errors


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _write_text(diagnostics: list[Diagnostic], files: int, out: TextIO) -> None:
    for d in diagnostics:
        out.write(f"{d}\n")
    errors, warnings = _counts(diagnostics)
    out.write(
        f"{_plural(files, 'file')} checked: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}\n"
    )


def _write_json(diagnostics: list[Diagnostic], files: int, out: TextIO) -> None:
    errors, warnings = _counts(diagnostics)
    document = {
        "files": files,
        "errors": errors,
        "warnings": warnings,
        "diagnostics": [
            {
                "path": d.path,
                "line": d.line,
                "column": d.column,
                "severity": d.severity,
                "code": d.code,
                "message": d.message,
            }
            for d in diagnostics
        ],
    }
    out.write(json.dumps(document, indent=2) + "\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _write_github(diagnostics: list[Diagnostic], files: int, out: TextIO) -> None:
    for d in diagnostics:
        out.write(
            f"::{d.severity} file={_escape_property(d.path)},line={d.line},col={d.column}::"
            f"{_escape_data(d.message)}\n"
        )
