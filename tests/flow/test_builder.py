"""Building the model: short forms expand, durations become seconds, every element keeps its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.errors import FlowValidationError
from flowengine.flow import build_flow, load_flow
from flowengine.flow import model as m

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "flows" / "valid"


@pytest.fixture(scope="module")
def brief() -> m.Flow:
    return build_flow(load_flow(VALID / "brief-example.yaml"))


@pytest.fixture(scope="module")
def every() -> m.Flow:
    return build_flow(load_flow(VALID / "every-action.yaml"))


def test_the_flow_header_is_built(brief: m.Flow) -> None:
    assert (brief.name, brief.kind, brief.initial, brief.version) == ("support-line", "voice", "greet", 1)
    assert brief.numbers == ("+19195551212",)
    assert brief.vars == {"attempts": 0, "company": "Acme"}
    assert brief.env == ("CRM_URL",)
    assert len(brief.source_hash) == 64


def test_defaults_parse_durations_and_gather_settings(brief: m.Flow) -> None:
    assert brief.defaults == m.Defaults(
        voice="susan",
        gender="female",
        locale="en_US",
        gather=m.GatherDefaults(max_digits=1, inter_digit_timeout=5.0, terminating_digits="#"),
        http_timeout=10.0,
        dial_timeout=30.0,
        on_error="Sorry, something went wrong. Goodbye.",
    )


def test_a_state_has_its_actions_handlers_and_position(brief: m.Flow) -> None:
    greet = brief.state_for("greet")
    assert isinstance(greet.actions[0], m.Answer)
    assert greet.actions[1] == m.Speak(
        prompt=m.Prompt(text="Thanks for calling {{ company }}."),
        pos=m.Position(str(VALID / "brief-example.yaml"), 19, 9),
    )
    assert greet.on["speak.done"][0].target == "main_menu"
    assert greet.pos.line == 15
    assert greet.description == "Welcome"


def test_a_menu_expands_choices_and_retries(brief: m.Flow) -> None:
    menu = brief.state_for("main_menu").menu
    assert menu is not None
    assert menu.prompt == m.Prompt(text="Press 1 for sales, 2 for support, 3 to enter your PIN.")
    assert menu.choices["1"].target == "sales"
    two = menu.choices["2"]
    assert two.target == "support"
    assert two.actions[0] == m.SetVars(values={"dept": "support"}, pos=two.actions[0].pos)
    assert menu.noinput == m.Retry(
        max=3, reprompt=m.Prompt(text="Sorry, I didn't hear anything."), then=menu.noinput.then
    )
    assert menu.noinput.then.target == "goodbye"
    assert (menu.max_digits, menu.inter_digit_timeout, menu.terminating_digits, menu.into) == (
        1,
        5.0,
        "#",
        "choice",
    )


def test_guarded_transitions_keep_their_order_and_timers_their_seconds(brief: m.Flow) -> None:
    check = brief.state_for("check")
    first, second, third = check.on["gather.done"]
    assert (first.when, first.target) == ("event.digits == '1234'", "ok")
    assert (second.when, second.target, len(second.actions)) == ("attempts < 2", "check", 2)
    assert (third.when, third.target) == (None, "goodbye")
    (timer,) = check.after
    assert timer.seconds == 10.0
    assert timer.transitions[0].target == "goodbye"


def test_final_and_flow_wide_handlers(brief: m.Flow) -> None:
    assert brief.state_for("goodbye").final
    assert brief.on["hangup"][0].target == m.END
    error = brief.on["error"][0]
    assert isinstance(error.actions[0], m.Log)


def _actions(flow: m.Flow) -> tuple[m.ActionType, ...]:
    return flow.state_for("start").actions


def test_every_action_form_builds_its_model_class(every: m.Flow) -> None:
    kinds = [type(a).__name__ for a in _actions(every)]
    assert kinds == [
        "Answer", "Speak", "Speak", "Play", "Play", "StopAudio", "StopAudio", "Gather", "Gather", "SendDtmf",
        "SendDtmf", "Record", "Record", "StopRecording", "Dial", "Bridge", "Bridge", "Conference", "Conference",
        "LeaveConference", "LeaveConference", "SendMessage", "SendMessage", "SendMessage", "SendMessage",
        "HttpRequest", "HttpRequest", "SetVars", "Log", "Log", "StartFlow", "StartFlow", "Transfer", "Transfer",
        "Hangup", "Reject", "Hangup",
    ]  # fmt: skip


def _strip(action: m.ActionType) -> m.ActionType:
    from dataclasses import replace

    return replace(action, pos=m.Position("<flow>", 1, 1))


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        pytest.param(2, m.Speak(prompt=m.Prompt(text="Long form.", voice="paul", gender="male", locale="en_UK", volume=-2)), id="speak-long-lowercases-voice"),
        pytest.param(3, m.Play(prompt=m.Prompt(url="https://example.com/a.mp3")), id="play-short"),
        pytest.param(4, m.Play(prompt=m.Prompt(url="https://example.com/b.wav", loop=True, volume=4)), id="play-long"),
        pytest.param(7, m.Gather(), id="gather-bare"),
        pytest.param(8, m.Gather(max_digits=30, inter_digit_timeout=30.0, terminating_digits="*#", prompt=m.Prompt(url="https://example.com/p.wav"), into="digits"), id="gather-long"),
        pytest.param(9, m.SendDtmf(digits="12,34wW#*ABCD"), id="send-dtmf-short"),
        pytest.param(12, m.Record(max_duration=3600.0, file_format="mp3", transcribe=True), id="record-long"),
        pytest.param(14, m.Dial(to="sip:agent@pbx.example.com", role="agent", from_="+19195550000", timeout=300.0), id="dial"),
        pytest.param(15, m.Bridge(legs=("caller", "agent"), audio=False), id="bridge-long"),
        pytest.param(16, m.Bridge(legs=("caller", "agent")), id="bridge-short"),
        pytest.param(17, m.Conference(name="{{ room }}"), id="conference-short"),
        pytest.param(18, m.Conference(name="ops", leg="agent", mute=True, join_tone=False, leave_tone=False), id="conference-long"),
        pytest.param(21, m.SendMessage(text="Hi", to="+19195550001", from_="+19195550000", media=("https://example.com/i.png",)), id="send-message"),
        pytest.param(23, m.SendMessage(text="Thanks"), id="reply-short-has-no-addresses"),
        pytest.param(25, m.HttpRequest(url="{{ env.API }}/x", method="PUT", headers={"X-Id": "{{ call.id }}"}, json={"a": [1, "{{ n }}"]}, timeout=1.5, into="result"), id="http"),
        pytest.param(27, m.SetVars(values={"n": "{{ n + 1 }}", "flag": True, "list": [1, 2]}), id="set"),
        pytest.param(29, m.Log(message="{{ result }}", level="debug"), id="log-long"),
        pytest.param(31, m.StartFlow(flow="sub-flow", vars={"x": "{{ n }}"}), id="start-flow-long"),
        pytest.param(33, m.Transfer(to="+19195550003", caller_id="private", whisper=m.Prompt(text="Incoming transfer")), id="transfer-long"),
        pytest.param(34, m.Hangup(leg="agent"), id="hangup-leg"),
    ],
)  # fmt: skip
def test_action_fields(every: m.Flow, index: int, expected: m.ActionType) -> None:
    assert _strip(_actions(every)[index]) == expected


def test_a_menu_without_max_digits_takes_the_longest_choice(tmp_path: Path) -> None:
    path = tmp_path / "menu.yaml"
    path.write_text(
        'flow: f\ninitial: m\nstates:\n  m:\n    menu: {prompt: p, choices: {"1": end, "123": end}}\n'
    )
    menu = build_flow(load_flow(path)).state_for("m").menu
    assert menu is not None
    assert menu.max_digits == 3


def test_building_an_invalid_document_raises_with_its_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("flow: f\ninitial: s\nstates:\n  s: {final: maybe}\n")
    with pytest.raises(FlowValidationError) as caught:
        build_flow(load_flow(path))
    (problem,) = caught.value.diagnostics
    assert (problem.line, problem.column) == (4, 14)
