"""The server's limit on open files: raised to what the system allows, and checked against what it may open.

Every callback connection from the API, every connection to it (``--api-connections``) and every connection
of flows' ``http`` actions (``--http-connections``) is a file descriptor. Linux's usual soft limit (1,024,
systemd's default too) is below what a busy instance can open, and the hard limit is usually far higher, so
``flowengine serve`` raises the soft limit to the hard one at start-up, as servers written in Go do by
default. Should the result still be low, it says so at start-up rather than with ``EMFILE`` under load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CALLBACK_MARGIN: Final = 256
"""Descriptors kept for what is not an outbound connection: callback connections, the store, log files."""

_CEILING: Final = 1 << 20
"""Used when the hard limit is unlimited (Linux refuses a soft limit above its ``nr_open``, 2**20 by default)."""


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """The soft limit before and after raising it (None where the platform has no such limit)."""

    before: int | None
    after: int | None

    def too_low_for(self, outbound_connections: int) -> bool:
        return self.after is not None and self.after < outbound_connections + CALLBACK_MARGIN


def raise_open_files_limit() -> OpenFiles:
    """Raise this process's soft limit on open files as far as its hard limit; never lower it."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return OpenFiles(None, None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return OpenFiles(None, None)
    target = _CEILING if hard == resource.RLIM_INFINITY else hard
    if soft >= target:
        return OpenFiles(soft, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # refused (a sandbox, or a ceiling lower than ours): keep what we have
        return OpenFiles(soft, soft)
    return OpenFiles(soft, target)
