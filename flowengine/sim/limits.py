"""The reference's rate limits and injected faults, applied to REST requests before they run.

Rate limits follow the documented figures on the simulator's clock: creating calls is limited to 1 per
second per account and per number averaged over 10 seconds (``403 call-rate-limit``), sending messages
to 1 per second (``403 message-rate-limit``), every other resource to 1 request per 1000 ms
(``429`` with ``X-RateLimit-Reset`` in epoch milliseconds). Faults answer a share of requests ``500``
or hold them for a while, chosen by a seeded random generator.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from flowengine.sim.problems import ApiProblem
from flowengine.typing import Seconds


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` requests in any ``seconds``-long window."""

    count: int
    seconds: Seconds


CALL_CREATE = Window(10, 10.0)
MESSAGE_SEND = Window(1, 1.0)
RESOURCE = Window(1, 1.0)
PHONE_NUMBERS_READ = Window(2000, 1.0)

#: Families limited to 1 request per 1000 ms by the reference's resource limits.
RESOURCE_FAMILIES = frozenset(
    {
        "account",
        "applications",
        "bridges",
        "calls",
        "conferences",
        "domains",
        "endpoints",
        "errors",
        "media",
        "messages",
        "numberInfo",
        "recordings",
        "transcriptions",
    }
)


class RateLimiter:
    """Sliding windows keyed by what is limited (an account-wide family, or a number)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[Seconds]] = {}

    def _take(self, key: str, window: Window, now: Seconds) -> Seconds | None:
        """Count a request; return when the window frees up if it is full, else None."""
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - window.seconds:
            seen.popleft()
        if len(seen) >= window.count:
            return seen[0] + window.seconds
        seen.append(now)
        return None

    def check(self, method: str, family: str, creates: bool, from_number: str, now: Seconds) -> None:
        """Raise the documented error if this request is over a limit.

        Args:
            method: the HTTP method.
            family: the first path segment after ``/users/{userId}`` (``calls``, ``messages``...).
            creates: the request creates calls or sends messages (``POST /calls``, ``POST /messages``).
            from_number: the ``from`` of the call or message, for per-number limits.
            now: the simulator's clock.
        """
        if creates and family == "calls":
            for key in ("calls:account", f"calls:{from_number}"):
                if self._take(key, CALL_CREATE, now) is not None:
                    raise ApiProblem(
                        403,
                        "limit",
                        "call-rate-limit",
                        f"You can create {CALL_CREATE.count} calls per {CALL_CREATE.seconds:g} seconds, "
                        "please slow down",
                    )
            return
        if creates and family == "messages":
            if self._take("messages:account", MESSAGE_SEND, now) is not None:
                raise ApiProblem(
                    403,
                    "limit",
                    "message-rate-limit",
                    f"You can send {MESSAGE_SEND.count} message per {MESSAGE_SEND.seconds:g} second, "
                    "please slow down",
                )
            return
        if family == "phoneNumbers" and method == "GET":
            window, key = PHONE_NUMBERS_READ, "phoneNumbers:read"
        elif family in RESOURCE_FAMILIES:
            window, key = RESOURCE, f"resource:{family}"
        else:
            return
        free_at = self._take(key, window, now)
        if free_at is not None:
            reset_ms = math.ceil(free_at * 1000)
            raise ApiProblem(
                429,
                "too-many-requests",
                "rate-limit-reached",
                f"Rate limit reached for /{family}: {window.count} request(s) per "
                f"{window.seconds * 1000:g} ms",
                headers={"X-RateLimit-Reset": str(reset_ms)},
                details=[{"name": "rateLimitResetTime", "value": str(reset_ms)}],
            )


@dataclass(slots=True)
class Faults:
    """Shares of REST requests that fail or are slow; changeable at run time."""

    error_rate: float = 0.0
    delay_rate: float = 0.0
    delay_seconds: Seconds = 1.0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._random = random.Random(seed)

    def decide(self) -> tuple[bool, Seconds]:
        """For one request: whether to answer 500, and how long to hold it first."""
        delay = self.delay_seconds if self._random.random() < self.delay_rate else 0.0
        fail = self._random.random() < self.error_rate
        return fail, delay


def injected_error() -> ApiProblem:
    """The 500 answered to a request chosen by fault injection."""
    return ApiProblem(
        500,
        "unavailable",
        "internal-server-error",
        "The simulator injected this failure (fault injection is on)",
    )
