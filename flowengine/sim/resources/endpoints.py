"""SIP endpoints of a domain (``/domains/{domainId}/endpoints``): create, list, read, update, delete.

The password is kept only as a salted PBKDF2 hash: no answer ever carries it. The control API's
``POST /sim/sip/register`` checks a SIP client's credentials against it, the way the registrar would.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

from aiohttp import web

from flowengine.sim.params import Field, missing_property, read_body
from flowengine.sim.problems import ApiProblem, not_found, validation
from flowengine.sim.resources.domains import domain_of
from flowengine.sim.rest import ApiRequest, Reply, Route, created, page
from flowengine.sim.state import Endpoint
from flowengine.typing import JSON, JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

SIP_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}$")
"""RFC 3261's ``user`` characters (unreserved and user-unreserved), unescaped."""

_FIELDS = (
    Field("description", max_length=1024),
    Field("applicationId"),
    Field("enabled", "bool"),
    Field("credentials", "object"),
)
CREATE = (
    Field(
        "name", required=True, allow_blank=False, pattern=SIP_USER, pattern_hint="a SIP user name (RFC 3261)"
    ),
    *_FIELDS[:3],
    Field("credentials", "object", required=True),
)
UPDATE = (Field("name"), *_FIELDS)


def _hash(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode("latin-1"), salt.encode(), 10_000).hex()


def _password(credentials: JSON, required: bool) -> str | None:
    if not isinstance(credentials, dict) or credentials.get("password") is None:
        if required:
            raise missing_property("endpoint", "credentials.password")
        return None
    password = credentials["password"]
    if not isinstance(password, str) or len(password) < 6:
        raise validation(
            "The 'endpoint' resource property 'credentials.password' must be at least 6 characters long",
            "credentials.password",
        )
    try:
        password.encode("latin-1")
    except UnicodeEncodeError:
        raise validation(
            "The 'endpoint' resource property 'credentials.password' must hold only Latin-1 characters",
            "credentials.password",
        ) from None
    return password


def _application(sim: Simulator, value: JSON) -> str | None:
    if value in (None, ""):
        return None
    assert isinstance(value, str)
    if value not in sim.world.applications:
        raise not_found("application", value)
    return value


def create_endpoint(sim: Simulator, req: ApiRequest) -> Reply:
    domain = domain_of(sim, req)
    body = read_body("endpoint", CREATE, req.body)
    name = str(body["name"])
    password = _password(body["credentials"], required=True)
    assert password is not None
    if any(e.domain_id == domain.id and e.name == name for e in sim.world.endpoints.values()):
        raise ApiProblem(
            409,
            "conflict",
            "duplicate-endpoint",
            f"Cannot create another instance of endpoint {name} in domain {domain.name}",
        )
    salt = secrets.token_hex(8)
    endpoint = Endpoint(
        id=sim.world.ids.new("re"),
        domain_id=domain.id,
        domain_name=domain.name,
        name=name,
        password_hash=_hash(password, salt),
        salt=salt,
        description=_text(body.get("description")),
        application_id=_application(sim, body.get("applicationId")),
        enabled=bool(body.get("enabled", True)),
    )
    sim.world.endpoints[endpoint.id] = endpoint
    return created(sim.urls.of("domains", domain.id, "endpoints", endpoint.id))


def _text(value: JSON) -> str | None:
    return value if isinstance(value, str) and value else None


def _endpoint(sim: Simulator, req: ApiRequest) -> Endpoint:
    domain = domain_of(sim, req)
    endpoint = sim.world.endpoints.get(req.params["endpointId"])
    if endpoint is None or endpoint.domain_id != domain.id:
        raise not_found("endpoint", req.params["endpointId"])
    return endpoint


def list_endpoints(sim: Simulator, req: ApiRequest) -> Reply:
    domain = domain_of(sim, req)
    endpoints = [e for e in sim.world.endpoints.values() if e.domain_id == domain.id]
    return Reply(body=[e.to_json(sim.urls) for e in page(endpoints, req.query)])


def get_endpoint(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_endpoint(sim, req).to_json(sim.urls))


def update_endpoint(sim: Simulator, req: ApiRequest) -> Reply:
    endpoint = _endpoint(sim, req)
    body = read_body("endpoint", UPDATE, req.body)
    if "name" in body and body["name"] != endpoint.name:
        raise validation("The 'endpoint' resource property 'name' cannot be changed", "name")
    password = _password(body.get("credentials"), required=False)
    if "applicationId" in body:
        endpoint.application_id = _application(sim, body["applicationId"])
    if "description" in body:
        endpoint.description = _text(body["description"])
    if "enabled" in body:
        endpoint.enabled = bool(body["enabled"])
    if password is not None:
        endpoint.salt = secrets.token_hex(8)
        endpoint.password_hash = _hash(password, endpoint.salt)
    return Reply()


def delete_endpoint(sim: Simulator, req: ApiRequest) -> Reply:
    endpoint = _endpoint(sim, req)
    del sim.world.endpoints[endpoint.id]
    return Reply()


def endpoint_for(sim: Simulator, sip_uri: str) -> Endpoint | None:
    """The endpoint a SIP URI (``sip:`` prefix optional) names, if any."""
    wanted = sip_uri.removeprefix("sip:").lower()
    for endpoint in sim.world.endpoints.values():
        if endpoint.sip_uri.lower() == wanted:
            return endpoint
    return None


def check_registration(sim: Simulator, sip_uri: str, password: str) -> Endpoint:
    """What the SIP registrar does with a REGISTER: the endpoint, if the credentials are right and it is
    enabled.

    Raises:
        ApiProblem: 404 for an unknown SIP URI, 401 for a wrong password, 403 for a disabled endpoint.
    """
    endpoint = endpoint_for(sim, sip_uri)
    if endpoint is None:
        raise ApiProblem(404, "not-found", "endpoint-not-found", f"No endpoint has the SIP URI {sip_uri!r}")
    try:
        given = _hash(password, endpoint.salt)
    except UnicodeEncodeError:
        given = ""
    if not hmac.compare_digest(given, endpoint.password_hash):
        raise ApiProblem(401, "authentication", "unauthorized", f"Wrong password for {endpoint.sip_uri}")
    if not endpoint.enabled:
        raise ApiProblem(
            403, "forbidden", "endpoint-disabled", f"The endpoint {endpoint.sip_uri} is disabled"
        )
    return endpoint


REGISTER = (
    Field("sipUri", required=True, allow_blank=False),
    Field("password", required=True),
)


async def register(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    """Control API: a SIP client registers with an endpoint's credentials."""
    fields = read_body("register", REGISTER, body)
    endpoint = check_registration(sim, str(fields["sipUri"]), str(fields["password"]))
    return 200, {"registered": True, "endpointId": endpoint.id, "sipUri": endpoint.sip_uri}


ROUTES: tuple[Route, ...] = (
    Route("POST", "/domains/{domainId}/endpoints", create_endpoint, family="endpoints"),
    Route("GET", "/domains/{domainId}/endpoints", list_endpoints, family="endpoints"),
    Route("GET", "/domains/{domainId}/endpoints/{endpointId}", get_endpoint, family="endpoints"),
    Route("POST", "/domains/{domainId}/endpoints/{endpointId}", update_endpoint, family="endpoints"),
    Route("DELETE", "/domains/{domainId}/endpoints/{endpointId}", delete_endpoint, family="endpoints"),
)

CONTROL_ROUTES = (("POST", "/sim/sip/register", register),)
