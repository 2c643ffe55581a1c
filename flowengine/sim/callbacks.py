"""Delivery of callback events to the customer's servers, one at a time per call, in order.

Each event goes to its target by POST with a JSON body or by GET with query parameters, waits at most
the target's ``callbackTimeout``, and falls back to ``fallbackUrl`` when the first attempt fails (a
connection error, a timeout or a non-2xx answer). Credentials in a URL become HTTP Basic auth. Every
delivery is recorded, failed ones too; a failure is never fatal to the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import orjson
import structlog
from yarl import URL

from flowengine.catapult.client import redact_url
from flowengine.typing import JSON, JSONObject, Seconds

log = structlog.get_logger("flowengine.sim")

USER_AGENT = "BandwidthAPI/v1 (flowengine-sim)"

DeliveryStatus = Literal["pending", "delivered", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how the events of one call, conference, message or application are sent."""

    url: str | None
    method: str = "POST"
    timeout_ms: int = 10000
    fallback_url: str | None = None


@dataclass(slots=True)
class Attempt:
    """One HTTP request made for a delivery."""

    url: str
    method: str
    status: int | None
    error: str | None
    reply: str

    def to_json(self) -> JSONObject:
        return {
            "url": self.url,
            "method": self.method,
            "status": self.status,
            "error": self.error,
            "reply": self.reply,
        }


@dataclass(slots=True)
class Delivery:
    """An event and what became of sending it."""

    id: int
    key: str
    event: JSONObject
    target: Target
    queued_at: Seconds
    status: DeliveryStatus = "pending"
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "key": self.key,
            "eventType": self.event.get("eventType"),
            "event": self.event,
            "url": self.target.url,
            "method": self.target.method,
            "fallbackUrl": self.target.fallback_url,
            "status": self.status,
            "attempts": [attempt.to_json() for attempt in self.attempts],
        }


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def query_params(event: JSONObject) -> list[tuple[str, str]]:
    """Flatten an event into query parameters for GET delivery.

    Booleans become ``true``/``false``, lists repeat their key, objects use dotted keys
    (``diversion.origTo``).
    """
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: JSON) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, list):
            for item in value:
                add(key, item)
        elif isinstance(value, dict):
            for sub, item in value.items():
                add(f"{key}.{sub}", item)
        else:
            pairs.append((key, str(value)))

    for key, value in event.items():
        add(key, value)
    return pairs


class CallbackDispatcher:
    """Queues events per key (a call, conference or conversation) and sends each queue in order.

    Args:
        now: the simulator clock's reading, for the delivery record.
        session: the shared client session; created on first use when not given.
    """

    def __init__(self, now: Callable[[], Seconds], session: aiohttp.ClientSession | None = None) -> None:
        self._now = now
        self._session = session
        self._owns_session = session is None
        self._queues: dict[str, deque[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.deliveries: list[Delivery] = []

    def send(self, key: str, target: Target, event: JSONObject) -> Delivery:
        """Queue ``event`` for ``target`` behind the other events of ``key``."""
        delivery = Delivery(next(self._ids), key, event, target, self._now())
        self.deliveries.append(delivery)
        if not target.url or self._closed:  # nowhere to send it, or the simulator is shutting down
            delivery.status = "skipped"
            return delivery
        self._queues.setdefault(key, deque()).append(delivery)
        if key not in self._workers:
            self._idle.clear()
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key))
        return delivery

    async def idle(self) -> None:
        """Wait until every queued event has been delivered or has failed."""
        while self._workers:
            await self._idle.wait()
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Cancel pending deliveries and close the session if this dispatcher made it; later events are
        recorded as skipped."""
        self._closed = True
        for task in list(self._workers.values()):
            task.cancel()
        for task in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._idle.set()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                delivery = queue[0]
                await self._deliver(delivery)
                queue.popleft()
        finally:
            del self._queues[key]
            del self._workers[key]
            if not self._workers:
                self._idle.set()

    async def _deliver(self, delivery: Delivery) -> None:
        target = delivery.target
        urls = [url for url in (target.url, target.fallback_url) if url]
        for url in urls:
            attempt = await self._attempt(url, target, delivery.event)
            delivery.attempts.append(attempt)
            if attempt.error is None:
                delivery.status = "delivered"
                return
        delivery.status = "failed"
        log.warning(
            "callback_failed",
            key=delivery.key,
            event_type=delivery.event.get("eventType"),
            url=redact_url(target.url) if target.url else None,
            fallback_url=redact_url(target.fallback_url) if target.fallback_url else None,
            error=delivery.attempts[-1].error,
        )

    async def _attempt(self, url: str, target: Target, event: JSONObject) -> Attempt:
        method = target.method.upper()
        try:
            parsed = URL(url)
        except ValueError as exc:
            return Attempt(url, method, None, f"invalid URL: {exc}", "")
        headers = {"User-Agent": USER_AGENT}
        if parsed.user is not None:
            headers["Authorization"] = basic_auth(parsed.user, parsed.password or "")
            parsed = parsed.with_user(None)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=max(target.timeout_ms, 1) / 1000)
        try:
            if method == "GET":
                request = self._session.get(
                    parsed, params=query_params(event), timeout=timeout, headers=headers
                )
            else:
                headers["Content-Type"] = "application/json; charset=utf-8"
                request = self._session.post(
                    parsed, data=orjson.dumps(event), timeout=timeout, headers=headers
                )
            async with request as response:
                reply = (await response.text(errors="replace"))[:2000]
                if 200 <= response.status < 300:
                    return Attempt(url, method, response.status, None, reply)
                return Attempt(url, method, response.status, f"HTTP {response.status}", reply)
        except TimeoutError:
            return Attempt(url, method, None, f"no answer within {target.timeout_ms} ms", "")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Attempt(url, method, None, f"{type(exc).__name__}: {exc}", "")
