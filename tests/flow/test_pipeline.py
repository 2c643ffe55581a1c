"""The public pipeline: read_flow and read_flows raise FlowError subclasses carrying every diagnostic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowengine.errors import FlowSyntaxError, FlowValidationError
from flowengine.flow import check_file, load_flow, read_flow, read_flows, validate_flow

_OK = "flow: {name}\nnumbers: [{number}]\ninitial: a\non: {{hangup: end}}\nstates:\n  a:\n    do: [answer]\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_flow_returns_the_model(tmp_path: Path) -> None:
    flow = read_flow(_write(tmp_path / "a.yaml", _OK.format(name="a", number='"+19195550001"')))
    assert flow.name == "a"
    assert flow.numbers == ("+19195550001",)


def test_read_flow_raises_a_syntax_error_for_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(FlowSyntaxError) as caught:
        read_flow(_write(tmp_path / "a.yaml", "flow: [\n"))
    assert caught.value.diagnostics[0].line == 2


def test_read_flow_raises_a_syntax_error_for_a_duplicate_key(tmp_path: Path) -> None:
    with pytest.raises(FlowSyntaxError):
        read_flow(_write(tmp_path / "a.yaml", "flow: a\nflow: b\ninitial: a\nstates: {a: {final: true}}\n"))


def test_read_flow_raises_a_validation_error_with_every_problem(tmp_path: Path) -> None:
    text = "flow: a\ninitial: a\nstates:\n  a:\n    do: [{speak: '{{ x }}'}]\n    on: {speak.done: b}\n"
    with pytest.raises(FlowValidationError) as caught:
        read_flow(_write(tmp_path / "a.yaml", text))
    assert [(d.line, d.code) for d in caught.value.errors] == [(5, "undefined"), (6, "unknown-target")]


def test_warnings_pass_unless_strict(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.yaml", "flow: a\ninitial: a\nstates:\n  a:\n    do: [answer]\n")
    assert read_flow(path).name == "a"
    with pytest.raises(FlowValidationError) as caught:
        read_flow(path, strict=True)
    assert [d.severity for d in caught.value.diagnostics] == ["error"]


def test_a_fragment_is_not_a_flow(tmp_path: Path) -> None:
    path = _write(tmp_path / "part.yaml", "states:\n  a: {final: true}\n")
    assert check_file(path).diagnostics == []
    with pytest.raises(FlowValidationError, match="include fragment"):
        read_flow(path)


def test_validate_flow_is_computed_once_per_document(tmp_path: Path) -> None:
    document = load_flow(_write(tmp_path / "a.yaml", _OK.format(name="a", number='"+19195550001"')))
    assert validate_flow(document) == []
    assert document.flow is not None
    first = document.flow
    validate_flow(document)
    assert document.flow is first


class TestReadFlows:
    def test_reads_every_flow_below_the_directory_by_name(self, tmp_path: Path) -> None:
        _write(tmp_path / "a.yaml", _OK.format(name="a", number='"+19195550001"'))
        _write(tmp_path / "sub" / "b.yml", _OK.format(name="b", number='"+19195550002"'))
        _write(tmp_path / "sub" / "part.yaml", "states:\n  x: {final: true}\n")
        _write(tmp_path / ".hidden" / "c.yaml", "not: [valid\n")
        assert sorted(read_flows(tmp_path)) == ["a", "b"]

    def test_a_number_claimed_by_two_flows_is_an_error_at_the_second(self, tmp_path: Path) -> None:
        _write(tmp_path / "a.yaml", _OK.format(name="a", number='"+19195550001"'))
        _write(tmp_path / "b.yaml", _OK.format(name="b", number='"+19195550001"'))
        with pytest.raises(FlowValidationError) as caught:
            read_flows(tmp_path)
        (problem,) = caught.value.diagnostics
        assert (Path(problem.path).name, problem.line, problem.column) == ("b.yaml", 2, 11)
        assert "already claimed by flow 'a'" in problem.message

    def test_two_flows_with_one_name_are_an_error(self, tmp_path: Path) -> None:
        _write(tmp_path / "a.yaml", _OK.format(name="same", number='"+19195550001"'))
        _write(tmp_path / "b.yaml", _OK.format(name="same", number='"+19195550002"'))
        with pytest.raises(FlowValidationError, match="already used by"):
            read_flows(tmp_path)

    def test_start_flow_must_name_a_flow_of_the_directory(self, tmp_path: Path) -> None:
        text = (
            "flow: a\ninitial: a\nstates:\n  a:\n    do: [{start_flow: missing}]\n    on: {flow.done: end}\n"
        )
        _write(tmp_path / "a.yaml", text)
        with pytest.raises(FlowValidationError, match="no flow named 'missing'"):
            read_flows(tmp_path)

    def test_start_flow_in_a_flow_wide_handler_is_checked_too(self, tmp_path: Path) -> None:
        text = "flow: a\ninitial: a\non: {error: {do: [{start_flow: nope}], goto: end}}\nstates:\n  a: {do: [answer]}\n"
        _write(tmp_path / "a.yaml", text)
        with pytest.raises(FlowValidationError) as caught:
            read_flows(tmp_path)
        (problem,) = caught.value.errors
        assert (problem.line, problem.column, problem.code) == (3, 19, "unknown-flow")

    def test_a_missing_directory_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(FlowValidationError, match="is not a directory"):
            read_flows(tmp_path / "nope")


def test_importing_the_flow_package_does_not_import_aiohttp() -> None:
    code = "import sys, flowengine.flow, flowengine.commands.validate; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
