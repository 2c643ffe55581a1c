"""Recording calls for replay: the callback events of each session, with the commands they led to.

``flowengine serve --record DIR`` keeps one :class:`CallRecorder`; for every callback the server handles it
calls :meth:`CallRecorder.record` with the session id, the callback's fields, the time, and the outbox entries
(REST and HTTP commands) that handling decided, each with the ``resource_id`` its execution returned when there
was one. Each session becomes ``DIR/<session id>.jsonl``, one JSON object per line::

    {"at": 1767225600.0, "flow": "ivr-main-line", "event": {...callback...}, "commands": [{...entry...}]}

With ``mask_numbers`` every E.164 number except the account's own (``keep``) is replaced by a stable stand-in
(the same number always gets the same mask), so recordings can be shared without callers' numbers.
``flowengine test --replay FILE --flow NEW.yaml`` replays such a file (``flowengine.testing.replay``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import orjson

from flowengine.typing import JSON, JSONObject, Seconds

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class CallRecorder:
    """Appends the events of each session to its own JSON-lines file under ``directory``.

    Args:
        directory: where recordings go (created when missing).
        mask_numbers: replace phone numbers by stable stand-ins.
        keep: numbers never masked (the flows' own numbers, so a replay still routes).
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, mask_numbers: bool = False, keep: Iterable[str] = ()
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.mask_numbers = mask_numbers
        self.keep = frozenset(keep)

    def path_for(self, session_id: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', session_id)}.jsonl"

    def record(
        self,
        session_id: str,
        event: Mapping[str, object],
        *,
        at: Seconds,
        flow: str = "",
        commands: Sequence[JSONObject] = (),
    ) -> Path:
        """Append one handled callback (and the commands it led to) to the session's recording."""
        line: JSONObject = {
            "at": at,
            "flow": flow,
            "event": self._mask(dict(event)),  # type: ignore[arg-type]
            "commands": [self._mask(dict(command)) for command in commands],
        }
        path = self.path_for(session_id)
        with path.open("ab") as handle:
            handle.write(orjson.dumps(line) + b"\n")
        return path

    def mask(self, number: str) -> str:
        """The stand-in for ``number``: +1555 and seven digits from its hash (stable across runs)."""
        if number in self.keep:
            return number
        digest = int(hashlib.sha256(number.encode()).hexdigest(), 16)
        return f"+1555{digest % 10_000_000:07d}"

    def _mask(self, value: JSON) -> JSON:
        if not self.mask_numbers:
            return value
        if isinstance(value, str):
            return _E164.sub(lambda m: self.mask(m.group(0)), value)
        if isinstance(value, list):
            return [self._mask(item) for item in value]
        if isinstance(value, dict):
            return {key: self._mask(item) for key, item in value.items()}
        return value
