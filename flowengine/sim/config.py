"""Settings of one simulator instance, and the behaviours of the phones it pretends to be."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from flowengine.errors import ConfigError
from flowengine.typing import JSONObject, Seconds

PhoneMode = Literal["answer", "busy", "no-answer", "reject", "unallocated"]
DeliveryOutcome = Literal["delivered", "not-delivered", "error"]

#: Texts of the reference's delivery codes, used for ``deliveryDescription``.
DELIVERY_CODES: dict[int, str] = {
    0: "Message Delivered to Carrier",
    187: "Spam Detected – Statistical",
    188: "Spam Detected -Keyword",
    189: "Spam Detected",
    482: "Loop Detected",
    600: "Destination Carrier Queue Full",
    610: "submit_sm or submit_multi failed",
    620: "Destination App Error",
    630: "NACK",
    650: "Destination Failure",
    700: "Invalid Service Type",
    720: "Invalid Destination Address",
    740: "Invalid Source Address",
    750: "Destination Rejected Message",
    751: "Destination Rejected Message too large",
    770: "Destination Rejected due to spam",
    775: "Rejected due to user opt out",
    902: "Message Expired",
    999: "Unknown Error",
}


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How a simulator behaves. Every field has a default, so ``SimConfig()`` is a working setup.

    Attributes:
        user_id, token, secret: the account; REST requests need ``token:secret`` as Basic auth.
        public_url: the origin put in URLs of bodies and events; learnt from requests when empty.
        rate_limits: apply the reference's rate limits (off by default).
        fault_rate: share of REST requests answered ``500`` (0..1).
        delay_rate, delay_seconds: share of REST requests held for ``delay_seconds`` of wall time.
        seed: seed of the fault injector's random choices, for repeatable runs.
        speech_seconds_per_char, speech_min_seconds: how long a sentence takes to say.
        file_seconds: how long an audio file takes to play.
        answer_delay: how long a dialled phone rings before answering, unless told otherwise.
        recording_save_seconds, transcription_seconds, message_send_seconds, receipt_seconds:
            how long the platform takes for each of these steps, on the simulator's clock.
    """

    user_id: str = "u-sim"
    token: str = "t-sim"
    secret: str = "s-sim"
    public_url: str = ""
    rate_limits: bool = False
    fault_rate: float = 0.0
    delay_rate: float = 0.0
    delay_seconds: Seconds = 1.0
    seed: int = 0
    speech_seconds_per_char: Seconds = 0.06
    speech_min_seconds: Seconds = 0.5
    file_seconds: Seconds = 2.0
    answer_delay: Seconds = 1.0
    recording_save_seconds: Seconds = 1.0
    transcription_seconds: Seconds = 2.0
    message_send_seconds: Seconds = 0.5
    receipt_seconds: Seconds = 1.0

    def __post_init__(self) -> None:
        for name in ("fault_rate", "delay_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"sim: {name} must be between 0 and 1, not {value!r}")
        for name in ("user_id", "token", "secret"):
            if not getattr(self, name):
                raise ConfigError(f"sim: {name} must not be empty")


@dataclass(slots=True)
class PhoneBehaviour:
    """What a phone outside the account does when it is dialled.

    Attributes:
        mode: answer, busy, no-answer (rings until the call times out), reject, or unallocated.
        after: seconds of ringing before the phone answers, is busy or rejects.
        hangup_after: when answered, the phone hangs up this many seconds later.
        transcription: the text a recording of this phone's calls transcribes to.
    """

    mode: PhoneMode = "answer"
    after: Seconds | None = None
    hangup_after: Seconds | None = None
    transcription: str | None = None

    def to_json(self) -> JSONObject:
        return {
            "mode": self.mode,
            "after": self.after,
            "hangupAfter": self.hangup_after,
            "transcription": self.transcription,
        }


@dataclass(slots=True)
class DeliveryRule:
    """How messages to one number end: delivered, not delivered (with a code), or an error on send."""

    outcome: DeliveryOutcome = "delivered"
    code: int = 0

    def description(self) -> str:
        return DELIVERY_CODES.get(self.code, "Unknown Error")


@dataclass(slots=True)
class Controls:
    """The knobs the control API turns at run time."""

    phones: dict[str, PhoneBehaviour] = field(default_factory=dict)
    deliveries: dict[str, DeliveryRule] = field(default_factory=dict)
    transcriptions: dict[str, str] = field(default_factory=dict)
    default_transcription: str = ""

    def phone(self, number: str) -> PhoneBehaviour:
        return self.phones.get(number) or PhoneBehaviour()

    def delivery(self, number: str) -> DeliveryRule:
        return self.deliveries.get(number) or DeliveryRule()
