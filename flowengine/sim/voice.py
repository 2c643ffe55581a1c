"""The voice side of the platform: calls ringing, answering and ending, audio, gathers, DTMF,
recordings, transcriptions and transfers (bridges and conferences are in ``rooms.py``).

Everything here is synchronous and runs on the simulator's clock: REST handlers and the control API
call these methods, timers call them later, and each event goes to the callback dispatcher in the
order it happens.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowengine.sim.callbacks import Target
from flowengine.sim.clock import iso8601
from flowengine.sim.problems import ApiProblem, invalid_call_state, not_found
from flowengine.sim.state import (
    AudioItem,
    Call,
    CallEvent,
    Gather,
    Recording,
    TranscriptEntry,
    Transcription,
)
from flowengine.typing import JSON, JSONObject, Seconds

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator


class Voice:
    """Call control for one simulator; every method acts at the clock's current time."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.world = sim.world

    # -- helpers ---------------------------------------------------------------------------------

    def now(self) -> Seconds:
        return self.sim.clock.now()

    def call(self, call_id: str) -> Call:
        found = self.world.calls.get(call_id)
        if found is None:
            raise not_found("call", call_id)
        return found

    def note(self, call: Call, kind: str, text: str, **data: JSON) -> None:
        """Add a line to the call's transcript."""
        call.transcript.append(TranscriptEntry(self.now(), kind, text, dict(data)))

    def later(self, call: Call, delay: Seconds, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay`` unless the call ends first."""
        call.timers.append(self.sim.clock.call_later(delay, action))

    def emit(
        self,
        call: Call,
        event_type: str,
        tag: str | None = None,
        extra: JSONObject | None = None,
        **fields: JSON,
    ) -> None:
        """Send a call event to the call's callback target, behind the call's earlier events."""
        fields.update(extra or {})
        event: JSONObject = {
            "eventType": event_type,
            "callId": call.id,
            "callUri": self.sim.urls.of("calls", call.id),
            **fields,
            "time": iso8601(self.now()),
        }
        chosen = tag if tag is not None else call.tag
        if chosen is not None:
            event["tag"] = chosen
        self._log_event(call, event_type, fields)
        self.note(call, "event", event_type, event=event)
        self.sim.dispatcher.send(call.id, call.target, event)

    def _log_event(self, call: Call, name: str, fields: JSONObject) -> None:
        data = fields.get("status") or fields.get("cause") or fields.get("state")
        call.events.append(
            CallEvent(self.world.ids.new("ev"), self.now(), name, None if data is None else str(data))
        )

    def speech_seconds(self, sentence: str) -> Seconds:
        config = self.sim.config
        return max(config.speech_min_seconds, len(sentence) * config.speech_seconds_per_char)

    def audio_item(self, body: JSONObject) -> AudioItem | None:
        """An audio item from an audio request body; None when the body asks to stop."""
        sentence = body.get("sentence")
        file_url = body.get("fileUrl")
        tag = body.get("tag")
        loop = bool(body.get("loopEnabled", False))
        if isinstance(sentence, str) and sentence:
            return AudioItem(
                "sentence",
                sentence,
                self.speech_seconds(sentence),
                tag=tag if isinstance(tag, str) else None,
                loop=loop,
                voice=_str(body.get("voice")),
                gender=_str(body.get("gender")),
                locale=_str(body.get("locale")),
            )
        if isinstance(file_url, str) and file_url:
            return AudioItem(
                "file",
                file_url,
                self.sim.config.file_seconds,
                tag=tag if isinstance(tag, str) else None,
                loop=loop,
            )
        return None

    # -- call life -------------------------------------------------------------------------------

    def create_outbound(self, call: Call) -> None:
        """Dial ``call.to``: the phone at the other end rings, then behaves as it was told to."""
        self.world.calls[call.id] = call
        self._log_event(call, "create", {})
        self.note(call, "call", f"dialling {call.to} from {call.from_}")
        behaviour = self.sim.controls.phone(call.to)
        after = behaviour.after if behaviour.after is not None else self.sim.config.answer_delay
        if behaviour.mode == "no-answer" or (behaviour.mode == "answer" and after >= call.call_timeout):
            self.later(call, call.call_timeout, lambda: self.time_out(call))
            return
        if behaviour.mode == "answer":
            self.later(call, after, lambda: self.answer(call))
        else:
            cause = {"busy": "USER_BUSY", "reject": "CALL_REJECTED", "unallocated": "UNALLOCATED_NUMBER"}[
                behaviour.mode
            ]
            state = "rejected" if behaviour.mode in ("busy", "reject") else "completed"
            self.later(call, after, lambda: self.end(call, cause, state=state))

    def place_inbound(self, call: Call, auto_answer: bool, application_id: str) -> None:
        """A phone calls one of the account's numbers: ``incomingcall``, then ``answer`` if auto."""
        self.world.calls[call.id] = call
        self._log_event(call, "create", {})
        self.note(call, "call", f"{call.from_} calls {call.to}")
        fields: JSONObject = {
            "from": call.from_,
            "to": call.to,
            "callState": "active",
            "applicationId": application_id,
        }
        if call.diversion is not None:
            fields["diversion"] = call.diversion
        self.emit(call, "incomingcall", tag=None, extra=fields)
        if auto_answer:
            self.answer(call)

    def answer(self, call: Call) -> None:
        """The call is answered (by the dialled phone, or by the app for an inbound call)."""
        if call.ended or call.state == "active":
            return
        call.state = "active"
        call.active_time = self.now()
        self.note(call, "call", "answered")
        fields: JSONObject = {"from": call.from_, "to": call.to, "callState": "active"}
        if call.diversion is not None:
            fields["diversion"] = call.diversion
        self.emit(call, "answer", extra=fields)
        if call.recording_enabled:
            self.start_recording(call)
        if call.bridge_id is not None and call.bridge_id in self.world.bridges:
            self.sim.rooms.refresh_bridge(self.world.bridges[call.bridge_id])
        if call.transfer_of is not None:
            self._transfer_answered(call)
        behaviour = self.sim.controls.phone(call.to if call.direction == "out" else call.from_)
        if behaviour.hangup_after is not None:
            self.later(call, behaviour.hangup_after, lambda: self.end(call, "NORMAL_CLEARING"))

    def time_out(self, call: Call) -> None:
        """Nobody answered within ``callTimeout``: ``timeout``, then ``hangup`` with NO_ANSWER."""
        if call.ended or call.state == "active":
            return
        self.emit(call, "timeout", extra={"from": call.from_, "to": call.to})
        self.end(call, "NO_ANSWER")

    def reject(self, call: Call) -> None:
        """The app rejects an inbound call before answering it."""
        self.end(call, "CALL_REJECTED", state="rejected")

    def end(self, call: Call, cause: str, state: str = "completed") -> None:
        """The call ends: pending work stops, the legs it was tied to let go, ``hangup`` is sent."""
        if call.ended:
            return
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        if call.gather_id is not None:
            self._finish_gather(self.world.gathers[call.gather_id], "hung-up")
        self._silence(call)
        if call.recording_id is not None:
            self.stop_recording(call)
        call.state = state
        call.end_time = self.now()
        call.cause = cause
        self.note(call, "call", f"hung up ({cause})")
        self.emit(call, "hangup", extra={"from": call.from_, "to": call.to, "cause": cause})
        if call.bridge_id is not None and call.bridge_id in self.world.bridges:
            bridge = self.world.bridges[call.bridge_id]
            if call.id in bridge.call_ids:
                bridge.call_ids.remove(call.id)
            self.sim.rooms.refresh_bridge(bridge)
        if call.member_id is not None:
            member = self.world.members[call.member_id]
            if member.state == "active":
                self.sim.rooms.remove_member(member)
        if call.peer_id is not None:
            peer = self.world.calls.get(call.peer_id)
            if peer is not None and not peer.ended:
                peer_cause = "NORMAL_CLEARING" if peer.state == "active" else "ORIGINATOR_CANCEL"
                self.end(peer, peer_cause)

    def require_active(self, call: Call) -> None:
        if call.state != "active":
            raise invalid_call_state(call.id, call.state)

    # -- audio -----------------------------------------------------------------------------------

    def play(self, call: Call, item: AudioItem) -> None:
        """Queue ``item`` on the call; it starts when what is playing before it is done."""
        call.audio.append(item)
        if call.playing is None:
            self._next_audio(call)

    def stop_audio(self, call: Call) -> None:
        """Stop what is playing and drop what is queued (a ``""`` sentence or file)."""
        if call.playing is None and not call.audio:
            raise ApiProblem(
                403,
                "forbidden",
                "call-audio-invalid-state",
                f"Unable to stop the audio of call {call.id}. The audio has already finished or does not exist.",
            )
        call.audio.clear()
        if call.playing is not None:
            self._audio_done(call, call.playing, stopped=True)

    def _next_audio(self, call: Call) -> None:
        if call.ended or not call.audio:
            return
        item = call.audio.popleft()
        call.playing = item
        item.started_at = self.now()
        self.note(call, "heard", item.content, audio=item.kind)
        self._audio_event(call, item, "started")
        self._schedule_audio_end(call, item)

    def _schedule_audio_end(self, call: Call, item: AudioItem) -> None:
        def finish() -> None:
            if item.loop and call.playing is item:
                self._schedule_audio_end(call, item)
            else:
                self._audio_done(call, item, stopped=False)

        item.timer = self.sim.clock.call_later(item.duration, finish)
        call.timers.append(item.timer)

    def _audio_done(self, call: Call, item: AudioItem, stopped: bool) -> None:
        if call.playing is not item:
            return
        if item.timer is not None:
            item.timer.cancel()
        call.playing = None
        if stopped:
            self.note(call, "heard-stopped", item.content, audio=item.kind)
        self._audio_event(call, item, "done")
        self._next_audio(call)

    def _audio_event(self, call: Call, item: AudioItem, status: str) -> None:
        if item.kind == "sentence":
            state = "PLAYBACK_START" if status == "started" else "PLAYBACK_STOP"
            self.emit(call, "speak", tag=item.tag, status=status, state=state)
        else:
            self.emit(call, "playback", tag=item.tag, status=status)

    def _silence(self, call: Call) -> None:
        """A call that ends stops its audio without further events."""
        call.audio.clear()
        if call.playing is not None and call.playing.timer is not None:
            call.playing.timer.cancel()
        call.playing = None

    def send_dtmf(self, call: Call, digits: str) -> None:
        """The app plays tones to the far end; the reference sends no events for it."""
        self.note(call, "dtmf-out", digits)

    # -- gathers and digits ----------------------------------------------------------------------

    def start_gather(self, call: Call, gather: Gather) -> None:
        """Start collecting digits; the inter-digit timer runs from the end of the prompt."""
        self.require_active(call)
        if call.gather_id is not None:
            raise ApiProblem(
                409,
                "conflict",
                "call-duplicate-gather-error",
                f"DTMF digits are already being gathered for call {call.id}",
            )
        self.world.gathers[gather.id] = gather
        call.gather_id = gather.id
        call.gathers.append(gather.id)
        if gather.prompt is not None:
            prompt = gather.prompt
            self.note(call, "heard", prompt.content, audio=prompt.kind, gather=gather.id)
            prompt.started_at = self.now()
            self._schedule_prompt_end(call, gather, prompt)
        else:
            self._arm_gather_timer(call, gather)

    def _schedule_prompt_end(self, call: Call, gather: Gather, prompt: AudioItem) -> None:
        def prompt_end() -> None:
            if gather.state != "started" or gather.prompt is not prompt:
                return
            if prompt.loop:
                self._schedule_prompt_end(call, gather, prompt)
                return
            gather.prompt = None
            self._arm_gather_timer(call, gather)

        gather.timer = self.sim.clock.call_later(prompt.duration, prompt_end)
        call.timers.append(gather.timer)

    def _arm_gather_timer(self, call: Call, gather: Gather) -> None:
        if gather.timer is not None:
            gather.timer.cancel()
        gather.timer = self.sim.clock.call_later(
            gather.inter_digit_timeout, lambda: self._finish_gather(gather, "inter-digit-timeout")
        )
        call.timers.append(gather.timer)

    def press(self, call: Call, digits: str) -> None:
        """The phone presses ``digits``, one ``dtmf`` event each, fed to a running gather."""
        self.require_active(call)
        for digit in digits:
            self.note(call, "pressed", digit)
            if self.sim.rooms.take_key(call, digit):
                continue
            self.emit(call, "dtmf", tag=None, dtmfDigit=digit)
            if call.gather_id is None:
                continue
            gather = self.world.gathers[call.gather_id]
            if gather.prompt is not None:
                self.note(call, "heard-stopped", gather.prompt.content, gather=gather.id)
                gather.prompt = None
            if digit in gather.terminating_digits:
                self._finish_gather(gather, "terminating-digit")
                continue
            gather.digits += digit
            if gather.max_digits is not None and len(gather.digits) >= gather.max_digits:
                self._finish_gather(gather, "max-digits")
            else:
                self._arm_gather_timer(call, gather)

    def stop_gather(self, gather: Gather) -> None:
        """The app stops the gather (``state: completed``)."""
        if gather.state == "started":
            self._finish_gather(gather, "stopped")

    def _finish_gather(self, gather: Gather, reason: str) -> None:
        call = self.world.calls[gather.call_id]
        if gather.timer is not None:
            gather.timer.cancel()
        gather.state = "completed"
        gather.reason = reason
        gather.completed_time = self.now()
        gather.prompt = None
        call.gather_id = None
        self.emit(
            call,
            "gather",
            tag=gather.tag,
            state="completed",
            digits=gather.digits,
            reason=reason,
            gatherId=gather.id,
        )

    # -- recordings and transcriptions -----------------------------------------------------------

    def set_recording(self, call: Call, enabled: bool) -> None:
        call.recording_enabled = enabled
        if call.state != "active":
            return
        if enabled and call.recording_id is None:
            self.start_recording(call)
        elif not enabled and call.recording_id is not None:
            self.stop_recording(call)

    def start_recording(self, call: Call) -> None:
        number = len(call.recordings) + 1
        recording = Recording(
            id=self.world.ids.new("rec"),
            call_id=call.id,
            start_time=self.now(),
            media_name=f"{call.id}-{number}.{call.recording_file_format}",
            file_format=call.recording_file_format,
            max_duration=call.recording_max_duration,
            transcribe=call.transcription_enabled,
        )
        self.world.recordings[recording.id] = recording
        call.recording_id = recording.id
        call.recordings.append(recording.id)
        self.note(call, "call", "recording started", recordingId=recording.id)

        def cap() -> None:
            if call.recording_id == recording.id:
                self.stop_recording(call)

        recording.timer = self.sim.clock.call_later(recording.max_duration, cap)
        call.timers.append(recording.timer)

    def stop_recording(self, call: Call) -> None:
        """Stop the running recording; it is saved a moment later and a ``recording`` event follows."""
        if call.recording_id is None:
            return
        recording = self.world.recordings[call.recording_id]
        call.recording_id = None
        if recording.timer is not None:
            recording.timer.cancel()
        recording.state = "saving"
        recording.end_time = self.now()
        self.note(call, "call", "recording stopped", recordingId=recording.id)
        # Saving finishes even after the call has ended, so the timer is not the call's.
        self.sim.clock.call_later(self.sim.config.recording_save_seconds, lambda: self._saved(recording))

    def _saved(self, recording: Recording) -> None:
        call = self.world.calls[recording.call_id]
        assert recording.end_time is not None
        seconds = recording.end_time - recording.start_time
        content_type = "audio/mpeg" if recording.file_format == "mp3" else "audio/wav"
        self.sim.store_media(recording.media_name, silent_audio(recording.file_format, seconds), content_type)
        recording.state = "complete"
        self.emit(
            call,
            "recording",
            tag=None,
            recordingId=recording.id,
            recordingUri=self.sim.urls.of("recordings", recording.id),
            state="complete",
            status="complete",
            startTime=iso8601(recording.start_time),
            endTime=iso8601(recording.end_time),
        )
        if recording.transcribe:
            self.transcribe(recording)

    def transcribe(self, recording: Recording) -> Transcription:
        """Start transcribing a complete recording; a ``transcription`` event follows."""
        if recording.state != "complete":
            raise ApiProblem(
                403,
                "forbidden",
                "invalid-recording-state",
                f"The recording {recording.id} is {recording.state!r}; only a complete recording can be transcribed",
            )
        transcription = Transcription(self.world.ids.new("tr"), recording.id, self.now())
        self.world.transcriptions[transcription.id] = transcription
        recording.transcription_ids.append(transcription.id)
        self.sim.clock.call_later(
            self.sim.config.transcription_seconds, lambda: self._transcribed(recording, transcription)
        )
        return transcription

    def _transcribed(self, recording: Recording, transcription: Transcription) -> None:
        call = self.world.calls[recording.call_id]
        controls = self.sim.controls
        far_end = call.to if call.direction == "out" else call.from_
        text = controls.transcriptions.get(call.id)
        if text is None:
            behaviour = controls.phones.get(far_end)
            text = behaviour.transcription if behaviour is not None else None
        if text is None:
            text = controls.transcriptions.get(far_end, controls.default_transcription)
        transcription.text = text
        transcription.state = "completed"
        uri = self.sim.urls.of("recordings", recording.id, "transcriptions", transcription.id)
        self.emit(
            call,
            "transcription",
            tag=None,
            transcriptionId=transcription.id,
            recordingId=recording.id,
            state="completed",
            status="completed",
            textSize=len(text),
            text=text[:1026],
            textUrl=f"{uri}/text",
            transcriptionUri=uri,
        )

    # -- transfers -------------------------------------------------------------------------------

    def transfer(
        self, call: Call, to: str, caller_id: str, whisper: AudioItem | None, target: Target
    ) -> Call:
        """Transfer an active call: a new outbound leg rings ``to``; the first leg waits for it."""
        self.require_active(call)
        if call.gather_id is not None:
            self._finish_gather(self.world.gathers[call.gather_id], "stopped")
        self._silence(call)
        call.state = "transferring"
        self.note(call, "call", f"transferring to {to}")
        leg = Call(
            id=self.world.ids.new("c"),
            direction="out",
            from_=caller_id,
            to=to,
            state="started",
            start_time=self.now(),
            target=target,
            tag=call.tag,
            transfer_of=call.id,
            peer_id=call.id,
        )
        call.peer_id = leg.id
        self.create_outbound(leg)
        if whisper is not None:
            leg.audio.append(whisper)
        return leg

    def _transfer_answered(self, leg: Call) -> None:
        first = self.world.calls.get(leg.transfer_of or "")
        if first is None or first.ended:
            return
        first.state = "active"
        self.note(first, "call", f"connected to {leg.to}", callId=leg.id)
        if leg.audio:
            self._next_audio(leg)


def _str(value: JSON) -> str | None:
    return value if isinstance(value, str) else None


def silent_audio(file_format: str, seconds: Seconds) -> bytes:
    """Silence of about ``seconds`` (at most 10 s) as a WAV file or as MPEG audio frames."""
    seconds = max(0.0, min(seconds, 10.0))
    if file_format == "mp3":
        # A silent MPEG-1 Layer III frame at 128 kbit/s, 44.1 kHz lasts 26 ms and is 417 bytes long.
        frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)
        return frame * max(1, int(seconds / 0.026))
    rate = 8000
    samples = bytes([0x80]) * int(rate * seconds)
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    header += b"data" + struct.pack("<I", len(samples))
    return header + samples
