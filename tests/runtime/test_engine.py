"""Tests of the engine on flows built in code: sequencing, menus, legs, timers, errors, messaging."""

from __future__ import annotations

import pytest

from flowengine.catapult.events import parse_callback
from flowengine.flow import model as m
from flowengine.runtime import commands as cmd
from flowengine.runtime.engine import Engine, RouteKey
from flowengine.runtime.events import Cancel
from flowengine.runtime.session import Session

from .support import CALLBACK, OURS, THEIRS, Driver

P = m.Prompt
T = m.Transition


def _ivr() -> m.Flow:
    goodbye = T("goodbye")
    return m.Flow(
        name="ivr",
        kind="voice",
        initial="greet",
        numbers=(OURS,),
        vars={"company": "Acme"},
        states={
            "greet": m.State(
                "greet",
                actions=(
                    m.Answer(),
                    m.Speak(prompt=P(text="Thanks for calling {{ company }}.")),
                    m.Play(prompt=P(url="https://media.test/chime.mp3")),
                ),
                on={"playback.done": (T("menu"),)},
            ),
            "menu": m.State(
                "menu",
                menu=m.Menu(
                    prompt=P(text="Press 1 for sales, 2 for support, 3 for a message."),
                    choices={"1": T("sales"), "2": T("support"), "3": T("voicemail")},
                    noinput=m.Retry(max=3, reprompt=P(text="Sorry, I did not hear anything."), then=goodbye),
                    nomatch=m.Retry(max=2, reprompt=P(text="That is not an option."), then=goodbye),
                ),
            ),
            "sales": m.State(
                "sales",
                actions=(
                    m.Speak(prompt=P(text="Connecting you.")),
                    m.Dial(to="+15550002000", role="agent", timeout=20),
                ),
                on={
                    "agent.answer": (T("talking", actions=(m.Bridge(legs=("caller", "agent")),)),),
                    "agent.timeout": (T("voicemail"),),
                    "agent.hangup": (T("voicemail"),),
                },
                after=(m.Timer(45.0, (T("voicemail"),)),),
            ),
            "talking": m.State("talking", on={"agent.hangup": (T("goodbye"),)}),
            "support": m.State(
                "support", actions=(m.Transfer(to="+15550003000", caller_id="{{ call.from }}"),)
            ),
            "voicemail": m.State(
                "voicemail",
                actions=(
                    m.Speak(prompt=P(text="Leave a message after the tone.")),
                    m.Record(max_duration=120, transcribe=True),
                ),
                on={
                    "recording.complete": (T(None),),
                    "transcription.completed": (
                        T(
                            "goodbye",
                            actions=(
                                m.HttpRequest(
                                    url="https://crm.test/voicemail",
                                    method="POST",
                                    json={"from": "{{ call.from }}", "text": "{{ event.text }}"},
                                ),
                            ),
                        ),
                    ),
                },
            ),
            "goodbye": m.State(
                "goodbye", actions=(m.Speak(prompt=P(text="Goodbye.")), m.Hangup()), final=True
            ),
        },
        on={"hangup": (T("end"),)},
    )


def _say(text: str) -> str:
    body = f'{{"gender":"female","locale":"en_US","loopEnabled":false,"sentence":"{text}","tag":"TAG","voice":"susan"}}'
    return f"POST /calls/c-caller/audio {body}"


def _tagless(lines: list[str]) -> list[str]:
    """Replace the tags (which carry the session id and a counter) by TAG to keep expectations short."""
    import re

    return [re.sub(r'"tag":"s1\|[a-z]\d+"', '"tag":"TAG"', line) for line in lines]


GATHER = (
    'POST /calls/c-caller/gather {"interDigitTimeout":5.0,"maxDigits":1,'
    '"prompt":{"gender":"female","locale":"en_US","loopEnabled":false,'
    '"sentence":"Press 1 for sales, 2 for support, 3 for a message."},"tag":"TAG","terminatingDigits":"#"}'
)


def _to_menu(driver: Driver) -> None:
    driver.incoming()
    driver.speak_done()
    assert _tagless(driver.playback_done()) == [GATHER]


class TestPrompts:
    def test_entry_actions_run_in_order_and_the_second_prompt_waits_for_the_first(self) -> None:
        driver = Driver({"ivr": _ivr()})
        assert _tagless(driver.incoming()) == [
            'POST /calls/c-caller {"state":"active"}',
            _say("Thanks for calling Acme."),
        ]
        assert _tagless(driver.speak_done()) == [
            'POST /calls/c-caller/audio {"fileUrl":"https://media.test/chime.mp3","loopEnabled":false,"tag":"TAG"}'
        ]
        assert driver.session.state == "greet"
        assert _tagless(driver.playback_done()) == [GATHER]
        assert driver.session.state == "menu"

    def test_a_done_event_of_another_audio_item_does_not_advance_the_queue(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        assert driver.audio_done(tag="s1|a999") == []
        assert driver.session.busy is not None

    def test_speak_started_events_change_nothing(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        tag = (driver.session.busy or {})["caller"]
        assert (
            driver.send({"eventType": "speak", "callId": "c-caller", "status": "started", "tag": tag}) == []
        )

    def test_a_transition_drops_the_rest_of_the_state_s_actions(self) -> None:
        flow = m.Flow(
            name="f",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Speak(prompt=P(text="one")), m.Speak(prompt=P(text="two"))),
                    on={"dtmf": (T("b"),)},
                ),
                "b": m.State("b", actions=(m.Speak(prompt=P(text="three")),)),
            },
        )
        driver = Driver({"f": flow})
        driver.incoming()
        assert driver.dtmf("5") == []  # "three" waits: "one" is still playing
        assert _tagless(driver.speak_done()) == [_say("three")]


HANG_UP = 'POST /calls/c-caller {"state":"completed"}'


def _recorder() -> m.Flow:
    """A voicemail in code: a transition that speaks, then states that take further transitions."""
    return m.Flow(
        name="vm",
        kind="voice",
        initial="recording",
        numbers=(OURS,),
        states={
            "recording": m.State(
                "recording",
                actions=(m.Answer(), m.Record()),
                on={
                    "recording.complete": (
                        T(
                            "transcribing",
                            actions=(
                                m.Speak(prompt=P(text="Thank you.")),
                                m.Log(message="saved {{ event.recording_id }}"),
                            ),
                        ),
                    ),
                },
            ),
            "transcribing": m.State(
                "transcribing",
                actions=(m.Speak(prompt=P(text="One moment.")),),
                on={
                    "transcription.completed": (
                        T("goodbye", actions=(m.Log(message="heard {{ event.text }}"),)),
                    ),
                    "speak.done": (T(None, actions=(m.Log(message="all said"),)),),
                },
                after=(m.Timer(60.0, (T("goodbye"),)),),
            ),
            "goodbye": m.State("goodbye", actions=(m.Hangup(),), final=True),
        },
    )


class TestTransitions:
    def test_an_event_during_a_transition_s_prompt_is_handled_by_the_target_state(self) -> None:
        driver = Driver({"vm": _recorder()})
        driver.incoming()
        assert _tagless(driver.recording()) == ["timer after:transcribing:0:2 at 61", _say("Thank you.")]
        assert driver.session.state == "transcribing"
        assert driver.transcription("call me") == ["cancel after:transcribing:0:2"]
        assert driver.session.state == "goodbye"

    def test_a_later_transition_never_cuts_the_transition_s_prompt_and_runs_its_actions(self) -> None:
        driver = Driver({"vm": _recorder()})
        driver.incoming()
        driver.recording()
        driver.transcription("call me")
        assert driver.speak_done() == [
            "log info saved r-1",
            "log info heard call me",
            HANG_UP,
            "end hangup",
        ]

    def test_the_transition_s_prompts_play_before_the_target_s_entry_prompts(self) -> None:
        driver = Driver({"vm": _recorder()})
        driver.incoming()
        driver.recording()
        assert _tagless(driver.speak_done()) == ["log info saved r-1", _say("One moment.")]
        assert driver.session.program is not None
        assert driver.speak_done() == ["log info all said"]
        assert driver.session.program is None

    def test_speak_done_reaches_the_target_only_when_every_queued_prompt_has_played(self) -> None:
        driver = Driver({"vm": _recorder()})
        driver.incoming()
        driver.recording()
        assert "log info all said" not in driver.speak_done()
        assert driver.speak_done() == ["log info all said"]

    def test_a_looping_prompt_of_a_transition_does_not_hold_up_the_next_state(self) -> None:
        flow = m.Flow(
            name="hold",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Answer(),),
                    on={
                        "dtmf": (
                            T("b", actions=(m.Play(prompt=P(url="https://m.test/hold.mp3", loop=True)),)),
                        )
                    },
                ),
                "b": m.State("b", on={"dtmf": (T("c", actions=(m.StopAudio(),)),)}),
                "c": m.State("c", actions=(m.Speak(prompt=P(text="Hello.")),)),
            },
        )
        driver = Driver({"hold": flow})
        driver.incoming()
        driver.dtmf("1")
        assert driver.session.state == "b"
        stopped = (driver.session.busy or {})["caller"]
        assert _tagless(driver.dtmf("2")) == ['POST /calls/c-caller/audio {"fileUrl":""}', _say("Hello.")]
        assert driver.session.state == "c"
        assert driver.audio_done(kind="playback", tag=stopped) == []

    def test_a_transition_to_end_ends_once_its_prompt_has_played(self) -> None:
        flow = m.Flow(
            name="bye",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Answer(),),
                    on={"dtmf": (T("end", actions=(m.Speak(prompt=P(text="Bye.")),)),)},
                ),
            },
        )
        driver = Driver({"bye": flow})
        driver.incoming()
        assert _tagless(driver.dtmf("1")) == [_say("Bye.")]
        assert not driver.session.ended
        assert driver.dtmf("2") == []
        assert driver.speak_done() == [HANG_UP, "end end"]


MENU_PROMPT = "Press 1 for sales, 2 for support, 3 for a message."


def _reprompted(reprompt: str) -> str:
    """The menu's gather whose prompt sentence starts with the reprompt."""
    return GATHER.replace(f'"sentence":"{MENU_PROMPT}"', f'"sentence":"{reprompt} {MENU_PROMPT}"')


def _with_menu(reprompt: m.Prompt) -> m.Flow:
    flow = _ivr()
    states = dict(flow.states)
    menu = states["menu"].menu
    assert menu is not None
    retry = m.Retry(max=3, reprompt=reprompt, then=T("goodbye"))
    states["menu"] = m.State("menu", menu=m.Menu(**{**_fields(menu), "noinput": retry}))
    return m.Flow(**{**_fields(flow), "states": states})


class TestMenu:
    def test_a_key_pressed_during_a_spoken_reprompt_is_taken(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        assert _tagless(driver.gather("")) == [_reprompted("Sorry, I did not hear anything.")]
        assert driver.session.gather_tag("caller") is not None
        driver.gather("1")
        assert driver.session.state == "sales"

    def test_a_reprompt_that_is_an_audio_file_plays_before_the_gather(self) -> None:
        driver = Driver({"ivr": _with_menu(P(url="https://media.test/sorry.mp3"))})
        _to_menu(driver)
        assert _tagless(driver.gather("")) == [
            'POST /calls/c-caller/audio {"fileUrl":"https://media.test/sorry.mp3","loopEnabled":false,"tag":"TAG"}'
        ]
        assert driver.session.gather_tag("caller") is None
        assert _tagless(driver.playback_done()) == [GATHER]

    def test_a_reprompt_in_another_voice_is_spoken_before_the_gather(self) -> None:
        driver = Driver({"ivr": _with_menu(P(text="Sorry.", voice="paul"))})
        _to_menu(driver)
        assert _tagless(driver.gather("")) == [_say("Sorry.").replace('"susan"', '"paul"')]
        assert _tagless(driver.speak_done()) == [GATHER]

    @pytest.mark.parametrize(("key", "state"), [("1", "sales"), ("2", "support"), ("3", "voicemail")])
    def test_every_choice_goes_to_its_state(self, key: str, state: str) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather(key)
        assert driver.session.state == state

    def test_noinput_reprompts_then_asks_again_until_the_limit(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        for attempt in (1, 2):
            assert _tagless(driver.gather("")) == [_reprompted("Sorry, I did not hear anything.")]
            assert driver.session.counters == {"menu.noinput": attempt}
        assert _tagless(driver.gather("")) == [_say("Goodbye.")]
        assert driver.session.state == "goodbye"
        assert driver.speak_done() == ['POST /calls/c-caller {"state":"completed"}', "end hangup"]
        assert driver.session.ended

    def test_nomatch_is_counted_apart_from_noinput(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("")
        assert _tagless(driver.gather("9")) == [_reprompted("That is not an option.")]
        assert driver.session.counters == {"menu.noinput": 1, "menu.nomatch": 1}
        driver.gather("8")
        assert driver.session.state == "goodbye"

    def test_counters_reset_when_the_menu_is_entered_from_another_state(self) -> None:
        flow = _ivr()
        states = dict(flow.states)
        states["support"] = m.State(
            "support", actions=(m.Speak(prompt=P(text="Busy")),), on={"speak.done": (T("menu"),)}
        )
        driver = Driver({"ivr": m.Flow(**{**_fields(flow), "states": states})})
        _to_menu(driver)
        driver.gather("")
        driver.speak_done()
        driver.gather("2")
        driver.speak_done()
        assert driver.session.state == "menu"
        assert not (driver.session.counters or {}).get("menu.noinput")

    def test_a_stale_gather_event_is_ignored(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        data = {
            "eventType": "gather",
            "callId": "c-caller",
            "reason": "max-digits",
            "digits": "1",
            "tag": "s1|g0",
        }
        assert driver.send(data) == []
        assert driver.session.state == "menu"


class TestHangup:
    def test_a_late_answer_after_the_caller_hung_up_does_not_revive_the_leg(self) -> None:
        flow = _recorder()
        states = dict(flow.states)
        states["recording"] = m.State("recording", actions=(m.Answer(), m.Record(max_duration=60.0)))
        driver = Driver({"vm": m.Flow(**{**_fields(flow), "states": states})})
        driver.incoming()
        assert driver.hangup() == ["timer drain at 601"]
        assert driver.answer() == []
        assert driver.fire("record:caller") == []
        assert driver.session.status_of("caller") == "gone"

    @pytest.mark.parametrize("state", ["greet", "menu", "sales", "talking", "voicemail-before-record"])
    def test_the_caller_hanging_up_ends_the_session_in_every_state(self, state: str) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        if state != "greet":
            driver.speak_done()
            driver.playback_done()
        if state in ("sales", "talking"):
            driver.gather("1")
            driver.speak_done()
            dial = driver.pending_of(cmd.CreateCall)
            driver.result(dial, "c-agent")
        if state == "talking":
            driver.answer("agent")
        if state == "voicemail-before-record":
            driver.gather("3")
        lines = driver.hangup()
        assert driver.session.ended
        assert lines[-1].startswith("end ")
        assert not any("/calls/c-caller" in line for line in lines)
        if state in ("sales", "talking"):
            assert 'POST /calls/c-agent {"state":"completed"}' in lines
        if state == "sales":
            assert "cancel after:sales:0:3" in lines
        assert driver.dtmf("1") == []

    def test_no_command_is_produced_for_a_leg_that_hung_up(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("1")
        driver.speak_done()
        driver.result(driver.pending_of(cmd.CreateCall), "c-agent")
        driver.answer("agent")
        lines = driver.hangup("agent")
        assert driver.session.state == "goodbye"
        assert _tagless(lines) == [_say("Goodbye.")]
        assert all("c-agent" not in line for line in lines)

    def test_a_hangup_while_recording_waits_for_the_recording_and_transcription(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("3")
        lines = driver.speak_done()
        assert lines == [
            'POST /calls/c-caller {"recordingEnabled":true,"recordingFileFormat":"wav"}',
            "timer record:caller at 124",
        ]
        assert driver.hangup() == ["timer drain at 605"]
        assert not driver.session.ended
        assert driver.recording() == [
            "cancel record:caller",
            "POST /recordings/r-1/transcriptions {}",
        ]
        lines = driver.transcription("Please call me back")
        assert (
            lines[0]
            == 'http POST https://crm.test/voicemail {"from":"+15559998888","text":"Please call me back"}'
        )
        assert "cancel drain" in lines
        assert lines[-1] == "end final"  # goodbye is final; its prompt and hangup were dropped

    def test_the_transcription_is_still_awaited_after_its_creation_succeeds(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("3")
        driver.speak_done()
        driver.hangup()
        driver.recording()
        # The REST answer to "create transcription" is not the transcription: keep waiting for its event.
        assert driver.result(driver.pending_of(cmd.CreateTranscription), "t-1") == []
        assert not driver.session.ended
        lines = driver.transcription("Please call me back")
        assert lines[0].startswith("http POST https://crm.test/voicemail")


class TestLegs:
    def test_bridge_waits_until_the_dialled_leg_answers(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("1")
        lines = driver.speak_done()
        assert lines == [
            'POST /calls {"callTimeout":20,"callbackUrl":"https://engine.test/callbacks","from":"+15550001000",'
            '"tag":"s1|call:agent","to":"+15550002000"}'
        ]
        assert driver.result(driver.pending_of(cmd.CreateCall), "c-agent") == []
        assert driver.answer("agent") == [
            "cancel after:sales:0:3",
            'POST /bridges {"bridgeAudio":true,"callIds":["c-caller","c-agent"]}',
        ]
        assert driver.session.state == "talking"

    def test_an_answer_before_the_create_result_is_matched_by_its_tag(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("1")
        driver.speak_done()
        driver.calls["agent"] = "c-agent"
        driver.answer("agent")
        assert driver.session.leg_call("agent") == "c-agent"
        assert driver.session.state == "talking"

    @pytest.mark.parametrize("how", ["timeout", "busy", "timer"])
    def test_an_unanswered_dial_goes_to_voicemail(self, how: str) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("1")
        driver.speak_done()
        driver.result(driver.pending_of(cmd.CreateCall), "c-agent")
        if how == "timeout":
            driver.timeout("agent")
        elif how == "busy":
            driver.hangup("agent", "USER_BUSY")
        else:
            lines = driver.fire("after:sales:0:3")
            assert 'POST /calls/c-agent {"state":"completed"}' not in lines
        assert driver.session.state == "voicemail"

    def test_transfer_uses_the_caller_s_number_as_caller_id(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        assert driver.gather("2") == [
            'POST /calls/c-caller {"callbackUrl":"https://engine.test/callbacks","state":"transferring",'
            '"transferCallerId":"+15559998888","transferTo":"+15550003000"}'
        ]
        assert driver.hangup() == ["end transferred"]

    def test_the_hangup_of_the_call_a_transfer_created_ends_the_session(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("2")
        assert driver.result(driver.pending_of(cmd.TransferCall), "c-new") == []
        assert "call:c-new" in driver.session.route_keys()
        assert driver.engine.session_key(parse_callback(_hangup_of("c-new"))) == RouteKey("call", "c-new")
        answered = {"eventType": "answer", "callId": "c-new", "from": THEIRS, "to": "+15550003000"}
        assert driver.send(answered) == []
        assert not driver.session.ended
        assert driver.send(_hangup_of("c-new")) == ["end transferred"]
        assert driver.session.end_reason == "transferred"
        assert driver.hangup() == []

    def test_the_transferred_call_is_known_by_the_caller_s_tag_it_inherits(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("2")
        assert driver.send({**_hangup_of("c-other"), "tag": "s1|call:caller"}) == ["end transferred"]
        assert driver.session.leg_call("transfer-to") == "c-other"

    def test_a_session_that_ends_after_a_transfer_never_hangs_up_the_transferred_call(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("2")
        driver.result(driver.pending_of(cmd.TransferCall), "c-new")
        assert driver.event(Cancel()) == ["end cancelled"]

    def test_a_failed_transfer_is_an_error_on_a_caller_still_connected(self) -> None:
        driver = Driver({"ivr": _ivr()})
        _to_menu(driver)
        driver.gather("2")
        lines = driver.failure(driver.pending_of(cmd.TransferCall), "call-transfer-error", 503)
        assert lines[0].startswith('POST /calls/c-caller/audio {"gender"')
        assert driver.session.status_of("caller") == "up"


def _hangup_of(call_id: str) -> dict[str, str]:
    return {"eventType": "hangup", "callId": call_id, "cause": "NORMAL_CLEARING", "from": THEIRS, "to": OURS}


class TestTimersAndErrors:
    def test_a_stale_timer_is_ignored(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        assert driver.fire("after:sales:0:99") == []
        assert driver.session.history is not None
        assert "stale timer" in driver.session.history[-1]

    def test_a_rest_failure_without_a_handler_apologises_and_hangs_up(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        answer = driver.last[0]
        lines = driver.failure(answer, "call-invalid-state")
        assert _tagless(lines) == [_say("Sorry, something went wrong. Goodbye.")]
        assert _tagless(driver.speak_done()) == ['POST /calls/c-caller {"state":"completed"}', "end error"]

    def test_a_rest_failure_goes_to_the_flow_s_error_handler(self) -> None:
        flow = _ivr()
        handlers = {**flow.on, "error": (T("goodbye", actions=(m.Log(message="failed: {{ error.code }}"),)),)}
        driver = Driver({"ivr": m.Flow(**{**_fields(flow), "on": handlers})})
        driver.incoming()
        lines = driver.failure(driver.last[0], "call-unavailable", 503)
        assert _tagless(lines) == ["log info failed: call-unavailable", _say("Goodbye.")]

    def test_a_template_error_becomes_an_error_event(self) -> None:
        flow = m.Flow(
            name="f",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={"a": m.State("a", actions=(m.Answer(), m.Speak(prompt=P(text="Hi {{ nobody }}"))))},
        )
        driver = Driver({"f": flow})
        lines = driver.incoming()
        assert lines[0] == 'POST /calls/c-caller {"state":"active"}'
        assert "Sorry, something went wrong" in lines[1]

    def test_http_results_branch_and_fill_the_variable(self) -> None:
        flow = m.Flow(
            name="f",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(
                        m.Answer(),
                        m.HttpRequest(url="https://x.test/q?n={{ call.from | urlencode }}", into="who"),
                    ),
                    on={
                        "http.ok": (T("b", when="event.status == 200"),),
                        "http.error": (T("c"),),
                    },
                ),
                "b": m.State("b", actions=(m.Speak(prompt=P(text="Hello {{ who.name }}")),)),
                "c": m.State("c", actions=(m.Hangup(),)),
            },
        )
        driver = Driver({"f": flow})
        lines = driver.incoming()
        assert lines[1] == "http GET https://x.test/q?n=%2B15559998888 null"
        http = driver.pending_of(cmd.HttpCall)
        assert "Hello Ada" in driver.http(http, 200, {"name": "Ada"})[0]
        driver2 = Driver({"f": flow})
        driver2.incoming()
        assert driver2.http(driver2.pending_of(cmd.HttpCall), 0, error="timed out") == [
            'POST /calls/c-caller {"state":"completed"}',
            "end hangup",
        ]

    def test_caller_values_in_an_http_url_are_escaped(self) -> None:
        flow = m.Flow(
            name="f",
            kind="messaging",
            initial="a",
            numbers=(OURS,),
            env=("CRM",),
            states={
                "a": m.State(
                    "a",
                    on={
                        "message": (
                            T(None, actions=(m.HttpRequest(url="{{ env.CRM }}/find?q={{ event.text }}"),)),
                        )
                    },
                )
            },
        )
        driver = Driver({"f": flow}, env={"CRM": "https://crm.test/api"})
        lines = driver.text_in("1&admin=1 #x")
        assert "http GET https://crm.test/api/find?q=1%26admin%3D1%20%23x null" in lines


class TestMessaging:
    def _flow(self) -> m.Flow:
        return m.Flow(
            name="sms",
            kind="messaging",
            initial="idle",
            numbers=(OURS,),
            states={
                "idle": m.State(
                    "idle",
                    on={
                        "message": (
                            T(
                                "end",
                                when="event.text | trim | upper == 'STOP'",
                                actions=(m.SendMessage(text="Bye."),),
                            ),
                            T("asked", actions=(m.SendMessage(text="Hi! Reply YES to confirm."),)),
                        )
                    },
                ),
                "asked": m.State(
                    "asked",
                    on={"message": (T("done", actions=(m.SetVars(values={"answer": "{{ event.text }}"}),)),)},
                    after=(m.Timer(600.0, (T("end", actions=(m.SendMessage(text="No answer, bye."),)),)),),
                ),
                "done": m.State(
                    "done",
                    actions=(m.SendMessage(text="Got {{ answer }}", media=("https://m.test/a.png",)),),
                    final=True,
                ),
            },
        )

    def _sent(self, text: str) -> str:
        return (
            'POST /messages {"callbackUrl":"https://engine.test/callbacks","from":"+15550001000",'
            f'"receiptRequested":"all","tag":"TAG","text":"{text}","to":"+15559998888"}}'
        )

    def test_a_keyword_is_handled_by_the_flow(self) -> None:
        driver = Driver({"sms": self._flow()})
        assert _tagless(driver.text_in(" stop ")) == [self._sent("Bye."), "end end"]

    def test_a_conversation_waits_for_the_reply_with_a_timeout(self) -> None:
        driver = Driver({"sms": self._flow()})
        assert _tagless(driver.text_in("hello")) == [
            "timer after:asked:0:2 at 600",
            self._sent("Hi! Reply YES to confirm."),
        ]
        lines = _tagless(driver.text_in("yes"))
        assert lines[0] == "cancel after:asked:0:2"
        assert lines[1] == (
            'POST /messages {"callbackUrl":"https://engine.test/callbacks","from":"+15550001000",'
            '"media":["https://m.test/a.png"],"tag":"TAG","text":"Got yes","to":"+15559998888"}'
        )
        assert lines[-1] == "end final"

    def test_no_reply_takes_the_timer(self) -> None:
        driver = Driver({"sms": self._flow()})
        driver.text_in("hello")
        assert _tagless(driver.fire("after:asked:0:2")) == [self._sent("No answer, bye."), "end end"]

    def test_delivery_receipts_are_events(self) -> None:
        flow = self._flow()
        states = dict(flow.states)
        states["asked"] = m.State("asked", on={"delivery.error": (T("end"),)})
        driver = Driver({"sms": m.Flow(**{**_fields(flow), "states": states})})
        driver.text_in("hello")
        data = {
            "eventType": "sms",
            "direction": "out",
            "from": OURS,
            "to": THEIRS,
            "state": "error",
            "deliveryState": "not-delivered",
            "deliveryCode": "775",
            "tag": "s1|t1",
        }
        assert driver.send(data) == ["end end"]

    def test_conversation_route_keys_are_symmetric(self) -> None:
        engine = Engine({"sms": self._flow()})
        inbound = parse_callback(
            {"eventType": "sms", "direction": "in", "from": THEIRS, "to": OURS, "text": "x"}
        )
        outbound = parse_callback(
            {"eventType": "sms", "direction": "out", "from": OURS, "to": THEIRS, "state": "sent"}
        )
        assert (
            engine.session_key(inbound)
            == engine.session_key(outbound)
            == RouteKey("conversation", f"{OURS}|{THEIRS}")
        )


class TestEngine:
    def test_outbound_execution_calls_then_runs_the_flow_on_answer(self) -> None:
        flow = m.Flow(
            name="remind",
            kind="voice",
            initial="ringing",
            vars={"when": "Monday"},
            states={
                "ringing": m.State("ringing", on={"answer": (T("speak"),), "timeout": (T("end"),)}),
                "speak": m.State(
                    "speak", actions=(m.Speak(prompt=P(text="See you {{ when }}.")), m.Hangup())
                ),
            },
        )
        driver = Driver({"remind": flow})
        assert driver.outbound("remind", when="Friday") == [
            'POST /calls {"callTimeout":30,"callbackUrl":"https://engine.test/callbacks","from":"+15550001000",'
            '"tag":"s1|call:caller","to":"+15559998888"}'
        ]
        driver.result(driver.last[0], "c-caller")
        assert _tagless(driver.answer()) == [_say("See you Friday.")]

    def test_unknown_and_late_events_are_noted_never_raised(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        assert driver.send({"eventType": "brand-new", "callId": "c-caller"}) == []
        assert driver.event(object()) == []
        driver.hangup()
        assert driver.hangup() == []
        assert driver.session.history is not None
        assert "after the end" in driver.session.history[-1]

    def test_replacing_flows_keeps_live_sessions_on_their_version(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        old_hash = driver.session.flow_hash
        changed = m.Flow(**{**_fields(_ivr()), "vars": {"company": "Globex"}})
        driver.engine.replace_flows({"ivr": changed})
        driver.speak_done()
        assert driver.session.flow_hash == old_hash
        fresh = Driver({"ivr": changed})
        assert "Globex" in fresh.incoming()[1]

    def test_a_number_without_a_flow_starts_nothing(self) -> None:
        engine = Engine({"ivr": _ivr()})
        event = parse_callback({"eventType": "incomingcall", "callId": "c", "from": THEIRS, "to": "+1000"})
        assert engine.start(event, 0.0) is None
        assert engine.start(parse_callback({"eventType": "hangup", "callId": "c"}), 0.0) is None

    def test_session_keys_prefer_our_tag(self) -> None:
        engine = Engine({"ivr": _ivr()})
        tagged = parse_callback({"eventType": "answer", "callId": "c-9", "tag": "s7|call:agent"})
        assert engine.session_key(tagged) == RouteKey("session", "s7")
        assert (
            str(engine.session_key(parse_callback({"eventType": "dtmf", "callId": "c-9", "dtmfDigit": "1"})))
            == "call:c-9"
        )
        transcription = parse_callback(
            {"eventType": "transcription", "recordingId": "r-1", "status": "completed"}
        )
        assert engine.session_key(transcription) == RouteKey("recording", "r-1")

    def test_cancel_hangs_up_and_ends(self) -> None:
        driver = Driver({"ivr": _ivr()})
        driver.incoming()
        assert driver.event(Cancel("operator")) == [
            'POST /calls/c-caller {"state":"completed"}',
            "end operator",
        ]
        assert driver.engine.describe(driver.session)["ended"] is True

    def test_sub_flows_run_and_return_with_their_variables(self) -> None:
        child = m.Flow(
            name="pin",
            kind="voice",
            initial="ask",
            vars={"tries": 0},
            states={
                "ask": m.State(
                    "ask",
                    actions=(m.Gather(max_digits=4, into="pin", prompt=P(text="PIN?")),),
                    on={"gather.done": (T("ok"),)},
                ),
                "ok": m.State("ok", final=True),
            },
        )
        parent = m.Flow(
            name="main",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Answer(), m.StartFlow(flow="pin", vars={"who": "{{ call.from }}"})),
                    on={"flow.done": (T("b", actions=(m.SetVars(values={"pin": "{{ event.vars.pin }}"}),)),)},
                ),
                "b": m.State("b", actions=(m.Speak(prompt=P(text="PIN {{ pin }}")),)),
            },
        )
        driver = Driver({"main": parent, "pin": child})
        lines = driver.incoming()
        assert "/gather" in lines[1]
        assert driver.session.flow == "pin"
        assert driver.session.vars == {"tries": 0, "who": THEIRS}
        lines = driver.gather("1234")
        assert driver.session.flow == "main"
        assert "PIN 1234" in lines[0]

    def test_conference_join_creates_then_adds_the_member(self) -> None:
        flow = m.Flow(
            name="conf",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State("a", actions=(m.Answer(), m.Conference(name="room-{{ call.to }}", mute=True)))
            },
        )
        driver = Driver({"conf": flow})
        lines = driver.incoming()
        assert lines[1] == (
            'POST /conferences {"callbackUrl":"https://engine.test/callbacks","from":"+15550001000",'
            '"tag":"s1|conference"}'
        )
        create = driver.pending_of(cmd.CreateConference)
        assert isinstance(create, cmd.CreateConference)
        assert create.name == "room-+15550001000"
        assert driver.result(create, "conf-1") == [
            'POST /conferences/conf-1/members {"callId":"c-caller","hold":false,"joinTone":true,"leavingTone":true,"mute":true}'
        ]
        assert "conference:conf-1" in driver.session.route_keys()

    def test_conference_wide_speak_and_playback_events_reach_the_flow(self) -> None:
        said = T(None, actions=(m.Log(message="{{ event.name }} {{ event.conference_id }}"),))
        flow = m.Flow(
            name="conf",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Answer(), m.Conference(name="room")),
                    on={"conference-speak.done": (said,), "conference-playback": (said,)},
                )
            },
        )
        driver = Driver({"conf": flow})
        driver.incoming()
        driver.result(driver.pending_of(cmd.CreateConference), "conf-1")
        speak = {"eventType": "conference-speak", "conferenceId": "conf-1", "status": "done"}
        assert driver.engine.session_key(parse_callback(speak)) == RouteKey("conference", "conf-1")
        assert driver.send(speak) == ["log info conference-speak.done conf-1"]
        assert driver.send({**speak, "status": "started"}) == []
        playback = {"eventType": "conference-playback", "conferenceId": "conf-1", "status": "started"}
        assert driver.send(playback) == ["log info conference-playback.started conf-1"]
        assert driver.send({**speak, "conferenceId": "conf-2"}) == []
        assert "(not ours) ignored" in (driver.session.history or [])[-1]

    def test_a_session_snapshot_with_unknown_fields_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown fields"):
            Session.from_json(
                {"id": "s", "flow": "f", "flow_hash": "h", "kind": "voice", "state": "a", "x": 1}
            )
        with pytest.raises(ValueError, match="'state'"):
            Session.from_json({"id": "s", "flow": "f", "flow_hash": "h", "kind": "voice"})

    def test_templates_see_only_the_environment_names_the_flow_allows(self) -> None:
        flow = m.Flow(
            name="f",
            kind="voice",
            initial="a",
            numbers=(OURS,),
            env=("CRM_URL",),
            states={
                "a": m.State(
                    "a",
                    actions=(m.Answer(), m.Speak(prompt=P(text="{{ env.CRM_URL }} {{ env.SECRET }}"))),
                )
            },
        )
        driver = Driver({"f": flow}, env={"CRM_URL": "https://crm.test", "SECRET": "hunter2"})
        lines = driver.incoming()
        assert "hunter2" not in " ".join(lines)
        assert "Sorry, something went wrong" in lines[1]
        assert driver.session.history is not None
        assert any("SECRET" in line for line in driver.session.history)

    def test_the_engine_sends_events_of_created_resources_to_its_callback_url(self) -> None:
        assert CALLBACK in Driver({"ivr": _ivr()}).engine.callback_url  # type: ignore[operator]


def _fields(flow: m.Flow) -> dict[str, object]:
    return {name: getattr(flow, name) for name in flow.__dataclass_fields__}
