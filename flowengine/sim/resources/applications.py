"""Applications: where a number's inbound calls and messages are announced. Create, read, list,
update (unsent fields keep their values) and delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.params import Field, read_body
from flowengine.sim.problems import not_found, validation
from flowengine.sim.rest import ApiRequest, Reply, Route, check_url, created, page
from flowengine.sim.state import Application
from flowengine.typing import JSONObject

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

FIELDS = (
    Field("name", allow_blank=False),
    Field("incomingCallUrl"),
    Field("incomingCallUrlCallbackTimeout", "int", minimum=1, maximum=10000),
    Field("incomingCallFallbackUrl"),
    Field("incomingMessageUrl"),
    Field("incomingMessageUrlCallbackTimeout", "int", minimum=1, maximum=10000),
    Field("incomingMessageFallbackUrl"),
    Field("callbackHttpMethod"),
    Field("autoAnswer", "bool"),
)

_ATTRS = {
    "name": "name",
    "incomingCallUrl": "incoming_call_url",
    "incomingCallUrlCallbackTimeout": "incoming_call_timeout",
    "incomingCallFallbackUrl": "incoming_call_fallback_url",
    "incomingMessageUrl": "incoming_message_url",
    "incomingMessageUrlCallbackTimeout": "incoming_message_timeout",
    "incomingMessageFallbackUrl": "incoming_message_fallback_url",
    "callbackHttpMethod": "callback_http_method",
    "autoAnswer": "auto_answer",
}


def _apply(application: Application, body: JSONObject) -> None:
    for name, value in body.items():
        if name.endswith("Url"):
            value = check_url(value if isinstance(value, str) else None, name)
        if name == "callbackHttpMethod":
            method = str(value).upper()
            if method not in ("GET", "POST"):
                raise validation(
                    f"The property 'callbackHttpMethod' must be 'GET' or 'POST', not {value!r}", name
                )
            value = method
        setattr(application, _ATTRS[name], value)


def create_application(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("application", (Field("name", required=True, allow_blank=False), *FIELDS[1:]), req.body)
    if not body.get("incomingCallUrl") and not body.get("incomingMessageUrl"):
        raise validation(
            "An application needs an 'incomingCallUrl' or an 'incomingMessageUrl'", "incomingCallUrl"
        )
    application = Application(sim.world.ids.new("a"), str(body["name"]))
    _apply(application, body)
    sim.world.applications[application.id] = application
    return created(sim.urls.of("applications", application.id))


def _application(sim: Simulator, req: ApiRequest) -> Application:
    application = sim.world.applications.get(req.params["applicationId"])
    if application is None:
        raise not_found("application", req.params["applicationId"])
    return application


def get_application(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_application(sim, req).to_json(sim.urls))


def list_applications(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=[a.to_json(sim.urls) for a in page(list(sim.world.applications.values()), req.query)])


def update_application(sim: Simulator, req: ApiRequest) -> Reply:
    application = _application(sim, req)
    _apply(application, read_body("application", FIELDS, req.body))
    return Reply()


def delete_application(sim: Simulator, req: ApiRequest) -> Reply:
    application = _application(sim, req)
    del sim.world.applications[application.id]
    for number in sim.world.numbers.values():
        if number.application_id == application.id:
            number.application_id = None
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("POST", "/applications", create_application),
    Route("GET", "/applications", list_applications),
    Route("GET", "/applications/{applicationId}", get_application),
    Route("POST", "/applications/{applicationId}", update_application),
    Route("DELETE", "/applications/{applicationId}", delete_application),
)
