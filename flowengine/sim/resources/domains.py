"""SIP domains (``/domains``): create, list and delete. A domain groups endpoints; deleting one deletes
its endpoints too. At most 100 per account, names unique."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flowengine.sim.params import Field, read_body
from flowengine.sim.problems import ApiProblem, not_found
from flowengine.sim.rest import ApiRequest, Reply, Route, created, page
from flowengine.sim.state import Domain

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

MAX_DOMAINS = 100
DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

CREATE = (
    Field(
        "name",
        required=True,
        allow_blank=False,
        pattern=DOMAIN_NAME,
        pattern_hint="1 to 63 letters, digits, '-' or '_' (it becomes part of a DNS name)",
    ),
    Field("description", required=True, max_length=1024),
)


def create_domain(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("domain", CREATE, req.body)
    name = str(body["name"])
    if any(d.name.lower() == name.lower() for d in sim.world.domains.values()):
        raise ApiProblem(
            409, "conflict", "duplicate-domain", f"Cannot create another instance of domain {name}"
        )
    if len(sim.world.domains) >= MAX_DOMAINS:
        raise ApiProblem(
            403, "limit", "domain-limit-reached", f"An account can have at most {MAX_DOMAINS} domains"
        )
    domain = Domain(sim.world.ids.new("rd"), name, str(body["description"]))
    sim.world.domains[domain.id] = domain
    return created(sim.urls.of("domains", domain.id))


def domain_of(sim: Simulator, req: ApiRequest) -> Domain:
    """The domain named by the ``domainId`` path parameter (404 ``domain-not-found``)."""
    domain = sim.world.domains.get(req.params["domainId"])
    if domain is None:
        raise not_found("domain", req.params["domainId"])
    return domain


def list_domains(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=[d.to_json(sim.urls) for d in page(list(sim.world.domains.values()), req.query)])


def delete_domain(sim: Simulator, req: ApiRequest) -> Reply:
    domain = domain_of(sim, req)
    for endpoint_id in [e.id for e in sim.world.endpoints.values() if e.domain_id == domain.id]:
        del sim.world.endpoints[endpoint_id]
    del sim.world.domains[domain.id]
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("POST", "/domains", create_domain),
    Route("GET", "/domains", list_domains),
    Route("DELETE", "/domains/{domainId}", delete_domain),
)
