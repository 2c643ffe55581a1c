"""structlog set-up for the server: JSON lines in production, a readable console in development.

Only ``flowengine serve`` calls :func:`configure_logging` (it changes process-wide settings); library code
and tests just use ``structlog.get_logger`` with bound context (``call_id``, ``flow``, ``state``, ``event``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, TextIO

import orjson
import structlog

from flowengine.config import LogFormat

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


# 7 to 15 digits, not part of a longer word or id (session ids, timestamps and hex stay readable)
_NUMBER = re.compile(r"(?<![\w+.-])(\+?)(\d{3,11})(\d{4})(?![\w.-])")


def mask_number(text: str) -> str:
    """``text`` with every phone number (7+ digits, with or without ``+``) masked but its last 4 digits."""
    return _NUMBER.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


def _mask(value: object) -> object:
    if isinstance(value, str):
        return mask_number(value)
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def mask_numbers(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor masking callers' numbers in every string of the event (``--mask-numbers``)."""
    return {key: _mask(value) for key, value in event_dict.items()}


def _dumps(value: object, **_: object) -> str:
    """JSON for a log line through orjson (several times faster than ``json.dumps``)."""
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def _timestamp(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """``timestamp``: the time in UTC as ISO 8601 with microseconds (``2026-12-06T14:47:42.418127Z``).

    structlog's ``TimeStamper`` builds a ``datetime`` for every line; this formats the date and time once a
    second and only the microseconds on each line (a third of a log line's cost went to the stamp)."""
    now = time.time()
    second = int(now)
    if second != _stamped[0]:
        _stamped[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    event_dict["timestamp"] = f"{_stamped[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


_stamped: list[Any] = [-1, ""]
"""The second last stamped, and its date and time."""

_format_exc_info = structlog.processors.format_exc_info


def _exceptions(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog's ``format_exc_info``, skipped for the (nearly all) events that carry no exception."""
    if "exc_info" in event_dict:
        return _format_exc_info(logger, method, event_dict)
    return event_dict


def configure_logging(
    log_format: LogFormat, level: str, stream: TextIO, *, mask: bool = False, cache: bool = False
) -> None:
    """Send structlog events at ``level`` and above to ``stream`` as JSON lines or console lines.

    With ``mask``, phone numbers in the events are masked (all but their last 4 digits). With ``cache``,
    each module's logger is built once, at its first use, and later ``configure`` calls no longer reach
    it: for a process that configures once (``flowengine serve``), where it saves building a logger on
    every call, even a filtered-out ``debug`` one (about 8 µs, several times per callback)."""
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamp,
    ]
    if log_format == "json":
        processors.append(_exceptions)
    if mask:
        processors.append(mask_numbers)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # One write per line (``print`` writes the line and its newline apart: two system calls on a
        # stream that writes through, as stderr does when it is a file or a pipe).
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=cache,
    )
