"""The control API under ``/sim``: the phones' side of the simulator (place a call, press digits,
stay silent, hang up, text in), how dialled numbers and deliveries behave, the clock, and what
happened (transcripts, callback deliveries, errors answered). No auth: it listens on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from flowengine.errors import ConfigError
from flowengine.sim.api import SIM_KEY, json_response, learn_origin
from flowengine.sim.clock import VirtualClock, iso8601
from flowengine.sim.params import E164, Field, read_body
from flowengine.sim.problems import ApiProblem
from flowengine.sim.simulator import Simulator
from flowengine.typing import JSON, JSONObject

Action = Callable[[Simulator, web.Request, JSONObject], Awaitable[tuple[int, JSON]]]

NUMBER = Field("number", pattern=E164, pattern_hint="an E.164 number like +19195551212")
PLACE = (
    Field("from", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("to", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("diversion", "object"),
)
PRESS = (Field("digits", required=True, allow_blank=False),)
SILENCE = (Field("seconds", "float", required=True, minimum=0, maximum=3600),)
BEHAVIOUR = (
    Field("mode", choices=("answer", "busy", "no-answer", "reject", "unallocated")),
    Field("after", "float", minimum=0, maximum=300),
    Field("hangupAfter", "float", minimum=0, maximum=86400),
    Field("transcription", max_length=100000),
)
TEXT_IN = (
    Field("from", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("to", required=True, pattern=E164, pattern_hint="an E.164 number like +19195551212"),
    Field("text", max_length=2048),
    Field("media", "strlist"),
)
DELIVERY = (
    Field("outcome", required=True, choices=("delivered", "not-delivered", "error")),
    Field("code", "int", minimum=0, maximum=999),
)
TRANSCRIPTION = (Field("text", required=True, max_length=100000),)
ADVANCE = (Field("seconds", "float", required=True, minimum=0, maximum=86400 * 7),)
FAULTS = (
    Field("errorRate", "float", minimum=0, maximum=1),
    Field("delayRate", "float", minimum=0, maximum=1),
    Field("delaySeconds", "float", minimum=0, maximum=60),
    Field("seed", "int"),
)
LIMITS = (Field("enabled", "bool", required=True),)

REAL_SILENCE_CAP = 300.0


def _status(sim: Simulator) -> JSONObject:
    clock = sim.clock
    return {
        "baseUrl": f"{sim.urls.origin}/v1",
        "userId": sim.config.user_id,
        "token": sim.config.token,
        "secret": sim.config.secret,
        "clock": "virtual" if isinstance(clock, VirtualClock) else "real",
        "now": iso8601(clock.now()),
        "rateLimits": sim.rate_limits,
        "faults": {
            "errorRate": sim.faults.error_rate,
            "delayRate": sim.faults.delay_rate,
            "delaySeconds": sim.faults.delay_seconds,
            "seed": sim.faults.seed,
        },
    }


async def info(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    return 200, _status(sim)


async def place_call(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("call", PLACE, body)
    diversion = fields.get("diversion")
    call = sim.place_call(
        str(fields["from"]), str(fields["to"]), diversion if isinstance(diversion, dict) else None
    )
    return 201, {"callId": call.id, "call": call.to_json(sim.urls)}


async def press(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("press", PRESS, body)
    sim.press(request.match_info["callId"], str(fields["digits"]))
    return 200, {"callId": request.match_info["callId"]}


async def silence(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("silence", SILENCE, body)
    seconds = float(fields["seconds"])  # type: ignore[arg-type]
    call = sim.voice.call(request.match_info["callId"])
    sim.voice.note(call, "silent", f"{seconds:g} s")
    if isinstance(sim.clock, VirtualClock):
        await sim.advance(seconds)
    else:
        await asyncio.sleep(min(seconds, REAL_SILENCE_CAP))
    return 200, {"callId": call.id, "now": iso8601(sim.clock.now())}


async def hangup(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    sim.hangup(request.match_info["callId"])
    return 200, {"callId": request.match_info["callId"]}


async def transcript(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    return 200, list(sim.transcript(request.match_info["callId"]))


async def set_phone(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    number = _number(request)
    fields = read_body("phone", BEHAVIOUR, body)
    behaviour = sim.set_behaviour(
        number,
        mode=str(fields.get("mode", "answer")),  # type: ignore[arg-type]
        after=_float(fields.get("after")),
        hangup_after=_float(fields.get("hangupAfter")),
        transcription=_text(fields.get("transcription")),
    )
    return 200, {"number": number, **behaviour.to_json()}


async def list_phones(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    return 200, {number: b.to_json() for number, b in sim.controls.phones.items()}


async def text_in(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("message", TEXT_IN, body)
    media = fields.get("media")
    message = sim.send_sms(
        str(fields["from"]),
        str(fields["to"]),
        str(fields.get("text", "")),
        [str(m) for m in media] if isinstance(media, list) else None,
    )
    return 201, {"messageId": message.id, "message": message.to_json(sim.urls)}


async def set_delivery(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    number = _number(request)
    fields = read_body("delivery", DELIVERY, body)
    code = fields.get("code")
    rule = sim.set_delivery(
        number,
        str(fields["outcome"]),  # type: ignore[arg-type]
        code if isinstance(code, int) else None,
    )
    return 200, {
        "number": number,
        "outcome": rule.outcome,
        "code": rule.code,
        "description": rule.description(),
    }


async def set_transcription(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("transcription", TRANSCRIPTION, body)
    key = request.match_info.get("key")
    sim.set_transcription(key, str(fields["text"]))
    return 200, {"key": key, "text": fields["text"]}


async def clock(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    pending = sim.clock.pending() if isinstance(sim.clock, VirtualClock) else None
    return 200, {"now": iso8601(sim.clock.now()), "epoch": sim.clock.now(), "pending": pending}


async def advance(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("advance", ADVANCE, body)
    try:
        ran = await sim.advance(float(fields["seconds"]))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ApiProblem(409, "conflict", "real-clock", str(exc)) from None
    return 200, {"now": iso8601(sim.clock.now()), "epoch": sim.clock.now(), "ran": ran}


async def settle(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    await sim.settle()
    return 200, {"now": iso8601(sim.clock.now())}


async def callbacks(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    failed = request.query.get("status") == "failed"
    key = request.query.get("key")
    found = [d for d in sim.deliveries(failed) if key is None or d.key == key]
    return 200, [d.to_json() for d in found]


async def errors(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    return 200, list(sim.api_errors)


async def set_faults(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("faults", FAULTS, body)
    faults = sim.faults
    faults.error_rate = float(fields.get("errorRate", faults.error_rate))  # type: ignore[arg-type]
    faults.delay_rate = float(fields.get("delayRate", faults.delay_rate))  # type: ignore[arg-type]
    faults.delay_seconds = float(fields.get("delaySeconds", faults.delay_seconds))  # type: ignore[arg-type]
    if "seed" in fields:
        faults.reseed(int(fields["seed"]))  # type: ignore[arg-type]
    return 200, _status(sim)["faults"]


async def set_limits(sim: Simulator, request: web.Request, body: JSONObject) -> tuple[int, JSON]:
    fields = read_body("limits", LIMITS, body)
    sim.rate_limits = bool(fields["enabled"])
    return 200, {"enabled": sim.rate_limits}


def _number(request: web.Request) -> str:
    number = request.match_info["number"].strip()
    if number and number[0].isdigit():
        number = "+" + number
    if not E164.match(number):
        raise ApiProblem(
            400,
            "bad-request",
            "validation-error",
            f"The number in the path must be E.164 like +19195551212, not {request.match_info['number']!r}",
        )
    return number


def _float(value: JSON) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: JSON) -> str | None:
    return value if isinstance(value, str) else None


def _wrap(action: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        sim = request.app[SIM_KEY]
        learn_origin(sim, request)
        try:
            body: JSON = {}
            if request.method in ("POST", "PUT") and request.can_read_body:
                raw = await request.read()
                if raw.strip():
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise ApiProblem(
                            400, "bad-request", "invalid-json", f"The request body is not valid JSON: {exc}"
                        ) from None
            if not isinstance(body, dict):
                raise ApiProblem(
                    400, "bad-request", "validation-error", "The request body must be a JSON object"
                )
            status, result = await action(sim, request, body)
        except ApiProblem as problem:
            return json_response(
                problem.status, problem.body(request.method, request.path, request.remote or "")
            )
        return json_response(status, result)

    return handle


CONTROL_ROUTES: tuple[tuple[str, str, Action], ...] = (
    ("GET", "/sim", info),
    ("POST", "/sim/calls", place_call),
    ("POST", "/sim/calls/{callId}/press", press),
    ("POST", "/sim/calls/{callId}/silence", silence),
    ("POST", "/sim/calls/{callId}/hangup", hangup),
    ("GET", "/sim/calls/{callId}/transcript", transcript),
    ("GET", "/sim/phones", list_phones),
    ("PUT", "/sim/phones/{number}", set_phone),
    ("POST", "/sim/messages", text_in),
    ("PUT", "/sim/deliveries/{number}", set_delivery),
    ("PUT", "/sim/transcriptions", set_transcription),
    ("PUT", "/sim/transcriptions/{key}", set_transcription),
    ("GET", "/sim/clock", clock),
    ("POST", "/sim/clock/advance", advance),
    ("POST", "/sim/settle", settle),
    ("GET", "/sim/callbacks", callbacks),
    ("GET", "/sim/errors", errors),
    ("PUT", "/sim/faults", set_faults),
    ("PUT", "/sim/limits", set_limits),
)


def add_control_routes(app: web.Application) -> None:
    from flowengine.sim.resources import CONTROL_ROUTES as RESOURCE_CONTROL_ROUTES

    for method, path, action in (*CONTROL_ROUTES, *RESOURCE_CONTROL_ROUTES):
        app.router.add_route(method, path, _wrap(action))
