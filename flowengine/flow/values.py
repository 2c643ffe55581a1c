"""Parsing of the small value languages inside a flow: durations, E.164 numbers and DTMF keys."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_BARE_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("h", "m", "s", "ms")

E164 = re.compile(r"\+[1-9][0-9]{1,14}\Z")
DTMF_KEYS = re.compile(r"[0-9*#A-D]+\Z")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number, or a string like ``500ms``, ``5s``, ``2m``, ``1h``, ``1m30s``, ``"10"``.

    Units must come from largest to smallest, each at most once.

    Raises:
        ValueError: with a message that says what is wrong and how to write it.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0 or value != value:
            raise ValueError(f"{value!r} is not a duration: it must be zero or more seconds")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    if _BARE_NUMBER.match(text):
        return float(text)
    seconds = 0.0
    position = 0
    last = -1
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        unit = match.group(2)
        order = _UNIT_ORDER.index(unit)
        if order <= last:
            raise ValueError(
                f"{value!r} is not a duration: units go from largest to smallest, each once (e.g. 1h30m, 1m30s)"
            )
        last = order
        seconds += float(match.group(1)) * _UNIT_SECONDS[unit]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(
            f"{value!r} is not a duration: write 500ms, 5s, 2m, 1h, 1m30s or a number of seconds"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``90.0`` -> ``1m30s``; ``0.5`` -> ``500ms`` (for messages and diagrams)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    parts = []
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    fraction = seconds - whole
    if secs or fraction or not parts:
        parts.append(f"{secs + fraction:g}s")
    return "".join(parts)


def is_template(text: str) -> bool:
    """Whether ``text`` holds a ``{{ }}`` or ``{% %}`` template."""
    return "{{" in text or "{%" in text
