"""``flowengine test``: PASS/FAIL per scenario, failure reports with positions, JUnit, coverage, exit codes."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowengine.cli import main

FLOWS = Path(__file__).resolve().parents[1] / "testing" / "flows"
ROOT = Path(__file__).resolve().parents[2]

FAILING = """\
scenario: expects the wrong transfer
flow: ivr.yaml
steps:
  - hear: {glob: "Press 1*"}
  - press: 1
  - transfer: "+10000000000"
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(FLOWS / "ivr.yaml", tmp_path / "ivr.yaml")
    shutil.copy(FLOWS / "ivr-sales.yaml", tmp_path / "sales.yaml")
    return tmp_path


def test_passing_scenarios_exit_0_and_print_pass(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out
    assert "caller picks sales and is transferred" in out
    assert "1 scenarios: 1 passed, 0 failed" in out


def test_a_failure_exits_1_with_the_step_line_and_the_transcript(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "wrong.yaml").write_text(FAILING)
    assert main(["test", str(workdir)]) == 1
    out = capsys.readouterr().out
    assert f"- expected ({workdir / 'wrong.yaml'}:6:5): transfer to '+10000000000'" in out
    assert "+ actual: nothing more happened; transfers seen: +19195550100" in out
    assert "heard          Thanks for calling Acme." in out
    assert "FAIL     6  transfer to '+10000000000'" in out


def test_an_invalid_scenario_exits_2_with_its_position(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bad.yaml").write_text("scenario: bad\nflow: ivr.yaml\nsteps:\n  - press: [1]\n")
    assert main(["test", str(workdir)]) == 2
    out = capsys.readouterr().out
    assert f"{workdir / 'bad.yaml'}:4:12: error: steps/0/press:" in out


def test_a_scenario_naming_a_missing_flow_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "lost.yaml").write_text("scenario: lost\nflow: nowhere.yaml\nsteps: [end]\n")
    assert main(["test", str(workdir / "lost.yaml")]) == 2
    assert "lost.yaml:2:7: error: flow file 'nowhere.yaml' does not exist" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["test"], "give at least one scenario", id="no-paths"),
        pytest.param(["test", "/nonexistent/dir"], "no such file or directory", id="missing-path"),
        pytest.param(["test", "x", "--fail-under", "120"], "between 0 and 100", id="fail-under"),
        pytest.param(["test", "--replay", "x.jsonl"], "go together", id="replay-alone"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_junit_report_lists_each_scenario_and_its_failure(workdir: Path) -> None:
    (workdir / "wrong.yaml").write_text(FAILING)
    report = workdir / "junit.xml"
    assert main(["test", str(workdir), "--junit", str(report), "-q"]) == 1
    root = ET.parse(report).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failures = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failures] == ["expects the wrong transfer"]
    failure = failures[0].find("failure")
    assert failure is not None
    assert "wrong.yaml:6:5" in (failure.get("message") or "")


def test_coverage_names_what_is_missing_and_fail_under_fails(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(workdir), "--coverage"]) == 0
    out = capsys.readouterr().out
    assert "ivr" in out
    assert "not covered: state goodbye, state support, state talking, choice main_menu:2" in out
    assert main(["test", str(workdir), "--fail-under", "90", "-q"]) == 1
    assert (
        "coverage of ivr is 50.0% (states and menu choices), under --fail-under 90" in capsys.readouterr().out
    )


def test_the_example_flows_scenarios_cover_every_state_and_menu_choice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenarios = ROOT / "flows" / "scenarios"
    code = main(["test", str(scenarios), "--coverage", "--fail-under", "100", "-q"])
    assert code == 0, capsys.readouterr().out
