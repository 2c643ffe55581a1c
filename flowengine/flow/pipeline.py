"""The flow pipeline as functions: load, validate, build, lint; and the conveniences built on them.

``load_flow`` -> ``validate_flow`` -> ``build_flow`` -> ``lint_flow``. ``check_file`` runs them all and
never raises; ``read_flow`` and ``read_flows`` raise ``FlowError`` subclasses carrying every diagnostic.
Checks across the flows of one directory (names and inbound numbers claimed twice, sub-flows that do not
exist) live in ``check_directory``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowengine.errors import Diagnostic, FlowSyntaxError, FlowValidationError
from flowengine.flow import model
from flowengine.flow.builder import FlowBuilder
from flowengine.flow.lint import lint_flow
from flowengine.flow.loader import LoadedDocument, is_scenario_data, load_flow
from flowengine.flow.schema import schema_diagnostics

FLOW_SUFFIXES = (".yaml", ".yml")


def validate_flow(document: LoadedDocument) -> list[Diagnostic]:
    """Check ``document`` against the schema and the value rules (durations, limits); sorted diagnostics.

    Included files are checked as fragments, each error placed in its own file. The flow is built too
    (``document.flow``), so ``build_flow`` costs nothing more; when the schema fails it is built from the
    parts that can be (``document.partial``), for ``lint_flow`` to report the file's other problems.
    """
    if document.validation is not None:
        return list(document.validation)
    found = list(document.diagnostics)
    found.extend(schema_diagnostics(document.root, "fragment" if document.is_fragment else None))
    for included in document.included:
        found.extend(schema_diagnostics(included, "fragment"))
    schema_ok = not any(d.is_error for d in found)
    # When the schema fails, a partial flow is still built so that lint can report the file's other
    # problems (unknown targets, undefined variables...) in the same run.
    builder = FlowBuilder(document, tolerant=not schema_ok)
    document.flow = builder.build()
    document.partial = not schema_ok
    taken = {(d.path, d.line, d.column) for d in found}
    found.extend(d for d in builder.diagnostics if (d.path, d.line, d.column) not in taken)
    document.validation = sorted(found)
    return list(document.validation)


def build_flow(document: LoadedDocument) -> model.Flow:
    """The ``model.Flow`` of a document.

    Raises:
        FlowValidationError: the document does not pass ``validate_flow`` (carries its diagnostics).
    """
    diagnostics = validate_flow(document)
    if any(d.is_error for d in diagnostics) or document.flow is None or document.partial:
        raise FlowValidationError(diagnostics)
    return document.flow


@dataclass(slots=True)
class FileReport:
    """Everything known about one file after the whole pipeline: its flow (when usable) and diagnostics."""

    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    flow: model.Flow | None = None
    document: LoadedDocument | None = None
    is_fragment: bool = False
    is_scenario: bool = False
    """A scenario file for ``flowengine test`` met while looking for flows: not checked here."""

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def check_file(path: str | os.PathLike[str]) -> FileReport:
    """Run the whole pipeline on one file; never raises for a bad flow (the problems are in the report)."""
    report = FileReport(path=os.fspath(path))
    try:
        document = load_flow(path)
    except FlowSyntaxError as exc:
        report.diagnostics = list(exc.diagnostics)
        return report
    if is_scenario_data(document.root.data):
        report.is_scenario = True
        return report
    report.document = document
    report.is_fragment = document.is_fragment
    found = validate_flow(document)
    if document.flow is not None:
        found.extend(lint_flow(document.flow, document))
        if not any(d.is_error for d in found) and not document.is_fragment and not document.partial:
            report.flow = document.flow
    report.diagnostics = sorted(found)
    return report


def _raise_for(diagnostics: Sequence[Diagnostic], *, strict: bool) -> None:
    if any(d.is_error for d in diagnostics) or (strict and diagnostics):
        if strict:
            diagnostics = [_as_error(d) for d in diagnostics]
        if any(d.code in _SYNTAX_CODES for d in diagnostics if d.is_error):
            raise FlowSyntaxError(diagnostics)
        raise FlowValidationError(diagnostics)


_SYNTAX_CODES = frozenset(
    {
        "io",
        "too-large",
        "encoding",
        "yaml",
        "multiple-documents",
        "not-mapping",
        "duplicate-key",
        "tag",
        "merge-key",
        "alias-budget",
        "alias-cycle",
        "too-deep",
        "key",
    }
)


def _as_error(diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.is_error:
        return diagnostic
    return Diagnostic(
        diagnostic.path, diagnostic.line, diagnostic.column, "error", diagnostic.message, diagnostic.code
    )


def read_flow(path: str | os.PathLike[str], *, strict: bool = False) -> model.Flow:
    """Load, validate, build and lint a flow file.

    Args:
        path: the flow file.
        strict: treat warnings as errors.

    Raises:
        FlowSyntaxError: the file is not readable YAML we accept.
        FlowValidationError: it breaks the schema or a language rule, or it is an include fragment.
    """
    report = check_file(path)
    _raise_for(report.diagnostics, strict=strict)
    if report.is_scenario:
        message = "this file is a scenario (it has `scenario:`); run it with `flowengine test`"
        raise FlowValidationError([Diagnostic(report.path, 1, 1, "error", message, "scenario")])
    if report.is_fragment:
        message = "this file is an include fragment (it has no `flow:`); include it from a flow instead"
        raise FlowValidationError([Diagnostic(report.path, 1, 1, "error", message, "fragment")])
    assert report.flow is not None  # no errors and not a fragment: the pipeline built it
    return report.flow


def flow_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file below ``directory``, sorted, skipping hidden directories."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if name.endswith(FLOW_SUFFIXES))
    return found


def check_directory(reports: Iterable[FileReport]) -> list[Diagnostic]:
    """Problems across the flows of one directory: a flow name or an inbound number used twice, and
    ``start_flow`` naming a flow that is not there."""
    found: list[Diagnostic] = []
    names: dict[str, FileReport] = {}
    numbers: dict[str, tuple[FileReport, int]] = {}
    usable = [r for r in reports if r.flow is not None and r.document is not None]
    for report in usable:
        assert report.flow is not None
        assert report.document is not None
        flow, document = report.flow, report.document
        other = names.get(flow.name)
        if other is not None:
            mark = document.value_mark(("flow",))
            there = other.document.value_mark(("flow",)) if other.document else (other.path, 1, 1)
            message = f"flow: the name {flow.name!r} is already used by {there[0]}:{there[1]}"
            found.append(Diagnostic(*mark, "error", message, "duplicate-flow"))
        else:
            names[flow.name] = report
        for index, number in enumerate(flow.numbers):
            claimed = numbers.get(number)
            if claimed is not None:
                first, first_index = claimed
                mark = document.value_mark(("numbers", index))
                assert first.document is not None
                there = first.document.value_mark(("numbers", first_index))
                message = (
                    f"numbers[{index}]: {number} is already claimed by flow {first.flow.name if first.flow else '?'!r} "
                    f"({there[0]}:{there[1]}:{there[2]}); an inbound number starts exactly one flow"
                )
                found.append(Diagnostic(*mark, "error", message, "duplicate-number"))
            else:
                numbers[number] = (report, index)
    for report in usable:
        assert report.flow is not None
        for action in _start_flows(report.flow):
            if action.flow not in names:
                message = f"start_flow: no flow named {action.flow!r} in this directory"
                found.append(Diagnostic(*_pos(action.pos), "error", message, "unknown-flow"))
    return sorted(found)


def _start_flows(flow: model.Flow) -> list[model.StartFlow]:
    transitions: list[model.Transition] = [t for ts in flow.on.values() for t in ts]
    actions: list[model.ActionType] = []
    for state in flow.states.values():
        actions.extend(state.actions)
        transitions.extend(t for ts in state.on.values() for t in ts)
        transitions.extend(t for timer in state.after for t in timer.transitions)
        if state.menu is not None:
            transitions.extend(state.menu.choices.values())
            transitions.extend((state.menu.noinput.then, state.menu.nomatch.then))
    for transition in transitions:
        actions.extend(transition.actions)
    return [action for action in actions if isinstance(action, model.StartFlow)]


def _pos(position: model.Position) -> tuple[str, int, int]:
    return position.path, position.line, position.column


def read_flows(directory: str | os.PathLike[str], *, strict: bool = False) -> dict[str, model.Flow]:
    """Read every flow below ``directory`` (include fragments are skipped), keyed by flow name.

    Raises:
        FlowError: any file has an error (or a warning with ``strict``), or two flows share a name or an
            inbound number; it carries the diagnostics of every file.
    """
    if not Path(directory).is_dir():
        message = f"{os.fspath(directory)!r} is not a directory"
        raise FlowValidationError([Diagnostic(os.fspath(directory), 1, 1, "error", message, "io")])
    reports = [check_file(path) for path in flow_files(directory)]
    found = [d for report in reports for d in report.diagnostics]
    found.extend(check_directory(reports))
    _raise_for(found, strict=strict)
    return {r.flow.name: r.flow for r in reports if r.flow is not None}
