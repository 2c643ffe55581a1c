"""A session: one call (with its other legs) or one text conversation, as plain JSON-serialisable data.

The engine mutates a session while it handles an event; stores save ``to_json()`` and any instance resumes
it with ``Session.from_json``. Empty containers are kept as None in memory so that an idle session stays
small (a few hundred bytes plus its variables); the accessors create them on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import orjson

from flowengine.typing import JSON, JSONObject, Seconds

HISTORY_LIMIT = 12
"""How many history lines a session keeps (the newest)."""

TAG_SEPARATOR = "|"
"""Separates the session id from the rest of every tag we put on calls, audio, gathers and messages."""


@dataclass(slots=True, eq=True)
class Session:
    """The state of one session.

    Attributes:
        id: the session id (also the first part of every tag we set).
        flow, flow_hash: the flow and the exact version the session runs (it keeps it across reloads).
        kind: ``voice`` or ``messaging``.
        state: the current state name.
        vars: the flow's variables.
        our, their: our number and the other party's (the number called and the caller, or the conversation).
        legs: role -> call id ("" while a dialled call has no id yet).
        leg_status: role -> ``ringing``, ``dialling``, ``up``, ``transferred`` or ``gone``.
        counters: retry counters (``<state>.noinput``, ``<state>.nomatch``).
        timers: timer key -> due time.
        program: actions still to run (frames), blocked while ``busy`` audio plays.
        busy: role -> tag of the audio item playing on that leg.
        pending: command id -> [what, detail...] for commands whose result matters; a gather stays here
            (``["gather", role, gather id or "", into]``) until its ``gather`` event arrives.
        recordings: recording id -> role, and ``recording`` role -> settings of a recording in progress.
        conference: ``{"name", "id", "members": {role: member id}}`` once joined.
        bridge: the bridge id.
        stack: parent frames of running sub-flows.
        history: the last steps, newest last, as short lines.
        ended: the session is over; ``end_reason`` says why.
        seq: a counter for command ids and tags.
        entries: how many times a state was entered (timer keys carry it, so stale timers are ignored).
    """

    id: str
    flow: str
    flow_hash: str
    kind: str
    state: str
    vars: dict[str, JSON]
    our: str = ""
    their: str = ""
    legs: dict[str, str] | None = None
    leg_status: dict[str, str] | None = None
    counters: dict[str, int] | None = None
    timers: dict[str, Seconds] | None = None
    program: list[list[Any]] | None = None
    busy: dict[str, str] | None = None
    pending: dict[str, list[str]] | None = None
    recordings: dict[str, str] | None = None
    recording: dict[str, JSONObject] | None = None
    conference: JSONObject | None = None
    bridge: str | None = None
    stack: list[JSONObject] | None = None
    deferred: list[JSONObject] | None = None
    history: list[str] | None = None
    ended: bool = False
    end_reason: str = ""
    seq: int = 0
    entries: int = 0
    started_at: Seconds = 0.0
    updated_at: Seconds = 0.0

    # ---------------------------------------------------------------------------------- helpers

    def next_id(self, prefix: str) -> str:
        """A new id unique within the session: ``<session id>|<prefix><n>``; it is also a valid tag."""
        self.seq += 1
        return f"{self.id}{TAG_SEPARATOR}{prefix}{self.seq}"

    def note(self, now: Seconds, text: str) -> None:
        """Append a line to the bounded history."""
        history = self.history
        if history is None:
            history = self.history = []
        history.append(f"{now:.3f} {self.state}: {text}")
        if len(history) > HISTORY_LIMIT:
            del history[: len(history) - HISTORY_LIMIT]

    def leg_call(self, role: str) -> str | None:
        """The call id of ``role``, or None when there is no such leg (or no id yet)."""
        legs = self.legs
        return (legs.get(role) or None) if legs else None

    def status_of(self, role: str) -> str | None:
        return self.leg_status.get(role) if self.leg_status else None

    def role_of_call(self, call_id: str) -> str | None:
        """The role whose leg is ``call_id``."""
        if self.legs:
            for role, value in self.legs.items():
                if value == call_id:
                    return role
        return None

    def set_leg(self, role: str, call_id: str, status: str) -> None:
        if self.legs is None:
            self.legs = {}
        if self.leg_status is None:
            self.leg_status = {}
        self.legs[role] = call_id
        self.leg_status[role] = status

    def set_status(self, role: str, status: str) -> None:
        if self.leg_status is None:
            self.leg_status = {}
        self.leg_status[role] = status

    def gather_tag(self, role: str) -> str | None:
        """The tag of the gather in progress on ``role``'s leg, if any."""
        for tag, entry in (self.pending or {}).items():
            if entry[0] == "gather" and entry[1] == role:
                return tag
        return None

    def route_keys(self) -> list[str]:
        """Every route key that leads to this session (see ``Engine.session_key``)."""
        keys = [f"session:{self.id}"]
        if self.legs:
            keys.extend(f"call:{call_id}" for call_id in self.legs.values() if call_id)
        if self.kind == "messaging" and self.our and self.their:
            keys.append(f"conversation:{self.our}|{self.their}")
        if self.recordings:
            keys.extend(f"recording:{rid}" for rid in self.recordings)
        if self.conference and self.conference.get("id"):
            keys.append(f"conference:{self.conference['id']}")
        return keys

    # ------------------------------------------------------------------------------- JSON form

    def to_json(self) -> JSONObject:
        """The session as a JSON object (only plain types; ``from_json`` restores an equal session).

        The result shares nothing with the session: orjson serialises the dataclass and parses it back
        (one C round trip, several times faster than copying the containers in Python).
        """
        data: JSONObject = orjson.loads(orjson.dumps(self))
        return {name: value for name, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: JSONObject) -> Session:
        """Restore a session saved with ``to_json``; the session shares nothing with ``data``.

        Raises:
            ValueError: when a required field is missing or has the wrong type.
        """
        unknown = data.keys() - _FIELD_NAMES
        if unknown:
            raise ValueError(f"session snapshot has unknown fields {sorted(unknown)!r}")
        for required in ("id", "flow", "flow_hash", "kind", "state"):
            if not isinstance(data.get(required), str):
                raise ValueError(f"session snapshot field {required!r} must be a string")
        try:
            values: dict[str, Any] = orjson.loads(orjson.dumps(data))
        except TypeError as exc:  # a value JSON cannot hold
            raise ValueError(f"session snapshot is not plain JSON: {exc}") from None
        values.setdefault("vars", {})
        if not isinstance(values["vars"], dict):
            raise ValueError("session snapshot field 'vars' must be an object")
        for key in ("started_at", "updated_at"):
            if key in values:
                values[key] = float(values[key])
        return cls(**values)


_FIELD_NAMES = frozenset(item.name for item in fields(Session))


def session_of_tag(tag: str | None) -> str | None:
    """The session id encoded in a tag we set, or None for a tag that is not ours."""
    if not tag or TAG_SEPARATOR not in tag:
        return None
    session_id = tag.rsplit(TAG_SEPARATOR, 1)[0]
    return session_id or None
