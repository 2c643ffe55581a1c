"""The flow events: every name a flow can handle, the API callback it comes from, and what causes it.

This table is the single source for the linter ("this state can never receive X"), the runtime's mapping of
API callbacks to flow events, and the event table in ``docs/flow-language.md``.

Naming: ``<event>[.<qualifier>]``, optionally prefixed by a leg's role (``agent.answer``,
``agent.hangup.busy``). A handler for a shorter name catches the longer ones: ``hangup`` catches
``hangup.busy``; ``agent.hangup`` catches ``agent.hangup.noanswer``. A leg prefix is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowengine.flow import model


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One flow event.

    Attributes:
        name: the flow event name without a leg prefix.
        api: the API callback (``eventType`` and the field/value that selects this event).
        caused_by: the actions that lead to it; empty means it can arrive at any time.
        per_leg: whether it can arrive for a dialled leg (then prefixed by the leg's role).
        kinds: the flow kinds it occurs in.
        description: one sentence for the docs.
    """

    name: str
    api: str
    caused_by: tuple[type[model.Action], ...]
    per_leg: bool
    kinds: tuple[model.FlowKind, ...]
    description: str


_VOICE: tuple[model.FlowKind, ...] = ("voice",)
_BOTH: tuple[model.FlowKind, ...] = ("voice", "messaging")

EVENTS: tuple[EventSpec, ...] = (
    EventSpec(
        "answer",
        "answer",
        (model.Answer, model.Dial),
        True,
        _VOICE,
        "The call was answered: the caller's after `answer`, a dialled leg when picked up, "
        "or the callee of an outbound execution.",
    ),
    EventSpec(
        "timeout",
        "timeout",
        (model.Dial,),
        True,
        _VOICE,
        "A dialled leg (or the callee of an outbound execution) did not answer within its timeout.",
    ),
    EventSpec(
        "hangup.normal",
        "hangup, cause NORMAL_CLEARING",
        (),
        True,
        _VOICE,
        "The leg hung up after the call was established.",
    ),
    EventSpec(
        "hangup.busy", "hangup, cause USER_BUSY", (model.Dial,), True, _VOICE, "The dialled number was busy."
    ),
    EventSpec(
        "hangup.noanswer",
        "hangup, cause NO_ANSWER",
        (model.Dial,),
        True,
        _VOICE,
        "The dialled number did not answer (network no-answer).",
    ),
    EventSpec(
        "hangup.rejected",
        "hangup, cause CALL_REJECTED",
        (model.Dial, model.Reject),
        True,
        _VOICE,
        "The call was rejected: by the dialled party, or by the flow's `reject`.",
    ),
    EventSpec(
        "hangup.cancel",
        "hangup, cause ORIGINATOR_CANCEL",
        (),
        True,
        _VOICE,
        "The caller left before the call was answered.",
    ),
    EventSpec(
        "hangup.failed",
        "hangup, any other cause",
        (),
        True,
        _VOICE,
        "The call failed (unallocated number, network or internal error); `event.cause` tells which.",
    ),
    EventSpec(
        "speak.started", "speak, status started", (model.Speak,), True, _VOICE, "A sentence started playing."
    ),
    EventSpec(
        "speak.done",
        "speak, status done",
        (model.Speak,),
        True,
        _VOICE,
        "A sentence finished (the last of the state's prompts, when several were queued).",
    ),
    EventSpec(
        "playback.started",
        "playback, status started",
        (model.Play,),
        True,
        _VOICE,
        "An audio file started playing.",
    ),
    EventSpec(
        "playback.done",
        "playback, status done",
        (model.Play,),
        True,
        _VOICE,
        "An audio file finished (the last of the state's prompts, when several were queued).",
    ),
    EventSpec(
        "gather.done",
        "gather, reason max-digits, terminating-digit, or inter-digit-timeout with digits",
        (model.Gather,),
        True,
        _VOICE,
        "Digits were collected; `event.digits` holds them (without the terminating digit).",
    ),
    EventSpec(
        "gather.noinput",
        "gather, reason inter-digit-timeout with no digits",
        (model.Gather,),
        True,
        _VOICE,
        "Nothing was pressed before the timeout.",
    ),
    EventSpec(
        "gather.hungup",
        "gather, reason hung-up",
        (model.Gather,),
        True,
        _VOICE,
        "The call hung up during the gather (a `hangup` event follows).",
    ),
    EventSpec(
        "dtmf", "dtmf", (), True, _VOICE, "One key was pressed outside a gather; `event.digit` holds it."
    ),
    EventSpec(
        "recording.complete",
        "recording, status complete",
        (model.Record, model.StopRecording),
        True,
        _VOICE,
        "A recording was saved; `event.recording_uri` and `event.media_url` point to it.",
    ),
    EventSpec(
        "recording.error",
        "recording, status error",
        (model.Record, model.StopRecording),
        True,
        _VOICE,
        "A recording failed.",
    ),
    EventSpec(
        "transcription.completed",
        "transcription, status completed",
        (model.Record,),
        True,
        _VOICE,
        "A recording's transcription is ready; `event.text` holds it.",
    ),
    EventSpec(
        "transcription.error",
        "transcription, status error",
        (model.Record,),
        True,
        _VOICE,
        "A recording could not be transcribed.",
    ),
    EventSpec(
        "conference.created",
        "conference, status created",
        (model.Conference,),
        False,
        _VOICE,
        "The conference was created.",
    ),
    EventSpec(
        "conference.completed",
        "conference, status completed",
        (model.Conference,),
        False,
        _VOICE,
        "The conference ended (its last member left).",
    ),
    EventSpec(
        "conference-member.active",
        "conference-member, state active",
        (model.Conference,),
        True,
        _VOICE,
        "A leg joined the conference or its mute/hold changed; `event.active_members` counts members.",
    ),
    EventSpec(
        "conference-member.completed",
        "conference-member, state completed",
        (model.Conference, model.LeaveConference),
        True,
        _VOICE,
        "A leg left the conference.",
    ),
    EventSpec(
        "message",
        "sms or mms, direction in, state received",
        (),
        False,
        _BOTH,
        "The other party sent a text (or media); `event.text` and `event.media` hold it.",
    ),
    EventSpec(
        "delivery.sent",
        "sms or mms, direction out, state sent",
        (model.SendMessage,),
        False,
        _BOTH,
        "A message we sent left for the carrier.",
    ),
    EventSpec(
        "delivery.delivered",
        "sms or mms, direction out, deliveryState delivered",
        (model.SendMessage,),
        False,
        _BOTH,
        "A delivery receipt confirmed a message we sent.",
    ),
    EventSpec(
        "delivery.error",
        "sms or mms, direction out, state error or deliveryState not-delivered",
        (model.SendMessage,),
        False,
        _BOTH,
        "A message we sent failed; `event.code` and `event.description` say why.",
    ),
    EventSpec(
        "http.ok",
        "(engine) an `http` action got a 2xx answer",
        (model.HttpRequest,),
        False,
        _BOTH,
        "`event.status`, `event.json`, `event.text` and `event.headers` hold the answer.",
    ),
    EventSpec(
        "http.error",
        "(engine) an `http` action failed or got a non-2xx answer",
        (model.HttpRequest,),
        False,
        _BOTH,
        "`event.status` (0 when there was no answer) and `event.error` say why.",
    ),
    EventSpec(
        "lookup.done",
        "(engine) a `lookup_caller` action got its answer",
        (model.LookupCaller,),
        False,
        _BOTH,
        '`event.name` holds the caller-id name ("" and `event.found` false when the number has none).',
    ),
    EventSpec(
        "lookup.error",
        "(engine) a `lookup_caller` action failed",
        (model.LookupCaller,),
        False,
        _BOTH,
        "`event.status` (0 when there was no answer) and `event.error` say why; the variable is left as it was.",
    ),
    EventSpec(
        "flow.done",
        "(engine) a sub-flow started by `start_flow` reached a final state",
        (model.StartFlow,),
        False,
        _BOTH,
        "The sub-flow's variables are in `event.vars`.",
    ),
    EventSpec(
        "error",
        "(engine) a REST operation failed for good",
        (),
        False,
        _BOTH,
        "`event.code`, `event.message` and `event.operation` describe the failure.",
    ),
)

EVENTS_BY_NAME: dict[str, EventSpec] = {spec.name: spec for spec in EVENTS}

# Names a handler may use besides the full names above: every prefix of a dotted name.
HANDLER_NAMES: frozenset[str] = frozenset(
    ".".join(spec.name.split(".")[: i + 1]) for spec in EVENTS for i in range(len(spec.name.split(".")))
)

HANGUP_CAUSES: dict[str, str] = {
    "NORMAL_CLEARING": "hangup.normal",
    "USER_BUSY": "hangup.busy",
    "NO_ANSWER": "hangup.noanswer",
    "CALL_REJECTED": "hangup.rejected",
    "ORIGINATOR_CANCEL": "hangup.cancel",
}
"""API hangup ``cause`` to flow event; any other cause is ``hangup.failed``."""


def split_leg(handler: str, roles: frozenset[str] | set[str]) -> tuple[str | None, str]:
    """Split ``agent.hangup.busy`` into ``("agent", "hangup.busy")`` when ``agent`` is one of ``roles``."""
    head, _, rest = handler.partition(".")
    if rest and head in roles and head not in HANDLER_NAMES:
        return head, rest
    return None, handler


def candidate_keys(event: str) -> tuple[str, ...]:
    """Handler keys that catch ``event``, most specific first: ``a.b.c`` -> ``a.b.c``, ``a.b``, ``a``.

    A leg prefix is kept: pass ``agent.hangup.busy`` and the keys stop at ``agent.hangup``. The caller decides
    what is a leg; this function only drops qualifiers of the event part, given as ``(leg, name)`` joined.
    """
    parts = event.split(".")
    return tuple(".".join(parts[:i]) for i in range(len(parts), 0, -1))


def handler_keys(leg: str | None, name: str) -> tuple[str, ...]:
    """Handler keys for the flow event ``name`` of leg ``leg`` (None: the caller), most specific first."""
    keys = candidate_keys(name)
    if leg is None:
        return keys
    return tuple(f"{leg}.{key}" for key in keys)
