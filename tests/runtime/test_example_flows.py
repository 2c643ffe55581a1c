"""Complete calls and conversations through every example flow in ``flows/``, asserting the exact commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.flow import model
from flowengine.flow.pipeline import read_flow
from flowengine.runtime import commands as cmd

from .support import CALLBACK, Driver, gather, message, say, tagless

FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"
ENV = {
    "VOICEMAIL_WEBHOOK": "https://hooks.test/vm",
    "TRANSCRIPT_WEBHOOK": "https://hooks.test/tx",
    "WEBHOOK_TOKEN": "tok",
    "SCHEDULER_URL": "https://sched.test",
    "SURVEY_RESULTS_URL": "https://survey.test/r",
}
THEM = "+15559998888"
HANG_UP = 'POST /calls/c-caller {"state":"completed"}'
ANSWER = 'POST /calls/c-caller {"state":"active"}'


@pytest.fixture(scope="module")
def flows() -> dict[str, model.Flow]:
    return example_flows()


def example_flows() -> dict[str, model.Flow]:
    """Every flow file directly in ``flows/`` (sub-directories hold fragments and scenarios)."""
    found = [read_flow(path) for path in sorted(FLOWS_DIR.glob("*.yaml"))]
    return {flow.name: flow for flow in found}


def _driver(flows: dict[str, model.Flow]) -> Driver:
    return Driver(flows, env=ENV)


# --------------------------------------------------------------------------------------------- IVR

IVR = "+19195551000"
MENU_TEXT = "For sales, press 1. For support, press 2. To leave a message, press 3."
MENU = gather(MENU_TEXT)


def _ivr_menu(flows: dict[str, model.Flow]) -> Driver:
    driver = _driver(flows)
    assert tagless(driver.incoming(to=IVR)) == [
        ANSWER,
        say("Thanks for calling Acme Widgets.", voice="julie"),
    ]
    assert tagless(driver.speak_done()) == [MENU]
    return driver


def _dial(to: str, *, role: str = "agent", from_: str = IVR, timeout: int = 25) -> str:
    return (
        f'POST /calls {{"callTimeout":{timeout},"callbackUrl":"{CALLBACK}","from":"{from_}",'
        f'"tag":"s1|call:{role}","to":"{to}"}}'
    )


class TestIvr:
    def test_sales_rings_the_agent_and_bridges_when_answered(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        assert tagless(driver.gather("1")) == [say("Connecting you to sales.", voice="julie")]
        assert tagless(driver.speak_done()) == [_dial("+19195552001", role="agent")]
        assert driver.result(driver.last[0], "c-agent") == []
        assert driver.answer("agent") == [
            'POST /bridges {"bridgeAudio":true,"callIds":["c-caller","c-agent"]}'
        ]
        assert driver.session.vars["department"] == "sales"
        assert driver.session.vars["choice"] == "1"
        assert tagless(driver.hangup("agent")) == [say("Thank you for calling. Goodbye.", voice="julie")]
        assert driver.speak_done() == [HANG_UP, "end hangup"]

    def test_support_is_dialled_from_the_number_called(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        driver.gather("2")
        assert tagless(driver.speak_done()) == [_dial("+19195552002", role="agent")]
        assert driver.session.vars["department"] == "support"

    def test_nobody_answering_leads_to_voicemail_posted_to_the_webhook(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = _ivr_menu(flows)
        driver.gather("1")
        driver.speak_done()
        driver.result(driver.last[0], "c-agent")
        assert tagless(driver.timeout("agent")) == [
            say("Nobody can take your call right now. Please leave a message after the tone.", voice="julie")
        ]
        assert driver.speak_done() == [
            'POST /calls/c-caller {"recordingEnabled":true,"recordingFileFormat":"mp3"}',
            "timer record:caller at 126",
        ]
        lines = tagless(driver.recording())
        assert lines == [
            "cancel record:caller",
            'http POST https://hooks.test/vm {"department":"sales","from":"+15559998888",'
            '"recording":"https://api.test/v1/users/u-test/recordings/r-1"}',
            say("Thank you for calling. Goodbye.", voice="julie"),
        ]

    def test_a_variable_set_on_another_path_reads_as_empty(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        driver.gather("3")
        driver.speak_done()
        lines = driver.recording()
        assert lines[1] == (
            'http POST https://hooks.test/vm {"department":"","from":"+15559998888",'
            '"recording":"https://api.test/v1/users/u-test/recordings/r-1"}'
        )

    def test_noinput_three_times_says_goodbye(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        for _ in range(2):
            assert tagless(driver.gather("")) == [gather(f"Sorry, I didn't hear anything. {MENU_TEXT}")]
        assert tagless(driver.gather("")) == [say("Thank you for calling. Goodbye.", voice="julie")]
        assert driver.speak_done() == [HANG_UP, "end hangup"]

    def test_nomatch_three_times_says_goodbye(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        for key in ("7", "8"):
            assert tagless(driver.gather(key)) == [
                gather(f"Sorry, that isn't one of the options. {MENU_TEXT}")
            ]
        assert tagless(driver.gather("9")) == [say("Thank you for calling. Goodbye.", voice="julie")]
        assert driver.session.state == "goodbye"

    def test_a_failed_dial_goes_to_the_flow_s_error_handler(self, flows: dict[str, model.Flow]) -> None:
        driver = _ivr_menu(flows)
        driver.gather("1")
        driver.speak_done()
        lines = tagless(driver.failure(driver.last[0], "call-rate-limit", 403))
        assert lines == [
            "log error IVR error: refused",
            say("Thank you for calling. Goodbye.", voice="julie"),
        ]

    @pytest.mark.parametrize(
        "state", ["greet", "main_menu", "sales", "support", "talking", "voicemail", "goodbye"]
    )
    def test_the_caller_hanging_up_in_any_state_ends_everything(
        self, flows: dict[str, model.Flow], state: str
    ) -> None:
        driver = _driver(flows)
        driver.incoming(to=IVR)
        if state != "greet":
            driver.speak_done()
        if state in ("sales", "support", "talking", "voicemail"):
            driver.gather("2" if state == "support" else "1")
            driver.speak_done()
            driver.result(driver.last[0], "c-agent")
        if state == "talking":
            driver.answer("agent")
        if state == "voicemail":
            driver.timeout("agent")
        if state == "goodbye":
            for _ in range(3):
                driver.gather("")
                if driver.session.state != "goodbye":
                    driver.speak_done()
        assert driver.session.state == state
        lines = driver.hangup()
        assert lines[-1].startswith("end ")
        assert driver.session.ended
        assert all("c-caller" not in line for line in lines)
        if state in ("sales", "support", "talking"):
            assert lines == ['POST /calls/c-agent {"state":"completed"}', "end end"]
        else:
            assert lines == ["end end"]


# ------------------------------------------------------------------------------------- voicemail


VOICEMAIL = "+19195551001"


class TestVoicemail:
    def _recording(self, flows: dict[str, model.Flow]) -> Driver:
        driver = _driver(flows)
        driver.incoming(to=VOICEMAIL)
        assert tagless(driver.speak_done()) == [
            'POST /calls/c-caller/audio {"fileUrl":"https://example.com/audio/beep.wav","loopEnabled":false,"tag":"TAG"}'
        ]
        assert tagless(driver.playback_done()) == [
            'POST /calls/c-caller {"recordingEnabled":true,"recordingFileFormat":"mp3"}',
            "timer record:caller at 122",
            'POST /calls/c-caller/gather {"interDigitTimeout":30.0,"maxDigits":1,"tag":"TAG","terminatingDigits":"#"}',
        ]
        return driver

    def test_pound_stops_the_recording_and_the_transcription_is_posted(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = self._recording(flows)
        assert driver.gather("", reason="terminating-digit") == [
            "cancel record:caller",
            'POST /calls/c-caller {"recordingEnabled":false}',
        ]
        assert tagless(driver.recording()) == [
            "POST /recordings/r-1/transcriptions {}",
            "timer after:transcribing:0:3 at 304",
            say("Thank you. Your message was saved."),
        ]
        assert driver.session.state == "transcribing"
        assert driver.speak_done() == []
        assert driver.transcription("call me back") == [
            "cancel after:transcribing:0:3",
            'http POST https://hooks.test/tx {"caller":"+15559998888",'
            '"recording":"https://api.test/v1/users/u-test/recordings/r-1","transcript":"call me back"}',
        ]
        http = driver.pending_of(cmd.HttpCall)
        assert isinstance(http, cmd.HttpCall)
        assert http.headers == {"Authorization": "Bearer tok"}
        assert http.timeout == 10.0
        assert driver.http(http, 204) == [HANG_UP, "end hangup"]

    def test_hanging_up_mid_message_still_delivers_the_transcription(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = self._recording(flows)
        assert driver.hangup() == ["timer drain at 603"]
        assert driver.recording() == [
            "cancel record:caller",
            "POST /recordings/r-1/transcriptions {}",
            "timer after:transcribing:0:3 at 304",
        ]
        assert driver.session.state == "transcribing"
        lines = driver.transcription("hello")
        assert lines[-1].startswith("http POST https://hooks.test/tx")
        assert driver.http(driver.pending_of(cmd.HttpCall), 500) == [
            "log error webhook failed with 500",
            "cancel drain",
            "end final",
        ]

    def test_a_failed_recording_apologises(self, flows: dict[str, model.Flow]) -> None:
        driver = self._recording(flows)
        assert tagless(driver.recording("error")) == [
            "cancel record:caller",
            say("Sorry, we could not save your message."),
        ]
        assert driver.speak_done() == [HANG_UP, "end hangup"]

    def test_no_transcription_in_five_minutes_ends_the_call(self, flows: dict[str, model.Flow]) -> None:
        driver = self._recording(flows)
        driver.gather("", reason="terminating-digit")
        driver.recording()
        driver.speak_done()
        assert driver.fire("after:transcribing:0:3") == [HANG_UP, "end hangup"]

    def test_a_transcription_that_arrives_while_thank_you_plays_is_posted_after_it(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = self._recording(flows)
        driver.gather("", reason="terminating-digit")
        driver.recording()
        assert driver.transcription("call me back") == ["cancel after:transcribing:0:3"]
        assert driver.session.state == "delivered"
        lines = driver.speak_done()
        assert lines[0].startswith("http POST https://hooks.test/tx")
        assert driver.http(driver.pending_of(cmd.HttpCall), 204) == [HANG_UP, "end hangup"]


# ----------------------------------------------------------------------------------- forwarding


FORWARD = "+19195551002"


class TestCallForwarding:
    def test_the_mobile_answers_and_either_side_hanging_up_ends_both(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = _driver(flows)
        assert tagless(driver.incoming(to=FORWARD)) == [
            ANSWER,
            say("Please hold while we connect your call."),
        ]
        assert driver.speak_done() == [_dial("+19195553000", from_=FORWARD, timeout=20, role="mobile")]
        driver.result(driver.last[0], "c-mobile")
        assert driver.answer("mobile") == [
            'POST /bridges {"bridgeAudio":true,"callIds":["c-caller","c-mobile"]}'
        ]
        assert driver.hangup("mobile") == [HANG_UP, "end hangup"]

    def test_the_caller_hanging_up_while_connected_hangs_up_the_mobile(
        self, flows: dict[str, model.Flow]
    ) -> None:
        driver = _driver(flows)
        driver.incoming(to=FORWARD)
        driver.speak_done()
        driver.result(driver.last[0], "c-mobile")
        driver.answer("mobile")
        assert driver.hangup() == ['POST /calls/c-mobile {"state":"completed"}', "end end"]

    @pytest.mark.parametrize("cause", ["USER_BUSY", "NO_ANSWER", "CALL_REJECTED"])
    def test_a_busy_or_unanswered_mobile_takes_a_voicemail(
        self, flows: dict[str, model.Flow], cause: str
    ) -> None:
        driver = _driver(flows)
        driver.incoming(to=FORWARD)
        driver.speak_done()
        driver.result(driver.last[0], "c-mobile")
        assert tagless(driver.hangup("mobile", cause)) == [
            say("Nobody is available. Leave a message after the tone.")
        ]
        assert driver.speak_done() == [
            'POST /calls/c-caller {"recordingEnabled":true,"recordingFileFormat":"wav"}',
            "timer record:caller at 94",
        ]
        assert tagless(driver.recording()) == [
            "cancel record:caller",
            'http POST https://hooks.test/vm {"from":"+15559998888",'
            '"media":"https://api.test/v1/users/u-test/recordings/r-1"}',
            say("Goodbye."),
        ]


# ----------------------------------------------------------------------------------- conference


CONFERENCE = "+19195551003"
PIN_PROMPT = gather(
    "Welcome to the conference line. Enter your four digit PIN.", max_digits=4, timeout=8.0
).replace('"susan"', '"kate"')


class TestConferenceLine:
    def test_the_right_pin_joins_the_conference(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        assert tagless(driver.incoming(to=CONFERENCE)) == [ANSWER, PIN_PROMPT]
        assert tagless(driver.gather("4321")) == [
            say("Joining you to the call. Press pound at any time to leave.", voice="kate")
        ]
        assert driver.speak_done() == [
            f'POST /conferences {{"callbackUrl":"{CALLBACK}","from":"{CONFERENCE}","tag":"s1|conference"}}'
        ]
        assert driver.result(driver.last[0], "conf-7") == [
            'POST /conferences/conf-7/members {"callId":"c-caller","hold":false,"joinTone":true,'
            '"leavingTone":true,"mute":false}'
        ]
        member = {
            "eventType": "conference-member",
            "conferenceId": "conf-7",
            "callId": "c-caller",
            "memberId": "mem-1",
            "state": "active",
            "activeMembers": "1",
            "hold": "false",
            "mute": "false",
        }
        assert driver.send(member) == []
        assert tagless(driver.send({**member, "state": "completed"})) == [say("Goodbye.", voice="kate")]

    def test_three_wrong_pins_hang_up(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        driver.incoming(to=CONFERENCE)
        for tries in ("1", "2"):
            assert tagless(driver.gather("0000")) == [say("That PIN is not right.", voice="kate")]
            assert tagless(driver.speak_done()) == [PIN_PROMPT]
            assert driver.session.vars["tries"] == tries
        assert tagless(driver.gather("0000")) == [say("Too many wrong PINs.", voice="kate")]
        assert tagless(driver.speak_done()) == [say("Goodbye.", voice="kate")]

    def test_no_pin_at_all_hangs_up(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        driver.incoming(to=CONFERENCE)
        assert tagless(driver.gather("")) == [say("We didn't get a PIN.", voice="kate")]


# ------------------------------------------------------------------------------------- reminder


PROMPT = (
    "Hello Ada, this is Riverside Clinic reminding you of your appointment on Monday at 10. "
    "Press 1 to confirm or 2 to cancel."
)


class TestAppointmentReminder:
    def _answered(self, flows: dict[str, model.Flow]) -> Driver:
        driver = _driver(flows)
        lines = driver.outbound(
            "appointment-reminder", patient="Ada", when="on Monday at 10", appointment_id="a-17"
        )
        assert lines == [_dial(THEM, from_="+15550001000", timeout=30, role="caller")]
        driver.result(driver.last[0], "c-caller")
        assert tagless(driver.answer()) == [gather(PROMPT)]
        return driver

    @pytest.mark.parametrize(("key", "decision"), [("1", "confirmed"), ("2", "cancelled")])
    def test_a_key_records_the_decision(self, flows: dict[str, model.Flow], key: str, decision: str) -> None:
        driver = self._answered(flows)
        assert driver.gather(key) == [
            f'http POST https://sched.test/appointments/a-17 {{"status":"{decision}"}}'
        ]
        assert tagless(driver.http(driver.last[0], 200, {})) == [
            say(f"Thank you, your appointment is {decision}.")
        ]
        assert tagless(driver.speak_done()) == [say("Goodbye.")]
        assert driver.speak_done() == [HANG_UP, "end hangup"]

    def test_the_scheduler_failing_is_said(self, flows: dict[str, model.Flow]) -> None:
        driver = self._answered(flows)
        driver.gather("1")
        assert tagless(driver.http(driver.last[0], 503)) == [
            say("Sorry, we could not record your answer. Please call the clinic.")
        ]

    def test_no_answer_ends_the_execution(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        driver.outbound("appointment-reminder")
        driver.result(driver.last[0], "c-caller")
        assert driver.timeout("caller") == ["end end"]

    def test_noinput_twice_says_we_will_try_again(self, flows: dict[str, model.Flow]) -> None:
        driver = self._answered(flows)
        assert tagless(driver.gather("")) == [gather("Sorry, I didn't hear a choice. " + PROMPT)]
        assert tagless(driver.gather("")) == [say("We will try again later.")]
        assert driver.speak_done() == [HANG_UP, "end hangup"]


# ----------------------------------------------------------------------------------------- SMS


AUTO = "+19195551004"
SURVEY = "+19195551005"


class TestSmsAutoReply:
    @pytest.mark.parametrize(
        ("text", "reply"),
        [
            (
                " help ",
                "Acme Widgets: reply HOURS for opening hours, STOP to opt out. Msg&data rates may apply.",
            ),
            ("Stop", "You are unsubscribed from Acme Widgets messages. Reply START to resubscribe."),
            ("hours", "We are open Monday to Friday, 9am to 5pm."),
            ("where are you?", "Thanks for your message! Reply HELP for options."),
        ],
    )
    def test_each_keyword_gets_its_reply(self, flows: dict[str, model.Flow], text: str, reply: str) -> None:
        driver = _driver(flows)
        lines = tagless(driver.text_in(text, to=AUTO))
        assert lines[0] == message(reply, ours=AUTO, theirs=THEM)
        assert lines[-1] == "end end"
        if text == "Stop":
            assert lines[1] == f"log info opt-out from {THEM}"


class TestSmsSurvey:
    def test_three_answers_are_submitted(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        assert tagless(driver.text_in("hi", to=SURVEY)) == [
            "timer after:q1:0:2 at 600",
            message(
                "Thanks for taking our survey! Q1: how would you rate us from 1 to 5?",
                ours=SURVEY,
                theirs=THEM,
            ),
        ]
        assert tagless(driver.text_in("nine", to=SURVEY)) == [
            message("Please answer with a number from 1 to 5.", ours=SURVEY, theirs=THEM)
        ]
        assert tagless(driver.text_in(" 4 ", to=SURVEY)) == [
            "cancel after:q1:0:2",
            "timer after:q2:0:3 at 602",
            message("Q2: would you recommend us to a friend? (YES or NO)", ours=SURVEY, theirs=THEM),
        ]
        driver.text_in("Yes", to=SURVEY)
        lines = tagless(driver.text_in("Great service", to=SURVEY))
        assert lines == [
            "cancel after:q3:0:4",
            'http POST https://survey.test/r {"comment":"Great service","from":"+15559998888","rating":"4",'
            '"recommend":"y"}',
            message("Thank you for your answers!", ours=SURVEY, theirs=THEM),
            "end final",
        ]

    def test_silence_sends_one_reminder_then_closes(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        driver.text_in("hi", to=SURVEY)
        assert tagless(driver.fire("after:q1:0:2")) == [
            "timer after:q1_reminder:0:3 at 3601",
            message("Still there? Rate us from 1 to 5, or ignore this to stop.", ours=SURVEY, theirs=THEM),
        ]
        assert tagless(driver.fire("after:q1_reminder:0:3")) == [
            message("The survey has closed. Thanks anyway!", ours=SURVEY, theirs=THEM),
            "end final",
        ]

    def test_delivery_receipts_without_handlers_change_nothing(self, flows: dict[str, model.Flow]) -> None:
        driver = _driver(flows)
        driver.text_in("hi", to=SURVEY)
        sent = driver.pending_of(cmd.SendMessage)
        assert driver.result(sent, "m-out-1") == []
        receipt = {
            "eventType": "sms",
            "direction": "out",
            "from": SURVEY,
            "to": THEM,
            "messageId": "m-out-1",
            "state": "sent",
            "deliveryState": "delivered",
            "deliveryCode": "0",
        }
        assert driver.send(receipt) == []
        assert driver.session.state == "q1"


# ------------------------------------------------------------------ every state, every flow: hangups

_STEPS = {
    "speak_done": lambda d: d.speak_done(),
    "playback_done": lambda d: d.playback_done(),
    "pound": lambda d: d.gather("", reason="terminating-digit"),
    "recording": lambda d: d.recording(),
    "transcription": lambda d: d.transcription("hi"),
    "mobile_created": lambda d: d.result(d.pending_of(cmd.CreateCall), "c-mobile"),
    "mobile_answers": lambda d: d.answer("mobile"),
    "mobile_timeout": lambda d: d.timeout("mobile"),
    "pin": lambda d: d.gather("4321"),
    "no_pin": lambda d: d.gather(""),
    "call_created": lambda d: d.result(d.pending_of(cmd.CreateCall), "c-caller"),
    "answer": lambda d: d.answer(),
    "key1": lambda d: d.gather("1"),
    "noinput": lambda d: d.gather(""),
    "http_ok": lambda d: d.http(d.pending_of(cmd.HttpCall), 200, {}),
}

# (flow, state): (number called, or None for an execution; steps to reach the state; commands on hangup)
_HANGUPS = {
    ("voicemail-box", "greet"): (VOICEMAIL, [], ["end hangup.normal"]),
    ("voicemail-box", "recording"): (VOICEMAIL, ["speak_done", "playback_done"], ["timer drain at 603"]),
    ("voicemail-box", "transcribing"): (
        VOICEMAIL,
        ["speak_done", "playback_done", "pound", "recording", "speak_done"],
        ["timer drain at 606"],
    ),
    ("voicemail-box", "delivered"): (
        VOICEMAIL,
        ["speak_done", "playback_done", "pound", "recording", "speak_done", "transcription"],
        ["timer drain at 607"],
    ),
    ("call-forwarding", "ringing"): (
        FORWARD,
        ["speak_done", "mobile_created"],
        ['POST /calls/c-mobile {"state":"completed"}', "end end"],
    ),
    ("call-forwarding", "voicemail"): (
        FORWARD,
        ["speak_done", "mobile_created", "mobile_timeout"],
        ["end end"],
    ),
    ("call-forwarding", "goodbye"): (
        FORWARD,
        ["speak_done", "mobile_created", "mobile_timeout", "speak_done", "recording"],
        ["end final"],
    ),
    ("conference-line", "welcome"): (CONFERENCE, [], ["end end"]),
    ("conference-line", "joining"): (CONFERENCE, ["pin"], ["end end"]),
    ("conference-line", "goodbye"): (CONFERENCE, ["no_pin", "speak_done"], ["end end"]),
    ("appointment-reminder", "calling"): (None, ["call_created"], ["end end"]),
    ("appointment-reminder", "remind"): (None, ["call_created", "answer"], ["end end"]),
    ("appointment-reminder", "record_decision"): (
        None,
        ["call_created", "answer", "key1"],
        ["timer drain at 604"],
    ),
    ("appointment-reminder", "goodbye"): (
        None,
        ["call_created", "answer", "key1", "http_ok", "speak_done"],
        ["end end"],
    ),
    ("appointment-reminder", "no_answer"): (
        None,
        ["call_created", "answer", "noinput", "speak_done", "noinput"],
        ["end end"],
    ),
}


@pytest.mark.parametrize(("flow", "state"), list(_HANGUPS), ids=[f"{f}:{s}" for f, s in _HANGUPS])
def test_the_caller_hanging_up_in_each_state(flows: dict[str, model.Flow], flow: str, state: str) -> None:
    number, steps, expected = _HANGUPS[(flow, state)]
    driver = _driver(flows)
    if number is None:
        driver.outbound(flow)
    else:
        driver.incoming(to=number)
    for step in steps:
        _STEPS[step](driver)
    assert driver.session.state == state
    assert driver.hangup() == expected
    assert driver.session.ended == (not expected[-1].startswith("timer drain"))


def test_a_hangup_during_the_goodbye_of_a_pending_request_ends_at_once(flows: dict[str, model.Flow]) -> None:
    """The webhook is still running but the flow reached its final state: nothing waits for it."""
    driver = _driver(flows)
    driver.incoming(to=FORWARD)
    for step in ("speak_done", "mobile_created", "mobile_timeout", "speak_done", "recording"):
        _STEPS[step](driver)
    http = driver.pending_of(cmd.HttpCall)
    assert driver.hangup() == ["end final"]
    assert driver.http(http, 200) == []


# --------------------------------------------------------------------------- REST errors, every flow

_FIRST_FAILS = {
    "voicemail-box": (VOICEMAIL, "susan"),
    "call-forwarding": (FORWARD, "susan"),
    "conference-line": (CONFERENCE, "kate"),
}


@pytest.mark.parametrize("flow", list(_FIRST_FAILS))
def test_a_failed_answer_apologises_and_hangs_up(flows: dict[str, model.Flow], flow: str) -> None:
    number, voice = _FIRST_FAILS[flow]
    driver = _driver(flows)
    driver.incoming(to=number)
    assert driver.last[0] == cmd.UpdateCallState(command_id="s1|u1", call_id="c-caller", state="active")
    assert tagless(driver.failure(driver.last[0])) == [
        say("Sorry, something went wrong. Goodbye.", voice=voice)
    ]
    assert driver.speak_done() == [HANG_UP, "end error"]


def test_a_failed_answer_in_the_ivr_goes_to_its_error_handler(flows: dict[str, model.Flow]) -> None:
    driver = _driver(flows)
    driver.incoming(to=IVR)
    assert tagless(driver.failure(driver.last[0])) == [
        "log error IVR error: refused",
        say("Thank you for calling. Goodbye.", voice="julie"),
    ]
    assert driver.speak_done() == [HANG_UP, "end hangup"]


def test_a_reminder_call_that_cannot_be_placed_ends_the_execution(flows: dict[str, model.Flow]) -> None:
    driver = _driver(flows)
    driver.outbound("appointment-reminder")
    assert driver.failure(driver.last[0], "call-rate-limit") == ["end error"]


def test_a_survey_question_that_cannot_be_sent_ends_the_conversation(flows: dict[str, model.Flow]) -> None:
    driver = _driver(flows)
    driver.text_in("hello", to=SURVEY)
    assert driver.failure(driver.pending_of(cmd.SendMessage), "message-rate-limit") == [
        "cancel after:q1:0:2",
        "end error",
    ]


def test_an_auto_reply_that_cannot_be_sent_changes_nothing_after_the_end(
    flows: dict[str, model.Flow],
) -> None:
    driver = _driver(flows)
    driver.text_in("hello", to=AUTO)
    assert driver.session.ended
    assert driver.failure(driver.pending_of(cmd.SendMessage), "message-rate-limit") == []
