"""The async REST client of the Bandwidth Voice & Messaging API v1 ("Catapult").

One :class:`CatapultClient` wraps one pooled HTTP client that the caller owns and passes in (a seam: tests hand
it one pointed at a fake or at the simulator): an ``aiohttp.ClientSession``, or the leaner
:class:`~flowengine.catapult.transport.HttpTransport` that ``flowengine serve`` uses on its hot path. Every request carries HTTP Basic auth
(``token:secret``, never logged), a timeout, and goes through one retry loop:

* a connection that could not be opened is retried for every method (nothing reached the API);
* other connection failures, timeouts and ``5xx`` answers are retried only for operations that are safe to
  repeat (reads, deletes, uploads, and updates that set an absolute state), plus ``503 call-unavailable``,
  which the API documents as "retry your operation later";
* ``429`` waits until ``X-RateLimit-Reset`` (epoch seconds or milliseconds) and retries;
* ``403 call-rate-limit``/``message-rate-limit`` backs off exponentially and retries (the API refused the
  request, so repeating it is safe).

Waits use exponential backoff with jitter. When the attempts run out the typed error of
:mod:`flowengine.errors` is raised: :class:`CatapultConnectionError`, :class:`CatapultRateLimitError` or
:class:`CatapultAPIError` (with status, category, code, message, method and URL).
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import orjson
import structlog
from multidict import CIMultiDict

from flowengine.catapult.transport import ConnectError, HeaderBlock, HttpTransport, TransportError
from flowengine.errors import (
    CatapultAPIError,
    CatapultConnectionError,
    CatapultRateLimitError,
    ConfigError,
)
from flowengine.typing import JSON, JSONObject, Seconds

DEFAULT_BASE_URL: Final = "https://api.catapult.inetwork.com/v1"
"""The real API's base URL; the client appends ``/users/{userId}/...``."""

DEFAULT_TIMEOUT: Final[Seconds] = 10.0

RATE_LIMIT_CODES: Final = frozenset({"call-rate-limit", "message-rate-limit"})
"""403 codes that mean "too fast": the request was refused and may be sent again later."""

RETRY_LATER_CODES: Final = frozenset({"call-unavailable"})
"""5xx codes the API documents as "not done, retry later": safe to repeat for any operation."""

Observer = Callable[[str, str, Seconds], None]
"""Called after every attempt with (operation, status, seconds); status is the HTTP status as text or
``"connection-error"``. The server feeds it to its metrics."""

_log = structlog.get_logger("flowengine.catapult")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long the client retries.

    Attributes:
        attempts: tries in all, the first included (1 disables retries).
        base_delay: the first backoff; it doubles with every attempt, up to ``max_delay``.
        max_delay: the longest single backoff.
        rate_limit_delay: the first backoff after a ``403 *-rate-limit`` (the API's limits are per second).
        max_rate_limit_wait: the longest wait for a ``429`` reset; a longer one raises at once.
    """

    attempts: int = 4
    base_delay: Seconds = 0.25
    max_delay: Seconds = 8.0
    rate_limit_delay: Seconds = 1.0
    max_rate_limit_wait: Seconds = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"retry attempts must be at least 1, got {self.attempts!r}")
        for name in ("base_delay", "max_delay", "rate_limit_delay", "max_rate_limit_wait"):
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"retry {name} must not be negative, got {value!r}")


@dataclass(slots=True)  # not frozen: one per callback, and a frozen one costs 5x as much to make
class Response:
    """A successful answer: status, headers, the decoded JSON body (None when empty or not JSON) and raw
    bytes."""

    status: int
    headers: Mapping[str, str]
    body: JSON
    raw: bytes

    @property
    def location_id(self) -> str:
        """The id at the end of the ``Location`` header (relative or absolute), or "" when there is none."""
        location = self.headers.get("Location", "")
        return location_id(location)


def location_id(location: str) -> str:
    """The last path segment of a ``Location`` header value, e.g. ``c-123`` for ``/v1/users/u/calls/c-123``."""
    # Without a query, a fragment, IPv6 brackets, whitespace or controls (what urlsplit treats specially),
    # the last segment of the path is the text after the last slash, unless that slash is part of the
    # "//" before a host (then the path is empty).
    if (
        location.isascii()
        and location.isprintable()
        and " " not in location
        and "?" not in location
        and "#" not in location
        and "[" not in location
        and "]" not in location
    ):
        rest, slash, last = location.rstrip("/").rpartition("/")
        if slash and not rest.endswith("/"):
            return last
    path = urlsplit(location).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else ""


def parse_rate_limit_reset(value: str, now: Seconds) -> Seconds | None:
    """Seconds to wait until an ``X-RateLimit-Reset`` epoch time (the API says seconds; its sample is ms).

    The value is read as milliseconds when that puts it nearer to ``now`` than reading it as seconds does
    (a reset is always close to now). Returns None when unreadable.
    """
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    if reset != reset or reset < 0 or reset == float("inf"):  # NaN, negative or infinite
        return None
    if abs(reset / 1000.0 - now) < abs(reset - now):
        reset /= 1000.0
    return max(0.0, reset - now)


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for logs and error messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"API base URL {redact_url(base_url)!r} must be an http:// or https:// URL, "
            f"e.g. {DEFAULT_BASE_URL!r}"
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"API base URL {redact_url(base_url)!r} must not carry credentials; give the token and "
            "secret as settings"
        )
    return base_url.rstrip("/")


_STATE_SETTING = re.compile(
    r"^/(calls|bridges|conferences|applications|phoneNumbers)/[^/]+"
    r"(/gather/[^/]+|/members/[^/]+)?$"
)


def is_safe_to_repeat(method: str, path: str, body: JSON) -> bool:
    """Whether sending this request twice has the effect of sending it once.

    Reads, deletes and uploads are; so are updates of an existing resource (they set absolute values),
    except a call transfer, which would ring the target twice. Creations, audio and DTMF are not.
    """
    method = method.upper()
    if method in ("GET", "HEAD", "PUT", "DELETE"):
        return True
    # _STATE_SETTING's paths have 2 or 4 slashes: most others (audio, gather, dtmf...) need no regex.
    if method != "POST" or path.count("/") not in (2, 4) or not _STATE_SETTING.match(path):
        return False
    return not (isinstance(body, dict) and body.get("state") == "transferring")


def _basic_auth(token: str, secret: str) -> str:
    if ":" in token:
        raise ConfigError("the API token must not contain ':' (HTTP Basic auth cannot carry it)")
    try:
        pair = f"{token}:{secret}".encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError("the API token and secret must be Latin-1 text") from None
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _seg(value: str) -> str:
    """One path segment, percent-encoded (ids are opaque; phone numbers carry '+')."""
    return quote(value, safe="")


class CatapultClient:
    """Every operation of the v1 API that the engine uses, plus applications and phone numbers.

    Create operations return the new resource's id (from ``Location``); reads return the decoded JSON;
    updates return nothing. Field names are the API's own (camelCase) and bodies are passed as given.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | HttpTransport,
        *,
        user_id: str,
        token: str,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: Seconds = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[Seconds], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], Seconds] = time.time,
        jitter: Callable[[], float] = random.random,
        observer: Observer | None = None,
    ) -> None:
        if not user_id:
            raise ConfigError("the API user id is empty; set --user-id or FLOWENGINE_USER_ID")
        if timeout <= 0:
            raise ConfigError(f"the API request timeout must be positive, got {timeout!r}")
        self._session = session if isinstance(session, aiohttp.ClientSession) else None
        self._transport = session if isinstance(session, HttpTransport) else None
        self.user_id = user_id
        self._authorization = _basic_auth(token, secret)
        self._plain_block = HeaderBlock({"Authorization": self._authorization})
        self._json_block = HeaderBlock(
            {"Authorization": self._authorization, "Content-Type": "application/json"}
        )
        self.base_url = _check_base_url(base_url)
        self._user_url = f"{self.base_url}/users/{_seg(user_id)}"
        self._user_prefixes = (f"/v1/users/{_seg(user_id)}/", f"/users/{_seg(user_id)}/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._observer = observer

    def __repr__(self) -> str:
        return f"CatapultClient(base_url={self.base_url!r}, user_id={self.user_id!r})"

    # ------------------------------------------------------------------------------------------ calls

    async def create_call(self, body: JSONObject) -> str:
        """``POST calls``: place an outbound call (``from``, ``to``, ``callbackUrl``, ``tag``...); its id."""
        return (await self._request("create_call", "POST", "/calls", json=body)).location_id

    async def get_call(self, call_id: str) -> JSONObject:
        """``GET calls/{callId}``."""
        return await self._get_object("get_call", f"/calls/{_seg(call_id)}")

    async def list_calls(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET calls`` with the API's filters (``bridgeId``, ``conferenceId``, ``from``, ``to``, ``page``...)."""
        return await self._get_list("list_calls", "/calls", params)

    async def update_call(self, call_id: str, body: JSONObject) -> None:
        """``POST calls/{callId}``: ``state`` (active, rejected, completed, transferring), recording..."""
        await self._request("update_call", "POST", f"/calls/{_seg(call_id)}", json=body, idempotent=True)

    async def answer_call(self, call_id: str) -> None:
        """Answer an incoming call (``state: active``)."""
        await self.update_call(call_id, {"state": "active"})

    async def reject_call(self, call_id: str) -> None:
        """Reject an incoming call (``state: rejected``)."""
        await self.update_call(call_id, {"state": "rejected"})

    async def hangup_call(self, call_id: str) -> None:
        """Hang up a call (``state: completed``)."""
        await self.update_call(call_id, {"state": "completed"})

    async def transfer_call(self, call_id: str, body: JSONObject) -> str:
        """Transfer an active call (``transferTo``, ``transferCallerId``, ``whisperAudio``...).

        Not retried on a 5xx: a transfer that half happened must not ring the target twice. Returns the new
        call's id when the API names it in ``Location``, else "".
        """
        payload: JSONObject = {"state": "transferring", **body}
        response = await self._request("transfer_call", "POST", f"/calls/{_seg(call_id)}", json=payload)
        return response.location_id

    async def play_audio(self, call_id: str, body: JSONObject) -> None:
        """``POST calls/{callId}/audio``: ``sentence`` or ``fileUrl`` (``""`` stops), voice, locale, tag..."""
        await self._request("play_audio", "POST", f"/calls/{_seg(call_id)}/audio", json=body)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        """``POST calls/{callId}/dtmf`` with ``dtmfOut``."""
        await self._request("send_dtmf", "POST", f"/calls/{_seg(call_id)}/dtmf", json={"dtmfOut": digits})

    async def create_gather(self, call_id: str, body: JSONObject) -> str:
        """``POST calls/{callId}/gather`` (``maxDigits``, ``interDigitTimeout``, ``terminatingDigits``,
        ``tag``, ``prompt``); the gather's id."""
        response = await self._request("create_gather", "POST", f"/calls/{_seg(call_id)}/gather", json=body)
        return response.location_id

    async def get_gather(self, call_id: str, gather_id: str) -> JSONObject:
        """``GET calls/{callId}/gather/{gatherId}``."""
        return await self._get_object("get_gather", f"/calls/{_seg(call_id)}/gather/{_seg(gather_id)}")

    async def stop_gather(self, call_id: str, gather_id: str) -> None:
        """``POST calls/{callId}/gather/{gatherId}`` with ``state: completed`` (the only update allowed)."""
        await self._request(
            "update_gather",
            "POST",
            f"/calls/{_seg(call_id)}/gather/{_seg(gather_id)}",
            json={"state": "completed"},
            idempotent=True,
        )

    async def list_call_events(self, call_id: str) -> list[JSONObject]:
        """``GET calls/{callId}/events``."""
        return await self._get_list("list_call_events", f"/calls/{_seg(call_id)}/events", None)

    async def list_call_recordings(self, call_id: str) -> list[JSONObject]:
        """``GET calls/{callId}/recordings``."""
        return await self._get_list("list_call_recordings", f"/calls/{_seg(call_id)}/recordings", None)

    # ---------------------------------------------------------------------------------------- bridges

    async def create_bridge(self, call_ids: Sequence[str], *, bridge_audio: bool = True) -> str:
        """``POST bridges`` with ``callIds`` and ``bridgeAudio``; the bridge's id."""
        body: JSONObject = {"bridgeAudio": bridge_audio, "callIds": list(call_ids)}
        return (await self._request("create_bridge", "POST", "/bridges", json=body)).location_id

    async def update_bridge(self, bridge_id: str, body: JSONObject) -> None:
        """``POST bridges/{bridgeId}``: a new ``callIds`` list replaces the calls; ``bridgeAudio``."""
        await self._request(
            "update_bridge", "POST", f"/bridges/{_seg(bridge_id)}", json=body, idempotent=True
        )

    async def get_bridge(self, bridge_id: str) -> JSONObject:
        """``GET bridges/{bridgeId}``."""
        return await self._get_object("get_bridge", f"/bridges/{_seg(bridge_id)}")

    async def bridge_audio(self, bridge_id: str, body: JSONObject) -> None:
        """``POST bridges/{bridgeId}/audio``: play to both calls of a bridge."""
        await self._request("bridge_audio", "POST", f"/bridges/{_seg(bridge_id)}/audio", json=body)

    # ------------------------------------------------------------------------------------ conferences

    async def create_conference(self, body: JSONObject) -> str:
        """``POST conferences`` (``from`` required, ``callbackUrl``, ``tag``...); the conference's id."""
        return (await self._request("create_conference", "POST", "/conferences", json=body)).location_id

    async def get_conference(self, conference_id: str) -> JSONObject:
        """``GET conferences/{conferenceId}``."""
        return await self._get_object("get_conference", f"/conferences/{_seg(conference_id)}")

    async def update_conference(self, conference_id: str, body: JSONObject) -> None:
        """``POST conferences/{conferenceId}``: ``state: completed``, ``mute``, ``hold``, callbacks, tag."""
        await self._request(
            "update_conference",
            "POST",
            f"/conferences/{_seg(conference_id)}",
            json=body,
            idempotent=True,
        )

    async def conference_audio(self, conference_id: str, body: JSONObject) -> None:
        """``POST conferences/{conferenceId}/audio``: play to every member."""
        await self._request(
            "conference_audio", "POST", f"/conferences/{_seg(conference_id)}/audio", json=body
        )

    async def add_member(self, conference_id: str, body: JSONObject) -> str:
        """``POST conferences/{conferenceId}/members`` (``callId`` required, ``joinTone``, ``leavingTone``,
        ``mute``, ``hold``); the member's id."""
        response = await self._request(
            "add_member", "POST", f"/conferences/{_seg(conference_id)}/members", json=body
        )
        return response.location_id

    async def get_member(self, conference_id: str, member_id: str) -> JSONObject:
        """``GET conferences/{conferenceId}/members/{memberId}``."""
        return await self._get_object(
            "get_member", f"/conferences/{_seg(conference_id)}/members/{_seg(member_id)}"
        )

    async def list_members(self, conference_id: str) -> list[JSONObject]:
        """``GET conferences/{conferenceId}/members``."""
        return await self._get_list("list_members", f"/conferences/{_seg(conference_id)}/members", None)

    async def update_member(self, conference_id: str, member_id: str, body: JSONObject) -> None:
        """``POST conferences/{conferenceId}/members/{memberId}``: ``state: completed`` removes it; ``mute``,
        ``hold``, ``joinTone``, ``leavingTone``."""
        await self._request(
            "update_member",
            "POST",
            f"/conferences/{_seg(conference_id)}/members/{_seg(member_id)}",
            json=body,
            idempotent=True,
        )

    async def member_audio(self, conference_id: str, member_id: str, body: JSONObject) -> None:
        """``POST conferences/{conferenceId}/members/{memberId}/audio``: play to one member."""
        await self._request(
            "member_audio",
            "POST",
            f"/conferences/{_seg(conference_id)}/members/{_seg(member_id)}/audio",
            json=body,
        )

    # ------------------------------------------------------------------ recordings and transcriptions

    async def get_recording(self, recording_id: str) -> JSONObject:
        """``GET recordings/{recordingId}``."""
        return await self._get_object("get_recording", f"/recordings/{_seg(recording_id)}")

    async def list_recordings(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET recordings``."""
        return await self._get_list("list_recordings", "/recordings", params)

    async def create_transcription(self, recording_id: str) -> str:
        """``POST recordings/{recordingId}/transcriptions`` with ``{}``; the transcription's id."""
        response = await self._request(
            "create_transcription", "POST", f"/recordings/{_seg(recording_id)}/transcriptions", json={}
        )
        return response.location_id

    async def get_transcription(self, recording_id: str, transcription_id: str) -> JSONObject:
        """``GET recordings/{recordingId}/transcriptions/{transcriptionId}``."""
        return await self._get_object(
            "get_transcription",
            f"/recordings/{_seg(recording_id)}/transcriptions/{_seg(transcription_id)}",
        )

    async def list_transcriptions(self, recording_id: str) -> list[JSONObject]:
        """``GET recordings/{recordingId}/transcriptions``."""
        return await self._get_list(
            "list_transcriptions", f"/recordings/{_seg(recording_id)}/transcriptions", None
        )

    # --------------------------------------------------------------------------------------- messages

    async def send_message(self, body: JSONObject) -> str:
        """``POST messages`` with one message (``from``, ``to``, ``text``, ``media``, ``callbackUrl``,
        ``receiptRequested``, ``tag``); the message's id."""
        return (await self._request("send_message", "POST", "/messages", json=body)).location_id

    async def send_messages(self, bodies: Sequence[JSONObject]) -> list[JSONObject]:
        """``POST messages`` with a batch (at most 50); one ``{"result": ..., "location"|"error"}`` each."""
        response = await self._request("send_messages", "POST", "/messages", json=list(bodies))
        return _object_list(response.body)

    async def get_message(self, message_id: str) -> JSONObject:
        """``GET messages/{messageId}``."""
        return await self._get_object("get_message", f"/messages/{_seg(message_id)}")

    async def list_messages(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET messages`` with the API's filters (first page only)."""
        return await self._get_list("list_messages", "/messages", params)

    # ------------------------------------------------------------------------------------------ media

    async def upload_media(
        self, media_name: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """``PUT media/{mediaName}``: upload or replace a file."""
        await self._request(
            "upload_media",
            "PUT",
            f"/media/{_seg(media_name)}",
            data=data,
            headers={"Content-Type": content_type},
            idempotent=True,
        )

    async def download_media(self, media_name: str) -> bytes:
        """``GET media/{mediaName}``: the file's bytes."""
        response = await self._request("download_media", "GET", f"/media/{_seg(media_name)}", idempotent=True)
        return response.raw

    async def list_media(self) -> list[JSONObject]:
        """``GET media``: ``[{mediaName, contentLength, content}]``."""
        return await self._get_list("list_media", "/media", None)

    async def delete_media(self, media_name: str) -> None:
        """``DELETE media/{mediaName}``."""
        await self._request("delete_media", "DELETE", f"/media/{_seg(media_name)}", idempotent=True)

    # ----------------------------------------------------------------------------------- applications

    async def create_application(self, body: JSONObject) -> str:
        """``POST applications`` (``name``, ``incomingCallUrl``, ``incomingMessageUrl``, ``autoAnswer``...)."""
        return (await self._request("create_application", "POST", "/applications", json=body)).location_id

    async def get_application(self, application_id: str) -> JSONObject:
        """``GET applications/{applicationId}``."""
        return await self._get_object("get_application", f"/applications/{_seg(application_id)}")

    async def list_applications(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET applications``."""
        return await self._get_list("list_applications", "/applications", params)

    async def update_application(self, application_id: str, body: JSONObject) -> None:
        """``POST applications/{applicationId}``: unsent fields stay unchanged."""
        await self._request(
            "update_application",
            "POST",
            f"/applications/{_seg(application_id)}",
            json=body,
            idempotent=True,
        )

    async def delete_application(self, application_id: str) -> None:
        """``DELETE applications/{applicationId}``."""
        await self._request(
            "delete_application", "DELETE", f"/applications/{_seg(application_id)}", idempotent=True
        )

    # ---------------------------------------------------------------------------------- phone numbers

    async def create_phone_number(self, body: JSONObject) -> str:
        """``POST phoneNumbers`` (``number`` required, ``name``, ``applicationId``, ``fallbackNumber``)."""
        return (await self._request("create_phone_number", "POST", "/phoneNumbers", json=body)).location_id

    async def get_phone_number(self, number_id: str) -> JSONObject:
        """``GET phoneNumbers/{numberId}``; an E.164 number works too (it is URL-encoded here)."""
        return await self._get_object("get_phone_number", f"/phoneNumbers/{_seg(number_id)}")

    async def list_phone_numbers(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET phoneNumbers``."""
        return await self._get_list("list_phone_numbers", "/phoneNumbers", params)

    async def update_phone_number(self, number_id: str, body: JSONObject) -> None:
        """``POST phoneNumbers/{numberId | E.164}``: ``applicationId`` (``""`` detaches), ``name``..."""
        await self._request(
            "update_phone_number",
            "POST",
            f"/phoneNumbers/{_seg(number_id)}",
            json=body,
            idempotent=True,
        )

    async def delete_phone_number(self, number_id: str) -> None:
        """``DELETE phoneNumbers/{numberId}``."""
        await self._request(
            "delete_phone_number", "DELETE", f"/phoneNumbers/{_seg(number_id)}", idempotent=True
        )

    # ------------------------------------------- account, numbers to order, SIP, errors, CNAM (issue 10)

    async def get_account(self) -> JSONObject:
        """``GET account``: ``balance`` (dollars, as a string) and ``accountType``."""
        return await self._get_object("get_account", "/account")

    async def list_account_transactions(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET account/transactions`` (``maxItems``, ``fromDate``, ``toDate``, ``type``, ``number``, ``page``,
        ``size``), newest first."""
        return await self._get_list("list_account_transactions", "/account/transactions", params)

    async def search_available_numbers(
        self, kind: str, params: Mapping[str, str] | None = None
    ) -> list[JSONObject]:
        """``GET /v1/availableNumbers/{local|tollFree}``: numbers that could be ordered (nothing is spent).

        Raises:
            ValueError: ``kind`` is neither ``local`` nor ``tollFree``.
        """
        path = f"/availableNumbers/{_number_kind(kind)}"
        response = await self._request(
            "search_available_numbers", "GET", path, params=params, idempotent=True, root=True
        )
        return self._expect_list(response, path, root=True)

    async def order_available_numbers(self, kind: str, params: Mapping[str, str]) -> list[JSONObject]:
        """``POST /v1/availableNumbers/{local|tollFree}``: search and order at once (this spends money);
        one ``{number, nationalNumber, price, location}`` per number ordered. Never retried on a 5xx.

        Raises:
            ValueError: ``kind`` is neither ``local`` nor ``tollFree``.
        """
        path = f"/availableNumbers/{_number_kind(kind)}"
        response = await self._request("order_available_numbers", "POST", path, params=params, root=True)
        return self._expect_list(response, path, root=True)

    async def import_phone_number(self, body: JSONObject) -> str:
        """``POST phoneNumbers`` with a ``provider`` (``providerName: bandwidth-dashboard`` and its
        ``properties``): bring a number ordered elsewhere onto the account; its id."""
        return (await self._request("import_phone_number", "POST", "/phoneNumbers", json=body)).location_id

    async def create_domain(self, body: JSONObject) -> str:
        """``POST domains`` (``name``, ``description``); the domain's id."""
        return (await self._request("create_domain", "POST", "/domains", json=body)).location_id

    async def list_domains(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET domains``."""
        return await self._get_list("list_domains", "/domains", params)

    async def delete_domain(self, domain_id: str) -> None:
        """``DELETE domains/{domainId}``."""
        await self._request("delete_domain", "DELETE", f"/domains/{_seg(domain_id)}", idempotent=True)

    async def create_endpoint(self, domain_id: str, body: JSONObject) -> str:
        """``POST domains/{domainId}/endpoints`` (``name``, ``credentials.password``, ``applicationId``,
        ``enabled``, ``description``); the endpoint's id."""
        path = f"/domains/{_seg(domain_id)}/endpoints"
        return (await self._request("create_endpoint", "POST", path, json=body)).location_id

    async def list_endpoints(
        self, domain_id: str, params: Mapping[str, str] | None = None
    ) -> list[JSONObject]:
        """``GET domains/{domainId}/endpoints``."""
        return await self._get_list("list_endpoints", f"/domains/{_seg(domain_id)}/endpoints", params)

    async def get_endpoint(self, domain_id: str, endpoint_id: str) -> JSONObject:
        """``GET domains/{domainId}/endpoints/{endpointId}`` (``sipUri``, ``credentials`` without password)."""
        path = f"/domains/{_seg(domain_id)}/endpoints/{_seg(endpoint_id)}"
        return await self._get_object("get_endpoint", path)

    async def update_endpoint(self, domain_id: str, endpoint_id: str, body: JSONObject) -> None:
        """``POST domains/{domainId}/endpoints/{endpointId}``: unsent fields stay unchanged."""
        path = f"/domains/{_seg(domain_id)}/endpoints/{_seg(endpoint_id)}"
        await self._request("update_endpoint", "POST", path, json=body, idempotent=True)

    async def delete_endpoint(self, domain_id: str, endpoint_id: str) -> None:
        """``DELETE domains/{domainId}/endpoints/{endpointId}``."""
        path = f"/domains/{_seg(domain_id)}/endpoints/{_seg(endpoint_id)}"
        await self._request("delete_endpoint", "DELETE", path, idempotent=True)

    async def list_errors(self, params: Mapping[str, str] | None = None) -> list[JSONObject]:
        """``GET errors``: the account's recent errors, newest first (``page``, ``size``)."""
        return await self._get_list("list_errors", "/errors", params)

    async def get_error(self, error_id: str) -> JSONObject:
        """``GET errors/{errorId}``."""
        return await self._get_object("get_error", f"/errors/{_seg(error_id)}")

    async def get_number_info(self, number: str) -> JSONObject:
        """``GET /v1/phoneNumbers/numberInfo/{number}``: the caller-id (CNAM) ``name`` of an E.164 number."""
        path = f"/phoneNumbers/numberInfo/{_seg(number)}"
        response = await self._request("get_number_info", "GET", path, idempotent=True, root=True)
        if not isinstance(response.body, dict):
            raise CatapultAPIError(
                status=response.status,
                method="GET",
                url=self.base_url + path,
                message=f"expected a JSON object, got {_describe(response.body)}",
            )
        return response.body

    def _expect_list(self, response: Response, path: str, *, root: bool = False) -> list[JSONObject]:
        if not isinstance(response.body, list):
            raise CatapultAPIError(
                status=response.status,
                method="GET",
                url=(self.base_url if root else self._user_url) + path,
                message=f"expected a JSON array, got {_describe(response.body)}",
            )
        return _object_list(response.body)

    # ----------------------------------------------------------------------------------------- generic

    async def execute(self, method: str, path: str, body: JSON = None, *, operation: str = "") -> Response:
        """Send one request the runtime described as (method, path, JSON body).

        ``path`` is the API path as the reference writes it (``/v1/users/{userId}/calls/c-1/gather``) or
        relative to the user (``/calls/c-1/gather``); it must belong to this client's user. Whether a 5xx
        or a broken connection is retried follows :func:`is_safe_to_repeat`.

        Raises:
            ValueError: the path names another user or leaves the API.
        """
        method = method.upper()
        relative = self._relative_path(path)
        name = operation or f"{method.lower()} {relative}"
        return await self._request(
            name,
            method,
            relative,
            json=body,
            idempotent=is_safe_to_repeat(method, relative, body),
        )

    def _relative_path(self, path: str) -> str:
        for prefix in self._user_prefixes:
            if path.startswith(prefix):
                path = path[len(prefix) - 1 :]
                break
        else:
            if path.startswith(("/v1/", "/users/")):
                raise ValueError(f"path {path!r} does not belong to user {self.user_id!r}")
        if not path.startswith("/") or (".." in path and ".." in path.split("/")):
            raise ValueError(f"path {path!r} is not an API path")
        return path

    # ------------------------------------------------------------------------------------ the plumbing

    async def _get_object(self, operation: str, path: str) -> JSONObject:
        response = await self._request(operation, "GET", path, idempotent=True)
        if not isinstance(response.body, dict):
            raise CatapultAPIError(
                status=response.status,
                method="GET",
                url=self._user_url + path,
                message=f"expected a JSON object, got {_describe(response.body)}",
            )
        return response.body

    async def _get_list(
        self, operation: str, path: str, params: Mapping[str, str] | None
    ) -> list[JSONObject]:
        response = await self._request(operation, "GET", path, params=params, idempotent=True)
        if not isinstance(response.body, list):
            raise CatapultAPIError(
                status=response.status,
                method="GET",
                url=self._user_url + path,
                message=f"expected a JSON array, got {_describe(response.body)}",
            )
        return _object_list(response.body)

    def _backoff(self, attempt: int, first: Seconds) -> Seconds:
        """Exponential backoff with "equal jitter": half fixed, half random, capped at ``max_delay``."""
        delay: float = min(self.retry.max_delay, first * 2.0 ** (attempt - 1))
        return delay / 2 + self._jitter() * delay / 2

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: JSON | list[JSONObject] = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        root: bool = False,
    ) -> Response:
        # ``root``: the few resources the API keeps outside the user (availableNumbers, numberInfo).
        url = (self.base_url if root else self._user_url) + path
        payload: bytes | None = data
        is_json = data is None and (json is not None or method in ("POST", "PATCH"))
        if is_json:
            payload = orjson.dumps(json if json is not None else {})
        transport = self._transport
        request_headers: Mapping[str, str] | HeaderBlock
        if transport is not None and not headers:
            # Checked and formatted once, in __init__.
            request_headers = self._json_block if is_json else self._plain_block
        else:
            request_headers = {"Authorization": self._authorization}
            if is_json:
                request_headers["Content-Type"] = "application/json"
            if headers:
                request_headers.update(headers)
        kwargs: dict[str, Any] = {}
        if transport is None:
            kwargs = {"timeout": self._timeout, "headers": request_headers}
            if payload is not None:
                kwargs["data"] = payload
            if params:
                kwargs["params"] = dict(params)
        attempts = self.retry.attempts
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts
            started = time.perf_counter()
            try:
                if transport is not None:
                    reply = await transport.request(
                        method,
                        url,
                        headers=request_headers,
                        body=payload,
                        params=params,
                        timeout=self._timeout_seconds,
                    )
                    raw = reply.body
                    status = reply.status
                    response_headers = reply.headers
                    content_type = reply.content_type if raw else ""
                else:
                    assert self._session is not None
                    async with self._session.request(method, url, **kwargs) as http_response:
                        raw = await http_response.read()
                        status = http_response.status
                        response_headers = CIMultiDict(http_response.headers)
                        content_type = http_response.content_type
            except (aiohttp.ClientError, TransportError, TimeoutError) as exc:
                elapsed = time.perf_counter() - started
                self._observe(operation, "connection-error", elapsed)
                context = {"operation": operation, "method": method, "url": url}
                reason = _connection_reason(exc)
                # A connection that never opened carried nothing: repeating it is safe for any operation.
                safe = idempotent or isinstance(exc, (aiohttp.ClientConnectorError, ConnectError))
                if safe and not last:
                    delay = self._backoff(attempt, self.retry.base_delay)
                    _log.warning(
                        "catapult.retry", **context, attempt=attempt, reason=reason, delay=round(delay, 3)
                    )
                    await self._sleep(delay)
                    continue
                _log.error("catapult.connection_failed", **context, attempt=attempt, reason=reason)
                raise CatapultConnectionError(method, url, reason) from exc
            observer = self._observer
            if observer is not None:
                observer(operation, str(status), time.perf_counter() - started)
            body = _decode(raw, content_type) if raw else None
            if status < 400:
                # bind() is what the lazy proxy's __getattr__ calls; calling it directly skips that frame, a
                # third of the cost of this (usually filtered-out) call on every success.
                _log.bind().debug(
                    "catapult.ok", operation=operation, method=method, url=url, status=status, attempt=attempt
                )
                return Response(status, response_headers, body, raw)

            # Built here, not up front: the success path above logs nothing at the usual levels.
            context = {"operation": operation, "method": method, "url": url}
            error = _error_fields(body)
            code = error["code"]
            if status == 429 or (status == 403 and code in RATE_LIMIT_CODES):
                if status == 429:
                    wait = self._reset_wait(response_headers, error["details"])
                    if wait is None:
                        wait = self._backoff(attempt, self.retry.rate_limit_delay)
                else:
                    wait = self._backoff(attempt, self.retry.rate_limit_delay)
                if not last and wait <= self.retry.max_rate_limit_wait:
                    _log.warning(
                        "catapult.rate_limited", **context, status=status, code=code, wait=round(wait, 3)
                    )
                    await self._sleep(wait)
                    continue
                _log.error(
                    "catapult.rate_limit_exceeded", **context, status=status, code=code, attempt=attempt
                )
                raise CatapultRateLimitError(retry_after=wait, status=status, method=method, url=url, **error)
            if status >= 500 and (idempotent or code in RETRY_LATER_CODES) and not last:
                delay = self._backoff(attempt, self.retry.base_delay)
                _log.warning(
                    "catapult.retry",
                    **context,
                    attempt=attempt,
                    status=status,
                    code=code,
                    delay=round(delay, 3),
                )
                await self._sleep(delay)
                continue
            _log.warning("catapult.error", **context, status=status, code=code, attempt=attempt)
            raise CatapultAPIError(status=status, method=method, url=url, **error)

    def _reset_wait(self, headers: Mapping[str, str], details: list[dict[str, str]]) -> Seconds | None:
        now = self._clock()
        header = headers.get("X-RateLimit-Reset")
        if header is not None:
            wait = parse_rate_limit_reset(header, now)
            if wait is not None:
                return wait
        for detail in details:
            if detail.get("name") == "rateLimitResetTime":
                return parse_rate_limit_reset(detail.get("value", ""), now)
        return None

    def _observe(self, operation: str, status: str, seconds: Seconds) -> None:
        if self._observer is not None:
            self._observer(operation, status, seconds)


def _decode(raw: bytes, content_type: str) -> JSON:
    if not raw:
        return None
    if "json" not in content_type and raw[:1] not in (b"{", b"["):
        return None
    try:
        value: JSON = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value


def _error_fields(body: JSON) -> dict[str, Any]:
    """The documented error body (``category``, ``code``, ``message``, ``details``), tolerating its absence."""
    fields: dict[str, Any] = {"category": "", "code": "", "message": "", "details": []}
    if not isinstance(body, dict):
        return fields
    for key in ("category", "code", "message"):
        value = body.get(key)
        if isinstance(value, str):
            fields[key] = value
    details = body.get("details")
    if isinstance(details, list):
        fields["details"] = [
            {str(k): str(v) for k, v in item.items()} for item in details if isinstance(item, dict)
        ]
    return fields


def _object_list(body: JSON) -> list[JSONObject]:
    if not isinstance(body, list):
        return []
    return [item for item in body if isinstance(item, dict)]


def _describe(body: JSON) -> str:
    if body is None:
        return "no JSON body"
    return type(body).__name__


def _number_kind(kind: str) -> str:
    if kind not in ("local", "tollFree"):
        raise ValueError(f"available numbers are 'local' or 'tollFree', not {kind!r}")
    return kind


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
