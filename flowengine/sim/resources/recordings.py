"""Recordings and their transcriptions: read, list, and start a transcription."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.params import read_body
from flowengine.sim.problems import not_found
from flowengine.sim.rest import ApiRequest, Reply, Route, created, page
from flowengine.sim.state import Recording, Transcription

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator


def _recording(sim: Simulator, req: ApiRequest) -> Recording:
    recording = sim.world.recordings.get(req.params["recordingId"])
    if recording is None:
        raise not_found("recording", req.params["recordingId"])
    return recording


def _transcription(sim: Simulator, req: ApiRequest) -> Transcription:
    recording = _recording(sim, req)
    wanted = req.params["transcriptionId"]
    if wanted not in recording.transcription_ids:
        raise not_found("transcription", wanted)
    return sim.world.transcriptions[wanted]


def list_recordings(sim: Simulator, req: ApiRequest) -> Reply:
    recordings = sorted(sim.world.recordings.values(), key=lambda r: r.start_time, reverse=True)
    return Reply(body=[r.to_json(sim.urls) for r in page(recordings, req.query)])


def get_recording(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_recording(sim, req).to_json(sim.urls))


def create_transcription(sim: Simulator, req: ApiRequest) -> Reply:
    recording = _recording(sim, req)
    read_body("transcription", (), req.body if req.body is not None else {})
    transcription = sim.voice.transcribe(recording)
    return created(sim.urls.of("recordings", recording.id, "transcriptions", transcription.id))


def list_transcriptions(sim: Simulator, req: ApiRequest) -> Reply:
    recording = _recording(sim, req)
    return Reply(body=[sim.world.transcriptions[t].to_json(sim.urls) for t in recording.transcription_ids])


def get_transcription(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_transcription(sim, req).to_json(sim.urls))


def transcription_text(sim: Simulator, req: ApiRequest) -> Reply:
    transcription = _transcription(sim, req)
    if transcription.state != "completed":
        raise not_found("transcription", transcription.id)
    return Reply(raw=transcription.text.encode(), content_type="text/plain; charset=utf-8")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/recordings", list_recordings),
    Route("GET", "/recordings/{recordingId}", get_recording),
    Route("POST", "/recordings/{recordingId}/transcriptions", create_transcription, "transcriptions"),
    Route("GET", "/recordings/{recordingId}/transcriptions", list_transcriptions, "transcriptions"),
    Route(
        "GET",
        "/recordings/{recordingId}/transcriptions/{transcriptionId}",
        get_transcription,
        "transcriptions",
    ),
    Route(
        "GET",
        "/recordings/{recordingId}/transcriptions/{transcriptionId}/text",
        transcription_text,
        "transcriptions",
    ),
)
