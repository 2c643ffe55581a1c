"""structlog set-up for the server: JSON lines in production, a readable console in development.

Only ``flowengine serve`` calls :func:`configure_logging` (it changes process-wide settings); library code
and tests just use ``structlog.get_logger`` with bound context (``call_id``, ``flow``, ``state``, ``event``).
"""

from __future__ import annotations

import logging
from typing import TextIO

import structlog

from flowengine.config import LogFormat

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(log_format: LogFormat, level: str, stream: TextIO) -> None:
    """Send structlog events at ``level`` and above to ``stream`` as JSON lines or console lines."""
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
