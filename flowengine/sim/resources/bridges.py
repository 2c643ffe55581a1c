"""Bridges: create, update (calls and audio on/off), play audio to both calls, read and list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.params import Field, read_body
from flowengine.sim.problems import not_found, validation
from flowengine.sim.resources.calls import AUDIO
from flowengine.sim.rest import ApiRequest, Reply, Route, created, page
from flowengine.sim.state import Bridge
from flowengine.typing import JSON

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

FIELDS = (Field("bridgeAudio", "bool"), Field("callIds", "strlist"))


def _bridge(sim: Simulator, req: ApiRequest) -> Bridge:
    bridge = sim.world.bridges.get(req.params["bridgeId"])
    if bridge is None:
        raise not_found("bridge", req.params["bridgeId"])
    return bridge


def _call_ids(value: JSON) -> list[str]:
    ids = [str(item) for item in value] if isinstance(value, list) else []
    if len(set(ids)) != len(ids):
        raise validation(f"The property 'callIds' lists a call twice: {ids!r}", "callIds")
    return ids


def create_bridge(sim: Simulator, req: ApiRequest) -> Reply:
    body = read_body("bridge", FIELDS, req.body)
    bridge = Bridge(sim.world.ids.new("brg"), sim.clock.now(), bool(body.get("bridgeAudio", True)))
    ids = _call_ids(body.get("callIds", []))
    sim.rooms.bridge_calls(bridge, ids)
    sim.world.bridges[bridge.id] = bridge
    # The reference's Location for a bridge reads /calls/{bridgeId}; the bridge's own URL is served.
    return created(sim.urls.of("bridges", bridge.id))


def update_bridge(sim: Simulator, req: ApiRequest) -> Reply:
    bridge = _bridge(sim, req)
    body = read_body("bridge", FIELDS, req.body)
    if bridge.state == "completed":
        raise validation(f"The bridge {bridge.id} has completed and cannot be changed", "state")
    if "bridgeAudio" in body:
        bridge.bridge_audio = bool(body["bridgeAudio"])
    if "callIds" in body:
        sim.rooms.bridge_calls(bridge, _call_ids(body["callIds"]))
    else:
        sim.rooms.refresh_bridge(bridge)
    return Reply()


def bridge_audio(sim: Simulator, req: ApiRequest) -> Reply:
    bridge = _bridge(sim, req)
    body = read_body("audio", AUDIO, req.body)
    calls = [sim.world.calls[c] for c in bridge.call_ids if sim.world.calls[c].state == "active"]
    stop = body.get("sentence") == "" or body.get("fileUrl") == ""
    for call in calls:
        if stop:
            if call.playing is not None or call.audio:
                sim.voice.stop_audio(call)
            continue
        item = sim.voice.audio_item(body)
        if item is None:
            raise validation("An audio request needs a 'sentence' or a 'fileUrl'", "sentence")
        sim.voice.play(call, item)
    return Reply()


def get_bridge(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=_bridge(sim, req).to_json(sim.urls))


def bridge_calls(sim: Simulator, req: ApiRequest) -> Reply:
    bridge = _bridge(sim, req)
    return Reply(body=[sim.world.calls[c].to_json(sim.urls) for c in bridge.call_ids])


def list_bridges(sim: Simulator, req: ApiRequest) -> Reply:
    bridges = sorted(sim.world.bridges.values(), key=lambda b: b.created_time, reverse=True)
    return Reply(body=[b.to_json(sim.urls) for b in page(bridges, req.query)])


ROUTES: tuple[Route, ...] = (
    Route("POST", "/bridges", create_bridge),
    Route("GET", "/bridges", list_bridges),
    Route("GET", "/bridges/{bridgeId}", get_bridge),
    Route("POST", "/bridges/{bridgeId}", update_bridge),
    Route("POST", "/bridges/{bridgeId}/audio", bridge_audio),
    Route("GET", "/bridges/{bridgeId}/calls", bridge_calls),
)
