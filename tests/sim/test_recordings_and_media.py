"""Recordings, transcriptions and media over HTTP."""

from __future__ import annotations

from .support import AGENT, Harness


async def recorded_call(harness: Harness, text: str = "Please call me back.") -> tuple[str, str]:
    await harness.own()
    await harness.control("PUT", f"/sim/phones/{AGENT}", {"transcription": text})
    call_id = await harness.outbound(
        recordingEnabled="true", transcriptionEnabled=True, recordingFileFormat="wav"
    )
    await harness.advance(1)
    await harness.advance(12)
    await harness.control("POST", f"/sim/calls/{call_id}/hangup")
    await harness.advance(5)
    [recording] = await harness.ok("GET", f"/calls/{call_id}/recordings")
    return call_id, recording["id"]


class TestRecordings:
    async def test_a_recorded_call_sends_recording_then_transcription_after_hangup(
        self, harness: Harness
    ) -> None:
        call_id, recording_id = await recorded_call(harness)
        assert harness.receiver.types(call_id) == [
            "answer",
            "hangup:NORMAL_CLEARING",
            "recording:complete",
            "transcription:completed",
        ]
        events = harness.receiver.events("/out")
        recording, transcription = events[2], events[3]
        assert recording["recordingId"] == recording_id
        assert recording["state"] == "complete"
        assert recording["recordingUri"].endswith(f"/recordings/{recording_id}")
        assert recording["startTime"] < recording["endTime"]
        assert transcription["text"] == "Please call me back."
        assert transcription["textSize"] == 20
        assert transcription["state"] == "completed"
        assert transcription["transcriptionUri"].endswith(
            f"/transcriptions/{transcription['transcriptionId']}"
        )

    async def test_a_recording_resource_points_at_downloadable_media(self, harness: Harness) -> None:
        call_id, recording_id = await recorded_call(harness)
        recording = await harness.ok("GET", f"/recordings/{recording_id}")
        assert recording["state"] == "complete"
        assert recording["media"].endswith(f"/media/{call_id}-1.wav")
        status, headers, content = await harness.rest("GET", f"/media/{call_id}-1.wav")
        assert status == 200
        assert headers["Content-Type"] == "audio/wav"
        assert content[:4] == b"RIFF"
        listed = await harness.ok("GET", "/recordings")
        assert [r["id"] for r in listed] == [recording_id]

    async def test_transcriptions_are_listed_read_and_their_text_served(self, harness: Harness) -> None:
        call_id, recording_id = await recorded_call(harness, "x" * 1200)
        [transcription] = await harness.ok("GET", f"/recordings/{recording_id}/transcriptions")
        assert len(transcription["text"]) == 1000
        assert transcription["textSize"] == 1200
        assert transcription["state"] == "completed"
        same = await harness.ok("GET", f"/recordings/{recording_id}/transcriptions/{transcription['id']}")
        assert same == transcription
        assert await harness.ok("GET", f"/calls/{call_id}/transcriptions") == [transcription]
        status, _, text = await harness.rest(
            "GET", f"/recordings/{recording_id}/transcriptions/{transcription['id']}/text"
        )
        assert (status, text) == (200, b"x" * 1200)
        event = harness.receiver.events("/out")[-1]
        assert len(event["text"]) == 1026

    async def test_a_transcription_can_be_requested_for_a_complete_recording(self, harness: Harness) -> None:
        _, recording_id = await recorded_call(harness)
        harness.sim.set_transcription(None, "default words")
        status, headers, _ = await harness.rest("POST", f"/recordings/{recording_id}/transcriptions", {})
        assert status == 201
        transcription_id = headers["Location"].rsplit("/", 1)[-1]
        body = await harness.ok("GET", f"/recordings/{recording_id}/transcriptions/{transcription_id}")
        assert body["state"] == "transcribing"
        await harness.advance(2)
        body = await harness.ok("GET", f"/recordings/{recording_id}/transcriptions/{transcription_id}")
        assert body["state"] == "completed"

    async def test_recording_can_be_switched_on_and_off_making_one_recording_each_time(
        self, harness: Harness
    ) -> None:
        await harness.own()
        call_id = await harness.inbound()
        for _ in range(2):
            await harness.ok("POST", f"/calls/{call_id}", {"recordingEnabled": "true"})
            await harness.advance(3)
            await harness.ok("POST", f"/calls/{call_id}", {"recordingEnabled": "false"})
        await harness.advance(2)
        recordings = await harness.ok("GET", f"/calls/{call_id}/recordings")
        assert [r["media"].rsplit("/", 1)[-1] for r in recordings] == [f"{call_id}-1.wav", f"{call_id}-2.wav"]
        assert harness.receiver.types(call_id).count("recording:complete") == 2

    async def test_the_text_can_be_set_per_call_with_the_control_api(self, harness: Harness) -> None:
        await harness.own()
        call_id = await harness.inbound()
        status, _ = await harness.control("PUT", f"/sim/transcriptions/{call_id}", {"text": "for this call"})
        assert status == 200
        await harness.ok("POST", f"/calls/{call_id}", {"recordingEnabled": "true"})
        await harness.advance(1)
        await harness.ok("POST", f"/calls/{call_id}", {"recordingEnabled": "false"})
        await harness.advance(1)
        [recording] = await harness.ok("GET", f"/calls/{call_id}/recordings")
        await harness.ok("POST", f"/recordings/{recording['id']}/transcriptions", {})
        await harness.advance(2)
        assert harness.receiver.events()[-1]["text"] == "for this call"

    async def test_an_unknown_recording_is_404(self, harness: Harness) -> None:
        status, _, body = await harness.rest("GET", "/recordings/rec-nope")
        assert (status, body["code"]) == (404, "recording-not-found")


class TestMedia:
    async def test_media_is_uploaded_listed_downloaded_and_deleted(self, harness: Harness) -> None:
        status, _, _ = await harness.rest("PUT", "/media/hello.mp3", raw=b"ID3 audio bytes")
        assert status == 200
        listed = await harness.ok("GET", "/media")
        assert listed == [
            {
                "mediaName": "hello.mp3",
                "contentLength": 15,
                "content": f"{harness.sim.urls.user}/media/hello.mp3",
            }
        ]
        status, _, content = await harness.rest("GET", "/media/hello.mp3")
        assert (status, content) == (200, b"ID3 audio bytes")
        status, _, _ = await harness.rest("PUT", "/media/hello.mp3", raw=b"new")
        assert (await harness.ok("GET", "/media"))[0]["contentLength"] == 3
        status, _, _ = await harness.rest("DELETE", "/media/hello.mp3")
        assert status == 200
        status, _, body = await harness.rest("GET", "/media/hello.mp3")
        assert (status, body["code"]) == (404, "media-not-found")


async def test_an_mp3_recording_is_served_as_mpeg_audio(harness: Harness) -> None:
    await harness.own()
    call_id = await harness.outbound(recordingEnabled=True, recordingFileFormat="mp3", recordingMaxDuration=3)
    await harness.advance(1)
    await harness.advance(5)
    [recording] = await harness.ok("GET", f"/calls/{call_id}/recordings")
    assert recording["state"] == "complete"
    assert recording["endTime"] == "2026-01-01T00:00:04.000Z"
    status, headers, content = await harness.rest("GET", f"/media/{call_id}-1.mp3")
    assert (status, headers["Content-Type"]) == (200, "audio/mpeg")
    assert content[:2] == b"\xff\xfb"
