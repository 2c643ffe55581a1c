"""A session: one call (with its other legs) or one text conversation, as plain JSON-serialisable data.

The engine mutates a session while it handles an event; stores save ``to_json()`` and any instance resumes
it with ``Session.from_json``. Empty containers are kept as None in memory so that an idle session stays
small (a few hundred bytes plus its variables); the accessors create them on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

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

    def to_bytes(self) -> bytes:
        """The session as JSON text (UTF-8): what stores keep; ``from_bytes`` restores an equal session.

        Fields that are None (empty containers not created yet) are left out, so an idle session stays
        small in the store.
        """
        return cast(bytes, _dump(self))

    @classmethod
    def from_bytes(cls, text: bytes | str) -> Session:
        """Restore a session from ``to_bytes``' JSON text.

        Raises:
            ValueError: when the text is not a JSON object, has unknown fields, or a required field is
                missing or has the wrong type.
        """
        try:
            values = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"session snapshot is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"session snapshot is a JSON {type(values).__name__}, expected an object")
        if not _FIELD_NAMES.issuperset(values):  # no set built when all are known
            unknown = values.keys() - _FIELD_NAMES
            raise ValueError(f"session snapshot has unknown fields {sorted(unknown)!r}")
        for required in ("id", "flow", "flow_hash", "kind", "state"):
            if not isinstance(values.get(required), str):
                raise ValueError(f"session snapshot field {required!r} must be a string")
        if not isinstance(values.get("vars", {}), dict):
            raise ValueError("session snapshot field 'vars' must be an object")
        session: Session = _restore(values)
        # JSON keeps 1.0 as 1.0, but a snapshot written by hand (or by another tool) may hold integers.
        session.started_at = float(session.started_at)
        session.updated_at = float(session.updated_at)
        return session

    def to_json(self) -> JSONObject:
        """The session as a JSON object (only plain types, sharing nothing with the session)."""
        data: JSONObject = orjson.loads(self.to_bytes())
        return data

    @classmethod
    def from_json(cls, data: JSONObject) -> Session:
        """Restore a session saved with ``to_json``; the session shares nothing with ``data``.

        Raises:
            ValueError: when a required field is missing or has the wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError(f"session snapshot is a {type(data).__name__}, expected an object")
        try:
            text = orjson.dumps(data)
        except TypeError as exc:  # a value JSON cannot hold
            raise ValueError(f"session snapshot is not plain JSON: {exc}") from None
        return cls.from_bytes(text)


_FIELD_ORDER = tuple(item.name for item in fields(Session))
_FIELD_NAMES = frozenset(_FIELD_ORDER)


def _restorer() -> Any:
    """A function that builds a session from a decoded snapshot's fields (defaults for those left out).

    Generated like the dataclass's own ``__init__``, but reading a dict: ``Session(**values)`` costs
    several times more, because CPython matches each keyword to the 28 parameter names by comparing
    strings (the decoded keys are not the interned parameter names).
    """
    names = {f"_default_{item.name}": item.default for item in fields(Session)}
    lines = ["def restore(values):", "    session = _new(Session)"]
    for item in fields(Session):
        if item.name in ("id", "flow", "flow_hash", "kind", "state"):
            lines.append(f"    session.{item.name} = values[{item.name!r}]")
        elif item.name == "vars":
            lines.append("    session.vars = values.get('vars', None) or {}")
        else:
            lines.append(f"    session.{item.name} = values.get({item.name!r}, _default_{item.name})")
    lines.append("    return session")
    namespace: dict[str, Any] = {"_new": object.__new__, "Session": Session, **names}
    exec("\n".join(lines), namespace)  # the source is built above from the field names only
    return namespace["restore"]


_restore = _restorer()


def _dumper() -> Any:
    """A function that writes a session's JSON text, leaving out the fields that are None.

    Generated from the field names like ``_restorer``: reading each slot by name in the code is half the
    cost of ``getattr`` in a loop over the names.
    """
    lines = ["def dump(session):", "    values = {}"]
    for name in _FIELD_ORDER:
        lines.append(f"    value = session.{name}")
        lines.append(f"    if value is not None: values[{name!r}] = value")
    lines.append("    return _dumps(values)")
    namespace: dict[str, Any] = {"_dumps": orjson.dumps}
    exec("\n".join(lines), namespace)  # the source is built above from the field names only
    return namespace["dump"]


_dump = _dumper()


def session_of_tag(tag: str | None) -> str | None:
    """The session id encoded in a tag we set, or None for a tag that is not ours."""
    if not tag or TAG_SEPARATOR not in tag:
        return None
    session_id = tag.rsplit(TAG_SEPARATOR, 1)[0]
    return session_id or None
