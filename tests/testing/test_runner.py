"""The runner plays scenarios on the simulator through the harness; here with a scripted fake runtime."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowengine.testing.loader import read_scenario
from flowengine.testing.runner import ScenarioResult, format_failure, run_scenario
from tests.testing.support import fake_factory, fake_loader


async def play(tmp_path: Path, body: str) -> ScenarioResult:
    (tmp_path / "flow.yaml").write_text("flow: fake-menu\n")
    path = tmp_path / "case.yaml"
    path.write_text("scenario: case\nflow: flow.yaml\n" + textwrap.dedent(body))
    scenario = read_scenario(path)
    return await run_scenario(scenario, runtime_factory=fake_factory, flow_loader=fake_loader)


async def test_a_menu_choice_that_transfers_passes(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        steps:
          - hear: "Press 1 for sales."
          - press: 1
          - transfer: "+19195550199"
          - state: sales
        """,
    )
    assert result.passed, format_failure(result)
    assert result.steps_run == 4


async def test_silence_waits_through_the_reprompt_to_goodbye(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        steps:
          - hear: {glob: "Press 1*"}
          - silence: 10s
          - hear: {contains: "didn't hear"}
          - hear: Goodbye.
          - end
        """,
    )
    assert result.passed, format_failure(result)
    assert result.virtual_seconds > 6


async def test_an_expectation_waits_on_the_virtual_clock_without_silence_steps(tmp_path: Path) -> None:
    result = await play(tmp_path, "steps:\n  - hear: {regex: '^Good'}\n  - end\n")
    assert result.passed, format_failure(result)
    assert result.wall_seconds < 2


async def test_a_wrong_expectation_names_its_step_line_and_what_happened(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        steps:
          - press: 1
          - transfer: "+19990000000"
        """,
    )
    assert not result.passed
    failure = result.failure
    assert failure is not None
    assert failure.step is not None
    assert (failure.step.pos.line, failure.step.pos.column) == (6, 5)
    assert failure.index == 1
    assert "'+19195550199'" not in failure.message
    assert "+19195550199" in failure.actual
    report = format_failure(result)
    assert "case.yaml:6:5" in report
    assert "transfer to '+19990000000'" in report
    assert "transferring to +19195550199" in report


async def test_dialled_phone_behaviour_and_bridge(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        phones:
          "+19195550100": {mode: answer, after: 5s}
        steps:
          - press: 2
          - dial: "+1919555010?"
          - hear: Connecting you.
          - bridge: "+19195550100"
          - state: talking
        """,
    )
    assert result.passed, format_failure(result)
    assert result.virtual_seconds >= 5


async def test_a_busy_phone_never_bridges(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        timeout: 20s
        steps:
          - phone: {number: "+19195550100", mode: busy}
          - press: 2
          - bridge: "*"
        """,
    )
    assert not result.passed
    assert result.failure is not None
    assert "no bridges" in result.failure.actual


@pytest.mark.parametrize(
    ("canned", "heard"),
    [
        pytest.param(
            '{url: "https://crm.example.com/*", status: 201, json: {ok: true}}',
            "CRM answered 201.",
            id="json",
        ),
        pytest.param('{url: "https://crm.example.com/*", fail: refused}', "CRM answered 0.", id="failure"),
        pytest.param('{method: POST, url: "*", status: 200, delay: 3s}', "CRM answered 200.", id="delay"),
    ],
)
async def test_canned_http_answers_reach_the_flow(tmp_path: Path, canned: str, heard: str) -> None:
    result = await play(
        tmp_path,
        f"""
        http:
          - {canned}
        steps:
          - press: 3
          - http: {{method: POST, url: "https://crm.example.com/calls", json: {{from: caller}}}}
          - hear: "{heard}"
        """,
    )
    assert result.passed, format_failure(result)


async def test_an_http_request_without_canned_answer_fails_the_scenario(tmp_path: Path) -> None:
    result = await play(tmp_path, "steps:\n  - press: 3\n  - hear: anything\n")
    assert result.failure is not None
    assert "no canned `http` answer" in result.failure.message


async def test_sms_sent_by_the_flow_is_expected_by_text_and_recipient(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        steps:
          - press: 4
          - sms: {to: "+15555550100", text: {contains: link}}
          - end
        """,
    )
    assert result.passed, format_failure(result)


async def test_session_timers_run_on_the_virtual_clock(tmp_path: Path) -> None:
    result = await play(tmp_path, "steps:\n  - press: 9\n  - hear: Please hold.\n  - hear: Timer fired.\n")
    assert result.passed, format_failure(result)
    assert 30 <= result.virtual_seconds < 40


async def test_the_caller_hanging_up_ends_the_session(tmp_path: Path) -> None:
    result = await play(tmp_path, "steps:\n  - hangup\n  - end\n  - state: end\n")
    assert result.passed, format_failure(result)


async def test_pressing_after_the_call_ended_fails_clearly(tmp_path: Path) -> None:
    result = await play(tmp_path, "steps:\n  - hangup\n  - press: 1\n")
    assert result.failure is not None
    assert result.failure.message == "cannot press '1': the call has already ended"


async def test_outbound_scenarios_call_the_caller_first(tmp_path: Path) -> None:
    result = await play(
        tmp_path,
        """
        outbound: {vars: {name: Ann}}
        caller: "+15555550100"
        steps:
          - dial: "+15555550100"
          - hear: Press 1 for sales.
          - press: 1
          - transfer: "+19195550199"
        """,
    )
    assert result.passed, format_failure(result)


async def test_a_flow_that_cannot_be_read_fails_without_raising(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("flow: x\n")
    path = tmp_path / "case.yaml"
    path.write_text("scenario: case\nflow: flow.yaml\nsteps: [end]\n")
    scenario = read_scenario(path)
    (tmp_path / "flow.yaml").unlink()
    result = await run_scenario(scenario, runtime_factory=fake_factory, flow_loader=fake_loader)
    assert result.failure is not None
    assert "cannot be read" in result.failure.message
