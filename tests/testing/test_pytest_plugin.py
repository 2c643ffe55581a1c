"""The pytest plugin collects scenario files as tests and reports a failing step with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

INI = """
[pytest]
flowengine_runtime = tests.testing.support:fake_factory
flowengine_flow_loader = tests.testing.support:fake_loader
asyncio_default_fixture_loop_scope = function
"""

PASSING = """\
scenario: sales
flow: flow.yaml
steps:
  - press: 1
  - transfer: "+19195550199"
"""

FAILING = """\
scenario: wrong number
flow: flow.yaml
steps:
  - press: 1
  - transfer: "+10000000000"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.syspathinsert(str(pytester.path))
    pytester.makefile(".yaml", flow="flow: fake-menu\n")
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.syspathinsert(str(ROOT))
    # The plugin is loaded through the package's `pytest11` entry point, as it is for users.
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("flowengine") == "flowengine.testing.pytest_plugin"


def test_scenario_files_are_collected_and_run_as_tests(project: pytest.Pytester) -> None:
    project.makefile(".yaml", sales=PASSING, wrong=FAILING)
    result = _run(project, "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sales.yaml::sales PASSED*", "*wrong.yaml::wrong number FAILED*"])


def test_a_failure_shows_the_step_position_and_the_transcript(project: pytest.Pytester) -> None:
    project.makefile(".yaml", wrong=FAILING)
    result = _run(project)
    result.stdout.fnmatch_lines(
        [
            "*scenario 'wrong number' failed:*",
            "*expected (*wrong.yaml:5:5): transfer to '+10000000000'*",
            "*transferring to +19195550199*",
        ]
    )


def test_an_invalid_scenario_is_a_collection_error_with_its_position(project: pytest.Pytester) -> None:
    project.makefile(".yaml", broken="scenario: x\nflow: flow.yaml\nsteps:\n  - pres: 1\n")
    result = _run(project)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*broken.yaml:4:5: error: steps/0: unknown key 'pres' (did you mean 'press'?)*"]
    )


def test_yaml_files_that_are_not_scenarios_are_ignored(project: pytest.Pytester) -> None:
    project.makefile(".yaml", other="states: {}\n")
    result = _run(project)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_collection_can_be_turned_off(project: pytest.Pytester) -> None:
    project.makefile(".yaml", sales=PASSING)
    result = _run(project, "--no-flowengine-scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
