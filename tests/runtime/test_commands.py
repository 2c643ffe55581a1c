"""Each command becomes exactly the REST request of the Catapult v1 reference."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.runtime import commands as cmd
from flowengine.runtime.commands import RestRequest

U = "/v1/users/u-1"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param(
            cmd.CreateCall(
                command_id="i",
                from_="+1",
                to="sip:a@b.test",
                call_timeout=30,
                callback_url="https://cb",
                tag="t",
            ),
            RestRequest(
                "POST",
                f"{U}/calls",
                {
                    "from": "+1",
                    "to": "sip:a@b.test",
                    "callTimeout": 30,
                    "callbackUrl": "https://cb",
                    "tag": "t",
                },
            ),
            id="create call",
        ),
        pytest.param(
            cmd.CreateCall(command_id="i", from_="+1", to="+2"),
            RestRequest("POST", f"{U}/calls", {"from": "+1", "to": "+2"}),
            id="create call leaves API defaults alone",
        ),
        pytest.param(
            cmd.UpdateCallState(command_id="i", call_id="c-1", state="active"),
            RestRequest("POST", f"{U}/calls/c-1", {"state": "active"}),
            id="answer",
        ),
        pytest.param(
            cmd.TransferCall(
                command_id="i",
                call_id="c-1",
                transfer_to="+3",
                transfer_caller_id="private",
                whisper_audio={"sentence": "Hi", "voice": "paul"},
            ),
            RestRequest(
                "POST",
                f"{U}/calls/c-1",
                {
                    "state": "transferring",
                    "transferTo": "+3",
                    "transferCallerId": "private",
                    "whisperAudio": {"sentence": "Hi", "voice": "paul"},
                },
            ),
            id="transfer",
        ),
        pytest.param(
            cmd.SetCallRecording(command_id="i", call_id="c-1", enabled=True, file_format="mp3"),
            RestRequest("POST", f"{U}/calls/c-1", {"recordingEnabled": True, "recordingFileFormat": "mp3"}),
            id="record",
        ),
        pytest.param(
            cmd.PlayAudio(
                command_id="i",
                call_id="c-1",
                tag="t",
                sentence="Hello",
                voice="kate",
                gender="female",
                locale="en_US",
                volume=2,
            ),
            RestRequest(
                "POST",
                f"{U}/calls/c-1/audio",
                {
                    "sentence": "Hello",
                    "voice": "kate",
                    "gender": "female",
                    "locale": "en_US",
                    "loopEnabled": False,
                    "volume": 2,
                    "tag": "t",
                },
            ),
            id="speak",
        ),
        pytest.param(
            cmd.PlayAudio(
                command_id="i",
                call_id="c-1",
                tag="t",
                file_url="https://a.test/x.wav",
                voice="kate",
                loop_enabled=True,
            ),
            RestRequest(
                "POST",
                f"{U}/calls/c-1/audio",
                {"fileUrl": "https://a.test/x.wav", "loopEnabled": True, "tag": "t"},
            ),
            id="play a file sends no voice",
        ),
        pytest.param(
            cmd.StopAudio(command_id="i", call_id="c-1", kind="playback"),
            RestRequest("POST", f"{U}/calls/c-1/audio", {"fileUrl": ""}),
            id="stop a file",
        ),
        pytest.param(
            cmd.StopAudio(command_id="i", call_id="c-1"),
            RestRequest("POST", f"{U}/calls/c-1/audio", {"sentence": ""}),
            id="stop speaking",
        ),
        pytest.param(
            cmd.SendDtmf(command_id="i", call_id="c-1", dtmf_out="12w#"),
            RestRequest("POST", f"{U}/calls/c-1/dtmf", {"dtmfOut": "12w#"}),
            id="dtmf",
        ),
        pytest.param(
            cmd.CreateGather(
                command_id="i",
                call_id="c-1",
                tag="g",
                max_digits=4,
                inter_digit_timeout=7.0,
                terminating_digits="*",
                prompt_sentence="PIN?",
                prompt_gender="male",
                prompt_locale="en_UK",
            ),
            RestRequest(
                "POST",
                f"{U}/calls/c-1/gather",
                {
                    "maxDigits": 4,
                    "interDigitTimeout": 7.0,
                    "terminatingDigits": "*",
                    "tag": "g",
                    "prompt": {"sentence": "PIN?", "gender": "male", "locale": "en_UK", "loopEnabled": False},
                },
            ),
            id="gather with a prompt",
        ),
        pytest.param(
            cmd.CreateGather(command_id="i", call_id="c-1", tag="g"),
            RestRequest("POST", f"{U}/calls/c-1/gather", {"tag": "g"}),
            id="gather without a prompt",
        ),
        pytest.param(
            cmd.StopGather(command_id="i", call_id="c-1", gather_id="g-9"),
            RestRequest("POST", f"{U}/calls/c-1/gather/g-9", {"state": "completed"}),
            id="stop gather",
        ),
        pytest.param(
            cmd.CreateTranscription(command_id="i", recording_id="r-1"),
            RestRequest("POST", f"{U}/recordings/r-1/transcriptions", {}),
            id="transcription",
        ),
        pytest.param(
            cmd.CreateBridge(command_id="i", call_ids=("c-1", "c-2")),
            RestRequest("POST", f"{U}/bridges", {"bridgeAudio": True, "callIds": ["c-1", "c-2"]}),
            id="bridge",
        ),
        pytest.param(
            cmd.UpdateBridge(command_id="i", bridge_id="b-1", call_ids=("c-1", "c-2"), bridge_audio=False),
            RestRequest("POST", f"{U}/bridges/b-1", {"bridgeAudio": False, "callIds": ["c-1", "c-2"]}),
            id="hold a bridge",
        ),
        pytest.param(
            cmd.CreateConference(command_id="i", name="room", from_="+1", callback_url="https://cb", tag="t"),
            RestRequest("POST", f"{U}/conferences", {"from": "+1", "callbackUrl": "https://cb", "tag": "t"}),
            id="conference",
        ),
        pytest.param(
            cmd.AddConferenceMember(
                command_id="i", conference_id="cf", call_id="c-1", join_tone=False, mute=True
            ),
            RestRequest(
                "POST",
                f"{U}/conferences/cf/members",
                {"callId": "c-1", "joinTone": False, "leavingTone": True, "mute": True, "hold": False},
            ),
            id="add member",
        ),
        pytest.param(
            cmd.UpdateConferenceMember(command_id="i", conference_id="cf", member_id="m", hold=True),
            RestRequest("POST", f"{U}/conferences/cf/members/m", {"hold": True}),
            id="hold member",
        ),
        pytest.param(
            cmd.UpdateConferenceMember(command_id="i", conference_id="cf", member_id="m", remove=True),
            RestRequest("POST", f"{U}/conferences/cf/members/m", {"state": "completed"}),
            id="remove member",
        ),
        pytest.param(
            cmd.SendMessage(command_id="i", from_="+1", to="+2", text="Hi", receipt_requested="all", tag="t"),
            RestRequest(
                "POST",
                f"{U}/messages",
                {"from": "+1", "to": "+2", "text": "Hi", "receiptRequested": "all", "tag": "t"},
            ),
            id="sms",
        ),
        pytest.param(
            cmd.SendMessage(
                command_id="i",
                from_="+1",
                to="+2",
                text="Look",
                media=("https://m/a.png",),
                receipt_requested="all",
            ),
            RestRequest(
                "POST",
                f"{U}/messages",
                {"from": "+1", "to": "+2", "text": "Look", "media": ["https://m/a.png"]},
            ),
            id="mms asks for no receipt",
        ),
    ],
)
def test_each_command_is_its_documented_request(command: cmd.RestCommand, expected: RestRequest) -> None:
    assert command.request("u-1") == expected


def test_ids_in_paths_are_escaped() -> None:
    request = cmd.UpdateCallState(command_id="i", call_id="c/../x", state="completed").request("u 1")
    assert request.path == "/v1/users/u%201/calls/c%2F..%2Fx"


def test_commands_describe_themselves_as_plain_data() -> None:
    data = cmd.CreateBridge(command_id="i", call_ids=("a", "b")).to_json()
    assert data == {"type": "CreateBridge", "command_id": "i", "call_ids": ["a", "b"], "bridge_audio": True}


@settings(max_examples=500)
@given(st.one_of(st.text(), st.from_regex(r"[A-Za-z0-9_.~-]{0,12}", fullmatch=True)))
def test_path_segments_are_quoted_as_quote_would(value: str) -> None:
    # Ids of unreserved characters skip quote(); the result must be the same either way.
    assert cmd._seg(value) == quote(value, safe="")


def _rest_command_classes() -> list[type[cmd.RestCommand]]:
    found: list[type[cmd.RestCommand]] = []
    pending = list(cmd.RestCommand.__subclasses__())
    while pending:
        klass = pending.pop()
        found.append(klass)
        pending.extend(klass.__subclasses__())
    return found


def test_every_rest_command_builds_its_own_request() -> None:
    # RestCommand is not an ABC (isinstance against one runs Python code): this is what would catch a
    # subclass that forgot its request() at instantiation.
    classes = _rest_command_classes()
    assert len(classes) >= 15
    missing = [klass.__name__ for klass in classes if klass.request is cmd.RestCommand.request]
    assert missing == []
    assert all(klass.operation for klass in classes)
