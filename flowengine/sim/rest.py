"""The shapes shared by the REST resource modules: a route table entry, the request a handler
reads, the reply it returns, and the small readers most resources need (callback targets, lists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from flowengine.sim.callbacks import Target
from flowengine.sim.params import Field, query_int
from flowengine.sim.problems import ApiProblem
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What a handler sees of a request: path parameters, query, decoded JSON body and raw bytes."""

    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: JSON
    raw: bytes = b""
    content_type: str = ""


@dataclass(slots=True)
class Reply:
    """A handler's answer: a JSON body, raw bytes, or nothing."""

    status: int = 200
    body: JSON = None
    raw: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Simulator", ApiRequest], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: method, path under ``/v1/users/{userId}`` (under ``/v1`` when ``root``, as for
    ``/availableNumbers`` and ``/phoneNumbers/numberInfo``) and the handler that runs it."""

    method: str
    path: str
    handler: Handler
    family: str = ""
    root: bool = False

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.path.strip("/").split("/")[0])


def created(location: str, body: JSON = None) -> Reply:
    """``201 Created`` with the new resource's URL in ``Location``."""
    return Reply(201, body, headers={"Location": location})


def check_url(value: str | None, name: str) -> str | None:
    """Refuse a callback URL that is not an absolute http(s) URL (``callback-invalid-url``)."""
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiProblem(
            400,
            "bad-request",
            "callback-invalid-url",
            f"The property '{name}' must be an absolute http or https URL, not {value!r}",
            details=[{"name": "property", "value": name}],
        )
    return value


CALLBACK_FIELDS: tuple[Field, ...] = (
    Field("callbackUrl"),
    Field("callbackTimeout", "int", minimum=1, maximum=10000),
    Field("callbackHttpMethod"),
    Field("fallbackUrl"),
)


def read_target(body: JSONObject, default: Target | None = None) -> Target:
    """The callback target of a create or update body, keeping ``default``'s unsent values."""
    base = default or Target(None)
    method = body.get("callbackHttpMethod", base.method)
    if not isinstance(method, str) or method.upper() not in ("GET", "POST"):
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            f"The property 'callbackHttpMethod' must be 'GET' or 'POST', not {method!r}",
            details=[{"name": "property", "value": "callbackHttpMethod"}],
        )
    url = body.get("callbackUrl", base.url)
    fallback = body.get("fallbackUrl", base.fallback_url)
    timeout = body.get("callbackTimeout", base.timeout_ms)
    return Target(
        check_url(url if isinstance(url, str) else None, "callbackUrl"),
        method.upper(),
        timeout if isinstance(timeout, int) else 10000,
        check_url(fallback if isinstance(fallback, str) else None, "fallbackUrl"),
    )


T = TypeVar("T")


def page(items: Sequence[T], query: Mapping[str, str]) -> list[T]:
    """The ``page``/``size`` slice of a list (size defaults to 25, at most 1000)."""
    number = query_int(query, "page", 0, 1_000_000)
    size = query_int(query, "size", 25, 1000)
    return list(items[number * size : (number + 1) * size])


def descending(query: Mapping[str, str], default: str = "desc") -> bool:
    order = query.get("sortOrder", default)
    if order not in ("asc", "desc"):
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            f"The query parameter 'sortOrder' must be 'asc' or 'desc', not {order!r}",
            details=[{"name": "property", "value": "sortOrder"}],
        )
    return order == "desc"
