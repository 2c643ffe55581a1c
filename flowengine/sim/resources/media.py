"""Media: upload (PUT, raw bytes), download, list and delete files of the account."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowengine.sim.problems import ApiProblem, not_found
from flowengine.sim.rest import ApiRequest, Reply, Route

if TYPE_CHECKING:
    from flowengine.sim.simulator import Simulator

MAX_MEDIA_BYTES = 65 * 1024 * 1024


def put_media(sim: Simulator, req: ApiRequest) -> Reply:
    if len(req.raw) > MAX_MEDIA_BYTES:
        raise ApiProblem(
            403, "forbidden", "media-size-overflow", f"A media file may be at most {MAX_MEDIA_BYTES} bytes"
        )
    sim.store_media(req.params["mediaName"], req.raw, req.content_type or "application/octet-stream")
    return Reply()


def get_media(sim: Simulator, req: ApiRequest) -> Reply:
    media = sim.world.media.get(req.params["mediaName"])
    if media is None:
        raise not_found("media", req.params["mediaName"])
    return Reply(raw=media.content, content_type=media.content_type)


def list_media(sim: Simulator, req: ApiRequest) -> Reply:
    return Reply(body=[m.to_json(sim.urls) for m in sim.world.media.values()])


def delete_media(sim: Simulator, req: ApiRequest) -> Reply:
    if sim.world.media.pop(req.params["mediaName"], None) is None:
        raise not_found("media", req.params["mediaName"])
    return Reply()


ROUTES: tuple[Route, ...] = (
    Route("PUT", "/media/{mediaName}", put_media),
    Route("GET", "/media", list_media),
    Route("GET", "/media/{mediaName}", get_media),
    Route("DELETE", "/media/{mediaName}", delete_media),
)
