"""The simulator as a Python object: the account's state, the clock, the phones and their controls.

The REST API and the control API are thin HTTP layers over this class; the scenario runner uses it
directly, in-process. Every method acts at the clock's current time; ``advance`` moves a virtual clock.
"""

from __future__ import annotations

from typing import Literal

import aiohttp

from flowengine.errors import ConfigError
from flowengine.sim.callbacks import CallbackDispatcher, Delivery
from flowengine.sim.clock import Clock, RealClock, VirtualClock
from flowengine.sim.config import Controls, DeliveryRule, PhoneBehaviour, PhoneMode, SimConfig
from flowengine.sim.limits import Faults, RateLimiter
from flowengine.sim.messaging import Messaging
from flowengine.sim.params import E164
from flowengine.sim.problems import ApiProblem
from flowengine.sim.rooms import Rooms
from flowengine.sim.state import Application, Call, Media, Message, PhoneNumber, Urls, World
from flowengine.sim.voice import Voice
from flowengine.typing import JSONObject, Seconds


class Simulator:
    """One simulated Bandwidth v1 account.

    Args:
        config: the settings (credentials, limits, durations).
        clock: ``RealClock()`` for interactive use, ``VirtualClock()`` for tests (the default).
        session: the client session for callbacks; one is created when not given.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.world = World()
        self.controls = Controls()
        self.limiter = RateLimiter()
        self.rate_limits = self.config.rate_limits
        self.faults = Faults(
            self.config.fault_rate, self.config.delay_rate, self.config.delay_seconds, self.config.seed
        )
        self.urls = Urls(self.config.public_url or "http://127.0.0.1", self.config.user_id)
        self.learn_origin = not self.config.public_url
        self.dispatcher = CallbackDispatcher(self.clock.now, session)
        self.voice = Voice(self)
        self.rooms = Rooms(self)
        self.messaging = Messaging(self)
        self.api_errors: list[JSONObject] = []

    async def close(self) -> None:
        """Stop delivering callbacks and release the HTTP session."""
        await self.dispatcher.close()

    # -- time ------------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until every callback queued so far has been delivered (or has failed)."""
        await self.dispatcher.idle()

    async def advance(self, seconds: Seconds) -> int:
        """Move a virtual clock forward, running due events in order and settling after each.

        Raises:
            ConfigError: the simulator runs on real time.
        """
        if not isinstance(self.clock, VirtualClock):
            raise ConfigError("sim: only a simulator on a virtual clock can be advanced")
        return await self.clock.advance(seconds, self.settle)

    # -- phones ----------------------------------------------------------------------------------

    def place_call(self, from_: str, to: str, diversion: JSONObject | None = None) -> Call:
        """A phone calls one of the account's numbers.

        Raises:
            ApiProblem: ``to`` is not an owned number with an application that takes calls.
        """
        if not E164.match(from_):
            raise ApiProblem(
                400, "bad-request", "validation-error", f"'from' must be an E.164 number, not {from_!r}"
            )
        number = self.world.number(to)
        if number is None:
            raise ApiProblem(
                404, "not-found", "number-not-found", f"The account does not own the number {to!r}"
            )
        application = self.world.applications.get(number.application_id or "")
        if application is None or not application.incoming_call_url:
            raise ApiProblem(
                409,
                "conflict",
                "no-application-for-number",
                f"The number {to!r} is not assigned to an application with an incomingCallUrl",
            )
        call = Call(
            id=self.world.ids.new("c"),
            direction="in",
            from_=from_,
            to=to,
            state="started",
            start_time=self.clock.now(),
            target=application.call_target(),
            application_id=application.id,
            diversion=_diversion(diversion) if diversion is not None else None,
        )
        self.voice.place_inbound(call, application.auto_answer, application.id)
        return call

    def press(self, call_id: str, digits: str) -> None:
        """The phone on ``call_id`` presses ``digits`` (``0-9``, ``*``, ``#``, ``A-D``)."""
        bad = [d for d in digits if d not in "0123456789*#ABCD"]
        if not digits or bad:
            raise ApiProblem(
                400, "bad-request", "validation-error", f"digits must be 0-9, *, # or A-D, not {digits!r}"
            )
        self.voice.press(self.voice.call(call_id), digits)

    def hangup(self, call_id: str) -> None:
        """The phone on ``call_id`` hangs up (before an answer, the caller gave up)."""
        call = self.voice.call(call_id)
        if call.ended:
            raise ApiProblem(403, "forbidden", "call-invalid-state", f"The call {call_id} has already ended")
        self.voice.end(call, "NORMAL_CLEARING" if call.state == "active" else "ORIGINATOR_CANCEL")

    def set_behaviour(
        self,
        number: str,
        mode: PhoneMode = "answer",
        after: Seconds | None = None,
        hangup_after: Seconds | None = None,
        transcription: str | None = None,
    ) -> PhoneBehaviour:
        """Decide what the phone at ``number`` does when it is dialled."""
        behaviour = PhoneBehaviour(mode, after, hangup_after, transcription)
        self.controls.phones[number] = behaviour
        return behaviour

    def set_delivery(
        self, number: str, outcome: Literal["delivered", "not-delivered", "error"], code: int | None = None
    ) -> DeliveryRule:
        """Decide how messages to ``number`` end; ``code`` defaults to 0 when delivered, else 720."""
        chosen = code if code is not None else (0 if outcome == "delivered" else 720)
        rule = DeliveryRule(outcome, chosen)
        self.controls.deliveries[number] = rule
        return rule

    def set_transcription(self, key: str | None, text: str) -> None:
        """The text recordings transcribe to: for a call id or a far-end number, or by default."""
        if key is None:
            self.controls.default_transcription = text
        else:
            self.controls.transcriptions[key] = text

    def send_sms(self, from_: str, to: str, text: str, media: list[str] | None = None) -> Message:
        """A phone texts one of the account's numbers (an MMS when ``media`` is given).

        Raises:
            ApiProblem: ``to`` is not an owned number with an application that takes messages.
        """
        number = self.world.number(to)
        if number is None:
            raise ApiProblem(
                404, "not-found", "number-not-found", f"The account does not own the number {to!r}"
            )
        application = self.world.applications.get(number.application_id or "")
        if application is None or not application.incoming_message_url:
            raise ApiProblem(
                409,
                "conflict",
                "no-application-for-number",
                f"The number {to!r} is not assigned to an application with an incomingMessageUrl",
            )
        return self.messaging.receive(
            from_, to, text, list(media or []), application.id, application.message_target()
        )

    def provision(
        self,
        number: str,
        *,
        call_url: str | None = None,
        message_url: str | None = None,
        auto_answer: bool = True,
        method: Literal["GET", "POST"] = "POST",
    ) -> PhoneNumber:
        """Own ``number`` and route it to a new application with these URLs (the in-process shortcut
        for ``POST /applications`` and ``POST /phoneNumbers``).

        Raises:
            ApiProblem: the number is not E.164 or is already owned.
        """
        if not E164.match(number):
            raise ApiProblem(400, "bad-request", "validation-error", f"{number!r} is not an E.164 number")
        if self.world.number(number) is not None:
            raise ApiProblem(
                409, "conflict", "number-already-owned", f"The number {number} is already on this account"
            )
        application = Application(
            self.world.ids.new("a"),
            f"app for {number}",
            incoming_call_url=call_url,
            incoming_message_url=message_url,
            callback_http_method=method,
            auto_answer=auto_answer,
        )
        self.world.applications[application.id] = application
        record = PhoneNumber(self.world.ids.new("n"), number, self.clock.now(), application_id=application.id)
        self.world.numbers[record.id] = record
        return record

    # -- reading ---------------------------------------------------------------------------------

    def transcript(self, call_id: str) -> list[JSONObject]:
        """Everything that happened on a call, in order: what was heard and pressed, events, REST calls."""
        return [entry.to_json() for entry in self.voice.call(call_id).transcript]

    def deliveries(self, failed_only: bool = False) -> list[Delivery]:
        """Every callback sent so far (or only those that could not be delivered)."""
        return [d for d in self.dispatcher.deliveries if not failed_only or d.status == "failed"]

    def store_media(self, name: str, content: bytes, content_type: str = "application/octet-stream") -> Media:
        media = Media(name, content, content_type)
        self.world.media[name] = media
        return media


DIVERSION_REASONS = (
    "unknown",
    "user-busy",
    "no-answer",
    "unavailable",
    "unconditional",
    "time-of-day",
    "do-not-disturb",
    "deflection",
    "follow-me",
    "out-of-service",
    "away",
)


def _diversion(given: JSONObject) -> JSONObject:
    """Check a diversion header given to ``place_call`` and fill the reference's defaults."""
    diversion: JSONObject = {"reason": "unknown", "screen": "no", "privacy": "off", "counter": 1, "limit": 10}
    diversion.update(given)
    if not isinstance(diversion.get("origTo"), str):
        raise ApiProblem(400, "bad-request", "validation-error", "diversion.origTo must be a phone number")
    if diversion["reason"] not in DIVERSION_REASONS:
        allowed = ", ".join(DIVERSION_REASONS)
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            f"diversion.reason must be one of {allowed}, not {diversion['reason']!r}",
        )
    if diversion["screen"] not in ("no", "yes") or diversion["privacy"] not in ("off", "full"):
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            "diversion.screen is no/yes and diversion.privacy off/full",
        )
    for name in ("counter", "limit"):
        if not isinstance(diversion[name], int) or isinstance(diversion[name], bool):
            raise ApiProblem(
                400, "bad-request", "validation-error", f"diversion.{name} must be a whole number"
            )
    if diversion["privacy"] == "full":
        diversion["origTo"] = "Anonymous"
    return diversion


def make_clock(kind: Literal["real", "virtual"], start: Seconds | None = None) -> Clock:
    """A clock by name, for the CLI and the app config."""
    if kind == "real":
        return RealClock()
    return VirtualClock() if start is None else VirtualClock(start)
