"""The example flows in flows/ are valid, warning-free, realistic, and read together as one directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.flow import check_file, read_flows
from flowengine.flow import model as m
from flowengine.flow.pipeline import flow_files

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "flows"
FILES = [path for path in flow_files(FLOWS) if not check_file(path).is_scenario]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FLOWS)))
def test_example_file_has_no_error_and_no_warning(path: Path) -> None:
    assert [str(d) for d in check_file(path).diagnostics] == []


@pytest.fixture(scope="module")
def flows() -> dict[str, m.Flow]:
    return read_flows(FLOWS, strict=True)


def test_the_directory_holds_the_seven_examples(flows: dict[str, m.Flow]) -> None:
    assert sorted(flows) == [
        "appointment-reminder",
        "call-forwarding",
        "conference-line",
        "ivr-main-line",
        "sms-auto-reply",
        "sms-survey",
        "voicemail-box",
    ]


def _actions(flow: m.Flow) -> list[m.ActionType]:
    found: list[m.ActionType] = []
    for state in flow.states.values():
        found.extend(state.actions)
        transitions = [t for ts in state.on.values() for t in ts]
        transitions += [t for timer in state.after for t in timer.transitions]
        if state.menu is not None:
            transitions += list(state.menu.choices.values())
        for transition in transitions:
            found.extend(transition.actions)
    return found


def test_the_ivr_routes_by_menu_with_retries_and_includes_a_shared_goodbye(flows: dict[str, m.Flow]) -> None:
    ivr = flows["ivr-main-line"]
    menu = ivr.state_for("main_menu").menu
    assert menu is not None
    assert {key: t.target for key, t in menu.choices.items()} == {
        "1": "sales",
        "2": "support",
        "3": "voicemail",
    }
    assert (menu.noinput.max, menu.nomatch.max) == (3, 3)
    assert ivr.state_for("goodbye").pos.path.endswith("common/goodbye.yaml")


def test_voicemail_posts_its_transcription(flows: dict[str, m.Flow]) -> None:
    flow = flows["voicemail-box"]
    assert any(isinstance(a, m.Record) and a.transcribe for a in _actions(flow))
    (posted,) = flow.state_for("transcribing").on["transcription.completed"]
    (http,) = posted.actions
    assert isinstance(http, m.HttpRequest)
    assert http.method == "POST"


def test_forwarding_dials_bridges_and_falls_back_to_voicemail(flows: dict[str, m.Flow]) -> None:
    ringing = flows["call-forwarding"].state_for("ringing")
    assert any(isinstance(a, m.Dial) and a.role == "mobile" for a in ringing.actions)
    assert ringing.on["mobile.timeout"][0].target == "voicemail"
    assert isinstance(ringing.on["mobile.answer"][0].actions[0], m.Bridge)


def test_the_conference_line_checks_a_pin_then_joins(flows: dict[str, m.Flow]) -> None:
    flow = flows["conference-line"]
    first = flow.state_for("welcome").on["gather.done"][0]
    assert (first.when, first.target) == ("entered == pin", "joining")
    assert any(isinstance(a, m.Conference) for a in flow.state_for("joining").actions)


def test_the_reminder_is_outbound_with_confirm_and_cancel_keys(flows: dict[str, m.Flow]) -> None:
    flow = flows["appointment-reminder"]
    assert flow.numbers == ()
    menu = flow.state_for("remind").menu
    assert menu is not None
    assert sorted(menu.choices) == ["1", "2"]


def test_the_messaging_examples_answer_keywords_and_time_out(flows: dict[str, m.Flow]) -> None:
    auto = flows["sms-auto-reply"]
    assert auto.kind == "messaging"
    guards = [t.when or "" for t in auto.state_for("incoming").on["message"]]
    assert any("HELP" in g for g in guards)
    assert any("STOP" in g for g in guards)
    survey = flows["sms-survey"]
    assert survey.kind == "messaging"
    assert [timer.seconds for timer in survey.state_for("q1").after] == [600.0]


def test_every_example_number_is_distinct(flows: dict[str, m.Flow]) -> None:
    numbers = [n for flow in flows.values() for n in flow.numbers]
    assert len(numbers) == len(set(numbers)) == 6
